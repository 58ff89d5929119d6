package api

import (
	"context"
	"sync"
	"testing"

	"invigil/store"
)

// recordingNotifier is an EventNotifier that keeps what it was told.
type recordingNotifier struct {
	mu    sync.Mutex
	calls [][2]int64
}

func (r *recordingNotifier) EventsCommitted(exam, seq int64) {
	r.mu.Lock()
	r.calls = append(r.calls, [2]int64{exam, seq})
	r.mu.Unlock()
}

func (r *recordingNotifier) last() ([2]int64, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) == 0 {
		return [2]int64{}, 0
	}
	return r.calls[len(r.calls)-1], len(r.calls)
}

// Every commit that adds events tells the notifier the exam and its newest
// sequence number, and a change of who may watch is told as seq 0: that is
// what other control nodes need to wake their streams.
func TestEventNotifierHearsEveryCommit(t *testing.T) {
	rec := &recordingNotifier{}
	h := newHarness(t, func(o *ControlOptions) { o.Events = rec })
	exam := h.exam()
	h.candidate(exam, "Li Lei")
	seq, err := h.st.LastSeq(context.Background(), exam)
	if err != nil || seq == 0 {
		t.Fatalf("LastSeq after adding a candidate: %d, %v", seq, err)
	}
	if got, _ := rec.last(); got != [2]int64{exam, seq} {
		t.Errorf("last notice %v, want exam %d seq %d", got, exam, seq)
	}
	h.staff("wang", "proctor")
	h.assign(exam, "wang")
	if got, _ := rec.last(); got != [2]int64{exam, 0} {
		t.Errorf("after a staff change: last notice %v, want exam %d seq 0", got, exam)
	}
}

// Events another node committed reach this node's open streams once the
// node is nudged (NudgeEvents), well before the keep-alive read, and
// NudgeAllEvents wakes them too.
func TestNudgeWakesStreamsForEventsWrittenElsewhere(t *testing.T) {
	h := newHarness(t)
	exam := h.exam()
	next := h.openEvents("/api/v1/exams/"+itoa(exam)+"/events", h.admin, "now")
	elsewhere := func(kind string) {
		// Straight into the store, as another node would: this node's hub
		// hears nothing of it.
		_, err := h.st.Update(context.Background(), func(ctx context.Context, tx *store.Tx) error {
			_, err := tx.AppendEvent(ctx, exam, kind, 0, map[string]any{"from": "node b"})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	elsewhere("test_one")
	h.srv.NudgeEvents(exam)
	if got := next(1); len(got) != 1 || got[0].Type != "test_one" {
		t.Fatalf("after NudgeEvents: %+v", got)
	}
	elsewhere("test_two")
	h.srv.NudgeAllEvents()
	if got := next(1); len(got) != 1 || got[0].Type != "test_two" {
		t.Fatalf("after NudgeAllEvents: %+v", got)
	}
}
