package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestExamStaff(t *testing.T) { onEachEngine(t, testExamStaff) }

func testExamStaff(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	a, b := mustExam(t, s, "A"), mustExam(t, s, "B")
	zhang, li, wang := mustUser(t, s, "zhang", RoleAssistant), mustUser(t, s, "li", RoleExaminer), mustUser(t, s, "wang", RoleProctor)

	ids := func(us []User) []int64 {
		out := []int64{}
		for _, u := range us {
			out = append(out, u.ID)
		}
		return out
	}
	if got, err := s.ExamStaff(ctx, a.ID); err != nil || len(got) != 0 {
		t.Fatalf("staff of a new exam: %v, %v", got, err)
	}
	// Duplicates count once; the answer is by id with the accounts filled in.
	if err := s.SetExamStaff(ctx, a.ID, []int64{li.ID, zhang.ID, li.ID}); err != nil {
		t.Fatal(err)
	}
	got, err := s.ExamStaff(ctx, a.ID)
	if err != nil || !slices.Equal(ids(got), []int64{zhang.ID, li.ID}) || got[1].Username != "li" || got[1].Role != RoleExaminer {
		t.Fatalf("staff of A: %+v, %v", got, err)
	}
	if err := s.SetExamStaff(ctx, b.ID, []int64{wang.ID, li.ID}); err != nil {
		t.Fatal(err)
	}
	// Replacing is a replacement: zhang leaves A, wang joins; B is untouched.
	if err := s.SetExamStaff(ctx, a.ID, []int64{wang.ID}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		exam, user int64
		want       bool
	}{{a.ID, zhang.ID, false}, {a.ID, li.ID, false}, {a.ID, wang.ID, true}, {b.ID, li.ID, true}, {b.ID, zhang.ID, false}, {999, wang.ID, false}} {
		if ok, err := s.IsExamStaff(ctx, c.exam, c.user); err != nil || ok != c.want {
			t.Errorf("IsExamStaff(exam %d, user %d) = %v, %v; want %v", c.exam, c.user, ok, err, c.want)
		}
	}
	if got, err := s.StaffExamIDs(ctx, wang.ID); err != nil || !slices.Equal(got, []int64{a.ID, b.ID}) {
		t.Errorf("StaffExamIDs(wang) = %v, %v", got, err)
	}
	if got, err := s.StaffExamIDs(ctx, zhang.ID); err != nil || len(got) != 0 {
		t.Errorf("StaffExamIDs(zhang) = %v, %v", got, err)
	}

	// An unknown user fails the whole replacement: the old set stays.
	if err := s.SetExamStaff(ctx, a.ID, []int64{zhang.ID, 4242}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown user: %v, want ErrNotFound", err)
	}
	if got, _ := s.ExamStaff(ctx, a.ID); !slices.Equal(ids(got), []int64{wang.ID}) {
		t.Errorf("a failed replacement changed the staff: %v", ids(got))
	}
	// Inside a caller's transaction, too (a savepoint), and the caller may
	// go on and commit what else it did.
	_, err = s.Update(ctx, func(ctx context.Context, tx *Tx) error {
		if err := tx.SetExamStaff(ctx, a.ID, []int64{4242}); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown user in a transaction: %v", err)
		}
		return tx.SetExamStaff(ctx, b.ID, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ExamStaff(ctx, a.ID); !slices.Equal(ids(got), []int64{wang.ID}) {
		t.Errorf("after the transaction, staff of A: %v", ids(got))
	}
	if got, _ := s.ExamStaff(ctx, b.ID); len(got) != 0 {
		t.Errorf("after the transaction, staff of B: %v, want none", ids(got))
	}
	for _, err := range []error{s.SetExamStaff(ctx, 999, []int64{wang.ID}), func() error { _, err := s.ExamStaff(ctx, 999); return err }()} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown exam: %v, want ErrNotFound", err)
		}
	}
}

func TestLastInterviewer(t *testing.T) { onEachEngine(t, testLastInterviewer) }

func testLastInterviewer(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	e := mustExam(t, s, "A")
	cand := mustCandidate(t, s, e.ID, "考生")
	li, zhao, zhang := mustUser(t, s, "li", RoleExaminer), mustUser(t, s, "zhao", RoleExaminer), mustUser(t, s, "zhang", RoleAssistant)
	if _, err := s.LastInterviewer(ctx, cand.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("nobody interviewed yet: %v", err)
	}
	now := time.Now()
	call := func(staff int64, kind string, accepted bool) {
		t.Helper()
		c := Call{CandidateID: cand.ID, StaffID: staff, Kind: kind, State: CallEnded, CreatedAt: now, EndedAt: now}
		if accepted {
			c.AcceptedAt = now
		} else {
			c.State = CallDeclined
		}
		if _, err := s.CreateCall(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	call(zhang.ID, CallDeviceCheck, true)
	call(li.ID, CallInterview, true)
	if id, err := s.LastInterviewer(ctx, cand.ID); err != nil || id != li.ID {
		t.Errorf("after li's interview: %d, %v", id, err)
	}
	// A declined call is not an interview held; a second, accepted one by
	// another examiner (a retry) is the one that counts.
	call(zhao.ID, CallInterview, false)
	if id, _ := s.LastInterviewer(ctx, cand.ID); id != li.ID {
		t.Errorf("after zhao's declined call: %d, want li %d", id, li.ID)
	}
	call(zhao.ID, CallInterview, true)
	if id, _ := s.LastInterviewer(ctx, cand.ID); id != zhao.ID {
		t.Errorf("after zhao's interview: %d, want %d", id, zhao.ID)
	}
	call(zhang.ID, CallSpotCheck, true)
	if id, _ := s.LastInterviewer(ctx, cand.ID); id != zhao.ID {
		t.Errorf("a spot check is not an interview: %d", id)
	}
}
