package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestExamPlacements(t *testing.T) { onEachEngine(t, testExamPlacements) }

func testExamPlacements(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	a, b := mustExam(t, s, "A"), mustExam(t, s, "B")
	if _, err := s.ExamPlacement(ctx, a.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an exam never placed: %v, want ErrNotFound", err)
	}
	at := time.Date(2026, 12, 3, 9, 0, 0, 5, time.UTC)
	if err := s.PlaceExam(ctx, a.ID, "media-1", at); err != nil {
		t.Fatal(err)
	}
	if err := s.PlaceExam(ctx, b.ID, "media-1", at); err != nil {
		t.Fatal(err)
	}
	// Placing again moves it.
	if err := s.PlaceExam(ctx, b.ID, "media-2", at.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	p, err := s.ExamPlacement(ctx, b.ID)
	if err != nil || p.Node != "media-2" || !p.PlacedAt.Equal(at.Add(time.Minute)) {
		t.Errorf("placement of B: %+v, %v", p, err)
	}
	on, err := s.PlacementsOn(ctx)
	if err != nil || len(on) != 2 || on["media-1"] != 1 || on["media-2"] != 1 {
		t.Errorf("placements by node: %v, %v", on, err)
	}
	if err := s.PlaceExam(ctx, 99999, "media-1", at); !errors.Is(err, ErrNotFound) {
		t.Errorf("placing an exam that does not exist: %v, want ErrNotFound", err)
	}
	if err := s.PlaceExam(ctx, a.ID, "", at); err == nil {
		t.Error("placing on no node succeeded")
	}
	// Read and write in one transaction, as the control plane places.
	if _, err := s.Update(ctx, func(ctx context.Context, tx *Tx) error {
		p, err := tx.ExamPlacement(ctx, a.ID)
		if err != nil {
			return err
		}
		return tx.PlaceExam(ctx, a.ID, p.Node+"-moved", at)
	}); err != nil {
		t.Fatal(err)
	}
	if p, err := s.ExamPlacement(ctx, a.ID); err != nil || p.Node != "media-1-moved" {
		t.Errorf("after the transaction: %+v, %v", p, err)
	}
}
