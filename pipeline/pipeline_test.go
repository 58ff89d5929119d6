package pipeline

import (
	"bytes"
	"context"
	"math/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"gocv.io/x/gocv"

	"invigil/detectors/rules"
	"invigil/media"
)

// checkOnset checks a violation's onset in stream time: the condition began
// no earlier than the scene change, and it opened within the rule's
// minimum duration plus 1.5 s of it.
func checkOnset(t *testing.T, v Violation, p rules.Policy, changeMS int64) {
	t.Helper()
	limit := p.Rules[v.Type].MinMS + 1500
	delay := v.OpenedMS - changeMS
	t.Logf("%s %s: condition from %d ms, opened at %d ms: %d ms after the change (limit %d)",
		v.Identity, v.Type, v.StartMS, v.OpenedMS, delay, limit)
	if v.StartMS < changeMS {
		t.Errorf("%s %s: condition began at %d ms, before the change at %d ms", v.Identity, v.Type, v.StartMS, changeMS)
	}
	if delay > limit {
		t.Errorf("%s %s opened %d ms after the change, limit %d ms", v.Identity, v.Type, delay, limit)
	}
}

// TestFaceLeavesView: a candidate in the rest room (the default policy)
// leaves the camera's view; face_off_screen reaches the sink in time, with
// identity, wall-clock times and evidence, and closes when the track ends.
func TestFaceLeavesView(t *testing.T) {
	sink := newRecordingSink()
	p, reg := newTestPipeline(t, Config{Sink: sink})
	pub := newPublisher(t, "cand-1")
	face, empty := picture(t, "messi5.jpg"), picture(t, "building.jpg")
	const faceFrames = 3 * testFPS
	w := pub.start(p)
	started := pub.info.Started
	pub.play(context.Background(), w, []scene{{face, faceFrames}, {empty, 4 * testFPS}}, playOptions{})

	policy := mustPolicy(t, rules.PolicyRestRoom)
	v := sink.wait(t, 20*time.Second, rules.Opened, "cand-1", rules.FaceOffScreen)
	checkOnset(t, v, policy, streamMS(faceFrames))
	if v.SessionID != "session-cand-1" || v.Room != "exam-1" || v.TrackID != "video-cand-1" || v.Policy != rules.PolicyRestRoom {
		t.Errorf("violation identity %+v", v)
	}
	if want := started.Add(time.Duration(v.StartMS) * time.Millisecond); !v.StartedAt.Equal(want) {
		t.Errorf("StartedAt %v, want track start + %d ms = %v", v.StartedAt, v.StartMS, want)
	}
	if !v.OpenedAt.After(v.StartedAt) || !v.EndedAt.IsZero() {
		t.Errorf("opened %v started %v ended %v", v.OpenedAt, v.StartedAt, v.EndedAt)
	}
	if !bytes.HasPrefix(v.Evidence, []byte{0xff, 0xd8}) {
		t.Fatalf("evidence is not a JPEG (%d bytes)", len(v.Evidence))
	}
	img, err := gocv.IMDecode(v.Evidence, gocv.IMReadColor)
	if err != nil || img.Cols() != testWidth || img.Rows() != testHeight {
		t.Errorf("evidence decodes to %dx%d, %v", img.Cols(), img.Rows(), err)
	}
	img.Close()

	// The track ended: the open violation closes at the last analyzed frame.
	closed := sink.wait(t, 10*time.Second, rules.Closed, "cand-1", rules.FaceOffScreen)
	if closed.Key != v.Key || closed.EndedAt.Before(closed.OpenedAt) || closed.EndMS < closed.OpenedMS {
		t.Errorf("closed %+v for opened key %s", closed.Violation, v.Key)
	}
	for _, e := range sink.all() {
		if e.v.Type == rules.FaceOffScreen && e.kind == rules.Opened && e.v.StartMS < streamMS(faceFrames) {
			t.Errorf("face_off_screen while the face was in view: %+v", e.v.Violation)
		}
	}

	decoded := metricValue(t, reg, "invigil_pipeline_frames_decoded_total")
	analyzed := metricValue(t, reg, "invigil_pipeline_frames_analysed_total")
	superseded := metricValue(t, reg, "invigil_pipeline_frames_dropped_total", "reason", "superseded")
	latency := metricValue(t, reg, "invigil_pipeline_analysis_latency_seconds")
	t.Logf("decoded %v, analyzed %v, superseded %v, decode errors %v, keyframe requests %v", decoded, analyzed, superseded,
		metricValue(t, reg, "invigil_pipeline_decode_errors_total"), metricValue(t, reg, "invigil_pipeline_keyframe_requests_total"))
	if decoded != 7*testFPS {
		t.Errorf("%v frames decoded, want every one of %d", decoded, 7*testFPS)
	}
	if analyzed < 5 || analyzed >= decoded || superseded == 0 {
		t.Errorf("analyzed %v of %v decoded frames, %v superseded: want sampling at the policy rate", analyzed, decoded, superseded)
	}
	if latency != analyzed {
		t.Errorf("latency histogram has %v samples for %v analyzed frames", latency, analyzed)
	}
	// The networks' runs are counted: the face detector and the landmark
	// model at most once per analysis of a new picture, and the rest room
	// looks for the hands, which this candidate never shows, so the palm
	// detector runs, though not on every analysis.
	carried := metricValue(t, reg, "invigil_pipeline_analyses_carried_total")
	faceRuns, meshRuns := metricValue(t, reg, "invigil_pipeline_network_runs_total", "network", "face"), metricValue(t, reg, "invigil_pipeline_network_runs_total", "network", "face_mesh")
	t.Logf("network runs: face %v, face_mesh %v, palm %v for %v analyses (%v carried)", faceRuns, meshRuns,
		metricValue(t, reg, "invigil_pipeline_network_runs_total", "network", "palm"), analyzed, carried)
	if faceRuns < 1 || faceRuns > analyzed-carried || meshRuns < 1 || meshRuns > analyzed-carried {
		t.Errorf("network runs: face %v, face_mesh %v for %v analyses (%v carried)", faceRuns, meshRuns, analyzed, carried)
	}
	if palm := metricValue(t, reg, "invigil_pipeline_network_runs_total", "network", "palm"); palm < 1 || palm >= analyzed-carried {
		t.Errorf("palm detector ran %v times in %v analyses (%v carried)", palm, analyzed, carried)
	}
	if n := metricValue(t, reg, "invigil_pipeline_violations_total", "type", "face_off_screen", "event", "opened"); n != 1 {
		t.Errorf("violations metric %v", n)
	}
	if n := metricValue(t, reg, "invigil_pipeline_candidates_active"); n != 0 {
		t.Errorf("%v candidates active after the track ended", n)
	}
	busy, util := metricValue(t, reg, "invigil_pipeline_worker_busy_seconds_total"), metricValue(t, reg, "invigil_pipeline_worker_utilisation")
	t.Logf("workers busy %.2f s, utilization %.2f", busy, util)
	if busy <= 0 || util <= 0 || util > 1 {
		t.Errorf("worker busy %v s, utilization %v", busy, util)
	}
}

