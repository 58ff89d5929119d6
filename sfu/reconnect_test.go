package sfu_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"invigil/sfu"
	"invigil/sfu/protocol"
)

// The candidate's signaling socket and peer connections drop (Wi-Fi
// fails); it comes back with resume_session: the same session, connection
// 2, its new track re-attached to the examiner who was watching, and the
// taps see the old track's Close and a new TrackStarted.
func TestResumeAfterDrop(t *testing.T) {
	events := &eventLog{}
	ts := newTestServer(t, func(c *sfu.Config) { c.OnEvent = events.add })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	cand := ts.join(ctx, candidateGrants("cand-1"), nil)
	publishVideo(ctx, t, cand)
	rcv := newReceiver(true)
	exam := ts.join(ctx, staffGrants("examiner-1", "cand-1"), rcv)
	if err := exam.Subscribe("cand-1"); err != nil {
		t.Fatal(err)
	}
	rcv.waitPackets(ctx, t, "cand-1", 20)
	session := cand.SessionID()

	cand.Close()
	// The server keeps the session while it waits.
	waitParticipant(ctx, t, ts, "cand-1", func(p sfu.ParticipantInfo) bool { return !p.Connected })
	ts.tap.waitFor(ctx, t, "old track closed", func(s []tapTrack) bool { return len(s) == 1 && s[0].Closed })

	again := ts.joinResume(ctx, candidateGrants("cand-1"), nil, session)
	j := again.Joined()
	if !j.Resumed || j.SessionID != session || j.Connection != 2 {
		t.Fatalf("resume joined %+v, want resumed session %s connection 2", j, session)
	}
	publishVideo(ctx, t, again)

	taps := ts.tap.waitFor(ctx, t, "new track", func(s []tapTrack) bool { return len(s) == 2 && s[1].Packets > 10 })
	old, cur := taps[0].Track, taps[1].Track
	if cur.SessionID != old.SessionID || cur.Connection != old.Connection+1 || cur.TrackID == old.TrackID {
		t.Errorf("tracks across the resume: old %+v new %+v", old, cur)
	}
	// The examiner is re-attached without asking again.
	rcv.waitTracks(ctx, t, "cand-1", 2)
	before := rcv.count("cand-1")
	rcv.waitPackets(ctx, t, "cand-1", before+20)

	if v := metric(t, ts.reg, "invigil_sfu_reconnects_total", map[string]string{"kind": "resume"}); v != 1 {
		t.Errorf("resume metric = %v", v)
	}
	if p := ts.srv.Participants("exam-1"); len(p) != 2 || p[0].Connection != 2 || !p[0].Connected {
		t.Errorf("participants after resume: %+v", p)
	}

	// The control plane saw the whole story, in order.
	var story []string
	for _, e := range events.get() {
		if e.Identity == "cand-1" {
			story = append(story, fmt.Sprintf("%s/%d", e.Kind, e.Connection))
		}
	}
	// The socket's drop and the old track's end race each other.
	if len(story) == 6 && story[2] > story[3] {
		story[2], story[3] = story[3], story[2]
	}
	want := []string{"joined/1", "track_published/1", "disconnected/1", "track_unpublished/1", "resumed/2", "track_published/2"}
	if strings.Join(story, " ") != strings.Join(want, " ") {
		t.Errorf("events %v, want %v", story, want)
	}
}

type eventLog struct {
	mu     sync.Mutex
	events []sfu.Event
}

func (l *eventLog) add(e sfu.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *eventLog) get() []sfu.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]sfu.Event(nil), l.events...)
}

// A resume that names another identity's session, or an unknown one,
// starts a new session instead.
func TestResumeOfForeignSessionStartsNew(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	victim := ts.join(ctx, candidateGrants("cand-1"), nil)
	thief := ts.joinResume(ctx, candidateGrants("cand-2"), nil, victim.SessionID())
	if j := thief.Joined(); j.Resumed || j.SessionID == victim.SessionID() || j.Code != protocol.CodeSessionNotFound {
		t.Errorf("foreign resume: %+v", j)
	}
	if p := ts.srv.Participants("exam-1"); len(p) != 2 {
		t.Errorf("participants: %+v", p)
	}
}

// Not resumed within the window: the participant is removed and its
// tracks end.
func TestResumeWindowExpires(t *testing.T) {
	ts := newTestServer(t, func(c *sfu.Config) { c.ResumeWindow = 300 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cand := ts.join(ctx, candidateGrants("cand-1"), nil)
	publishVideo(ctx, t, cand)
	exam := ts.join(ctx, staffGrants("examiner-1", "cand-1"), nil)
	ts.tap.waitFor(ctx, t, "track", func(s []tapTrack) bool { return len(s) == 1 })
	cand.Close()
	left := waitEvent(ctx, t, exam, protocol.TypeParticipantLeft, "")
	if left.Identity != "cand-1" {
		t.Errorf("participant_left %+v", left)
	}
	ts.tap.waitFor(ctx, t, "track closed", func(s []tapTrack) bool { return s[0].Closed })
	if p := ts.srv.Participants("exam-1"); len(p) != 1 {
		t.Errorf("participants after expiry: %+v", p)
	}
	if v := metric(t, ts.reg, "invigil_sfu_reconnects_total", map[string]string{"kind": "expired"}); v != 1 {
		t.Errorf("expired metric = %v", v)
	}
}

// The same identity joining again without resume replaces the first
// session (a reloaded page).
func TestSecondJoinReplaces(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	first := ts.join(ctx, candidateGrants("cand-1"), nil)
	second := ts.join(ctx, candidateGrants("cand-1"), nil)
	waitEvent(ctx, t, first, protocol.TypeError, protocol.CodeReplaced)
	if p := ts.srv.Participants("exam-1"); len(p) != 1 || p[0].SessionID != second.SessionID() {
		t.Errorf("participants: %+v", p)
	}
}

// An ICE restart (the network changed under a live socket) keeps the
// session, the connection number and the track; media keeps flowing.
func TestICERestart(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	candRcv := newReceiver(true)
	cand := ts.join(ctx, candidateGrants("cand-1"), candRcv)
	publishVideo(ctx, t, cand)
	exam := ts.join(ctx, staffGrants("examiner-1", "cand-1"), nil)
	publishVideo(ctx, t, exam)
	if err := ts.srv.Subscribe("cand-1", "examiner-1"); err != nil {
		t.Fatal(err)
	}
	candRcv.waitPackets(ctx, t, "examiner-1", 20)
	ts.tap.waitFor(ctx, t, "tracks", func(s []tapTrack) bool { return len(s) == 2 })

	ufrag := func() string { return remoteUfrag(cand) }
	oldUfrag := ufrag()
	if err := cand.RestartICE(ctx); err != nil {
		t.Fatal(err)
	}
	if ufrag() == oldUfrag {
		t.Error("publisher ICE credentials did not change")
	}
	before := candRcv.count("examiner-1")
	candRcv.waitPackets(ctx, t, "examiner-1", before+50)
	taps := ts.tap.waitFor(ctx, t, "candidate packets after restart", func(s []tapTrack) bool {
		for _, tr := range s {
			if tr.Track.Identity == "cand-1" && tr.Packets > 100 {
				return true
			}
		}
		return false
	})
	for _, tr := range taps {
		if tr.Closed || tr.Track.Connection != 1 {
			t.Errorf("track interrupted by ICE restart: %+v", tr)
		}
	}
	if v := metric(t, ts.reg, "invigil_sfu_reconnects_total", map[string]string{"kind": "ice_restart"}); v < 1 {
		t.Errorf("ice_restart metric = %v", v)
	}
}
