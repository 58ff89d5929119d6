package api

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"invigil/store"
)

// signal posts one browser report as the candidate.
func (h *harness) signal(token string, body map[string]any) answer {
	h.t.Helper()
	return h.do("POST", "/api/v1/candidate/signals", token, body)
}

func (h *harness) lastSeq(exam int64) string {
	h.t.Helper()
	seq, err := h.st.LastSeq(context.Background(), exam)
	if err != nil {
		h.t.Fatal(err)
	}
	return itoa(seq)
}

// Each type is stored as a violation with details.source browser; a start
// opens it, the end (with the page's duration) closes it, and a retried
// report of either stores and announces nothing more.
func TestSignalsStoredAsBrowserViolations(t *testing.T) {
	h := newHarness(t)
	exam := h.exam()
	cand := h.candidate(exam, "王芳")
	tok := h.codeLogin(cand.Codes["rest_room"]).Token
	since := h.lastSeq(exam)
	h.clock.Add(10 * time.Second)
	now := h.clock.Now()

	start := map[string]any{"type": "left_page", "key": "lp-1", "reason": "hidden", "started_at": now.Add(-time.Second), "sent_at": now}
	var first signalAnswer
	h.must(201, "POST", "/api/v1/candidate/signals", tok, start).decode(t, &first)
	if !first.Stored || first.Violation.Type != "left_page" || first.Violation.EndedAt != nil {
		t.Fatalf("start of left_page: %+v, want stored and open", first)
	}
	if !first.Violation.StartedAt.Equal(now.Add(-time.Second)) {
		t.Errorf("started_at %s, want %s", first.Violation.StartedAt, now.Add(-time.Second))
	}
	var again signalAnswer
	h.must(200, "POST", "/api/v1/candidate/signals", tok, start).decode(t, &again)
	if again.Stored || again.Violation.ID != first.Violation.ID {
		t.Fatalf("a retried start: %+v, want the same violation, not stored again", again)
	}

	h.clock.Add(3 * time.Second)
	now = h.clock.Now()
	end := map[string]any{"type": "left_page", "key": "lp-1", "reason": "hidden", "started_at": now.Add(-4 * time.Second),
		"sent_at": now, "duration_ms": 4000}
	var closed signalAnswer
	h.must(201, "POST", "/api/v1/candidate/signals", tok, end).decode(t, &closed)
	if closed.Violation.EndedAt == nil || !closed.Violation.EndedAt.Equal(first.Violation.StartedAt.Add(4*time.Second)) {
		t.Fatalf("end of left_page: ended_at %v, want start + 4 s", closed.Violation.EndedAt)
	}
	h.must(200, "POST", "/api/v1/candidate/signals", tok, end)

	// The other two, each stored whole (a start and a duration at once)
	// and open (no duration).
	h.must(201, "POST", "/api/v1/candidate/signals", tok, map[string]any{"type": "second_screen", "key": "ss-1",
		"started_at": now.Add(-2 * time.Second), "sent_at": now, "duration_ms": 1500})
	h.must(201, "POST", "/api/v1/candidate/signals", tok, map[string]any{"type": "headphones", "key": "hp-1",
		"started_at": now, "sent_at": now, "labels": []string{"AirPods Pro (Bluetooth)"}})

	var list []violationView
	h.must(200, "GET", "/api/v1/exams/"+itoa(exam)+"/violations", h.admin, nil).decode(t, &list)
	byType := map[string]violationView{}
	for _, v := range list {
		byType[v.Type] = v
		var d map[string]any
		if err := json.Unmarshal(v.Details, &d); err != nil || d["source"] != "browser" {
			t.Errorf("%s: details %s, want source browser", v.Type, v.Details)
		}
		if v.Policy != "rest_room" || v.Confidence != 1 || !strings.Contains(v.Reason, "reported by the browser") {
			t.Errorf("%s: policy %q confidence %v reason %q", v.Type, v.Policy, v.Confidence, v.Reason)
		}
	}
	if len(list) != 3 || byType["left_page"].EndedAt == nil || byType["second_screen"].EndedAt == nil || byType["headphones"].EndedAt != nil {
		t.Fatalf("stored violations: %+v, want left_page and second_screen closed, headphones open", list)
	}
	if !strings.Contains(string(byType["headphones"].Details), "AirPods") {
		t.Errorf("headphones details %s lack the device label", byType["headphones"].Details)
	}

	// The staff stream announces each change once: left_page opened and
	// closed, second_screen opened and closed, headphones opened.
	got := []string{}
	for _, e := range h.events("/api/v1/exams/"+itoa(exam)+"/events", h.admin, since, 5) {
		var v violationView
		_ = json.Unmarshal(e.Data, &v)
		got = append(got, e.Type+":"+v.Type)
	}
	want := "violation_opened:left_page violation_closed:left_page violation_opened:second_screen violation_closed:second_screen violation_opened:headphones"
	if strings.Join(got, " ") != want {
		t.Fatalf("staff events %v\nwant %s", got, want)
	}
}

