package mediatest_test

import (
	"context"
	"math"
	"testing"
	"time"

	"invigil/detectors/rules"
	"invigil/recording"
	"invigil/simulate"
)

// A candidate's connection is cut mid-stream (socket and peer connection
// gone without a leave, as when Wi-Fi fails) while a violation is open; it
// resumes: one session, two recording segments, the watching proctor
// re-attached, and no violation lost: the one open at the cut is closed,
// the condition is reported again on the new connection within the rule's
// time, and every violation located in the recording points into the
// segment of its own connection.
func TestReconnect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	st := newStack(t, stackOptions{workers: 2})
	dir := t.TempDir()
	face, empty := scene(t, dir, "a", []person{personA}), scene(t, dir, "empty", nil)
	proctor := st.joinStaff(ctx, "proctor-1", false)
	rc := st.joinCandidate(ctx, "cand-r", []simulate.Clip{{File: face, Seconds: 3}, {File: empty, Seconds: 60}})
	if err := proctor.cl.Subscribe("cand-r"); err != nil {
		t.Fatal(err)
	}
	session := rc.SessionID()

	first := st.sink.wait(ctx, t, "face_off_screen on the first connection", isEvent(rules.Opened, "cand-r", rules.FaceOffScreen))
	// Cut a second after it opened.
	waitFor(ctx, t, "a second of the violation", func() bool {
		fs := rc.frames.all()
		return fs[len(fs)-1].StreamMS > first.v.OpenedMS+1000
	})
	before := proctor.packetCount("cand-r")
	sentBefore := len(rc.frames.all())
	rc.Drop()
	waitFor(ctx, t, "frames on the resumed connection", func() bool { _, ok := rc.frames.firstOf(2, 1); return ok })
	if rc.SessionID() != session {
		t.Fatalf("resumed as session %s, want %s", rc.SessionID(), session)
	}
	second := st.sink.wait(ctx, t, "face_off_screen after the resume", func(e sinkEvent) bool {
		return e.kind == rules.Opened && e.v.Identity == "cand-r" && e.v.Type == rules.FaceOffScreen && e.v.Key != first.v.Key
	})
	waitFor(ctx, t, "the proctor receiving the resumed track", func() bool { return proctor.packetCount("cand-r") > before+100 })
	// Let the second violation last a while, then leave.
	waitFor(ctx, t, "two seconds of the second violation", func() bool {
		fs := rc.frames.all()
		return fs[len(fs)-1].Connection == 2 && fs[len(fs)-1].StreamMS > second.v.OpenedMS+2000
	})
	rc.leave(t)
	st.sink.wait(ctx, t, "the second violation closed", func(e sinkEvent) bool { return e.kind == rules.Closed && e.v.Key == second.v.Key })
	st.stopMedia()

	if n := st.metric("invigil_sfu_reconnects_total", "kind", "resume"); n != 1 {
		t.Errorf("%v resumes counted by the SFU, want 1", n)
	}
	if s := rc.Stats(); s.Reconnects != 1 {
		t.Errorf("candidate stats %+v, want one reconnect", s)
	}

	// The violations: the one open at the cut closed with the connection,
	// the condition reported again on the new one.
	opens, closes := map[string]sinkEvent{}, map[string]sinkEvent{}
	for _, e := range st.sink.all() {
		if e.v.Identity != "cand-r" || e.v.Type != rules.FaceOffScreen {
			continue
		}
		if e.kind == rules.Opened {
			opens[e.v.Key] = e
		} else {
			closes[e.v.Key] = e
		}
		if e.v.SessionID != session {
			t.Errorf("violation %s of session %s, want %s", e.v.Key, e.v.SessionID, session)
		}
	}
	for k := range opens {
		if _, ok := closes[k]; !ok {
			t.Errorf("violation %s opened but never closed", k)
		}
	}
	if len(opens) != 2 {
		t.Errorf("%d face_off_screen violations, want 2 (one per connection):%s", len(opens), st.sink.summary())
	}
	if first.v.TrackID == second.v.TrackID {
		t.Errorf("both violations on track %s", first.v.TrackID)
	}
	start2, _ := rc.frames.firstOf(2, 1)
	policy, _ := rules.DefaultPolicy(rules.PolicyRestRoom)
	limit := policy.Rules[rules.FaceOffScreen].MinMS + 1500
	t.Logf("first violation %s: %d–%d ms of connection 1; second %s opened at %d ms of connection 2 (the room was empty from its first frame at %d ms; limit %d ms)",
		first.v.Key, first.v.StartMS, closes[first.v.Key].v.EndMS, second.v.Key, second.v.OpenedMS, start2.StreamMS, limit)
	if second.v.OpenedMS-start2.StreamMS > limit {
		t.Errorf("after the resume face_off_screen opened %d ms into the new connection, limit %d ms", second.v.OpenedMS-start2.StreamMS, limit)
	}

	// One session, two segments, one per connection, each as long as what
	// was sent on it.
	sessions, err := recording.Sessions(st.dataDir, room, "cand-r")
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions) != 1 || sessions[0].SessionID != session || len(sessions[0].Segments) != 2 {
		t.Fatalf("recorded sessions %+v, want session %s with two segments", sessions, session)
	}
	sent := []int{sentBefore, len(rc.frames.all()) - sentBefore}
	for i, seg := range sessions[0].Segments {
		p := ffprobe(t, seg.Path)
		published := float64(sent[i]) / 15
		t.Logf("segment %d (connection %d): %.2f s, %d frames; %.2f s published", i+1, seg.Connection, p.Duration, p.Frames, published)
		if seg.Connection != i+1 || !seg.Complete {
			t.Errorf("segment %d: %+v", i+1, seg)
		}
		if math.Abs(p.Duration-published) > 1 {
			t.Errorf("segment %d lasts %.2f s, %.2f s were published on its connection", i+1, p.Duration, published)
		}
		if errs := decodeErrors(t, seg.Path); errs != "" {
			t.Errorf("segment %d: ffmpeg decoding errors:\n%s", i+1, errs)
		}
	}
	emptyPic := readBGR(t, empty)
	for i, v := range []sinkEvent{first, second} {
		path, offset, err := recording.Locate(st.dataDir, room, "cand-r", v.v.StartedAt)
		if err != nil {
			t.Fatal(err)
		}
		if want := sessions[0].Segments[i].Path; path != want {
			t.Errorf("violation %d located in %s, want %s", i+1, path, want)
			continue
		}
		if p := psnr(frameAt(t, path, offset+100*time.Millisecond), emptyPic); p < 28 {
			t.Errorf("violation %d: the recording at %v does not show the empty room (%.1f dB)", i+1, offset, p)
		}
	}
}
