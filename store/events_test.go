package store

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
)

func TestEventLog(t *testing.T) { onEachEngine(t, testEventLog) }

func testEventLog(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	e := mustExam(t, s, "e")
	other := mustExam(t, s, "other")
	c := mustCandidate(t, s, e.ID, "c")

	if seq, err := s.LastSeq(ctx, e.ID); err != nil || seq != 0 {
		t.Errorf("LastSeq of an empty log: %d, %v", seq, err)
	}
	if events, err := s.EventsSince(ctx, e.ID, 0, 0); err != nil || events == nil || len(events) != 0 {
		t.Errorf("EventsSince on an empty log: %#v, %v", events, err)
	}

	events, err := s.Update(ctx, func(ctx context.Context, tx *Tx) error {
		for i := range 5 {
			if _, err := tx.AppendEvent(ctx, e.ID, "presence", c.ID, map[string]any{"i": i}); err != nil {
				return err
			}
		}
		if _, err := tx.AppendEvent(ctx, other.ID, "presence", 0, json.RawMessage(`{"raw":true}`)); err != nil {
			return err
		}
		return nil
	})
	if err != nil || len(events) != 6 {
		t.Fatalf("Update: %d events, %v", len(events), err)
	}
	if events[5].ExamID != other.ID || events[5].Seq != 1 || string(events[5].Data) != `{"raw":true}` {
		t.Errorf("the other exam's log starts at 1: %+v", events[5])
	}

	page, err := s.EventsSince(ctx, e.ID, 2, 2)
	if err != nil || len(page) != 2 || page[0].Seq != 3 || page[1].Seq != 4 ||
		page[0].CandidateID != c.ID || string(page[0].Data) != `{"i":2}` || page[0].Type != "presence" {
		t.Errorf("EventsSince(2, limit 2): %+v, %v", page, err)
	}
	if rest, err := s.EventsSince(ctx, e.ID, 4, 0); err != nil || len(rest) != 1 || rest[0].Seq != 5 {
		t.Errorf("EventsSince(4): %+v, %v", rest, err)
	}
	if seq, err := s.LastSeq(ctx, e.ID); err != nil || seq != 5 {
		t.Errorf("LastSeq: %d, %v", seq, err)
	}

	// An event for a missing exam fails, and with it the transaction.
	_, err = s.Update(ctx, func(ctx context.Context, tx *Tx) error {
		if _, err := tx.AppendEvent(ctx, e.ID, "kept?", 0, nil); err != nil {
			return err
		}
		_, err := tx.AppendEvent(ctx, 999, "nowhere", 0, nil)
		return err
	})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("event of a missing exam: %v, want ErrNotFound", err)
	}
	if seq, _ := s.LastSeq(ctx, e.ID); seq != 5 {
		t.Errorf("LastSeq after a failed Update: %d, want 5", seq)
	}
	_, err = s.Update(ctx, func(ctx context.Context, tx *Tx) error {
		_, err := tx.AppendEvent(ctx, e.ID, "", 0, nil)
		return err
	})
	if err == nil {
		t.Error("an event without a type was accepted")
	}
	_, err = s.Update(ctx, func(ctx context.Context, tx *Tx) error {
		_, err := tx.AppendEvent(ctx, e.ID, "x", 0, func() {})
		return err
	})
	if err == nil {
		t.Error("data that cannot be encoded was accepted")
	}
}
