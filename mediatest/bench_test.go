package mediatest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	dto "github.com/prometheus/client_model/go"

	"invigil/detectors/eval"
	"invigil/detectors/rules"
	"invigil/internal/testassets"
	"invigil/sfu"
	"invigil/sfu/client"
	"invigil/simulate"
)

// The load: 640×480 VP8 at 15 fps in three temporal layers (L1T3, as the
// candidate page publishes), a candidate in view for 6 s, then the empty
// room for 6 s, looping; webcam-like sensor noise so that the encoder and
// the decoders work as hard as with a real camera.
const (
	loadFPS       = 15
	loadKbps      = 800
	loadNoise     = 2.0
	loadSceneSecs = 6
	settle        = 4 * time.Second  // after candidates join, before measuring
	window        = 12 * time.Second // one measurement: a whole scenario loop
	costWindow    = 8 * time.Second
	rampBudget    = 5 * time.Minute // each ramp stops when it would go beyond
	stallGap      = 500 * time.Millisecond
	latencyLimit  = 1.0 // s, p99
	onsetSlackMS  = 1000
	loadGenEnv    = "MEDIATEST_LOADGEN"
	// rampsEnv=off measures only the cost split (about 2 minutes instead
	// of 12), for quick comparisons while tuning a stage.
	rampsEnv = "MEDIATEST_RAMPS"
	// holdEnv=N holds N candidates for three windows instead (holdAt).
	holdEnv        = "MEDIATEST_HOLD"
	loadGenTimeout = 15 * time.Minute
)

// BenchmarkCandidates finds the largest number of concurrent candidates
// (rest-room policy) the media plane sustains on this machine: analysis
// latency p99 under 1 s, no forwarding stall (a forwarded video track
// silent for 500 ms, or a packet the SFU dropped), and every face_off_screen
// opening within its minimum duration plus 1 s of the room going empty. The
// candidates are replayed from pre-encoded RTP by a separate load-generator
// process (this test binary, re-executed), which also plays a hidden
// proctor watching every candidate, so this process's CPU is the server's
// alone. Before the ramp, the server's CPU per candidate is split into
// receive+forward, recording, and the pipeline's stages by running the
// same load through the SFU alone, with the recorder, and with both taps;
// then the audio path's cost is measured on the full stack with every
// candidate's microphone quiet, and speaking half the time. In the ramp
// every candidate publishes the speaking microphone too.
func BenchmarkCandidates(b *testing.B) {
	dir := b.TempDir()
	moving, still, empty := movingFace(b), scene(b, dir, "a", []person{personA}), scene(b, dir, "empty", nil)
	quietMic, speakingMic := benchMics(b, dir)
	cores := runtime.NumCPU()
	if os.Getenv(cascadesEnv) == "off" {
		fmt.Printf("%s=off: the face and palm detectors run on every face and hand analysis\n", cascadesEnv)
	}
	var sustained, sustainedStill int
	var rows, stillRows []benchStep

	if hold := os.Getenv(holdEnv); hold != "" {
		n, err := strconv.Atoi(hold)
		if err != nil || n < 1 {
			b.Fatalf("%s=%q: want a number of candidates", holdEnv, hold)
		}
		holdAt(b, cores, n, moving, empty, speakingMic)
		return
	}
	for i := 0; i < b.N; i++ {
		// Cost split at a load every machine sustains, on the moving
		// footage.
		const costN = 4
		sfuOnly := measureCost(b, stackOptions{noRecorder: true, noPipeline: true}, moving, empty, "", costN)
		withRec := measureCost(b, stackOptions{noPipeline: true}, moving, empty, "", costN)
		full := measureCost(b, stackOptions{workers: cores}, moving, empty, "", costN)
		printCostSplit(costN, sfuOnly, withRec, full)
		quiet := measureCost(b, stackOptions{workers: cores}, moving, empty, quietMic, costN)
		speaking := measureCost(b, stackOptions{workers: cores}, moving, empty, speakingMic, costN)
		quietCPU, speakingCPU := audioPathCPU(b, quietMic, 60), audioPathCPU(b, speakingMic, 60)
		printAudioCost(costN, full, quiet, speaking, quietCPU, speakingCPU)
		b.ReportMetric(quietCPU*1000, "audio-quiet-cpu-ms/cand-s")
		b.ReportMetric(speakingCPU*1000, "audio-speaking-cpu-ms/cand-s")
		b.ReportMetric(quiet.audioBusy*1000, "audio-quiet-busy-ms/cand-s")
		b.ReportMetric(speaking.audioBusy*1000, "audio-speaking-busy-ms/cand-s")

		if os.Getenv(rampsEnv) == "off" {
			fmt.Printf("%s=off: no ramps\n", rampsEnv)
			continue
		}
		// The ramps: the main case on moving footage, then the still
		// photograph the benchmark used before, for comparison.
		fmt.Printf("\nRamp on moving footage (a webcam recording of a person talking and moving, then the empty room):\n")
		rows, sustained = ramp(b, cores, moving, empty, speakingMic)
		fmt.Printf("\nRamp on a still photograph (then the empty room):\n")
		stillRows, sustainedStill = ramp(b, cores, still, empty, speakingMic)
	}
	fmt.Printf("\nMoving footage:\n")
	printSummary(rows, sustained, cores)
	fmt.Printf("Still photograph:\n")
	printSummary(stillRows, sustainedStill, cores)
	b.ReportMetric(float64(sustained), "candidates")
	b.ReportMetric(float64(sustained)/float64(cores), "candidates/core")
	b.ReportMetric(float64(sustainedStill)/float64(cores), "still-candidates/core")
	if n := len(rows); n > 0 {
		b.ReportMetric(rows[n-1].rssPerCand/(1<<20), "rss-MiB/cand")
	}
}