// TestThreeCandidates: three candidates at once, each with its own
// scenario, each gets its own violation and not the others'.
func TestThreeCandidates(t *testing.T) {
	sink := newRecordingSink()
	p, _ := newTestPipeline(t, Config{Sink: sink})
	face := picture(t, "messi5.jpg")
	cases := []struct {
		identity string
		then     gocv.Mat
		want     rules.Type
	}{
		{"cand-a", picture(t, "building.jpg"), rules.FaceOffScreen},
		{"cand-b", picture(t, "sample3.jpg"), rules.ExtraPerson},
		{"cand-c", blackPicture(t), rules.CameraBlocked},
	}
	policy := mustPolicy(t, rules.PolicyInterview)
	const faceFrames = 2 * testFPS
	var wg sync.WaitGroup
	for _, c := range cases {
		if err := p.SetPolicy(c.identity, policy); err != nil {
			t.Fatal(err)
		}
		pub := newPublisher(t, c.identity)
		w := pub.start(p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			pub.play(context.Background(), w, []scene{{face, faceFrames}, {c.then, 4 * testFPS}}, playOptions{})
		}()
	}
	wg.Wait()
	for _, c := range cases {
		v := sink.wait(t, 20*time.Second, rules.Opened, c.identity, c.want)
		checkOnset(t, v, policy, streamMS(faceFrames))
		if v.SessionID != "session-"+c.identity || v.Policy != rules.PolicyInterview {
			t.Errorf("%s: violation carries session %q policy %q", c.identity, v.SessionID, v.Policy)
		}
		for _, other := range cases {
			if other.identity == c.identity {
				continue
			}
			if v, ok := sink.find(rules.Opened, c.identity, other.want); ok {
				t.Errorf("%s got %s, which only %s shows: %+v", c.identity, other.want, other.identity, v.Violation)
			}
		}
	}
}

