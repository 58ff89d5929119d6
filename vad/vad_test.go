package vad

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"invigil/internal/testassets"
)

// config is the real provisioned model and runtime; a missing one fails the
// test with the command that provides it.
func config(t testing.TB) Config {
	t.Helper()
	testassets.Model(t, "silero_vad_v5.onnx")
	testassets.Model(t, "libonnxruntime.so.1")
	return DefaultConfig(testassets.ModelsDir(t))
}

func newDetector(t testing.TB, cfg Config) *Detector {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// tool returns a Debian tool's path, failing with the package to install.
func tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: scripts/install.sh test installs it", name)
	}
	return p
}

// resample has sox turn any sound file into the model's input: 16 kHz mono
// float32 samples in [-1, 1].
func resample(t testing.TB, in string) []float32 {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(in)+".f32")
	run(t, tool(t, "sox"), in, "-r", "16000", "-c", "1", "-b", "32", "-e", "floating-point", "-L", "-t", "raw", out)
	return readF32(t, out)
}

// soxSynth has sox make a 16 kHz signal from its synth effect.
func soxSynth(t testing.TB, effect ...string) []float32 {
	t.Helper()
	out := filepath.Join(t.TempDir(), "synth.f32")
	args := append([]string{"-n", "-r", "16000", "-c", "1", "-b", "32", "-e", "floating-point", "-L", "-t", "raw", out}, effect...)
	run(t, tool(t, "sox"), args...)
	return readF32(t, out)
}

// speak has espeak-ng say text in a voice, resampled by sox.
func speak(t testing.TB, voice, text string) []float32 {
	t.Helper()
	wav := filepath.Join(t.TempDir(), voice+".wav")
	run(t, tool(t, "espeak-ng"), "-v", voice, "-w", wav, text)
	return resample(t, wav)
}