// movingFace is the evaluation set's webcam recording of a man talking and
// moving his head (FGNet's "talking face", franck.mp4), provisioned with
// the set's sources.
func movingFace(b *testing.B) string {
	b.Helper()
	sources := filepath.Join(testassets.RepoRoot(b), ".cache", "eval", "sources")
	if err := eval.ProvisionSources(b.Context(), sources, io.Discard); err != nil {
		b.Fatalf("the webcam recordings: %v", err)
	}
	return eval.SourcePath(sources, "franck.mp4")
}

// holdAt runs n candidates on moving footage, speaking half the time, for
// three measurement windows: a steady load to profile (-cpuprofile,
// -memprofile) at a chosen size.
func holdAt(b *testing.B, cores, n int, face, empty, mic string) {
	st := newStack(b, stackOptions{workers: cores})
	defer st.close()
	baseRSS := processRSS(b)
	gen := startLoadGen(b, st.url, face, empty, mic)
	defer gen.quit(b)
	gen.add(b, n)
	fmt.Printf("%s=%d: moving footage, microphones speaking half the time\n", holdEnv, n)
	for range 3 {
		row := measureStep(b, st, gen, n)
		row.rssPerCand = float64(processRSS(b)-baseRSS) / float64(n)
		printStep(row)
	}
}

// ramp adds candidates step by step until one step misses a limit (or the
// time budget is spent) and returns the steps and the last one sustained.
func ramp(b *testing.B, cores int, face, empty, mic string) ([]benchStep, int) {
	start := time.Now()
	st := newStack(b, stackOptions{workers: cores})
	defer st.close()
	baseRSS := processRSS(b)
	gen := startLoadGen(b, st.url, face, empty, mic)
	defer gen.quit(b)
	var rows []benchStep
	sustained := 0
	var firstRSS int64
	var firstN int
	for _, n := range []int{2, 4, 8, 16, 24, 32, 36, 40, 44, 48, 52, 56, 60, 64, 72} {
		if time.Since(start)+settle+window+10*time.Second > rampBudget {
			fmt.Printf("ramp stopped at %d candidates: its time budget (%v) is spent\n", gen.total, rampBudget)
			break
		}
		gen.add(b, n-gen.total)
		row := measureStep(b, st, gen, n)
		// Per candidate: the growth since the ramp's first step, divided by
		// the candidates added since (the first step: over the empty
		// stack). A process that ran a ramp before keeps some of its memory
		// (Go's heap and the C libraries' allocators), which the first
		// step's figure absorbs.
		rss := processRSS(b)
		if len(rows) == 0 {
			row.rssPerCand = float64(rss-baseRSS) / float64(n)
			firstRSS, firstN = rss, n
		} else {
			row.rssPerCand = float64(rss-firstRSS) / float64(n-firstN)
		}
		rows = append(rows, row)
		printStep(row)
		if !row.ok() {
			break
		}
		sustained = n
	}
	return rows, sustained
}