// blockingSink blocks in every call until released or canceled.
type blockingSink struct {
	entered chan struct{}
	release chan struct{}
	calls   atomic.Int64
}

func (s *blockingSink) block(ctx context.Context) error {
	if s.calls.Add(1) == 1 {
		close(s.entered)
	}
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *blockingSink) ViolationOpened(ctx context.Context, _ Violation) error { return s.block(ctx) }
func (s *blockingSink) ViolationClosed(ctx context.Context, _ Violation) error { return s.block(ctx) }

// TestBlockingSinkDoesNotBlockWritePacket: a sink that never returns stalls
// the analysis at most; WritePacket and decoding go on, and Close still
// stops everything.
func TestBlockingSinkDoesNotBlockWritePacket(t *testing.T) {
	sink := &blockingSink{entered: make(chan struct{}), release: make(chan struct{})}
	p, reg := newTestPipeline(t, Config{Sink: sink, SinkQueue: 1, CloseTimeout: 300 * time.Millisecond})
	if err := p.SetPolicy("cand-1", mustPolicy(t, rules.PolicyInterview)); err != nil {
		t.Fatal(err)
	}
	pub := newPublisher(t, "cand-1")
	empty, face := picture(t, "building.jpg"), picture(t, "sample3.jpg")
	w := pub.start(p)

	var decodedAtBlock atomic.Value
	go func() {
		<-sink.entered
		decodedAtBlock.Store(metricValue(t, reg, "invigil_pipeline_frames_decoded_total"))
	}()
	// No face, then three faces, then no face: more violations than the
	// sink queue holds.
	sent := pub.play(context.Background(), w, []scene{{empty, 3 * testFPS}, {face, 3 * testFPS}, {empty, 3 * testFPS}}, playOptions{noClose: true})
	select {
	case <-sink.entered:
	default:
		t.Fatal("the sink was never called")
	}
	decoded := metricValue(t, reg, "invigil_pipeline_frames_decoded_total")
	t.Logf("sent %d frames; sink blocked after %v decoded; %v decoded in all; %v packets dropped",
		sent, decodedAtBlock.Load(), decoded, metricValue(t, reg, "invigil_pipeline_packets_dropped_total"))
	if sent != 9*testFPS {
		t.Errorf("sent %d frames", sent)
	}
	if before, _ := decodedAtBlock.Load().(float64); decoded <= before {
		t.Errorf("decoding stopped with the sink: %v decoded when it blocked, %v at the end", before, decoded)
	}
	if n := metricValue(t, reg, "invigil_pipeline_packets_dropped_total", "reason", "queue_full"); n != 0 {
		t.Errorf("%v packets dropped for a full queue", n)
	}
	w.Close()
	p.Close() // gives up on the sink after CloseTimeout
}

