package api

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"invigil/internal/metrictest"
	"invigil/stage"
	"invigil/store"
)

// A whole interview day through the API, as the candidate guide runs it:
// exam and candidate created, device check with the assistant, interview
// with the examiner, score published, rest room, a violation stored,
// reviewed and exported; the event stream tells it all in order.
func TestWholeInterview(t *testing.T) {
	h := newHarness(t)
	assistant := h.staff("zhang", "assistant")
	examiner := h.staff("li", "examiner")
	proctor := h.staff("wang", "proctor")
	exam := h.exam()
	h.assign(exam, "zhang", "li", "wang")
	cand := h.candidate(exam, "考生甲")
	for _, k := range store.CodeKinds {
		if !isSixDigits(cand.Codes[k]) {
			t.Fatalf("code %s = %q, want 6 digits", k, cand.Codes[k])
		}
	}
	cpath := "/api/v1/candidates/" + itoa(cand.ID)

	// Device check.
	login := h.codeLogin(cand.Codes["interview"])
	if login.Stage != "device_check_waiting" || login.CandidateID != cand.ID || login.Token == "" {
		t.Fatalf("first login: %+v", login)
	}
	ctok := login.Token
	var call callView
	h.must(201, "POST", cpath+"/calls", assistant, map[string]string{"kind": "device_check"}).decode(t, &call)
	if call.State != "ringing" {
		t.Fatalf("call %+v", call)
	}
	var me candidateMe
	h.must(200, "GET", "/api/v1/candidate/me", ctok, nil).decode(t, &me)
	if me.Call == nil || me.Call.ID != call.ID || me.Call.State != "ringing" {
		t.Fatalf("candidate does not see the incoming call: %+v", me)
	}
	h.must(200, "POST", "/api/v1/calls/"+itoa(call.ID)+"/accept", ctok, nil)
	h.must(200, "POST", "/api/v1/calls/"+itoa(call.ID)+"/end", assistant, map[string]string{"outcome": "done"})
	h.must(200, "GET", "/api/v1/candidate/me", ctok, nil).decode(t, &me)
	if me.Stage != "device_checked" || me.Message.ZH != "您已调试完毕，请再次输入邀请码进入面试等待室。" {
		t.Fatalf("after the device check: %+v", me)
	}

	// The same code again opens the interview waiting room.
	login = h.codeLogin(cand.Codes["interview"])
	if login.Stage != "interview_waiting" {
		t.Fatalf("second login: %+v", login)
	}
	ctok = login.Token
	// An assistant cannot place the interview call; the examiner can.
	if a := h.do("POST", cpath+"/calls", assistant, map[string]string{"kind": "interview"}); a.status != 403 {
		t.Errorf("assistant placed an interview call: %d %s", a.status, a.body)
	}
	h.must(201, "POST", cpath+"/calls", examiner, map[string]string{"kind": "interview"}).decode(t, &call)
	h.must(200, "POST", "/api/v1/calls/"+itoa(call.ID)+"/accept", ctok, nil)
	// A violation during the interview, through the media plane's sink.
	off := int64(1500)
	err := h.srv.ViolationOpened(context.Background(), ViolationReport{
		Key: "k-1", Identity: "candidate-" + itoa(cand.ID), Type: "head_turn", Policy: "interview",
		Reason: "yaw 41°", Confidence: 0.8, StartedAt: h.clock.Now().Add(-3 * time.Second), OpenedAt: h.clock.Now(),
		Details: map[string]any{"yaw_deg": 41.0}, Evidence: []byte("\xff\xd8\xff\xe0 fake jpeg"),
		RecordingPath: "recordings/x.webm", RecordingOffsetMS: &off,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Reported twice (a retry): stored once.
	if err := h.srv.ViolationOpened(context.Background(), ViolationReport{Key: "k-1", Identity: "candidate-" + itoa(cand.ID), Type: "head_turn"}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // a repeated close is announced once
		if err := h.srv.ViolationClosed(context.Background(), ViolationReport{Key: "k-1", EndedAt: h.clock.Now().Add(2 * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	h.must(200, "PUT", cpath+"/score", examiner, map[string]any{"score": 86.5, "comment": "清晰"})
	h.must(200, "POST", "/api/v1/calls/"+itoa(call.ID)+"/end", examiner, nil)
	h.must(200, "GET", "/api/v1/candidate/me", ctok, nil).decode(t, &me)
	if me.Stage != "interview_done" || me.Message.ZH != "您的面试已结束!" || me.Score != nil {
		t.Fatalf("after the interview (score unpublished): %+v", me)
	}
	if me.RestRoomCode == nil || *me.RestRoomCode != cand.Codes["rest_room"] {
		t.Fatalf("the rest-room code is not shown at the end: %+v", me)
	}
	h.must(200, "POST", cpath+"/score/publish", examiner, nil)
	h.must(200, "GET", "/api/v1/candidate/me", ctok, nil).decode(t, &me)
	if me.Score == nil || me.Score.Score != 86.5 {
		t.Fatalf("published score not shown: %+v", me)
	}

	// Rest room with the rest-room code.
	login = h.codeLogin(cand.Codes["rest_room"])
	if login.Stage != "rest_room" {
		t.Fatalf("rest-room login: %+v", login)
	}

	// The proctor reviews.
	var list []violationView
	h.must(200, "GET", "/api/v1/exams/"+itoa(exam)+"/violations?type=head_turn", proctor, nil).decode(t, &list)
	if len(list) != 1 || list[0].Status != "pending" || list[0].EndedAt == nil || list[0].EvidenceURL == "" ||
		list[0].RecordingOffsetMS == nil || *list[0].RecordingOffsetMS != 1500 || list[0].CandidateName != "考生甲" {
		t.Fatalf("violations: %s", mustJSON(list))
	}
	ev := h.must(200, "GET", list[0].EvidenceURL, proctor, nil)
	if ev.header.Get("Content-Type") != "image/jpeg" || !strings.HasPrefix(string(ev.body), "\xff\xd8") {
		t.Errorf("evidence: %q %q", ev.header.Get("Content-Type"), ev.body)
	}
	var tl timelineView
	h.must(200, "GET", cpath+"/timeline", proctor, nil).decode(t, &tl)
	pendingRisk := tl.Risk.Score
	h.must(200, "POST", "/api/v1/violations/"+itoa(list[0].ID)+"/review", proctor, map[string]string{"decision": "confirmed", "note": "明显转头"})
	h.must(200, "GET", cpath+"/timeline", proctor, nil).decode(t, &tl)
	if len(tl.Violations) != 1 || tl.Violations[0].Status != "confirmed" || len(tl.Violations[0].Reviews) != 1 ||
		tl.Violations[0].Reviews[0].Reviewer != "wang" || tl.Risk.Score != 2*pendingRisk || tl.Risk.Score != 8 {
		t.Fatalf("timeline after review (pending risk %v): %s", pendingRisk, mustJSON(tl))
	}
	wantStages := []stage.Stage{stage.DeviceCheckWaiting, stage.DeviceCheckCall, stage.DeviceChecked, stage.InterviewWaiting,
		stage.InterviewCall, stage.InterviewDone, stage.RestRoom}
	if len(tl.Stages) != len(wantStages) {
		t.Fatalf("stage history %s", mustJSON(tl.Stages))
	}
	for i, s := range wantStages {
		if tl.Stages[i].To != s {
			t.Errorf("history[%d] = %s, want %s", i, tl.Stages[i].To, s)
		}
	}

	// CSV report.
	rep := h.must(200, "GET", "/api/v1/exams/"+itoa(exam)+"/report.csv", proctor, nil)
	rows, err := csv.NewReader(strings.NewReader(string(rep.body))).ReadAll()
	if err != nil || len(rows) != 2 || rows[1][4] != "head_turn" || rows[1][9] != "confirmed" || rows[1][10] != "wang" || rows[1][13] != "8.0" {
		t.Fatalf("report %q (%v)", rep.body, err)
	}
	codes := h.must(200, "GET", "/api/v1/exams/"+itoa(exam)+"/codes.csv", h.admin, nil)
	if !strings.Contains(string(codes.body), cand.Codes["interview"]) {
		t.Errorf("codes.csv lacks the candidate's code: %s", codes.body)
	}

	// The event stream tells the day in order, numbered without gaps.
	last, err := h.st.LastSeq(context.Background(), exam)
	if err != nil {
		t.Fatal(err)
	}
	events := h.events("/api/v1/exams/"+itoa(exam)+"/events", proctor, "", int(last))
	if len(events) < 15 {
		t.Fatalf("only %d events", len(events))
	}
	var types []string
	for i, e := range events {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
		types = append(types, e.Type)
	}
	joined := strings.Join(types, ",")
	if strings.Count(joined, "violation_opened") != 1 || strings.Count(joined, "violation_closed") != 1 {
		t.Errorf("a violation reported twice and closed twice must be announced once each: %s", joined)
	}
	for _, want := range []string{"candidate_added", "stage_changed", "call_ringing", "call_started", "call_ended",
		"violation_opened", "violation_closed", "score_published", "violation_reviewed"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no %s event in %s", want, joined)
		}
	}
	// A reconnecting page catches up from where it was.
	later := h.events("/api/v1/exams/"+itoa(exam)+"/events", proctor, itoa(events[len(events)-3].Seq), 2)
	if len(later) != 2 || later[0].Seq != events[len(events)-2].Seq {
		t.Errorf("resume after %d gave %s", events[len(events)-3].Seq, mustJSON(later))
	}
	// ?since=now skips the history: the first event is the next one.
	next := h.openEvents("/api/v1/exams/"+itoa(exam)+"/events?since=now", proctor, "")
	h.must(204, "POST", "/api/v1/candidate/help", login.Token, map[string]string{"message": "麦克风没有声音"})
	if got := next(1); len(got) != 1 || got[0].Type != "help_requested" || got[0].Seq != last+1 {
		t.Errorf("since=now gave %s, want only the help request (seq %d)", mustJSON(got), last+1)
	}
	// The candidate's own stream has only their calls, stages and score.
	mine := h.events("/api/v1/candidate/events", login.Token, "", 14)
	if len(mine) != 14 {
		t.Errorf("candidate stream: %d events, want 7 stages, 2 rings, 2 starts, 2 ends, 1 score", len(mine))
	}
	for _, e := range mine {
		if !candidateEventTypes[e.Type] || e.CandidateID != cand.ID {
			t.Errorf("candidate stream carries %s of candidate %d", e.Type, e.CandidateID)
		}
	}

	metrics := metrictest.Sum(t, h.reg, "invigil_violations_total", "type", "head_turn")
	if metrics != 1 {
		t.Errorf("invigil_violations_total{type=head_turn} = %v", metrics)
	}
	if n := metrictest.Sum(t, h.reg, "invigil_sessions", "stage", "rest_room"); n != 1 {
		t.Errorf("invigil_sessions{stage=rest_room} = %v", n)
	}

	// Leaving is final.
	h.must(200, "POST", "/api/v1/candidate/leave", login.Token, nil)
	if a := h.do("POST", "/api/v1/candidate/login", "", map[string]string{"code": cand.Codes["rest_room"]}); a.status != 403 || a.errCode() != "left" {
		t.Errorf("login after leaving: %d %s", a.status, a.body)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Two logins with the same code at once (a double click, two tabs) both
// succeed: the candidate moves once, the other login resumes.
func TestConcurrentCodeLogins(t *testing.T) {
	h := newHarness(t)
	cand := h.candidate(h.exam(), "double click")
	const n = 6
	statuses := make(chan answer, n)
	for range n {
		go func() {
			statuses <- h.do("POST", "/api/v1/candidate/login", "", map[string]string{"code": cand.Codes["rest_room"]})
		}()
	}
	for range n {
		if a := <-statuses; a.status != 200 {
			t.Errorf("concurrent login: %d %s", a.status, a.body)
		}
	}
	hist, err := h.st.StageHistory(context.Background(), cand.ID)
	if err != nil || len(hist) != 1 || hist[0].To != stage.RestRoom {
		t.Errorf("stage history %+v (%v), want one move to rest_room", hist, err)
	}
}