// processRSS is this process's resident set in bytes (the server: the
// load generator is another process), after a collection that hands freed
// heap back to the system, so that an earlier ramp's garbage does not
// count (memory held by libvpx and OpenCV is what it is).
func processRSS(b *testing.B) int64 {
	b.Helper()
	debug.FreeOSMemory()
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatalf("read RSS: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				b.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// benchStep is one step of the ramp.
type benchStep struct {
	n              int
	seconds        float64
	serverCPU      float64 // cores
	genCPU         float64 // cores
	machineCPU     float64 // cores busy on the whole machine, others' work included
	p50, p99       float64 // s
	analysedFPS    float64 // per candidate
	maxGap         time.Duration
	sfuDropped     float64
	onsets         []int64 // excess over the rule's minimum, ms
	missed         int     // switches to the empty room with no violation
	superseded     float64 // frames dropped unanalysed, per candidate per second
	queueDrops     float64 // pipeline packet queue drops
	workerUtil     float64
	framesPerCandS float64
	// analyses per candidate per second by what asked for them
	byTrigger map[string]float64
	carried   float64 // of those, repeats of the last observation
	// speechBatch is the speech chunks judged per run of the model.
	speechBatch float64
	// networks' runs per analysis (invigil_pipeline_network_runs_total)
	networkRuns map[string]float64
	rssPerCand  float64 // bytes of server RSS per candidate (see ramp)
}

// medianOnset is the middle onset over the minimum (0 without any): the
// maximum decides the verdict, the median says how the rest fared.
func (r benchStep) medianOnset() int64 {
	if len(r.onsets) == 0 {
		return 0
	}
	sorted := slices.Sorted(slices.Values(r.onsets))
	return sorted[len(sorted)/2]
}

func (r benchStep) maxOnset() int64 {
	var m int64
	for _, o := range r.onsets {
		m = max(m, o)
	}
	return m
}

func (r benchStep) ok() bool {
	return r.p99 < latencyLimit && r.maxGap < stallGap && r.sfuDropped == 0 && r.maxOnset() <= onsetSlackMS && r.missed == 0
}

func (r benchStep) verdict() string {
	var why []string
	if r.p99 >= latencyLimit {
		why = append(why, "latency")
	}
	if r.maxGap >= stallGap || r.sfuDropped > 0 {
		why = append(why, "stall")
	}
	if r.maxOnset() > onsetSlackMS || r.missed > 0 {
		why = append(why, "onset")
	}
	if len(why) == 0 {
		return "ok"
	}
	return "FAIL: " + strings.Join(why, "+")
}

// measureStep measures one window at n candidates on the full stack.
func measureStep(b *testing.B, st *stack, gen *loadGen, n int) benchStep {
	b.Helper()
	time.Sleep(settle)
	gen.stats(b) // resets the proctor's gap tracking
	before := snapshot(b, st, gen)
	time.Sleep(window)
	after := snapshot(b, st, gen)
	g := gen.stats(b)
	secs := after.at.Sub(before.at).Seconds()
	row := benchStep{n: n, seconds: secs,
		serverCPU:      (after.cpu - before.cpu).Seconds() / secs,
		genCPU:         (after.genCPU - before.genCPU).Seconds() / secs,
		machineCPU:     (after.machine - before.machine).Seconds() / secs,
		analysedFPS:    (after.analyzed - before.analyzed) / secs / float64(n),
		sfuDropped:     after.sfuDropped - before.sfuDropped,
		superseded:     (after.superseded - before.superseded) / secs / float64(n),
		queueDrops:     after.queueDrops - before.queueDrops,
		framesPerCandS: (after.decoded - before.decoded) / secs / float64(n),
		workerUtil:     st.metric("invigil_pipeline_worker_utilisation"),
	}
	row.p50, row.p99 = quantiles(before.latency, after.latency)
	row.byTrigger = map[string]float64{}
	for trig, v := range after.byTrigger {
		row.byTrigger[trig] = (v - before.byTrigger[trig]) / secs / float64(n)
	}
	row.carried = (after.carried - before.carried) / secs / float64(n)
	if runs := after.modelRuns - before.modelRuns; runs > 0 {
		row.speechBatch = (after.judged - before.judged) / runs
	}
	row.networkRuns = map[string]float64{}
	if analyses := after.analyzed - before.analyzed; analyses > 0 {
		for _, net := range benchNetworks {
			row.networkRuns[net] = (after.networkRuns[net] - before.networkRuns[net]) / analyses
		}
	}
	for _, gap := range g.Gaps {
		row.maxGap = max(row.maxGap, time.Duration(gap)*time.Millisecond)
	}
	if len(g.Gaps) < n {
		row.maxGap = time.Hour // a candidate's video never reached the proctor
	}
	// Onsets: every switch to the empty room inside the window that left
	// time for the violation to open.
	policy, _ := rules.DefaultPolicy(rules.PolicyRestRoom)
	minMS := policy.Rules[rules.FaceOffScreen].MinMS
	events := st.sink.all()
	for _, sw := range gen.switchesBetween(before.at, after.at.Add(-time.Duration(minMS+onsetSlackMS+500)*time.Millisecond)) {
		var found bool
		for _, e := range events {
			if e.kind == rules.Opened && e.v.Identity == sw.ID && e.v.Type == rules.FaceOffScreen && e.v.StartMS >= sw.MS {
				row.onsets = append(row.onsets, e.v.OpenedMS-sw.MS-minMS)
				found = true
				break
			}
		}
		if !found {
			row.missed++
		}
	}
	return row
}

type benchSnapshot struct {
	at                                        time.Time
	cpu, genCPU, machine                      time.Duration
	analyzed, decoded, superseded, queueDrops float64
	sfuDropped                                float64
	byTrigger                                 map[string]float64
	carried                                   float64
	modelRuns, judged                         float64 // speech model runs, chunks they judged
	networkRuns                               map[string]float64
	latency                                   *dto.Histogram
}

// benchNetworks are the detector networks whose runs the pipeline counts
// (invigil_pipeline_network_runs_total's network label).
var benchNetworks = []string{"face", "face_short", "face_mesh", "palm", "hand"}

// analysisTriggers are the scheduler's reasons for an analysis
// (invigil_pipeline_analyses_total's trigger label).
var analysisTriggers = []string{"refresh", "change", "deadline", "calm"}

func snapshot(b *testing.B, st *stack, gen *loadGen) benchSnapshot {
	b.Helper()
	s := benchSnapshot{at: time.Now(), cpu: processCPU(b), genCPU: gen.cpu(), machine: machineBusy(),
		analyzed:   st.metric("invigil_pipeline_frames_analysed_total"),
		decoded:    st.metric("invigil_pipeline_frames_decoded_total"),
		superseded: st.metric("invigil_pipeline_frames_dropped_total", "reason", "superseded"),
		queueDrops: st.metric("invigil_pipeline_packets_dropped_total", "reason", "queue_full"),
		sfuDropped: st.metric("invigil_sfu_rtp_packets_dropped_total"),
		carried:    st.metric("invigil_pipeline_analyses_carried_total"),
		modelRuns:  st.metric("invigil_pipeline_audio_model_runs_total"),
		judged: st.metric("invigil_pipeline_audio_chunks_total", "verdict", "speech") +
			st.metric("invigil_pipeline_audio_chunks_total", "verdict", "no_speech"),
		byTrigger:   map[string]float64{},
		networkRuns: map[string]float64{},
	}
	for _, net := range benchNetworks {
		s.networkRuns[net] = st.metric("invigil_pipeline_network_runs_total", "network", net)
	}
	for _, trig := range analysisTriggers {
		s.byTrigger[trig] = st.metric("invigil_pipeline_analyses_total", "trigger", trig)
	}
	mfs, err := st.reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "invigil_pipeline_analysis_latency_seconds" && len(mf.GetMetric()) > 0 {
			s.latency = mf.GetMetric()[0].GetHistogram()
		}
	}
	return s
}

// quantiles estimates the median and the 99th percentile of the latency
// observed between two snapshots of the histogram, interpolating inside
// buckets.
func quantiles(before, after *dto.Histogram) (p50, p99 float64) {
	if after == nil {
		return math.Inf(1), math.Inf(1)
	}
	var prev []uint64
	if before != nil {
		for _, bk := range before.GetBucket() {
			prev = append(prev, bk.GetCumulativeCount())
		}
	}
	total := float64(after.GetSampleCount())
	if before != nil {
		total -= float64(before.GetSampleCount())
	}
	if total <= 0 {
		return math.Inf(1), math.Inf(1)
	}
	q := func(p float64) float64 {
		want := p * total
		lower, lowerCount := 0.0, 0.0
		for i, bk := range after.GetBucket() {
			c := float64(bk.GetCumulativeCount())
			if i < len(prev) {
				c -= float64(prev[i])
			}
			if c >= want {
				if c == lowerCount {
					return bk.GetUpperBound()
				}
				return lower + (bk.GetUpperBound()-lower)*(want-lowerCount)/(c-lowerCount)
			}
			lower, lowerCount = bk.GetUpperBound(), c
		}
		return math.Inf(1) // beyond the last bucket
	}
	return q(0.5), q(0.99)
}

// processCPU is this process's user+system CPU time.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineBusy is the CPU time all processes have used (from /proc/stat):
// the machine is shared, and what others use is not ours to have.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * time.Second / 100 // USER_HZ
}