// TestGarbageSurvived: garbage RTP and corrupt VP8 in the middle of a real
// stream are counted and answered with keyframe requests, and the
// analysis goes on.
func TestGarbageSurvived(t *testing.T) {
	sink := newRecordingSink()
	p, reg := newTestPipeline(t, Config{Sink: sink, KeyframeInterval: 200 * time.Millisecond})
	policy := mustPolicy(t, rules.PolicyInterview)
	if err := p.SetPolicy("cand-1", policy); err != nil {
		t.Fatal(err)
	}
	pub := newPublisher(t, "cand-1")
	face, empty := picture(t, "messi5.jpg"), picture(t, "building.jpg")
	w := pub.start(p)
	rng := rand.New(rand.NewSource(7))
	w.WritePacket(media.Packet{})
	alter := func(i int, pkts []*rtp.Packet) []*rtp.Packet {
		switch {
		case i >= 5 && i < 20 && i%3 == 0:
			// Random packets: random sequence numbers, timestamps and
			// payloads. (One landing a little ahead of the stream used to
			// make the assembler give up on everything before it, and the
			// stream's own packets were then late until it caught up,
			// stalling analysis for seconds or for good: see
			// TestReceiverIgnoresStrayPackets.)
			for k := 0; k < 5; k++ {
				junk := make([]byte, rng.Intn(1400))
				rng.Read(junk)
				pkts = append(pkts, &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(rng.Intn(65536)),
					Timestamp: rng.Uint32(), Marker: rng.Intn(2) == 0, PayloadType: 96}, Payload: junk})
			}
			pkts = append(pkts, &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: pkts[0].SequenceNumber - 1}})
		case i >= 20 && i < 30 && i%2 == 0:
			// Corrupt VP8: the payload descriptor is intact, the frame is not.
			for _, pk := range pkts {
				for k := 4 + rng.Intn(8); k < len(pk.Payload); k += 1 + rng.Intn(40) {
					pk.Payload[k] ^= byte(1 + rng.Intn(255))
				}
			}
		case i == 30:
			// A truncated frame that still claims to be whole.
			pkts = pkts[:1]
			pkts[0].Marker = true
			pkts[0].Payload = pkts[0].Payload[:min(len(pkts[0].Payload), 40)]
		}
		return pkts
	}
	const faceFrames = 4 * testFPS
	pub.play(context.Background(), w, []scene{{face, faceFrames}, {empty, 4 * testFPS}}, playOptions{alter: alter})

	v := sink.wait(t, 20*time.Second, rules.Opened, "cand-1", rules.FaceOffScreen)
	checkOnset(t, v, policy, streamMS(faceFrames))
	errs := metricValue(t, reg, "invigil_pipeline_decode_errors_total")
	keyReqs := metricValue(t, reg, "invigil_pipeline_keyframe_requests_total")
	t.Logf("decode errors %v, keyframe requests %v (publisher saw %d), dropped packets %v, dropped frames awaiting keyframe %v",
		errs, keyReqs, pub.requests.Load(), metricValue(t, reg, "invigil_pipeline_packets_dropped_total"),
		metricValue(t, reg, "invigil_pipeline_frames_dropped_total", "reason", "awaiting_keyframe"))
	// Which corrupt frames reach the decoder depends on goroutine timing
	// (junk can make the assembler drop them first); either way they must
	// have been noticed.
	held := metricValue(t, reg, "invigil_pipeline_frames_dropped_total", "reason", "awaiting_keyframe")
	if errs+held == 0 {
		t.Error("corrupt frames neither failed to decode nor were held for a keyframe")
	}
	if keyReqs == 0 || pub.requests.Load() == 0 {
		t.Error("no keyframe requested after corrupt frames")
	}
	if metricValue(t, reg, "invigil_pipeline_frames_analysed_total") == 0 {
		t.Error("nothing analyzed")
	}
}

