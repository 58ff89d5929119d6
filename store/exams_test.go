package store

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"invigil/stage"
)

func TestExams(t *testing.T) { onEachEngine(t, testExams) }

func testExams(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()

	// A non-UTC input comes back in UTC, to the nanosecond.
	beijing := time.FixedZone("CST", 8*3600)
	start := time.Date(2026, 11, 26, 17, 0, 0, 500, beijing)
	e, err := s.CreateExam(ctx, Exam{Name: "Autumn interviews", StartsAt: start, EndsAt: start.Add(4 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if e.ID == 0 || !e.StartsAt.Equal(start) || e.StartsAt.Location() != time.UTC || e.EarlyLoginMinutes != 0 ||
		e.Policies == nil || len(e.Policies) != 0 || e.CreatedAt.IsZero() {
		t.Errorf("created %+v", e)
	}
	got, err := s.Exam(ctx, e.ID)
	if err != nil || got.Name != e.Name || !got.EndsAt.Equal(e.EndsAt) || got.Policies == nil {
		t.Errorf("Exam: %+v, %v", got, err)
	}
	if _, err := s.Exam(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("Exam(999): %v, want ErrNotFound", err)
	}

	withPolicy, err := s.CreateExam(ctx, Exam{Name: "b", StartsAt: examStart, EndsAt: examEnd, EarlyLoginMinutes: 30,
		Policies: map[string]json.RawMessage{"rest_room": json.RawMessage(`{"sample_fps": 2}`)}})
	if err != nil {
		t.Fatal(err)
	}
	if withPolicy.EarlyLoginMinutes != 30 || string(withPolicy.Policies["rest_room"]) != `{"sample_fps":2}` {
		t.Errorf("created with a policy: %+v", withPolicy)
	}
	list, err := s.ListExams(ctx)
	if err != nil || len(list) != 2 || list[0].ID != e.ID || list[1].ID != withPolicy.ID {
		t.Errorf("ListExams: %+v, %v", list, err)
	}

	for name, bad := range map[string]Exam{
		"empty name":        {Name: " ", StartsAt: examStart, EndsAt: examEnd},
		"ends before start": {Name: "x", StartsAt: examEnd, EndsAt: examStart},
		"ends at start":     {Name: "x", StartsAt: examStart, EndsAt: examStart},
		"no times":          {Name: "x"},
		"negative early":    {Name: "x", StartsAt: examStart, EndsAt: examEnd, EarlyLoginMinutes: -1},
		"unknown room":      {Name: "x", StartsAt: examStart, EndsAt: examEnd, Policies: map[string]json.RawMessage{"hall": json.RawMessage(`{}`)}},
		"policy not object": {Name: "x", StartsAt: examStart, EndsAt: examEnd, Policies: map[string]json.RawMessage{"waiting": json.RawMessage(`[1]`)}},
	} {
		if _, err := s.CreateExam(ctx, bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if n := countRows(t, s, "exams"); n != 2 {
		t.Errorf("%d exams after refused ones, want 2", n)
	}
}

func TestSetExamPolicy(t *testing.T) { onEachEngine(t, testSetExamPolicy) }

func testSetExamPolicy(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	e := mustExam(t, s, "e")
	if err := s.SetExamPolicy(ctx, e.ID, "waiting", json.RawMessage(`{"min_confidence": 0.6}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetExamPolicy(ctx, e.ID, "rest_room", json.RawMessage(`{"hands": true}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetExamPolicy(ctx, e.ID, "waiting", json.RawMessage(`{"min_confidence": 0.7}`)); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Exam(ctx, e.ID)
	if len(got.Policies) != 2 || string(got.Policies["waiting"]) != `{"min_confidence":0.7}` ||
		string(got.Policies["rest_room"]) != `{"hands":true}` {
		t.Errorf("policies %s", got.Policies)
	}
	for _, remove := range []json.RawMessage{nil, json.RawMessage(" "), json.RawMessage("null")} {
		if err := s.SetExamPolicy(ctx, e.ID, "rest_room", remove); err != nil {
			t.Errorf("remove with %q: %v", remove, err)
		}
	}
	got, _ = s.Exam(ctx, e.ID)
	if _, ok := got.Policies["rest_room"]; ok || len(got.Policies) != 1 {
		t.Errorf("after removal: %s", got.Policies)
	}
	if err := s.SetExamPolicy(ctx, e.ID, "hall", json.RawMessage(`{}`)); err == nil {
		t.Error("unknown room accepted")
	}
	if err := s.SetExamPolicy(ctx, e.ID, "hall", nil); err == nil {
		t.Error("removing an unknown room accepted")
	}
	if err := s.SetExamPolicy(ctx, e.ID, "waiting", json.RawMessage(`{"a":`)); err == nil {
		t.Error("invalid JSON accepted")
	}
	if err := s.SetExamPolicy(ctx, e.ID, "waiting", json.RawMessage(`"x"`)); err == nil {
		t.Error("a non-object accepted")
	}
	if err := s.SetExamPolicy(ctx, 999, "waiting", json.RawMessage(`{}`)); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing exam: %v, want ErrNotFound", err)
	}
}

func TestCandidatesAndCodes(t *testing.T) { onEachEngine(t, testCandidatesAndCodes) }

func testCandidatesAndCodes(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	e := mustExam(t, s, "e")
	before := time.Now().Add(-time.Second)

	c, err := s.CreateCandidate(ctx, e.ID, NewCandidate{Name: "韩梅梅", ExternalID: "S-1"}, codeSeq("100001", "100002", "100003"))
	if err != nil {
		t.Fatal(err)
	}
	if c.ID == 0 || c.ExamID != e.ID || c.Name != "韩梅梅" || c.ExternalID != "S-1" || c.Stage != stage.Invited ||
		c.StageSince.Before(before) || !c.DeviceCheckedAt.IsZero() || !c.InterviewedAt.IsZero() {
		t.Errorf("created %+v", c.Candidate)
	}
	want := map[string]string{CodeMock: "100001", CodeInterview: "100002", CodeRestRoom: "100003"}
	if !maps.Equal(c.Codes, want) {
		t.Errorf("codes %v, want %v", c.Codes, want)
	}
	c2 := mustCandidate(t, s, e.ID, "Li Lei")

	if got, err := s.Candidate(ctx, c.ID); err != nil || got != c.Candidate {
		t.Errorf("Candidate: %+v, %v, want %+v", got, err, c.Candidate)
	}
	if _, err := s.Candidate(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("Candidate(999): %v, want ErrNotFound", err)
	}
	list, err := s.ListCandidates(ctx, e.ID)
	if err != nil || len(list) != 2 || list[0].ID != c.ID || list[1].ID != c2.ID {
		t.Errorf("ListCandidates: %+v, %v", list, err)
	}
	if list, err := s.ListCandidates(ctx, 999); err != nil || len(list) != 0 || list == nil {
		t.Errorf("ListCandidates of a missing exam: %#v, %v", list, err)
	}
	if codes, err := s.CandidateCodes(ctx, c.ID); err != nil || !maps.Equal(codes, want) {
		t.Errorf("CandidateCodes: %v, %v", codes, err)
	}
	if _, err := s.CandidateCodes(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("CandidateCodes(999): %v, want ErrNotFound", err)
	}
	all, err := s.ExamCodes(ctx, e.ID)
	if err != nil || len(all) != 2 || all[0].ID != c.ID || !maps.Equal(all[0].Codes, want) ||
		all[1].ID != c2.ID || !maps.Equal(all[1].Codes, c2.Codes) {
		t.Errorf("ExamCodes: %+v, %v", all, err)
	}

	m, err := s.LookupCode(ctx, "100002")
	if err != nil || m != (CodeMatch{CandidateID: c.ID, ExamID: e.ID, Kind: CodeInterview}) {
		t.Errorf("LookupCode: %+v, %v", m, err)
	}
	if _, err := s.LookupCode(ctx, "999999"); !errors.Is(err, ErrNotFound) {
		t.Errorf("LookupCode(unknown): %v, want ErrNotFound", err)
	}

	// Refusals.
	if _, err := s.CreateCandidate(ctx, 999, NewCandidate{Name: "x"}, uniqueCodes()); !errors.Is(err, ErrNotFound) {
		t.Errorf("candidate of a missing exam: %v, want ErrNotFound", err)
	}
	if _, err := s.CreateCandidate(ctx, e.ID, NewCandidate{Name: "dup", ExternalID: "S-1"}, uniqueCodes()); !errors.Is(err, ErrConflict) {
		t.Errorf("duplicate external ID: %v, want ErrConflict", err)
	}
	if _, err := s.CreateCandidate(ctx, e.ID, NewCandidate{Name: ""}, uniqueCodes()); err == nil {
		t.Error("empty name accepted")
	}
	if n := countRows(t, s, "candidates"); n != 2 {
		t.Errorf("%d candidates after refusals, want 2", n)
	}
}

func TestCodesCollideOnlyWithActiveCodes(t *testing.T) {
	onEachEngine(t, testCodesCollideOnlyWithActiveCodes)
}

func testCodesCollideOnlyWithActiveCodes(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	e := mustExam(t, s, "e")
	first, err := s.CreateCandidate(ctx, e.ID, NewCandidate{Name: "a"}, codeSeq("111111", "222222", "333333"))
	if err != nil {
		t.Fatal(err)
	}

	// Every draw that names an active code (the first candidate's, or one
	// this candidate just got) is drawn again.
	second, err := s.CreateCandidate(ctx, e.ID, NewCandidate{Name: "b"},
		codeSeq("111111", "444444", "222222", "444444", "333333", "555555", "666666"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{CodeMock: "444444", CodeInterview: "555555", CodeRestRoom: "666666"}
	if !maps.Equal(second.Codes, want) {
		t.Errorf("second candidate's codes %v, want %v", second.Codes, want)
	}

	// A generator stuck on one active code gives up after maxCodeDraws
	// draws and leaves nothing behind.
	calls := 0
	stuck := func() (string, error) { calls++; return "111111", nil }
	if _, err := s.CreateCandidate(ctx, e.ID, NewCandidate{Name: "c"}, stuck); !errors.Is(err, ErrConflict) {
		t.Errorf("stuck generator: %v, want ErrConflict", err)
	}
	if calls != maxCodeDraws {
		t.Errorf("%d draws, want %d", calls, maxCodeDraws)
	}
	if n := countRows(t, s, "candidates"); n != 2 {
		t.Errorf("%d candidates after giving up, want 2", n)
	}
	if _, err := s.CreateCandidate(ctx, e.ID, NewCandidate{Name: "d"}, codeSeq()); err == nil ||
		!strings.Contains(err.Error(), "exhausted") {
		t.Errorf("generator error: %v, want it passed on", err)
	}

	// Once the exam's codes are retired, the same codes serve another exam.
	if err := s.DeactivateCodes(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LookupCode(ctx, "111111"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deactivated code still opens: %v", err)
	}
	if codes, err := s.CandidateCodes(ctx, first.ID); err != nil || codes[CodeMock] != "111111" {
		t.Errorf("deactivated codes are still listed for export: %v, %v", codes, err)
	}
	e2 := mustExam(t, s, "e2")
	reused, err := s.CreateCandidate(ctx, e2.ID, NewCandidate{Name: "a2"}, codeSeq("111111", "222222", "333333"))
	if err != nil {
		t.Fatalf("reusing deactivated codes: %v", err)
	}
	if m, err := s.LookupCode(ctx, "111111"); err != nil || m.CandidateID != reused.ID || m.ExamID != e2.ID {
		t.Errorf("reused code opens %+v, %v", m, err)
	}
	if err := s.DeactivateCodes(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeactivateCodes(999): %v, want ErrNotFound", err)
	}
}

func TestMoveStageFollowsTheGuide(t *testing.T) { onEachEngine(t, testMoveStageFollowsTheGuide) }

func testMoveStageFollowsTheGuide(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	e := mustExam(t, s, "e")
	assistant := mustUser(t, s, "assistant", RoleAssistant)
	c := mustCandidate(t, s, e.ID, "c")

	path := []stage.Stage{stage.Mock, stage.DeviceCheckWaiting, stage.DeviceCheckCall, stage.DeviceChecked,
		stage.InterviewWaiting, stage.InterviewCall, stage.InterviewDone, stage.RestRoom, stage.Left}
	at := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	from := stage.Invited
	for i, to := range path {
		at = at.Add(time.Minute)
		actor := int64(0)
		if to == stage.DeviceChecked {
			actor = assistant.ID
		}
		ch, err := s.MoveStage(ctx, c.ID, to, actor, "step", at)
		if err != nil {
			t.Fatalf("step %d %s → %s: %v", i, from, to, err)
		}
		if ch.ID == 0 || ch.From != from || ch.To != to || !ch.At.Equal(at) || ch.ActorID != actor || ch.Reason != "step" {
			t.Errorf("change %+v", ch)
		}
		from = to
	}
	got, _ := s.Candidate(ctx, c.ID)
	if got.Stage != stage.Left || !got.StageSince.Equal(at) {
		t.Errorf("after the path: %+v", got)
	}
	if !got.DeviceCheckedAt.Equal(time.Date(2026, 11, 26, 9, 4, 0, 0, time.UTC)) ||
		!got.InterviewedAt.Equal(time.Date(2026, 11, 26, 9, 7, 0, 0, time.UTC)) {
		t.Errorf("device checked at %v, interviewed at %v", got.DeviceCheckedAt, got.InterviewedAt)
	}
	history, err := s.StageHistory(ctx, c.ID)
	if err != nil || len(history) != len(path) {
		t.Fatalf("history: %+v, %v", history, err)
	}
	for i, h := range history {
		if h.To != path[i] || (i > 0 && h.From != path[i-1]) {
			t.Errorf("history[%d] = %+v, want → %s", i, h, path[i])
		}
	}
	if history[3].ActorID != assistant.ID || history[0].ActorID != 0 {
		t.Errorf("actors %d, %d", history[3].ActorID, history[0].ActorID)
	}
	counts, err := s.CountCandidatesByStage(ctx)
	if err != nil || counts[stage.Left] != 1 || counts[stage.Invited] != 0 || len(counts) != len(stage.All) {
		t.Errorf("CountCandidatesByStage: %v, %v", counts, err)
	}
}

func TestMoveStageRefusesIllegalMovesAndChangesNothing(t *testing.T) {
	onEachEngine(t, testMoveStageRefusesIllegalMovesAndChangesNothing)
}

func testMoveStageRefusesIllegalMovesAndChangesNothing(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	e := mustExam(t, s, "e")
	c := mustCandidate(t, s, e.ID, "c")
	for _, to := range []stage.Stage{stage.InterviewWaiting, stage.InterviewCall, stage.DeviceChecked, "bogus"} {
		_, err := s.MoveStage(ctx, c.ID, to, 0, "", time.Time{})
		if !errors.Is(err, ErrConflict) {
			t.Errorf("invited → %s: %v, want ErrConflict", to, err)
			continue
		}
		if !strings.Contains(err.Error(), string(to)) {
			t.Errorf("refusal does not say what: %v", err)
		}
	}
	// Also inside a transaction that then commits.
	if _, err := s.Update(ctx, func(ctx context.Context, tx *Tx) error {
		if _, err := tx.MoveStage(ctx, c.ID, stage.InterviewDone, 0, "", time.Time{}); !errors.Is(err, ErrConflict) {
			t.Errorf("in a transaction: %v, want ErrConflict", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Candidate(ctx, c.ID)
	if got != c.Candidate {
		t.Errorf("candidate changed by refused moves: %+v, was %+v", got, c.Candidate)
	}
	if h, err := s.StageHistory(ctx, c.ID); err != nil || len(h) != 0 {
		t.Errorf("history after refused moves: %+v, %v", h, err)
	}
	if _, err := s.MoveStage(ctx, 999, stage.Mock, 0, "", time.Time{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing candidate: %v, want ErrNotFound", err)
	}
	if _, err := s.MoveStage(ctx, c.ID, stage.Mock, 999, "", time.Time{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing actor: %v, want ErrNotFound", err)
	}
	if got, _ := s.Candidate(ctx, c.ID); got.Stage != stage.Invited {
		t.Errorf("a move with a missing actor changed the stage to %s", got.Stage)
	}
	// Leaving is final.
	if _, err := s.MoveStage(ctx, c.ID, stage.Left, 0, "", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MoveStage(ctx, c.ID, stage.RestRoom, 0, "", time.Time{}); !errors.Is(err, ErrConflict) {
		t.Errorf("left → rest_room: %v, want ErrConflict", err)
	}
}