// costResult is the server's CPU for a load on one stack configuration.
type costResult struct {
	n        int
	cpu      float64            // CPU seconds per candidate-second
	stages   map[string]float64 // pipeline stage seconds per candidate-second
	analyzed float64            // frames analyzed per candidate-second
	triggers map[string]float64 // analyses per candidate-second by what made them due
	genCPU   float64
	machine  float64 // cores busy on the whole machine during the window
	// audioBusy is the audio goroutines' busy time per candidate-second;
	// speechShare and gatedShare the shares of 32 ms chunks judged speech
	// and skipped by the energy gate.
	audioBusy, speechShare, gatedShare float64
	// chunksPerSec is the 32 ms chunks judged per candidate-second: 31.25
	// when the decoded audio keeps the wall clock.
	chunksPerSec float64
}

func measureCost(b *testing.B, o stackOptions, face, empty, mic string, n int) costResult {
	b.Helper()
	st := newStack(b, o)
	gen := startLoadGen(b, st.url, face, empty, mic)
	gen.add(b, n)
	time.Sleep(3 * time.Second)
	stages := []string{"depacketize", "decode", "thumbnail", "convert", "inference", "rules", "evidence"}
	triggers := []string{"full_rate", "refresh", "change", "deadline", "calm"}
	stageAt := func() map[string]float64 {
		m := map[string]float64{}
		for _, s := range stages {
			m[s] = st.metric("invigil_pipeline_stage_seconds_total", "stage", s)
		}
		for _, tr := range triggers {
			m["trigger "+tr] = st.metric("invigil_pipeline_analyses_total", "trigger", tr)
		}
		m["audio busy"] = st.metric("invigil_pipeline_audio_busy_seconds_total")
		for _, v := range []string{"speech", "no_speech", "gated"} {
			m["chunks "+v] = st.metric("invigil_pipeline_audio_chunks_total", "verdict", v)
		}
		return m
	}
	t0, c0, g0, s0, a0, m0 := time.Now(), processCPU(b), gen.cpu(), stageAt(), st.metric("invigil_pipeline_frames_analysed_total"), machineBusy()
	time.Sleep(costWindow)
	t1, c1, g1, s1, a1, m1 := time.Now(), processCPU(b), gen.cpu(), stageAt(), st.metric("invigil_pipeline_frames_analysed_total"), machineBusy()
	gen.quit(b)
	st.close()
	candSecs := t1.Sub(t0).Seconds() * float64(n)
	r := costResult{n: n, cpu: (c1 - c0).Seconds() / candSecs, stages: map[string]float64{}, triggers: map[string]float64{},
		analyzed: (a1 - a0) / candSecs, genCPU: (g1 - g0).Seconds() / candSecs, machine: (m1 - m0).Seconds() / t1.Sub(t0).Seconds()}
	for _, s := range stages {
		r.stages[s] = (s1[s] - s0[s]) / candSecs
	}
	for _, tr := range triggers {
		r.triggers[tr] = (s1["trigger "+tr] - s0["trigger "+tr]) / candSecs
	}
	r.audioBusy = (s1["audio busy"] - s0["audio busy"]) / candSecs
	var chunks float64
	for _, v := range []string{"speech", "no_speech", "gated"} {
		chunks += s1["chunks "+v] - s0["chunks "+v]
	}
	if chunks > 0 {
		r.speechShare = (s1["chunks speech"] - s0["chunks speech"]) / chunks
		r.gatedShare = (s1["chunks gated"] - s0["chunks gated"]) / chunks
		r.chunksPerSec = chunks / candSecs
	}
	return r
}