// TestKeyframeRequests: joining mid-GOP, losing a packet and a long silence
// each ask the publisher for a keyframe, which restores decoding.
func TestKeyframeRequests(t *testing.T) {
	face := picture(t, "messi5.jpg")
	for _, c := range []struct {
		name   string
		reason string
		opts   playOptions
	}{
		{"mid-GOP start", keyStart, playOptions{skip: 10}},
		{"lost packet", keyLoss, playOptions{alter: func(i int, pkts []*rtp.Packet) []*rtp.Packet {
			if i == 15 && len(pkts) > 1 {
				return pkts[1:] // the first packet of an inter frame
			}
			if i == 25 {
				return nil // a whole frame
			}
			return pkts
		}}},
		{"long gap", keyGap, playOptions{pauseAt: 10, pause: 2500 * time.Millisecond}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, reg := newTestPipeline(t, Config{Workers: 1})
			pub := newPublisher(t, "cand-1")
			w := pub.start(p)
			sent := pub.play(context.Background(), w, []scene{{face, 40}}, c.opts)
			waitFor(t, "the track to end", func() bool { return metricValue(t, reg, "invigil_pipeline_tracks_active") == 0 })
			reqs := metricValue(t, reg, "invigil_pipeline_keyframe_requests_total", "reason", c.reason)
			decoded := metricValue(t, reg, "invigil_pipeline_frames_decoded_total")
			waiting := metricValue(t, reg, "invigil_pipeline_frames_dropped_total", "reason", "awaiting_keyframe")
			incomplete := metricValue(t, reg, "invigil_pipeline_frames_dropped_total", "reason", "incomplete")
			t.Logf("sent %d, decoded %v, dropped awaiting keyframe %v, incomplete %v, %s requests %v, publisher saw %d",
				sent, decoded, waiting, incomplete, c.reason, reqs, pub.requests.Load())
			if reqs < 1 || pub.requests.Load() < 1 {
				t.Errorf("no keyframe request for %s", c.reason)
			}
			if decoded+waiting+incomplete != float64(sent) || decoded < float64(sent)/2 {
				t.Errorf("decoded %v of %d frames sent", decoded, sent)
			}
			// Two frames are lost; the assembler may give up on a complete
			// frame behind the hole too.
			if c.reason == keyLoss && (incomplete < 2 || incomplete > 4) {
				t.Errorf("%v frames counted lost, want 2 to 4", incomplete)
			}
			if c.reason != keyGap && waiting == 0 {
				t.Error("frames without their references were decoded")
			}
			if c.reason == keyGap && waiting != 0 {
				t.Errorf("%v frames dropped after a gap without loss", waiting)
			}
		})
	}
}

// TestSetPolicy: a policy change closes the violations open under the old
// rules and the new rules take over; the same policy again changes nothing.
func TestSetPolicy(t *testing.T) {
	sink := newRecordingSink()
	p, _ := newTestPipeline(t, Config{Sink: sink})
	waiting, interview := mustPolicy(t, rules.PolicyWaiting), mustPolicy(t, rules.PolicyInterview)
	if err := p.SetPolicy("cand-1", waiting); err != nil {
		t.Fatal(err)
	}
	bad := interview
	bad.AnalysisFPS = 0
	if err := p.SetPolicy("cand-1", bad); err == nil {
		t.Error("invalid policy accepted")
	}
	pub := newPublisher(t, "cand-1")
	empty := picture(t, "building.jpg")
	w := pub.start(p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		pub.play(ctx, w, []scene{{empty, 20 * testFPS}}, playOptions{})
	}()
	defer func() { cancel(); <-done }()

	first := sink.wait(t, 20*time.Second, rules.Opened, "cand-1", rules.FaceOffScreen)
	if first.Policy != rules.PolicyWaiting {
		t.Errorf("opened under %q", first.Policy)
	}
	if err := p.SetPolicy("cand-1", waiting); err != nil { // no change
		t.Fatal(err)
	}
	if err := p.SetPolicy("cand-1", interview); err != nil {
		t.Fatal(err)
	}
	closed := sink.wait(t, 10*time.Second, rules.Closed, "cand-1", rules.FaceOffScreen)
	if closed.Key != first.Key || closed.Policy != rules.PolicyWaiting {
		t.Errorf("closed %s under %s, want %s under waiting", closed.Key, closed.Policy, first.Key)
	}
	deadline := time.After(15 * time.Second)
	for {
		var again *Violation
		for _, e := range sink.all() {
			if e.kind == rules.Opened && e.v.Type == rules.FaceOffScreen && e.v.Key != first.Key {
				again = &e.v
			}
		}
		if again != nil {
			if again.Policy != rules.PolicyInterview || again.StartMS < closed.EndMS {
				t.Errorf("reopened under %s from %d ms (closed at %d)", again.Policy, again.StartMS, closed.EndMS)
			}
			break
		}
		select {
		case <-sink.changed:
		case <-deadline:
			t.Fatalf("face_off_screen not reopened under the new policy: %s", sink.summary())
		}
	}
}

