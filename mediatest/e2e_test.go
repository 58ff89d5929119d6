package mediatest_test

import (
	"bytes"
	"context"
	"math"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"invigil/detectors"
	"invigil/detectors/rules"
	"invigil/internal/testassets"
	"invigil/recording"
	"invigil/simulate"
)

// The scenes mean what the tests say they do: the detectors find one face
// in each candidate's picture, two with the intruder, none in the empty
// room or a black one.
func TestScenesAreWhatTheySeem(t *testing.T) {
	dir := t.TempDir()
	a, err := detectors.NewAnalyzer(detectors.AnalyzerOptions{ModelsDir: testassets.ModelsDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	policy, err := rules.DefaultPolicy(rules.PolicyRestRoom)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		path    string
		faces   int
		frontal bool
	}{
		{"a", scene(t, dir, "a", []person{personA}), 1, true},
		{"b", scene(t, dir, "b", []person{personB}), 1, true},
		{"c", scene(t, dir, "c", []person{personC}), 1, true},
		{"b_intruder", scene(t, dir, "b_intruder", []person{personB, intruder}), 2, true},
		{"empty", scene(t, dir, "empty", nil), 0, false},
		{"black", blackScene(t, dir), 0, false},
	} {
		img := gocv.IMRead(c.path, gocv.IMReadColor)
		o, err := a.Observe(img, 0, detectors.NewStream(policy, detectors.Camera{}))
		img.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(o.Faces) != c.faces {
			t.Errorf("%s: %d faces, want %d", c.name, len(o.Faces), c.faces)
			continue
		}
		if c.frontal {
			f := o.Faces[0]
			t.Logf("%s: face %.0f px wide, score %.2f, yaw %.0f°, pitch %.0f°, %.0f cm", c.name, f.Box.W, f.Score, f.YawDeg, f.PitchDeg, f.DistanceCM)
			if math.Abs(f.YawDeg) > policy.YawLimitDeg-8 || math.Abs(f.PitchDeg) > policy.PitchLimitDeg-2 ||
				math.Abs(f.DistanceCM-policy.DistanceCM) > policy.DistanceToleranceCM {
				t.Errorf("%s: the candidate does not sit straight at 50 cm: %+v", c.name, f)
			}
		}
	}
}

// Three synthetic candidates publish live VP8 through the SFU; each
// scenario changes what the camera sees after 5 s. The expected violation
// reaches the sink within the rule's minimum duration plus 1.5 s of the
// change (in stream time), a hidden proctor decodes each candidate's
// forwarded video and sees that candidate's picture, the recordings decode
// with ffmpeg and last as long as what was published, and a violation's
// recording offset shows the moment it describes.
func TestThreeCandidates(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	st := newStack(t, stackOptions{workers: 2})
	dir := t.TempDir()
	type cand struct {
		id     string
		scenes [2]string
		want   rules.Type
		rc     *runningCandidate
	}
	cands := []*cand{
		{id: "cand-a", scenes: [2]string{scene(t, dir, "a", []person{personA}), scene(t, dir, "empty", nil)}, want: rules.FaceOffScreen},
		{id: "cand-b", scenes: [2]string{scene(t, dir, "b", []person{personB}), scene(t, dir, "b_intruder", []person{personB, intruder})}, want: rules.ExtraPerson},
		{id: "cand-c", scenes: [2]string{scene(t, dir, "c", []person{personC}), blackScene(t, dir)}, want: rules.CameraBlocked},
	}
	pictures := map[string][]byte{}
	for _, c := range cands {
		for _, s := range c.scenes {
			pictures[s] = readBGR(t, s)
		}
	}
	proctor := st.joinStaff(ctx, "proctor-1", true)
	for _, c := range cands {
		c.rc = st.joinCandidate(ctx, c.id, []simulate.Clip{{File: c.scenes[0], Seconds: 5}, {File: c.scenes[1], Seconds: 30}})
		if err := proctor.cl.Subscribe(c.id); err != nil {
			t.Fatal(err)
		}
	}

	// The proctor sees each candidate's own picture, nearly as sent.
	for _, c := range cands {
		waitFor(ctx, t, "the proctor decoding "+c.id, func() bool { _, n := proctor.picture(c.id); return n >= 10 })
		pic, n := proctor.picture(c.id)
		best, bestScene := 0.0, ""
		for s, want := range pictures {
			if p := psnr(pic, want); p > best {
				best, bestScene = p, s
			}
		}
		own := bestScene == c.scenes[0] || bestScene == c.scenes[1]
		t.Logf("%s: proctor decoded %d frames; best match %.1f dB (%s)", c.id, n, best, bestScene)
		if !own || best < 30 {
			t.Errorf("%s: the proctor's picture matches %s best (%.1f dB), not the candidate's own", c.id, bestScene, best)
		}
	}

	policy, err := rules.DefaultPolicy(rules.PolicyRestRoom)
	if err != nil {
		t.Fatal(err)
	}
	opened := map[string]sinkEvent{}
	for _, c := range cands {
		ev := st.sink.wait(ctx, t, c.id+" "+string(c.want)+" opened", isEvent(rules.Opened, c.id, c.want))
		opened[c.id] = ev
		change, ok := c.rc.frames.firstOf(1, 1)
		if !ok {
			t.Fatalf("%s never showed its second scene", c.id)
		}
		limit := policy.Rules[c.want].MinMS + 1500
		delay := ev.v.OpenedMS - change.StreamMS
		t.Logf("%s %s: scene changed at %d ms, condition from %d ms, opened at %d ms: %d ms after the change (limit %d); sink had it %v after the change frame was sent",
			c.id, c.want, change.StreamMS, ev.v.StartMS, ev.v.OpenedMS, delay, limit, ev.at.Sub(change.At).Round(time.Millisecond))
		if ev.v.StartMS < change.StreamMS {
			t.Errorf("%s: %s began at %d ms, before the scene changed at %d ms", c.id, c.want, ev.v.StartMS, change.StreamMS)
		}
		if delay > limit {
			t.Errorf("%s: %s opened %d ms after the change, limit %d ms", c.id, c.want, delay, limit)
		}
		if !bytes.HasPrefix(ev.v.Evidence, []byte{0xff, 0xd8}) {
			t.Errorf("%s: evidence is not a JPEG", c.id)
		}
		if ev.v.Room != room || ev.v.SessionID != c.rc.SessionID() {
			t.Errorf("%s: violation of room %q session %q, want %q %q", c.id, ev.v.Room, ev.v.SessionID, room, c.rc.SessionID())
		}
	}
	for _, e := range st.sink.all() {
		for _, c := range cands {
			change, _ := c.rc.frames.firstOf(1, 1)
			if e.v.Identity == c.id && e.v.Type == c.want && e.v.StartMS < change.StreamMS {
				t.Errorf("%s: %s while the scene did not show it: %+v", c.id, c.want, e.v.Violation)
			}
		}
	}

	// Everyone leaves; the open violations close, the recordings finish.
	published := map[string]time.Duration{}
	for _, c := range cands {
		c.rc.leave(t)
		published[c.id] = time.Duration(len(c.rc.frames.all())) * time.Second / 15
	}
	for _, c := range cands {
		key := opened[c.id].v.Key
		st.sink.wait(ctx, t, c.id+" "+string(c.want)+" closed", func(e sinkEvent) bool { return e.kind == rules.Closed && e.v.Key == key })
	}
	st.stopMedia()

	for _, c := range cands {
		sessions, err := recording.Sessions(st.dataDir, room, c.id)
		if err != nil {
			t.Fatal(err)
		}
		if len(sessions) != 1 || len(sessions[0].Segments) != 1 {
			t.Fatalf("%s: %d sessions %+v, want one with one segment", c.id, len(sessions), sessions)
		}
		seg := sessions[0].Segments[0]
		p := ffprobe(t, seg.Path)
		t.Logf("%s: published %v; recording %.2f s by its header, %d frames decoded (%.2f s), %dx%d, complete %v",
			c.id, published[c.id], p.Duration, p.Frames, float64(p.Frames)/15, p.Width, p.Height, seg.Complete)
		if !seg.Complete || p.Width != frameW || p.Height != frameH {
			t.Errorf("%s: segment %+v probed %+v", c.id, seg, p)
		}
		if d := math.Abs(p.Duration - published[c.id].Seconds()); d > 1 {
			t.Errorf("%s: recording lasts %.2f s, published %v", c.id, p.Duration, published[c.id])
		}
		if d := math.Abs(float64(p.Frames)/15 - published[c.id].Seconds()); d > 1 {
			t.Errorf("%s: recording holds %d frames (%.2f s), published %v", c.id, p.Frames, float64(p.Frames)/15, published[c.id])
		}
		if errs := decodeErrors(t, seg.Path); errs != "" {
			t.Errorf("%s: ffmpeg decoding errors:\n%s", c.id, errs)
		}
	}

	// cand-a's face_off_screen, located in the recording by its wall-clock
	// start, shows the empty room; half a second before the change, the
	// candidate.
	a := cands[0]
	v := opened[a.id].v
	path, offset, err := recording.Locate(st.dataDir, room, a.id, v.StartedAt)
	if err != nil {
		t.Fatal(err)
	}
	change, _ := a.rc.frames.firstOf(1, 1)
	t.Logf("%s: violation from %d ms (stream time) located at %v in %s", a.id, v.StartMS, offset, path)
	if d := offset - time.Duration(v.StartMS)*time.Millisecond; d < -200*time.Millisecond || d > 200*time.Millisecond {
		t.Errorf("recording offset %v, the violation began at %d ms of the stream", offset, v.StartMS)
	}
	after := frameAt(t, path, offset+100*time.Millisecond)
	before := frameAt(t, path, offset-time.Duration(v.StartMS-change.StreamMS)*time.Millisecond-500*time.Millisecond)
	empty, face := pictures[a.scenes[1]], pictures[a.scenes[0]]
	t.Logf("at the offset: %.1f dB to the empty room, %.1f dB to the candidate; 0.5 s before the change: %.1f dB to the candidate, %.1f dB to the room",
		psnr(after, empty), psnr(after, face), psnr(before, face), psnr(before, empty))
	if psnr(after, empty) < 28 || psnr(after, empty) < psnr(after, face)+3 {
		t.Error("the frame at the violation's recording offset does not show the empty room")
	}
	if psnr(before, face) < 28 || psnr(before, face) < psnr(before, empty)+3 {
		t.Error("the frame before the change does not show the candidate")
	}
	if len(proctor.errs) > 0 {
		t.Errorf("proctor: %v", proctor.errs)
	}
}