func printCostSplit(n int, sfuOnly, withRec, full costResult) {
	pipelineCPU := full.cpu - withRec.cpu
	var stageSum float64
	for _, v := range full.stages {
		stageSum += v
	}
	share := func(names ...string) float64 {
		if stageSum == 0 {
			return 0
		}
		var s float64
		for _, n := range names {
			s += full.stages[n]
		}
		return pipelineCPU * s / stageSum
	}
	ms := func(v float64) string { return fmt.Sprintf("%6.1f", v*1000) }
	fmt.Printf("\nServer CPU per candidate (640x480 VP8 %d fps, %d kbps, rest-room policy), measured with %d candidates:\n", loadFPS, loadKbps, n)
	fmt.Printf("  %-34s %s ms CPU per candidate-second\n", "receive + forward (SFU, 1 proctor)", ms(sfuOnly.cpu))
	fmt.Printf("  %-34s %s\n", "recording", ms(withRec.cpu-sfuOnly.cpu))
	fmt.Printf("  %-34s %s   (stages by their measured time:)\n", "analysis pipeline", ms(pipelineCPU))
	// The candidates publish L1T3 as browsers do: a quarter of the frames
	// (the base layer) is decoded and change-detected.
	fmt.Printf("  %-34s %s\n", "  depacketize + decode (L1T3 base)", ms(share("depacketize", "decode")))
	fmt.Printf("  %-34s %s\n", "  change detection (decoded frames)", ms(share("thumbnail")))
	fmt.Printf("  %-34s %s\n", "  convert + inference", ms(share("convert", "inference")))
	fmt.Printf("  %-34s %s\n", "  rules + evidence", ms(share("rules", "evidence")))
	fmt.Printf("  %-34s %s   → %.1f candidates per core by CPU alone\n", "total", ms(full.cpu), 1/full.cpu)
	fmt.Printf("  frames analyzed: %.2f per candidate-second (policy: 5; by trigger: calm %.2f, change %.2f, deadline %.2f, refresh %.2f, full rate %.2f); load generator: %s ms CPU per candidate-second\n",
		full.analyzed, full.triggers["calm"], full.triggers["change"], full.triggers["deadline"], full.triggers["refresh"], full.triggers["full_rate"], ms(full.genCPU))
	fmt.Printf("  whole machine busy during the three windows: %.2f, %.2f, %.2f cores (others' work included)\n",
		sfuOnly.machine, withRec.machine, full.machine)
	fmt.Printf("  pipeline stage wall time per candidate-second:")
	names := make([]string, 0, len(full.stages))
	for k := range full.stages {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Printf(" %s %.1f ms", k, full.stages[k]*1000)
	}
	fmt.Println()
}