// alsaSound is one of alsa-utils' recorded sounds.
func alsaSound(t testing.TB, name string) []float32 {
	t.Helper()
	p := "/usr/share/sounds/alsa/" + name
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s missing (%v): scripts/install.sh test installs alsa-utils", p, err)
	}
	return resample(t, p)
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func readF32(t testing.TB, path string) []float32 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) == 0 || len(data)%4 != 0 {
		t.Fatalf("%s: %d bytes, not float32 samples", path, len(data))
	}
	s := make([]float32, len(data)/4)
	for i := range s {
		s[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return s
}

// feed gives the detector samples in uneven pieces (as RTP packets would
// come), so chunk buffering across calls is part of every test.
func feed(t testing.TB, d *Detector, samples []float32) []Chunk {
	t.Helper()
	var all []Chunk
	for len(samples) > 0 {
		n := min(len(samples), 331)
		got, err := d.Process(samples[:n])
		if err != nil {
			t.Fatalf("Process: %v", err)
		}
		all = append(all, got...)
		samples = samples[n:]
	}
	return all
}

func countSpeech(chunks []Chunk) int {
	n := 0
	for _, c := range chunks {
		if c.Speech() {
			n++
		}
	}
	return n
}

type realSound struct {
	name    string
	samples []float32
	speech  bool
}

func realSounds(t *testing.T) []realSound {
	return []realSound{
		{"Front_Center.wav (a real voice)", alsaSound(t, "Front_Center.wav"), true},
		{"Noise.wav", alsaSound(t, "Noise.wav"), false},
		{"espeak-ng zh", speak(t, "zh", "请将双手放在桌面上，不要离开画面"), true},
		{"espeak-ng en", speak(t, "en", "Please keep both hands on the desk and stay in view of the camera."), true},
	}
}

// The real model on real sounds: voices are mostly speech, noise never.
// Every chunk's time is exact, and the counts are logged for the report
// (../shared/AUDIO.md measured 34/44, 0/43 and 189/201 for the first three).
func TestRealSounds(t *testing.T) {
	d := newDetector(t, config(t))
	for _, s := range realSounds(t) {
		d.Reset()
		chunks := feed(t, d, s.samples)
		if want := len(s.samples) / ChunkSamples; len(chunks) != want {
			t.Fatalf("%s: %d chunks from %d samples, want %d", s.name, len(chunks), len(s.samples), want)
		}
		for i, c := range chunks {
			if c.Start != ChunkDuration*time.Duration(i) || c.Probability < 0 || c.Probability > 1 {
				t.Fatalf("%s: chunk %d = %+v", s.name, i, c)
			}
		}
		speech, gated := countSpeech(chunks), 0
		var quietestSpeech float32 = 1
		for _, c := range chunks {
			if c.Gated {
				gated++
			}
			if c.Speech() {
				quietestSpeech = min(quietestSpeech, c.RMS)
			}
		}
		t.Logf("%s: %d of %d chunks speech, %d gated, quietest speech chunk RMS %.4f", s.name, speech, len(chunks), gated, quietestSpeech)
		if s.speech && speech*2 <= len(chunks) {
			t.Errorf("%s: only %d of %d chunks speech, want most", s.name, speech, len(chunks))
		}
		if !s.speech && speech != 0 {
			t.Errorf("%s: %d of %d chunks called speech, want none", s.name, speech, len(chunks))
		}
	}
}

// The energy gate barely changes what is heard on the real sounds: against
// the model on every chunk, at most 4 decisions differ per sound (the first
// ~130 ms of an onset after a gated stretch, whose state differs), and the
// speech counts stay within 2. Gating without the hangover differs on 11–20.
func TestGateKeepsSpeech(t *testing.T) {
	gated := newDetector(t, config(t))
	cfg := config(t)
	cfg.GateRMS = -1
	ungated := newDetector(t, cfg)
	for _, s := range realSounds(t) {
		gated.Reset()
		ungated.Reset()
		g, u := feed(t, gated, s.samples), feed(t, ungated, s.samples)
		differ := 0
		for i := range u {
			if u[i].Gated {
				t.Fatalf("%s: chunk %d gated with the gate off", s.name, i)
			}
			if g[i].Speech() != u[i].Speech() {
				differ++
			}
		}
		gs, us := countSpeech(g), countSpeech(u)
		t.Logf("%s: %d gated chunks, %d decisions differ, speech %d gated vs %d ungated", s.name, countGated(g), differ, gs, us)
		if differ > 4 || gs < us-2 || gs > us+2 {
			t.Errorf("%s: the gate changed %d of %d speech decisions (speech %d vs %d)", s.name, differ, len(u), gs, us)
		}
	}
	if st := ungated.Stats(); st.Gated != 0 || st.ModelRuns != st.Chunks {
		t.Errorf("ungated stats %+v", st)
	}
}

func countGated(chunks []Chunk) int {
	n := 0
	for _, c := range chunks {
		if c.Gated {
			n++
		}
	}
	return n
}

// Digital silence and a quiet room (white noise at -65 dBFS) never reach the
// model; a voice after the silence does, and is still heard as speech.
func TestSilenceIsGated(t *testing.T) {
	d := newDetector(t, config(t))
	// Whole chunks, so the voice after them is cut into the same chunks as
	// in a fresh stream and must be judged exactly alike.
	silence := make([]float32, 312*ChunkSamples)
	quiet := soxSynth(t, "synth", "5", "whitenoise", "vol", "0.001")
	quiet = quiet[:len(quiet)/ChunkSamples*ChunkSamples]
	for name, s := range map[string][]float32{"digital silence": silence, "quiet room": quiet} {
		before := d.Stats()
		chunks := feed(t, d, s)
		after := d.Stats()
		if len(chunks) == 0 || countGated(chunks) != len(chunks) || countSpeech(chunks) != 0 {
			t.Errorf("%s: %d of %d chunks gated, %d speech", name, countGated(chunks), len(chunks), countSpeech(chunks))
		}
		if runs := after.ModelRuns - before.ModelRuns; runs != 0 {
			t.Errorf("%s: model ran %d times", name, runs)
		}
		if gated := after.Gated - before.Gated; gated != uint64(len(chunks)) {
			t.Errorf("%s: stats count %d gated, want %d", name, gated, len(chunks))
		}
	}
	voiceSamples := alsaSound(t, "Front_Center.wav")
	voice := feed(t, d, voiceSamples)
	fresh := feed(t, newDetector(t, config(t)), voiceSamples)
	for i := range fresh {
		if i >= len(voice) || voice[i].Probability != fresh[i].Probability || voice[i].Gated != fresh[i].Gated {
			t.Fatalf("voice after %d gated chunks differs from a fresh stream at chunk %d", d.Stats().Gated, i)
		}
	}
	if countSpeech(voice)*2 <= len(voice) {
		t.Errorf("voice after silence: %d of %d speech", countSpeech(voice), len(voice))
	}
}

// A detector reused after Reset gives exactly the results of its first
// pass, and two detectors fed in turn do not share state.
func TestResetAndIndependentStreams(t *testing.T) {
	voice := alsaSound(t, "Front_Center.wav")
	zh := speak(t, "zh", "请将双手放在桌面上，不要离开画面")
	a := newDetector(t, config(t))
	first := feed(t, a, voice)
	// Part of a chunk left buffered must not leak into the next stream.
	if _, err := a.Process(zh[:700]); err != nil {
		t.Fatal(err)
	}
	a.Reset()
	again := feed(t, a, voice)
	if !equalChunks(first, again) {
		t.Errorf("after Reset: results differ\nfirst %v\nagain %v", first, again)
	}

	a.Reset()
	b := newDetector(t, config(t))
	wantZh := feed(t, b, zh)
	b.Reset()
	var gotA, gotB []Chunk
	for i := 0; i < max(len(voice), len(zh)); i += 320 {
		if i < len(voice) {
			gotA = append(gotA, feed(t, a, voice[i:min(i+320, len(voice))])...)
		}
		if i < len(zh) {
			gotB = append(gotB, feed(t, b, zh[i:min(i+320, len(zh))])...)
		}
	}
	if !equalChunks(gotA, first) || !equalChunks(gotB, wantZh) {
		t.Error("two detectors fed in turn gave other results than each alone")
	}
}

func equalChunks(a, b []Chunk) bool {
	if len(a) != len(b) || len(a) == 0 {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// NaN and infinities are refused whole and leave the stream as it was;
// samples beyond full scale are clipped and counted.
func TestBadInput(t *testing.T) {
	voice := alsaSound(t, "Front_Center.wav")
	ref := newDetector(t, config(t))
	want := feed(t, ref, voice)

	d := newDetector(t, config(t))
	got := feed(t, d, voice[:1000])
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		samples := append([]float32{0.1, 0.2}, bad)
		samples = append(samples, make([]float32, 600)...)
		chunks, err := d.Process(samples)
		if err == nil || len(chunks) != 0 || !strings.Contains(err.Error(), "sample 2 of 603") {
			t.Errorf("Process with %v: %d chunks, err %v", bad, len(chunks), err)
		}
	}
	got = append(got, feed(t, d, voice[1000:])...)
	if !equalChunks(got, want) {
		t.Error("refused calls changed the stream's results")
	}

	// Out of range: the same as the clipped samples given directly.
	loud := make([]float32, len(voice))
	clipped := make([]float32, len(voice))
	var over uint64
	for i, s := range voice {
		loud[i] = 3 * s
		clipped[i] = max(-1, min(1, loud[i]))
		if loud[i] > 1 || loud[i] < -1 {
			over++
		}
	}
	if over == 0 {
		t.Fatal("the voice tripled never exceeds full scale; the test proves nothing")
	}
	d.Reset()
	before := d.Stats().Clipped
	gotLoud := feed(t, d, loud)
	ref.Reset()
	if wantLoud := feed(t, ref, clipped); !equalChunks(gotLoud, wantLoud) {
		t.Error("out-of-range samples were not treated as clipped")
	}
	if n := d.Stats().Clipped - before; n != over {
		t.Errorf("stats count %d clipped samples, want %d", n, over)
	}
}

func TestCloseTwiceAndUseAfterClose(t *testing.T) {
	d, err := New(config(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Process(make([]float32, 2000)); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := d.Process(make([]float32, 600)); !errors.Is(err, ErrClosed) {
		t.Errorf("Process after Close: %v, want ErrClosed", err)
	}
	d.Reset()
	if st := d.Stats(); st.Chunks != 3 {
		t.Errorf("Stats after Close = %+v, want the 3 chunks made before", st)
	}
}

// Every session and tensor is released on Close, and making and closing
// detectors many times does not grow the process: a leaked session holds
// the 2.3 MB model and its buffers.
func TestDetectorLifetime(t *testing.T) {
	cfg := config(t)
	voice := alsaSound(t, "Front_Center.wav")
	cycle := func() {
		d, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		feed(t, d, voice)
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 { // warm the allocator
		cycle()
	}
	rss0 := rssBytes(t)
	const cycles = 60
	for range cycles {
		cycle()
	}
	growth := rssBytes(t) - rss0
	t.Logf("RSS growth after %d detectors made and closed: %.1f MiB", cycles, float64(growth)/(1<<20))
	if growth > 40<<20 {
		t.Errorf("RSS grew %.1f MiB over %d detectors: detectors leak", float64(growth)/(1<<20), cycles)
	}
}

func rssBytes(t *testing.T) int64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	var size, resident int64
	if _, err := fmt.Sscan(string(data), &size, &resident); err != nil {
		t.Fatal(err)
	}
	return resident * int64(os.Getpagesize())
}

// The runtime's errors are tested in a fresh process, because a process that
// has loaded ONNX Runtime keeps it: a missing and an unloadable library are
// refused with the fix named, and the real one still loads afterwards.
func TestRuntimeErrors(t *testing.T) {
	if os.Getenv("INVIGIL_VAD_RUNTIME_CHILD") == "1" {
		runtimeErrorsChild(t)
		return
	}
	cfg := config(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestRuntimeErrors$", "-test.v")
	cmd.Env = append(os.Environ(), "INVIGIL_VAD_RUNTIME_CHILD=1", "INVIGIL_VAD_LIB="+cfg.LibraryPath, "INVIGIL_VAD_MODEL="+cfg.ModelPath)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestRuntimeErrors") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func runtimeErrorsChild(t *testing.T) {
	lib, model := os.Getenv("INVIGIL_VAD_LIB"), os.Getenv("INVIGIL_VAD_MODEL")
	if RuntimeVersion() != "" {
		t.Fatal("runtime loaded before any InitRuntime")
	}
	missing := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	_, err := New(Config{LibraryPath: missing, ModelPath: model})
	if err == nil || !strings.Contains(err.Error(), missing) || !strings.HasSuffix(err.Error(), "run: bin/invigil models fetch") {
		t.Errorf("missing library: %v", err)
	}
	garbage := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	if err := os.WriteFile(garbage, []byte("not a shared library"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = InitRuntime(garbage)
	if err == nil || !strings.Contains(err.Error(), "load ONNX Runtime library "+garbage) || !strings.HasSuffix(err.Error(), "run: bin/invigil models fetch") {
		t.Errorf("unloadable library: %v", err)
	}
	// Failures are not remembered: the real library loads now.
	if err := InitRuntime(lib); err != nil {
		t.Fatalf("real library after failures: %v", err)
	}
	t.Logf("ONNX Runtime %s", RuntimeVersion())
	if v := RuntimeVersion(); !strings.HasPrefix(v, "1.30") {
		t.Errorf("RuntimeVersion = %q, want the pinned 1.30", v)
	}
	if err := InitRuntime(garbage); err == nil || !strings.Contains(err.Error(), "already loaded from "+lib) {
		t.Errorf("second library: %v", err)
	}
	badModel := filepath.Join(t.TempDir(), "silero_vad_v5.onnx")
	if err := os.WriteFile(badModel, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{LibraryPath: lib, ModelPath: badModel}); err == nil || !strings.Contains(err.Error(), "load model") {
		t.Errorf("damaged model: %v", err)
	}
	if _, err := New(Config{LibraryPath: lib, ModelPath: filepath.Join(t.TempDir(), "absent.onnx")}); err == nil ||
		!strings.HasSuffix(err.Error(), "run: bin/invigil models fetch") {
		t.Errorf("missing model: %v", err)
	}
}

// BenchmarkDetector reports the CPU (user + system, all threads) spent per
// second of audio: the model on every chunk of speech, and the gated
// detector on a quiet room, which is what most rest-room candidates send.
func BenchmarkDetector(b *testing.B) {
	voice := resample(b, "/usr/share/sounds/alsa/Front_Center.wav")
	quiet := soxSynth(b, "synth", "1", "whitenoise", "vol", "0.001")
	for _, bc := range []struct {
		name    string
		gate    float64
		samples []float32
	}{
		{"model-every-chunk", -1, voice},
		{"gate-quiet-room", 0, quiet},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := config(b)
			cfg.GateRMS = bc.gate
			d := newDetector(b, cfg)
			second := make([]float32, SampleRate)
			for i := range second {
				second[i] = bc.samples[i%len(bc.samples)]
			}
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for range b.N {
				if _, err := d.Process(second); err != nil {
					b.Fatal(err)
				}
			}
			cpu := cpuTime(b) - cpu0
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/audio-s")
			st := d.Stats()
			b.ReportMetric(float64(st.ModelRuns)/float64(st.Chunks), "model-runs/chunk")
		})
	}
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// The gain control lets the model hear a voice that reaches the microphone
// quietly: the real voice scaled down by 30 dB (about -40 dBFS at its
// loudest) is still mostly speech, the real noise scaled to the same loudness
// the voice had stays non-speech, and each chunk's RMS is the level given,
// not the amplified one.
func TestQuietVoiceHeard(t *testing.T) {
	d := newDetector(t, config(t))
	scaled := func(s []float32, by float32) []float32 {
		out := make([]float32, len(s))
		for i, v := range s {
			out[i] = v * by
		}
		return out
	}
	voice := alsaSound(t, "Front_Center.wav")
	loud := feed(t, d, voice)
	d.Reset()
	quiet := feed(t, d, scaled(voice, 0.0316))
	loudSpeech, quietSpeech := countSpeech(loud), countSpeech(quiet)
	t.Logf("Front_Center.wav: %d speech chunks at its level, %d at -30 dB", loudSpeech, quietSpeech)
	if quietSpeech*2 <= len(quiet) || quietSpeech < loudSpeech-6 {
		t.Errorf("voice at -30 dB: %d of %d chunks speech (at its own level %d)", quietSpeech, len(quiet), loudSpeech)
	}
	for i := range quiet {
		if want := loud[i].RMS * 0.0316; math.Abs(float64(quiet[i].RMS-want)) > 1e-4+float64(want)*0.01 {
			t.Fatalf("chunk %d: RMS %.5f, want the given level %.5f", i, quiet[i].RMS, want)
		}
	}
	d.Reset()
	if n := countSpeech(feed(t, d, scaled(alsaSound(t, "Noise.wav"), 0.1))); n != 0 {
		t.Errorf("Noise.wav at -20 dB: %d chunks called speech, want none", n)
	}
}

// TestStreamsBatched runs eight streams at once, as the server's audio
// goroutines do: their chunks share model runs (batch.go), and every
// stream's verdicts are the ones it gets alone, so a batch neither mixes
// the streams' states nor loses a chunk.
func TestStreamsBatched(t *testing.T) {
	cfg := config(t)
	sounds := []string{"Front_Center.wav", "Front_Left.wav", "Front_Right.wav", "Rear_Center.wav"}
	const streams = 8
	inputs := make([][]float32, streams)
	alone := make([][]Chunk, streams)
	for i := range inputs {
		inputs[i] = alsaSound(t, sounds[i%len(sounds)])
		if i >= len(sounds) { // the same voice later in the stream: other states
			inputs[i] = append(make([]float32, 700*(i+1)), inputs[i]...)
		}
		d := newDetector(t, cfg)
		alone[i] = feed(t, d, inputs[i])
	}
	m, err := sharedModel(cfg.ModelPath)
	if err != nil {
		t.Fatal(err)
	}
	runs0, chunks0 := m.runs.Load(), m.chunks.Load()
	together := make([][]Chunk, streams)
	var wg sync.WaitGroup
	for i := range inputs {
		d := newDetector(t, cfg)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := 0; p < len(inputs[i]); p += 320 { // 20 ms, as decoded packets arrive
				got, err := d.Process(inputs[i][p:min(p+320, len(inputs[i]))])
				if err != nil {
					t.Error(err)
					return
				}
				together[i] = append(together[i], got...)
			}
		}()
	}
	wg.Wait()
	runs, chunks := m.runs.Load()-runs0, m.chunks.Load()-chunks0
	t.Logf("%d chunks in %d model runs (%.1f per run)", chunks, runs, float64(chunks)/float64(runs))
	if chunks < 2*runs {
		t.Errorf("%d chunks in %d runs: the streams' chunks were not batched", chunks, runs)
	}
	for i := range inputs {
		if len(together[i]) != len(alone[i]) {
			t.Fatalf("stream %d: %d chunks together, %d alone", i, len(together[i]), len(alone[i]))
		}
		for k, c := range together[i] {
			a := alone[i][k]
			if c.Gated != a.Gated || math.Abs(float64(c.Probability-a.Probability)) > 1e-4 {
				t.Fatalf("stream %d chunk %d: together %+v, alone %+v", i, k, c, a)
			}
		}
	}
}
