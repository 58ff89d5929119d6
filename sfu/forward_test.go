package sfu_test

import (
	"context"
	"testing"

	"invigil/media"
	"invigil/sfu"
	"invigil/sfu/protocol"
)

// A candidate publishes; an examiner allowed to see it subscribes and
// receives the packets; the taps see the track and its packets, then Close
// when the candidate leaves.
func TestForwardToGrantedSubscriber(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	cand := ts.join(ctx, candidateGrants("cand-1"), nil)
	publishVideo(ctx, t, cand)

	rcv := newReceiver(true)
	exam := ts.join(ctx, staffGrants("examiner-1", "cand-1"), rcv)
	if err := exam.Subscribe("cand-1"); err != nil {
		t.Fatal(err)
	}
	waitEvent(ctx, t, exam, protocol.TypeSubscribed, "")
	rcv.waitPackets(ctx, t, "cand-1", 50)

	taps := ts.tap.waitFor(ctx, t, "candidate video with packets", func(s []tapTrack) bool {
		return len(s) == 1 && s[0].Packets >= 50
	})
	tr := taps[0].Track
	if tr.SessionID != cand.SessionID() || tr.Identity != "cand-1" || tr.Role != "candidate" || tr.Room != "exam-1" {
		t.Errorf("tap track identity fields: %+v", tr)
	}
	if tr.Kind != media.Video || tr.MimeType != "video/VP8" || tr.ClockRate != 90000 || tr.Connection != 1 ||
		tr.TrackID == "" || tr.Started.IsZero() || tr.RequestKeyframe == nil || tr.PayloadType == 0 {
		t.Errorf("tap track media fields: %+v", tr)
	}
	tr.RequestKeyframe() // safe from any goroutine, rate-limited
	tr.RequestKeyframe()

	parts := ts.srv.Participants("exam-1")
	if len(parts) != 2 || parts[0].Identity != "cand-1" || len(parts[0].Tracks) != 1 || parts[0].Tracks[0].Subscribers != 1 {
		t.Errorf("participants: %+v", parts)
	}
	if len(parts) == 2 && (len(parts[1].Subscriptions) != 1 || parts[1].Subscriptions[0] != "cand-1") {
		t.Errorf("examiner subscriptions: %+v", parts[1])
	}

	for name, labels := range map[string]map[string]string{
		"invigil_sfu_rtp_packets_in_total":  {"kind": "video"},
		"invigil_sfu_rtp_packets_out_total": {"kind": "video"},
		"invigil_sfu_rtp_bytes_in_total":    {"kind": "video"},
		"invigil_sfu_tracks":                {"kind": "video"},
		"invigil_sfu_subscribers":           {"kind": "video"},
		"invigil_sfu_participants":          nil,
		"invigil_sfu_plis_total":            {"direction": "sent"},
	} {
		if v := metric(t, ts.reg, name, labels); v <= 0 {
			t.Errorf("metric %s%v = %v, want > 0", name, labels, v)
		}
	}

	cand.Leave()
	ts.tap.waitFor(ctx, t, "Close after leave", func(s []tapTrack) bool { return len(s) == 1 && s[0].Closed })
	waitEvent(ctx, t, exam, protocol.TypeParticipantLeft, "")
}

// Subscribing to someone the token does not name is refused; the
// subscriber stays connected and receives nothing.
func TestSubscribeNotGrantedIsRefused(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	cand := ts.join(ctx, candidateGrants("cand-1"), nil)
	publishVideo(ctx, t, cand)
	other := ts.join(ctx, candidateGrants("cand-2"), nil)

	rcv := newReceiver(true)
	exam := ts.join(ctx, staffGrants("examiner-1", "cand-2"), rcv)
	if err := exam.Subscribe("cand-1"); err != nil {
		t.Fatal(err)
	}
	waitEvent(ctx, t, exam, protocol.TypeError, protocol.CodeNotAllowed)

	// Another candidate (no Subscribe list) may not see cand-1 either, nor
	// is it told that cand-1 exists.
	if err := other.Subscribe("cand-1"); err != nil {
		t.Fatal(err)
	}
	waitEvent(ctx, t, other, protocol.TypeError, protocol.CodeNotAllowed)
	for _, m := range other.Events() {
		if m.Type == protocol.TypeParticipantJoined || m.Type == protocol.TypeTrackPublished {
			t.Errorf("candidate was told about another candidate: %+v", m)
		}
	}
	if len(other.Joined().Participants) != 0 {
		t.Errorf("candidate sees participants: %+v", other.Joined().Participants)
	}

	// A subscriber without CanSubscribe cannot be subscribed by the API.
	viewer := sfu.Grants{Identity: "display", CanPublish: false, CanSubscribe: false}
	ts.join(ctx, viewer, nil)
	if err := ts.srv.Subscribe("display", "cand-1"); err == nil {
		t.Error("Server.Subscribe ignored a missing CanSubscribe")
	}

	// The examiner is still served: the allowed subscription works.
	if err := exam.Subscribe("cand-2"); err != nil {
		t.Fatal(err)
	}
	waitEvent(ctx, t, exam, protocol.TypeSubscribed, "")
	if n := rcv.count("cand-1"); n != 0 {
		t.Errorf("received %d packets from a refused subscription", n)
	}
}