func printStep(r benchStep) {
	var triggers []string
	for _, trig := range analysisTriggers {
		triggers = append(triggers, fmt.Sprintf("%s %.2f", trig, r.byTrigger[trig]))
	}
	var runs []string
	for _, net := range benchNetworks {
		runs = append(runs, fmt.Sprintf("%s %.2f", net, r.networkRuns[net]))
	}
	fmt.Printf("%4d candidates: server %.2f cores, load generator %.2f, whole machine %.2f; latency p50 %.3f s p99 %.3f s; analyzed %.2f fps/candidate (%.1f superseded; by trigger %s; %.2f carried; network runs per analysis: %s; speech chunks per model run %.1f); RSS %s MiB/candidate; workers %.0f%% busy; max forwarding gap %v, SFU drops %.0f; onsets %d (median +%d, max +%d ms over the minimum), missed %d → %s\n",
		r.n, r.serverCPU, r.genCPU, r.machineCPU, r.p50, r.p99, r.analysedFPS, r.superseded, strings.Join(triggers, ", "), r.carried, strings.Join(runs, ", "), r.speechBatch, r.rssText(),
		100*r.workerUtil, r.maxGap.Round(time.Millisecond), r.sfuDropped, len(r.onsets), r.medianOnset(), r.maxOnset(), r.missed, r.verdict())
}

// rssText is the RSS per candidate in MiB, or "–" when the process shrank:
// a second ramp's first step can find memory of the first ramp's stack
// freed only after its baseline was read.
func (r benchStep) rssText() string {
	if r.rssPerCand < 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", r.rssPerCand/(1<<20))
}

func printSummary(rows []benchStep, sustained, cores int) {
	fmt.Printf("\n| candidates | server cores | machine busy | latency p99 | analyzed fps/cand | change / calm / deadline / refresh | RSS MiB/cand | max fwd gap | onset max over min | verdict |\n")
	fmt.Printf("|---:|---:|---:|---:|---:|---|---:|---:|---:|---|\n")
	for _, r := range rows {
		fmt.Printf("| %d | %.2f | %.2f | %.3f s | %.2f | %.2f / %.2f / %.2f / %.2f | %s | %v | +%d ms | %s |\n", r.n, r.serverCPU, r.machineCPU, r.p99, r.analysedFPS,
			r.byTrigger["change"], r.byTrigger["calm"], r.byTrigger["deadline"], r.byTrigger["refresh"], r.rssText(),
			r.maxGap.Round(time.Millisecond), r.maxOnset(), r.verdict())
	}
	// A ramp that ended with every step within the limits (its time budget
	// or its steps ran out) found a floor, not the limit.
	atLeast := ""
	if len(rows) > 0 && rows[len(rows)-1].ok() {
		atLeast = "at least "
	}
	fmt.Printf("\nSustained: %s%d candidates on %d cores = %s%.1f candidates per core (target 30).\n", atLeast, sustained, cores, atLeast, float64(sustained)/float64(cores))
	fmt.Printf("(The cores are shared with the load generator and whatever else runs here: \"machine busy\" counts it all.)\n\n")
}

// loadGen is the load-generator process and what it reports.
type loadGen struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	total int

	mu       sync.Mutex
	switches []loadSwitch
	replies  chan loadMsg
	done     chan struct{}
}