// The candidate's own stream carries their violations (the pipeline's and
// the browser's), in a brief form without the staff's view, and never
// another candidate's.
func TestCandidateStreamCarriesOwnViolations(t *testing.T) {
	h := newHarness(t)
	exam := h.exam()
	a, b := h.candidate(exam, "A"), h.candidate(exam, "B")
	tokA := h.codeLogin(a.Codes["rest_room"]).Token
	tokB := h.codeLogin(b.Codes["rest_room"]).Token
	since := h.lastSeq(exam)
	now := h.clock.Now()
	ctx := context.Background()
	// The pipeline's entry: a face_off_screen of A, then one of B, which
	// A must not see, then A's browser report.
	rep := ViolationReport{Key: "k-a", Identity: "candidate-" + itoa(a.ID), Type: "face_off_screen", Policy: "rest_room",
		Confidence: 0.9, StartedAt: now, OpenedAt: now}
	if err := h.srv.ViolationOpened(ctx, rep); err != nil {
		t.Fatal(err)
	}
	repB := rep
	repB.Key, repB.Identity = "k-b", "candidate-"+itoa(b.ID)
	if err := h.srv.ViolationOpened(ctx, repB); err != nil {
		t.Fatal(err)
	}
	if _, err := h.srv.ctl.st.Update(ctx, func(ctx context.Context, tx *store.Tx) error {
		v, err := tx.ViolationByKey(ctx, "k-a")
		if err != nil {
			return err
		}
		_, err = tx.AddReview(ctx, store.Review{ViolationID: v.ID, ReviewerID: h.userID("admin"), Decision: "confirmed", Note: "staff-only note", At: now})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	rep.EndedAt = now.Add(2 * time.Second)
	if err := h.srv.ViolationClosed(ctx, rep); err != nil {
		t.Fatal(err)
	}
	h.must(201, "POST", "/api/v1/candidate/signals", tokB, map[string]any{"type": "left_page", "key": "b1", "reason": "blur", "started_at": now})
	h.must(201, "POST", "/api/v1/candidate/signals", tokA, map[string]any{"type": "left_page", "key": "a1", "reason": "fullscreen", "started_at": now})

	evs := h.events("/api/v1/candidate/events", tokA, since, 3)
	if len(evs) != 3 {
		t.Fatalf("A's stream: %d events, want 3", len(evs))
	}
	want := []struct{ typ, vtype, source string }{
		{"violation_opened", "face_off_screen", ""}, {"violation_closed", "face_off_screen", ""}, {"violation_opened", "left_page", "browser"},
	}
	for i, e := range evs {
		var v map[string]any
		if err := json.Unmarshal(e.Data, &v); err != nil {
			t.Fatal(err)
		}
		src, _ := v["source"].(string)
		if e.CandidateID != a.ID || e.Type != want[i].typ || v["type"] != want[i].vtype || src != want[i].source {
			t.Errorf("A's event %d: %s candidate %d %s, want %+v", i, e.Type, e.CandidateID, e.Data, want[i])
		}
		for _, staffOnly := range []string{"reviews", "confidence", "evidence_url", "reason", "details"} {
			if _, ok := v[staffOnly]; ok {
				t.Errorf("A's event %d carries the staff's %s: %s", i, staffOnly, e.Data)
			}
		}
		if strings.Contains(string(e.Data), "staff-only note") {
			t.Errorf("A's stream leaks a review note: %s", e.Data)
		}
	}
	if evs[1].Type == "violation_closed" {
		var v candidateViolation
		_ = json.Unmarshal(evs[1].Data, &v)
		if v.EndedAt == nil {
			t.Errorf("the close lacks ended_at: %s", evs[1].Data)
		}
	}
}

// Reports that cannot be true or make no sense are refused with 400 and
// the reason; none of them is stored.
func TestSignalsRefused(t *testing.T) {
	h := newHarness(t)
	exam := h.exam()
	cand := h.candidate(exam, "C")
	login := h.clock.Now()
	tok := h.codeLogin(cand.Codes["rest_room"]).Token
	h.clock.Add(time.Minute)
	now := h.clock.Now()
	base := func(kv ...any) map[string]any {
		m := map[string]any{"type": "left_page", "key": "k1", "reason": "hidden", "started_at": now.Add(-time.Second)}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	cases := []struct {
		name string
		body any
		code string
		want string
	}{
		{"unknown type", base("type", "screenshot"), "bad_signal", "want left_page, second_screen or headphones"},
		{"pipeline type", base("type", "face_off_screen"), "bad_signal", "want left_page"},
		{"bad key", base("key", "a b/c"), "bad_signal", "key"},
		{"long key", base("key", strings.Repeat("k", 65)), "bad_signal", "key"},
		{"no start", base("started_at", nil), "bad_signal", "started_at is required"},
		{"future start", base("started_at", now.Add(time.Minute)), "bad_signal", "in the future"},
		{"start after sent", base("started_at", now, "sent_at", now.Add(-time.Minute)), "bad_signal", "after sent_at"},
		{"before the login", base("started_at", login.Add(-time.Hour)), "bad_signal", "before this login"},
		{"skewed start before the login", base("started_at", now.Add(-3*time.Hour), "sent_at", now.Add(-time.Hour)), "bad_signal", "before this login"},
		{"negative duration", base("duration_ms", -5), "bad_signal", "duration_ms -5"},
		{"absurd duration", base("duration_ms", int64(48*time.Hour/time.Millisecond)), "bad_signal", "duration_ms"},
		{"ends in the future", base("duration_ms", 60000), "bad_signal", "in the future"},
		{"bad reason", base("reason", "bored"), "bad_signal", "reason"},
		{"reason on second_screen", base("type", "second_screen"), "bad_signal", "left_page only"},
		{"headphones without labels", base("type", "headphones", "reason", nil), "bad_signal", "device labels"},
		{"labels on left_page", base("labels", []string{"AirPods"}), "bad_signal", "headphones only"},
		{"too many labels", base("type", "headphones", "reason", nil, "labels", strings.Split("a,b,c,d,e,f,g,h,i", ",")), "bad_signal", "device labels"},
		{"unknown field", base("extra", 1), "bad_json", "extra"},
		{"not JSON", "{type:", "bad_json", ""},
		{"empty", "", "bad_json", "needs a JSON body"},
	}
	for _, tc := range cases {
		a := h.do("POST", "/api/v1/candidate/signals", tok, tc.body)
		if a.status != 400 || a.errCode() != tc.code || !strings.Contains(string(a.body), tc.want) {
			t.Errorf("%s: %d %s, want 400 %s mentioning %q", tc.name, a.status, a.body, tc.code, tc.want)
		}
	}
	// Oversized: the general limit's answer, before any of it is parsed.
	big := base("type", "headphones", "reason", nil, "labels", []string{strings.Repeat("x", 5000)})
	if a := h.do("POST", "/api/v1/candidate/signals", tok, big); a.status != 413 || a.errCode() != "body_too_large" {
		t.Errorf("a 5 kB body: %d %s, want 413 body_too_large", a.status, a.body)
	}
	var list []violationView
	h.must(200, "GET", "/api/v1/exams/"+itoa(exam)+"/violations", h.admin, nil).decode(t, &list)
	if len(list) != 0 {
		t.Fatalf("refused reports stored %d violations: %+v", len(list), list)
	}
	// The same report, put right, is taken.
	h.must(201, "POST", "/api/v1/candidate/signals", tok, base())
}

// Signals are watched in waiting rooms, calls and the rest room only; an
// episode that began there may still end after the candidate moved on.
func TestSignalsStageGating(t *testing.T) {
	h := newHarness(t)
	exam := h.exam()
	cand := h.candidate(exam, "D")
	now := h.clock.Now()
	mock := h.codeLogin(cand.Codes["mock"]).Token
	a := h.signal(mock, map[string]any{"type": "left_page", "key": "m1", "reason": "blur", "started_at": now})
	if a.status != 409 || a.errCode() != "signal_not_watched" || !strings.Contains(string(a.body), "mock") {
		t.Fatalf("in practice: %d %s, want 409 signal_not_watched", a.status, a.body)
	}
	tok := h.codeLogin(cand.Codes["interview"]).Token // the device-check waiting room
	h.must(201, "POST", "/api/v1/candidate/signals", tok, map[string]any{"type": "left_page", "key": "w1", "reason": "blur", "started_at": now})
	h.must(200, "POST", "/api/v1/candidate/leave", tok, nil)
	h.clock.Add(5 * time.Second)
	var end signalAnswer
	h.must(201, "POST", "/api/v1/candidate/signals", tok, map[string]any{"type": "left_page", "key": "w1", "reason": "blur",
		"started_at": now, "duration_ms": 5000}).decode(t, &end)
	if end.Violation.EndedAt == nil || end.Violation.Policy != "waiting" {
		t.Fatalf("the end after leaving: %+v, want closed, policy waiting", end.Violation)
	}
	a = h.signal(tok, map[string]any{"type": "second_screen", "key": "w2", "started_at": h.clock.Now()})
	if a.status != 409 || a.errCode() != "signal_not_watched" {
		t.Fatalf("a new episode after leaving: %d %s, want 409", a.status, a.body)
	}
}

// Each candidate has signalsPerWindow reports a minute: the next is told
// to wait (429, Retry-After), another candidate is not, and the window
// moves on.
func TestSignalsRateLimited(t *testing.T) {
	h := newHarness(t)
	exam := h.exam()
	a, b := h.candidate(exam, "E"), h.candidate(exam, "F")
	tokA := h.codeLogin(a.Codes["rest_room"]).Token
	tokB := h.codeLogin(b.Codes["rest_room"]).Token
	now := h.clock.Now()
	report := map[string]any{"type": "left_page", "key": "same", "reason": "hidden", "started_at": now}
	for i := 0; i < signalsPerWindow; i++ {
		if got := h.signal(tokA, report); got.status != 201 && got.status != 200 {
			t.Fatalf("report %d: %d %s", i, got.status, got.body)
		}
	}
	got := h.signal(tokA, report)
	if got.status != 429 || got.errCode() != "too_many_signals" || got.header.Get("Retry-After") != "60" {
		t.Fatalf("report %d: %d %s Retry-After %q, want 429 too_many_signals after 60 s", signalsPerWindow+1, got.status, got.body, got.header.Get("Retry-After"))
	}
	h.must(201, "POST", "/api/v1/candidate/signals", tokB, report)
	h.clock.Add(signalWindow)
	h.must(200, "POST", "/api/v1/candidate/signals", tokA, report)
	// Repeats were stored once.
	var list []violationView
	h.must(200, "GET", "/api/v1/exams/"+itoa(exam)+"/violations?candidate="+itoa(a.ID), h.admin, nil).decode(t, &list)
	if len(list) != 1 {
		t.Fatalf("%d violations for one key, want 1", len(list))
	}
}
