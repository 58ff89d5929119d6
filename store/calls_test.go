package store

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestCalls(t *testing.T) { onEachEngine(t, testCalls) }

func testCalls(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	e := mustExam(t, s, "e")
	other := mustExam(t, s, "other")
	assistant := mustUser(t, s, "zhang", RoleAssistant)
	examiner := mustUser(t, s, "wang", RoleExaminer)
	c := mustCandidate(t, s, e.ID, "c")
	created := time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC)

	if _, err := s.CurrentCall(ctx, c.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("CurrentCall before any: %v, want ErrNotFound", err)
	}
	check, err := s.CreateCall(ctx, Call{CandidateID: c.ID, StaffID: assistant.ID, Kind: CallDeviceCheck, CreatedAt: created})
	if err != nil {
		t.Fatal(err)
	}
	if check.ID == 0 || check.ExamID != e.ID || check.StaffName != "zhang" || check.State != CallRinging ||
		!check.CreatedAt.Equal(created) || !check.AcceptedAt.IsZero() {
		t.Errorf("created %+v", check)
	}
	if got, err := s.Call(ctx, check.ID); err != nil || got != check {
		t.Errorf("Call: %+v, %v, want %+v", got, err, check)
	}
	if got, err := s.CurrentCall(ctx, c.ID); err != nil || got.ID != check.ID {
		t.Errorf("CurrentCall ringing: %+v, %v", got, err)
	}

	check.State, check.AcceptedAt = CallActive, created.Add(5*time.Second)
	if err := s.UpdateCall(ctx, check); err != nil {
		t.Fatal(err)
	}
	if got, err := s.CurrentCall(ctx, c.ID); err != nil || got != check {
		t.Errorf("CurrentCall active: %+v, %v, want %+v", got, err, check)
	}
	check.State, check.Outcome, check.EndedAt = CallEnded, "done", created.Add(3*time.Minute)
	if err := s.UpdateCall(ctx, check); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Call(ctx, check.ID); got != check {
		t.Errorf("after ending: %+v, want %+v", got, check)
	}
	if _, err := s.CurrentCall(ctx, c.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("CurrentCall after the end: %v, want ErrNotFound", err)
	}

	spot, err := s.CreateCall(ctx, Call{ExamID: e.ID, CandidateID: c.ID, StaffID: assistant.ID, Kind: CallSpotCheck, State: CallActive})
	if err != nil {
		t.Fatal(err)
	}
	interview, err := s.CreateCall(ctx, Call{CandidateID: c.ID, StaffID: examiner.ID, Kind: CallInterview})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.CurrentCall(ctx, c.ID); err != nil || got.ID != interview.ID || got.StaffName != "wang" {
		t.Errorf("CurrentCall picks the newest: %+v, %v", got, err)
	}

	all, err := s.ListCalls(ctx, e.ID, "")
	if err != nil || len(all) != 3 || all[0].ID != check.ID || all[2].ID != interview.ID {
		t.Errorf("ListCalls all: %+v, %v", all, err)
	}
	active, err := s.ListCalls(ctx, e.ID, CallActive)
	if err != nil || len(active) != 1 || active[0].ID != spot.ID {
		t.Errorf("ListCalls active: %+v, %v", active, err)
	}
	if none, err := s.ListCalls(ctx, other.ID, ""); err != nil || len(none) != 0 || none == nil {
		t.Errorf("ListCalls of another exam: %#v, %v", none, err)
	}
	if _, err := s.ListCalls(ctx, e.ID, "on_hold"); err == nil {
		t.Error("ListCalls accepted an unknown state")
	}

	// Refusals.
	if _, err := s.Call(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("Call(999): %v, want ErrNotFound", err)
	}
	if err := s.UpdateCall(ctx, Call{ID: 999, State: CallEnded}); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateCall(999): %v, want ErrNotFound", err)
	}
	if err := s.UpdateCall(ctx, Call{ID: check.ID, State: "lost"}); err == nil {
		t.Error("UpdateCall accepted an unknown state")
	}
	if _, err := s.CreateCall(ctx, Call{CandidateID: 999, StaffID: assistant.ID, Kind: CallInterview}); !errors.Is(err, ErrNotFound) {
		t.Errorf("call to a missing candidate: %v, want ErrNotFound", err)
	}
	if _, err := s.CreateCall(ctx, Call{CandidateID: c.ID, StaffID: 999, Kind: CallInterview}); !errors.Is(err, ErrNotFound) {
		t.Errorf("call by a missing user: %v, want ErrNotFound", err)
	}
	if _, err := s.CreateCall(ctx, Call{ExamID: other.ID, CandidateID: c.ID, StaffID: assistant.ID, Kind: CallInterview}); err == nil {
		t.Error("a call naming the wrong exam was accepted")
	}
	if _, err := s.CreateCall(ctx, Call{CandidateID: c.ID, StaffID: assistant.ID, Kind: "chat"}); err == nil {
		t.Error("an unknown call kind was accepted")
	}
	if n := countRows(t, s, "calls"); n != 3 {
		t.Errorf("%d calls after refusals, want 3", n)
	}
}

func TestScores(t *testing.T) { onEachEngine(t, testScores) }

func testScores(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	e := mustExam(t, s, "e")
	examiner := mustUser(t, s, "wang", RoleExaminer)
	c := mustCandidate(t, s, e.ID, "c")
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

	if _, err := s.Score(ctx, c.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Score before any: %v, want ErrNotFound", err)
	}
	if _, err := s.PublishScore(ctx, c.ID, at); !errors.Is(err, ErrNotFound) {
		t.Errorf("PublishScore without a score: %v, want ErrNotFound", err)
	}
	sc, err := s.SaveScore(ctx, Score{CandidateID: c.ID, ExaminerID: examiner.ID, Score: 82.5, Comment: "clear", UpdatedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	want := Score{CandidateID: c.ID, ExaminerID: examiner.ID, Score: 82.5, Comment: "clear", UpdatedAt: at}
	if sc != want {
		t.Errorf("saved %+v, want %+v", sc, want)
	}
	published, err := s.PublishScore(ctx, c.ID, at.Add(time.Minute))
	if err != nil || !published.PublishedAt.Equal(at.Add(time.Minute)) || published.Score != 82.5 {
		t.Errorf("PublishScore: %+v, %v", published, err)
	}
	// A correction after publishing keeps the publication.
	sc, err = s.SaveScore(ctx, Score{CandidateID: c.ID, ExaminerID: examiner.ID, Score: 85, Comment: "corrected"})
	if err != nil || sc.Score != 85 || sc.Comment != "corrected" || !sc.PublishedAt.Equal(at.Add(time.Minute)) ||
		sc.UpdatedAt.Equal(at) || sc.UpdatedAt.IsZero() {
		t.Errorf("resave: %+v, %v", sc, err)
	}
	if got, err := s.Score(ctx, c.ID); err != nil || got != sc {
		t.Errorf("Score: %+v, %v, want %+v", got, err, sc)
	}

	for _, bad := range []float64{-1, 100.5, math.NaN()} {
		if _, err := s.SaveScore(ctx, Score{CandidateID: c.ID, ExaminerID: examiner.ID, Score: bad}); err == nil {
			t.Errorf("score %v accepted", bad)
		}
	}
	if _, err := s.SaveScore(ctx, Score{CandidateID: 999, ExaminerID: examiner.ID, Score: 1}); !errors.Is(err, ErrNotFound) {
		t.Errorf("score of a missing candidate: %v, want ErrNotFound", err)
	}
}