// loadMsg is one line from the load generator.
type loadMsg struct {
	Ev      string           `json:"ev"`
	ID      string           `json:"id,omitempty"`
	MS      int64            `json:"ms,omitempty"`
	At      int64            `json:"at,omitempty"` // unix ns
	Total   int              `json:"total,omitempty"`
	Gaps    map[string]int64 `json:"gaps,omitempty"` // longest gap per candidate, ms
	Packets map[string]int   `json:"packets,omitempty"`
	Err     string           `json:"err,omitempty"`
}

type loadSwitch struct {
	ID string
	MS int64
	At time.Time
}

// startLoadGen starts the load generator; mic, if set, is a WAV file every
// candidate publishes as its microphone.
func startLoadGen(b *testing.B, url, face, empty, mic string) *loadGen {
	b.Helper()
	cfg, _ := json.Marshal(map[string]string{"url": url, "face": face, "empty": empty, "mic": mic})
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoadGenerator$", "-test.timeout="+loadGenTimeout.String())
	cmd.Env = append(os.Environ(), loadGenEnv+"="+string(cfg))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	g := &loadGen{cmd: cmd, stdin: stdin, replies: make(chan loadMsg, 16), done: make(chan struct{})}
	go func() {
		defer close(g.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			if len(line) == 0 || line[0] != '{' {
				continue // the test framework's own lines
			}
			var m loadMsg
			if json.Unmarshal(line, &m) != nil {
				continue
			}
			if m.Ev == "switch" {
				g.mu.Lock()
				g.switches = append(g.switches, loadSwitch{ID: m.ID, MS: m.MS, At: time.Unix(0, m.At)})
				g.mu.Unlock()
				continue
			}
			g.replies <- m
		}
	}()
	b.Cleanup(func() {
		if g.cmd.ProcessState == nil {
			_ = g.cmd.Process.Kill()
			_ = g.cmd.Wait()
		}
	})
	return g
}

func (g *loadGen) send(b *testing.B, cmd string) loadMsg {
	b.Helper()
	if _, err := fmt.Fprintln(g.stdin, cmd); err != nil {
		b.Fatalf("load generator: %v", err)
	}
	select {
	case m := <-g.replies:
		if m.Err != "" {
			b.Fatalf("load generator: %s", m.Err)
		}
		return m
	case <-g.done:
		b.Fatal("load generator exited")
	case <-time.After(2 * time.Minute):
		b.Fatalf("load generator did not answer %q", cmd)
	}
	return loadMsg{}
}

func (g *loadGen) add(b *testing.B, n int) {
	b.Helper()
	if n <= 0 {
		return
	}
	m := g.send(b, "add "+strconv.Itoa(n))
	g.total = m.Total
}

func (g *loadGen) stats(b *testing.B) loadMsg { return g.send(b, "stats") }

func (g *loadGen) quit(b *testing.B) {
	b.Helper()
	_, _ = fmt.Fprintln(g.stdin, "quit")
	_ = g.stdin.Close()
	select {
	case <-g.done:
	case <-time.After(time.Minute):
		_ = g.cmd.Process.Kill()
	}
	_ = g.cmd.Wait()
}

// cpu is the load generator's CPU time so far.
func (g *loadGen) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", g.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

func (g *loadGen) switchesBetween(from, to time.Time) []loadSwitch {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []loadSwitch
	for _, s := range g.switches {
		if !s.At.Before(from) && s.At.Before(to) {
			out = append(out, s)
		}
	}
	return out
}