// TestIgnoresOtherTracks: audio, staff and non-VP8 tracks are not tapped.
func TestIgnoresOtherTracks(t *testing.T) {
	p, _ := newTestPipeline(t, Config{Workers: 1})
	base := media.Track{Identity: "x", Role: "candidate", Kind: media.Video, MimeType: "video/VP8", ClockRate: 90000}
	for name, mod := range map[string]func(*media.Track){
		"PCMU audio":  func(t *media.Track) { t.Kind, t.MimeType = media.Audio, "audio/PCMU" },
		"staff audio": func(t *media.Track) { t.Kind, t.MimeType, t.Role = media.Audio, "audio/opus", "examiner" },
		"examiner":    func(t *media.Track) { t.Role = "examiner" },
		"proctor":     func(t *media.Track) { t.Role = "proctor" },
		"H264":        func(t *media.Track) { t.MimeType = "video/H264" },
		"no identity": func(t *media.Track) { t.Identity = "" },
	} {
		tr := base
		mod(&tr)
		if w := p.TrackStarted(tr); w != nil {
			t.Errorf("%s track tapped", name)
			w.Close()
		}
	}
	w := p.TrackStarted(base)
	if w == nil {
		t.Fatal("candidate VP8 track not tapped")
	}
	w.Close()
	w.Close()

	// Settings outlive a candidate's tracks until Forget.
	if err := p.SetPolicy("y", mustPolicy(t, rules.PolicyWaiting)); err != nil {
		t.Fatal(err)
	}
	known := func(id string) bool {
		p.sched.mu.Lock()
		defer p.sched.mu.Unlock()
		return p.sched.candidates[id] != nil
	}
	waitFor(t, "the ended track's candidate to go", func() bool { return !known("x") })
	if !known("y") {
		t.Error("SetPolicy forgotten")
	}
	p.Forget("y")
	if known("y") {
		t.Error("Forget kept the candidate")
	}
	p.Close()
	if err := p.SetPolicy("y", mustPolicy(t, rules.PolicyWaiting)); err == nil {
		t.Error("SetPolicy after Close accepted")
	}
	if w := p.TrackStarted(base); w != nil {
		t.Error("track tapped after Close")
	}
}

// TestCalibrate: a candidate calibrated during the device check sat at the
// guide's 50 cm then; a face twice as large later is too close. Without
// calibration the same faces are judged with a default webcam: too far.
func TestCalibrate(t *testing.T) {
	sink := newRecordingSink()
	p, _ := newTestPipeline(t, Config{Sink: sink})
	policy := mustPolicy(t, rules.PolicyInterview)
	small, large := picture(t, "messi5.jpg"), picture(t, "sample3.jpg")
	var wg sync.WaitGroup
	for _, id := range []string{"calibrated", "uncalibrated"} {
		if err := p.SetPolicy(id, policy); err != nil {
			t.Fatal(err)
		}
		if id == "calibrated" {
			if err := p.Calibrate(id, time.Now().Add(2*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		pub := newPublisher(t, id)
		w := pub.start(p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			pub.play(context.Background(), w, []scene{{small, 3 * testFPS}, {large, 7 * testFPS}}, playOptions{})
		}()
	}
	wg.Wait()
	for id, want := range map[string]string{"calibrated": "too close", "uncalibrated": "too far"} {
		v := sink.wait(t, 10*time.Second, rules.Opened, id, rules.Distance)
		t.Logf("%s: %s from %d ms", id, v.Reason, v.StartMS)
		if !strings.Contains(v.Reason, want) {
			t.Errorf("%s: %q, want %s", id, v.Reason, want)
		}
	}
}
