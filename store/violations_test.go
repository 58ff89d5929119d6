package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"
)

func TestInsertViolationIsIdempotentByKey(t *testing.T) {
	onEachEngine(t, testInsertViolationIsIdempotentByKey)
}

func testInsertViolationIsIdempotentByKey(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	e := mustExam(t, s, "e")
	c := mustCandidate(t, s, e.ID, "c")
	start := time.Date(2026, 11, 26, 9, 15, 3, 250_000_000, time.UTC)
	offset := int64(63250)

	in := Violation{
		Key: "c1-face_off_screen-1", CandidateID: c.ID, Type: "face_off_screen", Policy: "waiting",
		Reason: "no face for 3 s", Confidence: 0.93, StartedAt: start, OpenedAt: start.Add(3 * time.Second),
		Details: json.RawMessage(`{"faces": 0}`), EvidencePath: "evidence/1.jpg",
		RecordingPath: "recordings/c1/1.webm", RecordingOffsetMS: &offset,
		RecordingNode: "media-1", EvidenceNode: "control-a", // several nodes: where the files are
		Status: StatusConfirmed, // ignored: new violations are pending
	}
	v, created, err := s.InsertViolation(ctx, in)
	if err != nil || !created {
		t.Fatalf("InsertViolation: %+v, %v, %v", v, created, err)
	}
	want := in
	want.ID, want.ExamID, want.Status, want.Reviews = v.ID, e.ID, StatusPending, []Review{}
	want.Details = json.RawMessage(`{"faces": 0}`)
	if !reflect.DeepEqual(v, want) {
		t.Errorf("stored\n%+v\nwant\n%+v", v, want)
	}

	again := in
	again.Type, again.Confidence = "extra_person", 0.1
	dup, created, err := s.InsertViolation(ctx, again)
	if err != nil || created || dup.ID != v.ID || dup.Type != "face_off_screen" {
		t.Errorf("second insert of the key: %+v, %v, %v", dup, created, err)
	}
	if n := countRows(t, s, "violations"); n != 1 {
		t.Errorf("%d violations, want 1", n)
	}

	// Defaults: the exam comes from the candidate, times from now.
	plain, created, err := s.InsertViolation(ctx, Violation{Key: "k2", CandidateID: c.ID, Type: "distance", Confidence: 0.5})
	if err != nil || !created || plain.ExamID != e.ID || plain.OpenedAt.IsZero() || !plain.StartedAt.Equal(plain.OpenedAt) ||
		plain.Details != nil || plain.RecordingOffsetMS != nil || !plain.EndedAt.IsZero() ||
		plain.RecordingNode != "" || plain.EvidenceNode != "" {
		t.Errorf("plain violation: %+v, %v, %v", plain, created, err)
	}

	if got, err := s.Violation(ctx, v.ID); err != nil || !reflect.DeepEqual(got, v) {
		t.Errorf("Violation: %+v, %v", got, err)
	}
	if got, err := s.ViolationByKey(ctx, in.Key); err != nil || got.ID != v.ID {
		t.Errorf("ViolationByKey: %+v, %v", got, err)
	}
	if _, err := s.Violation(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("Violation(999): %v, want ErrNotFound", err)
	}
	if _, err := s.ViolationByKey(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ViolationByKey(nope): %v, want ErrNotFound", err)
	}

	for name, bad := range map[string]Violation{
		"no key":          {CandidateID: c.ID, Type: "distance"},
		"no type":         {Key: "x1", CandidateID: c.ID},
		"bad details":     {Key: "x2", CandidateID: c.ID, Type: "distance", Details: json.RawMessage(`{`)},
		"wrong exam":      {Key: "x3", ExamID: e.ID + 1, CandidateID: c.ID, Type: "distance"},
		"NaN confidence":  {Key: "x4", CandidateID: c.ID, Type: "distance", Confidence: math.NaN()},
		"missing student": {Key: "x5", CandidateID: 999, Type: "distance"},
	} {
		if _, _, err := s.InsertViolation(ctx, bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, _, err := s.InsertViolation(ctx, Violation{Key: "x6", CandidateID: 999, Type: "distance"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing candidate: %v, want ErrNotFound", err)
	}
}

func TestEndViolation(t *testing.T) { onEachEngine(t, testEndViolation) }

func testEndViolation(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	e := mustExam(t, s, "e")
	c := mustCandidate(t, s, e.ID, "c")
	start := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	if _, _, err := s.InsertViolation(ctx, Violation{Key: "k", CandidateID: c.ID, Type: "head_turn", StartedAt: start}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EndViolation(ctx, "k", start.Add(-time.Second)); err == nil {
		t.Error("an end before the start was accepted")
	}
	end := start.Add(7 * time.Second)
	v, err := s.EndViolation(ctx, "k", end)
	if err != nil || !v.EndedAt.Equal(end) {
		t.Fatalf("EndViolation: %+v, %v", v, err)
	}
	if v, err := s.EndViolation(ctx, "k", end.Add(time.Minute)); err != nil || !v.EndedAt.Equal(end) {
		t.Errorf("ending again: %+v, %v (want the first end kept)", v, err)
	}
	if _, err := s.EndViolation(ctx, "nope", end); !errors.Is(err, ErrNotFound) {
		t.Errorf("EndViolation(nope): %v, want ErrNotFound", err)
	}
}

func TestReviews(t *testing.T) { onEachEngine(t, testReviews) }

func testReviews(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	e := mustExam(t, s, "e")
	c := mustCandidate(t, s, e.ID, "c")
	proctor := mustUser(t, s, "liu", RoleProctor)
	admin := mustUser(t, s, "root", RoleAdmin)
	v, _, err := s.InsertViolation(ctx, Violation{Key: "k", CandidateID: c.ID, Type: "extra_person", Confidence: 0.8})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC)
	got, err := s.AddReview(ctx, Review{ViolationID: v.ID, ReviewerID: proctor.ID, Decision: StatusConfirmed, Note: "two faces", At: at})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusConfirmed || len(got.Reviews) != 1 {
		t.Fatalf("after a review: %+v", got)
	}
	r := got.Reviews[0]
	if r.ID == 0 || r.ViolationID != v.ID || r.ReviewerID != proctor.ID || r.Reviewer != "liu" ||
		r.Decision != StatusConfirmed || r.Note != "two faces" || !r.At.Equal(at) {
		t.Errorf("review %+v", r)
	}
	got, err = s.AddReview(ctx, Review{ViolationID: v.ID, ReviewerID: admin.ID, Decision: StatusDismissed, Note: "a poster"})
	if err != nil || got.Status != StatusDismissed || len(got.Reviews) != 2 || got.Reviews[1].Reviewer != "root" ||
		got.Reviews[0].ID != r.ID {
		t.Errorf("second review: %+v, %v", got, err)
	}

	if _, err := s.AddReview(ctx, Review{ViolationID: v.ID, ReviewerID: proctor.ID, Decision: StatusPending}); err == nil {
		t.Error("decision pending accepted")
	}
	if _, err := s.AddReview(ctx, Review{ViolationID: 999, ReviewerID: proctor.ID, Decision: StatusConfirmed}); !errors.Is(err, ErrNotFound) {
		t.Errorf("review of a missing violation: %v, want ErrNotFound", err)
	}
	if _, err := s.AddReview(ctx, Review{ViolationID: v.ID, ReviewerID: 999, Decision: StatusConfirmed}); !errors.Is(err, ErrNotFound) {
		t.Errorf("review by a missing user: %v, want ErrNotFound", err)
	}
	if got, _ := s.Violation(ctx, v.ID); got.Status != StatusDismissed || len(got.Reviews) != 2 {
		t.Errorf("a refused review changed the violation: %+v", got)
	}
}

func TestListViolationsAndPending(t *testing.T) { onEachEngine(t, testListViolationsAndPending) }

func testListViolationsAndPending(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	e := mustExam(t, s, "e")
	other := mustExam(t, s, "other")
	a := mustCandidateCodes(t, s, e.ID, "a", codeSeq("100001", "100002", "100003"))
	b := mustCandidateCodes(t, s, e.ID, "b", codeSeq("200001", "200002", "200003"))
	x := mustCandidateCodes(t, s, other.ID, "x", codeSeq("300001", "300002", "300003"))
	proctor := mustUser(t, s, "liu", RoleProctor)
	base := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

	insert := func(key string, cand int64, typ string, minute int) Violation {
		t.Helper()
		v, _, err := s.InsertViolation(ctx, Violation{Key: key, CandidateID: cand, Type: typ, Confidence: 0.5,
			StartedAt: base.Add(time.Duration(minute) * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// Inserted out of order: the list is by onset, not by id.
	v3 := insert("v3", a.ID, "distance", 30)
	v1 := insert("v1", a.ID, "face_off_screen", 10)
	v2 := insert("v2", b.ID, "face_off_screen", 20)
	v4 := insert("v4", b.ID, "face_off_screen", 40)
	insert("vx", x.ID, "face_off_screen", 5)
	if _, err := s.AddReview(ctx, Review{ViolationID: v2.ID, ReviewerID: proctor.ID, Decision: StatusDismissed}); err != nil {
		t.Fatal(err)
	}

	ids := func(list []Violation) []int64 {
		out := []int64{}
		for _, v := range list {
			out = append(out, v.ID)
		}
		return out
	}
	for name, tc := range map[string]struct {
		f    ViolationFilter
		want []int64
	}{
		"exam":      {ViolationFilter{ExamID: e.ID}, []int64{v1.ID, v2.ID, v3.ID, v4.ID}},
		"candidate": {ViolationFilter{ExamID: e.ID, CandidateID: b.ID}, []int64{v2.ID, v4.ID}},
		"type":      {ViolationFilter{ExamID: e.ID, Type: "face_off_screen"}, []int64{v1.ID, v2.ID, v4.ID}},
		"status":    {ViolationFilter{ExamID: e.ID, Status: StatusPending}, []int64{v1.ID, v3.ID, v4.ID}},
		"from-to":   {ViolationFilter{ExamID: e.ID, From: base.Add(20 * time.Minute), To: base.Add(40 * time.Minute)}, []int64{v2.ID, v3.ID}},
		"limit":     {ViolationFilter{ExamID: e.ID, Limit: 2}, []int64{v1.ID, v2.ID}},
		"nothing":   {ViolationFilter{ExamID: e.ID, Type: "camera_blocked"}, []int64{}},
	} {
		list, err := s.ListViolations(ctx, tc.f)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := ids(list); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: ids %v, want %v", name, got, tc.want)
		}
		for _, v := range list {
			if v.Reviews == nil {
				t.Errorf("%s: violation %d has nil reviews", name, v.ID)
			}
			if v.ID == v2.ID && (len(v.Reviews) != 1 || v.Reviews[0].Reviewer != "liu") {
				t.Errorf("%s: reviews of v2 %+v", name, v.Reviews)
			}
		}
	}
	if _, err := s.ListViolations(ctx, ViolationFilter{ExamID: e.ID, Status: "open"}); err == nil {
		t.Error("unknown status accepted")
	}

	pending, err := s.PendingViolations(ctx, e.ID)
	if err != nil || len(pending) != 2 || pending[a.ID] != 2 || pending[b.ID] != 1 {
		t.Errorf("PendingViolations: %v, %v", pending, err)
	}
	if none, err := s.PendingViolations(ctx, 999); err != nil || len(none) != 0 {
		t.Errorf("PendingViolations of a missing exam: %v, %v", none, err)
	}
}

func TestRecordings(t *testing.T) { onEachEngine(t, testRecordings) }

func testRecordings(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	e := mustExam(t, s, "e")
	c := mustCandidateCodes(t, s, e.ID, "c", codeSeq("100001", "100002", "100003"))
	d := mustCandidateCodes(t, s, e.ID, "d", codeSeq("200001", "200002", "200003"))
	start := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

	r, err := s.AddRecording(ctx, Recording{CandidateID: c.ID, SessionID: "s1", Path: "recordings/c/1.webm", StartedAt: start})
	if err != nil {
		t.Fatal(err)
	}
	want := Recording{ID: r.ID, ExamID: e.ID, CandidateID: c.ID, SessionID: "s1", Path: "recordings/c/1.webm", StartedAt: start}
	if r.ID == 0 || r != want {
		t.Errorf("added %+v, want %+v", r, want)
	}
	again, err := s.AddRecording(ctx, Recording{CandidateID: c.ID, SessionID: "s2", Path: "recordings/c/1.webm"})
	if err != nil || again != r {
		t.Errorf("adding the path again: %+v, %v, want %+v", again, err, r)
	}
	if n := countRows(t, s, "recordings"); n != 1 {
		t.Errorf("%d recordings, want 1", n)
	}
	if _, err := s.AddRecording(ctx, Recording{CandidateID: d.ID, Path: "recordings/c/1.webm"}); !errors.Is(err, ErrConflict) {
		t.Errorf("the path for another candidate: %v, want ErrConflict", err)
	}
	if got, err := s.Recording(ctx, r.ID); err != nil || got != r {
		t.Errorf("Recording: %+v, %v", got, err)
	}
	if got, err := s.RecordingByPath(ctx, r.Path); err != nil || got != r {
		t.Errorf("RecordingByPath: %+v, %v", got, err)
	}
	if _, err := s.Recording(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("Recording(999): %v, want ErrNotFound", err)
	}
	if _, err := s.RecordingByPath(ctx, "nope.webm"); !errors.Is(err, ErrNotFound) {
		t.Errorf("RecordingByPath(nope): %v, want ErrNotFound", err)
	}
	if _, err := s.AddRecording(ctx, Recording{CandidateID: 999, Path: "x.webm"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("recording of a missing candidate: %v, want ErrNotFound", err)
	}
	if _, err := s.AddRecording(ctx, Recording{CandidateID: c.ID}); err == nil {
		t.Error("empty path accepted")
	}
}