// TestLoadGenerator is the benchmark's load-generator process; it does
// nothing unless BenchmarkCandidates started it. It replays one
// pre-encoded stream for every candidate it is told to add, reports when
// each candidate's camera shows the empty room, and plays a hidden proctor
// who watches them all and measures the gaps in what the SFU forwards.
func TestLoadGenerator(t *testing.T) {
	raw := os.Getenv(loadGenEnv)
	if raw == "" {
		t.Skip("runs only as BenchmarkCandidates' load generator")
	}
	var cfg struct{ URL, Face, Empty, Mic string }
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	out := json.NewEncoder(os.Stdout)
	var outMu sync.Mutex
	emit := func(m loadMsg) {
		outMu.Lock()
		defer outMu.Unlock()
		_ = out.Encode(m)
	}
	cam, err := simulate.NewCamera([]simulate.Clip{{File: cfg.Face, Seconds: loadSceneSecs}, {File: cfg.Empty, Seconds: loadSceneSecs}},
		simulate.CameraOptions{Width: frameW, Height: frameH, FPS: loadFPS, Noise: loadNoise})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := simulate.EncodeStream(t.Context(), cam, 0, simulate.EncodeOptions{BitrateKbps: loadKbps})
	cam.Close()
	if err != nil {
		t.Fatal(err)
	}
	var mic *simulate.Audio
	if cfg.Mic != "" {
		if mic, err = simulate.FileAudio(cfg.Mic); err != nil {
			t.Fatal(err)
		}
	}
	tokens := sfu.HMACTokens{Key: tokenKey}
	issue := func(g sfu.Grants) string {
		g.Room, g.ExpiresAt = room, time.Now().Add(time.Hour)
		tok, err := tokens.Issue(g)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	// The proctor.
	type watch struct {
		packets int
		last    time.Time
		maxGap  time.Duration
	}
	var wmu sync.Mutex
	watched := map[string]*watch{}
	api, err := client.NewAPI(client.APIOptions{LoopbackOnly: true, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	proctor, err := client.Dial(ctx, client.Config{URL: cfg.URL, API: api, Logger: testLogger(),
		Token: issue(sfu.Grants{Identity: "proctor-load", Role: "proctor", CanSubscribe: true, Hidden: true, Subscribe: []string{"*"}}),
		OnTrack: func(id string, tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			for {
				if _, _, err := tr.ReadRTP(); err != nil {
					return
				}
				if tr.Kind() != webrtc.RTPCodecTypeVideo {
					continue
				}
				now := time.Now()
				wmu.Lock()
				w := watched[id]
				if w == nil {
					w = &watch{}
					watched[id] = w
				}
				if !w.last.IsZero() {
					w.maxGap = max(w.maxGap, now.Sub(w.last))
				}
				w.last = now
				w.packets++
				wmu.Unlock()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer proctor.Leave()

	var (
		cands []*simulate.Candidate
		wg    sync.WaitGroup
	)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd := strings.Fields(sc.Text())
		if len(cmd) == 0 {
			continue
		}
		switch cmd[0] {
		case "add":
			n, _ := strconv.Atoi(cmd[1])
			base := len(cands)
			added := make([]*simulate.Candidate, n)
			var jw sync.WaitGroup
			var failed error
			var fmu sync.Mutex
			sem := make(chan struct{}, 4)
			for k := 0; k < n; k++ {
				jw.Add(1)
				sem <- struct{}{}
				go func() {
					defer jw.Done()
					defer func() { <-sem }()
					id := fmt.Sprintf("load-%d", base+k+1)
					prevClip := -1
					c, err := simulate.Join(ctx, simulate.Config{URL: cfg.URL, Stream: stream, Audio: mic, LoopbackOnly: true,
						StartFrame: (base + k) * len(stream.Frames) / 7, Logger: testLogger(),
						Token: issue(sfu.Grants{Identity: id, Role: "candidate", CanPublish: true, CanSubscribe: true}),
						OnFrame: func(f simulate.SentFrame) {
							if prevClip >= 0 && f.Clip != prevClip && f.Clip == 1 {
								emit(loadMsg{Ev: "switch", ID: id, MS: f.StreamMS, At: f.At.UnixNano()})
							}
							prevClip = f.Clip
						}})
					if err != nil {
						fmu.Lock()
						failed = fmt.Errorf("join %s: %w", id, err)
						fmu.Unlock()
						return
					}
					added[k] = c
					if err := proctor.Subscribe(id); err != nil {
						fmu.Lock()
						failed = err
						fmu.Unlock()
					}
				}()
			}
			jw.Wait()
			if failed != nil {
				emit(loadMsg{Ev: "error", Err: failed.Error()})
				continue
			}
			for _, c := range added {
				cands = append(cands, c)
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := c.Run(ctx); err != nil {
						emit(loadMsg{Ev: "error", Err: err.Error()})
					}
				}()
			}
			emit(loadMsg{Ev: "added", Total: len(cands)})
		case "stats":
			m := loadMsg{Ev: "stats", Gaps: map[string]int64{}, Packets: map[string]int{}}
			wmu.Lock()
			now := time.Now()
			for id, w := range watched {
				gap := w.maxGap
				if !w.last.IsZero() {
					gap = max(gap, now.Sub(w.last))
				}
				m.Gaps[id] = gap.Milliseconds()
				m.Packets[id] = w.packets
				w.maxGap = 0
			}
			wmu.Unlock()
			emit(m)
		case "quit":
			cancel()
			wg.Wait()
			for _, c := range cands {
				c.Leave()
			}
			return
		}
	}
	cancel()
	wg.Wait()
	for _, c := range cands {
		c.Leave()
	}
}
