package api

import (
	"context"
	"encoding/csv"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The CSV report carries the listening and browser types like the
// camera's: each row names its type and what noticed it (the microphone,
// the camera for phone_call's hand at the ear, the candidate's browser),
// and the candidate's risk sums their weights (talking 30, phone_call 35,
// microphone_off 20, headphones 20; half each while pending, times the
// confidence).
func TestReportListsListeningAndBrowserTypes(t *testing.T) {
	h := newHarness(t)
	exam := h.exam()
	cand := h.candidate(exam, "赵敏")
	tok := h.codeLogin(cand.Codes["rest_room"]).Token
	proctor := h.staff("zhou", "proctor")
	h.assign(exam, "zhou")
	identity := "candidate-" + itoa(cand.ID)
	h.clock.Add(20 * time.Second)
	now := h.clock.Now()
	for i, typ := range []string{"talking", "phone_call", "microphone_off"} {
		err := h.srv.ViolationOpened(context.Background(), ViolationReport{
			Key: "r-" + typ, Identity: identity, Type: typ, Policy: "rest_room", Reason: typ + " heard",
			Confidence: 1, StartedAt: now.Add(time.Duration(i-5) * time.Second), OpenedAt: now,
			Evidence: []byte("\xff\xd8\xff\xe0 jpeg"), Clip: []byte("RIFF wav"),
		})
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
	}
	h.must(201, "POST", "/api/v1/candidate/signals", tok, map[string]any{"type": "headphones", "key": "hp-1",
		"started_at": now.Add(-time.Second), "sent_at": now, "labels": []string{"AirPods Pro (Bluetooth)"}})

	rep := h.must(200, "GET", "/api/v1/exams/"+itoa(exam)+"/report.csv", proctor, nil)
	rows, err := csv.NewReader(strings.NewReader(string(rep.body))).ReadAll()
	if err != nil || len(rows) != 5 {
		t.Fatalf("report: %v\n%s", err, rep.body)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	wantSource := map[string]string{"talking": "microphone", "microphone_off": "microphone", "phone_call": "camera", "headphones": "browser"}
	for _, r := range rows[1:] {
		typ := r[col["type"]]
		if want, ok := wantSource[typ]; !ok || r[col["source"]] != want {
			t.Errorf("row %q: type %s from %q, want one of the four types from %q", r, typ, r[col["source"]], want)
		}
		delete(wantSource, typ)
		// Every row carries the candidate's whole risk: 0.5 × (30+35+20) for
		// the audio and phone rows at confidence 1, plus the headphones
		// report's half weight at its confidence.
		if risk, err := strconv.ParseFloat(r[col["candidate_risk"]], 64); err != nil || risk <= 42.5 || risk > 52.5 {
			t.Errorf("row %s: candidate_risk %s, want 42.5 plus up to 10 for the headphones", typ, r[col["candidate_risk"]])
		}
	}
	if len(wantSource) != 0 {
		t.Errorf("missing from the report: %v", wantSource)
	}
}