// The control plane moves subscriptions: a candidate with an empty
// Subscribe list sees the examiner only once the server subscribes it, and
// stops when unsubscribed; the candidate's publication is never
// interrupted.
func TestServerAPISubscribeUnsubscribe(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	candRcv := newReceiver(true)
	cand := ts.join(ctx, candidateGrants("cand-1"), candRcv)
	publishVideo(ctx, t, cand)

	examRcv := newReceiver(true)
	exam := ts.join(ctx, staffGrants("examiner-1"), examRcv)
	publishVideo(ctx, t, exam)

	// The proctor is hidden and watches everyone.
	proctorRcv := newReceiver(true)
	proctor := ts.join(ctx, sfu.Grants{Identity: "proctor-1", Role: "proctor", CanSubscribe: true, Hidden: true,
		Subscribe: []string{"*"}}, proctorRcv)
	if err := proctor.Subscribe("cand-1"); err != nil {
		t.Fatal(err)
	}
	proctorRcv.waitPackets(ctx, t, "cand-1", 20)

	// The call: both ways.
	if err := ts.srv.Subscribe(cand.SessionID(), "examiner-1"); err != nil {
		t.Fatal(err)
	}
	if err := ts.srv.Subscribe("examiner-1", "cand-1"); err != nil {
		t.Fatal(err)
	}
	candRcv.waitPackets(ctx, t, "examiner-1", 20)
	examRcv.waitPackets(ctx, t, "cand-1", 20)
	waitEvent(ctx, t, cand, protocol.TypeSubscribed, "")

	// The call ends: the candidate goes back to waiting.
	if err := ts.srv.Unsubscribe("cand-1", "examiner-1"); err != nil {
		t.Fatal(err)
	}
	if err := ts.srv.Unsubscribe("examiner-1", "cand-1"); err != nil {
		t.Fatal(err)
	}
	waitEvent(ctx, t, cand, protocol.TypeUnsubscribed, "")
	waitEvent(ctx, t, exam, protocol.TypeUnsubscribed, "")
	// The candidate may not re-subscribe by itself.
	if err := cand.Subscribe("examiner-1"); err != nil {
		t.Fatal(err)
	}
	waitEvent(ctx, t, cand, protocol.TypeError, protocol.CodeNotAllowed)

	// Publication went on the whole time: the hidden proctor still gets
	// packets, and the tap saw exactly one candidate track, still open.
	before := proctorRcv.count("cand-1")
	proctorRcv.waitPackets(ctx, t, "cand-1", before+20)
	var candTracks int
	for _, tr := range ts.tap.snapshot() {
		if tr.Track.Identity == "cand-1" {
			candTracks++
			if tr.Closed || tr.Track.Connection != 1 {
				t.Errorf("candidate track interrupted: %+v", tr)
			}
		}
	}
	if candTracks != 1 {
		t.Errorf("candidate published %d tracks, want 1", candTracks)
	}
	// Nobody was told about the hidden proctor.
	for _, m := range append(cand.Events(), exam.Events()...) {
		if m.Participant != nil && m.Participant.Identity == "proctor-1" {
			t.Errorf("hidden proctor announced: %+v", m)
		}
	}

	if err := ts.srv.Subscribe("nobody", "cand-1"); err == nil {
		t.Error("Subscribe of an unknown participant succeeded")
	}
}

// A subscriber that never reads its tracks does not hold up the other.
func TestSlowSubscriberDoesNotStallOthers(t *testing.T) {
	ts := newTestServer(t, func(c *sfu.Config) { c.ForwardQueue = 8 })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	cand := ts.join(ctx, candidateGrants("cand-1"), nil)
	publishVideo(ctx, t, cand)

	slow := newReceiver(false)
	slowClient := ts.join(ctx, staffGrants("slow", "cand-1"), slow)
	if err := slowClient.Subscribe("cand-1"); err != nil {
		t.Fatal(err)
	}
	slow.waitTracks(ctx, t, "cand-1", 1)

	fast := newReceiver(true)
	fastClient := ts.join(ctx, staffGrants("fast", "cand-1"), fast)
	if err := fastClient.Subscribe("cand-1"); err != nil {
		t.Fatal(err)
	}
	fast.waitPackets(ctx, t, "cand-1", 300)
	taps := ts.tap.waitFor(ctx, t, "tap packets", func(s []tapTrack) bool { return len(s) == 1 && s[0].Packets >= 300 })
	if taps[0].Closed {
		t.Error("publisher track ended")
	}
}

// A room has a participant limit; the one over it is refused and the
// server keeps serving the others.
func TestRoomLimit(t *testing.T) {
	ts := newTestServer(t, func(c *sfu.Config) { c.MaxParticipantsPerRoom = 1 })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ts.join(ctx, candidateGrants("cand-1"), nil)
	_, err := dialErr(ctx, ts, candidateGrants("cand-2"))
	if protocol.ErrorCode(err) != protocol.CodeLimit {
		t.Fatalf("second join: %v, want a %s error", err, protocol.CodeLimit)
	}
	g := candidateGrants("cand-3")
	g.Room = "exam-2"
	ts.join(ctx, g, nil)
}

// Kick ends a session for good: a resume then starts a new session.
func TestKick(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cand := ts.join(ctx, candidateGrants("cand-1"), nil)
	publishVideo(ctx, t, cand)
	ts.tap.waitFor(ctx, t, "track", func(s []tapTrack) bool { return len(s) == 1 })
	if err := ts.srv.Kick("cand-1"); err != nil {
		t.Fatal(err)
	}
	waitEvent(ctx, t, cand, protocol.TypeError, protocol.CodeKicked)
	ts.tap.waitFor(ctx, t, "Close after kick", func(s []tapTrack) bool { return s[0].Closed })
	again := ts.joinResume(ctx, candidateGrants("cand-1"), nil, cand.SessionID())
	if j := again.Joined(); j.Resumed || j.SessionID == cand.SessionID() || j.Code != protocol.CodeSessionNotFound {
		t.Errorf("resume after kick: %+v", j)
	}
	if err := ts.srv.Kick("nobody"); err == nil {
		t.Error("kicking nobody succeeded")
	}
}
