package api

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// The staff of an exam is set as a whole, only to users that exist and
// are enabled, and every change is in the audit log.
func TestExamStaffAPI(t *testing.T) {
	h := newHarness(t)
	exam := h.exam()
	h.staff("zhang", "assistant")
	h.staff("li", "examiner")
	h.staff("zhao", "proctor")
	zhang, li, zhao := h.userID("zhang"), h.userID("li"), h.userID("zhao")
	staffPath := "/api/v1/exams/" + itoa(exam) + "/staff"

	var got examStaffAnswer
	h.must(200, "GET", staffPath, h.admin, nil).decode(t, &got)
	if len(got.UserIDs) != 0 || got.Users == nil {
		t.Fatalf("staff of a new exam: %s", mustJSON(got))
	}
	h.must(200, "PUT", staffPath, h.admin, map[string]any{"user_ids": []int64{li, zhang, li}}).decode(t, &got)
	if !slices.Equal(got.UserIDs, []int64{zhang, li}) || len(got.Users) != 2 || got.Users[1].Username != "li" || got.Users[1].Role != "examiner" {
		t.Fatalf("after PUT: %s", mustJSON(got))
	}
	h.must(200, "GET", staffPath, h.admin, nil).decode(t, &got)
	if !slices.Equal(got.UserIDs, []int64{zhang, li}) {
		t.Fatalf("GET after PUT: %s", mustJSON(got))
	}

	h.must(200, "PATCH", "/api/v1/users/"+itoa(zhao), h.admin, map[string]bool{"disabled": true})
	for _, c := range []struct {
		body       any
		code, says string
	}{
		{map[string]any{"user_ids": []int64{zhang, 4242}}, "unknown_user", "user 4242 does not exist"},
		{map[string]any{"user_ids": []int64{zhao}}, "user_disabled", "zhao"},
		{map[string]any{}, "bad_staff", "user_ids"},
		{map[string]any{"user_ids": []string{"zhang"}}, "bad_json", "user_ids"},
	} {
		a := h.do("PUT", staffPath, h.admin, c.body)
		if a.status != 400 || a.errCode() != c.code || !strings.Contains(string(a.body), c.says) {
			t.Errorf("PUT %s: %d %s, want 400 %s saying %q", mustJSON(c.body), a.status, a.body, c.code, c.says)
		}
	}
	// A refused PUT changed nothing; [] clears.
	h.must(200, "GET", staffPath, h.admin, nil).decode(t, &got)
	if !slices.Equal(got.UserIDs, []int64{zhang, li}) {
		t.Errorf("a refused PUT changed the staff: %v", got.UserIDs)
	}
	h.must(200, "PUT", staffPath, h.admin, map[string]any{"user_ids": []int64{}}).decode(t, &got)
	if len(got.UserIDs) != 0 {
		t.Errorf("[] did not clear: %v", got.UserIDs)
	}
	if a := h.do("PUT", "/api/v1/exams/987654/staff", h.admin, map[string]any{"user_ids": []int64{}}); a.status != 404 {
		t.Errorf("staff of a missing exam: %d %s", a.status, a.body)
	}

	log, err := h.st.AuditLog(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var changes []string
	for _, e := range log {
		if e.Action == "exam.staff" && e.Target == "exam:"+itoa(exam) {
			changes = append(changes, string(e.Details))
		}
	}
	if len(changes) != 2 || !strings.Contains(changes[1], "["+itoa(zhang)+","+itoa(li)+"]") || !strings.Contains(changes[0], "[]") {
		t.Errorf("audit of the staff changes (newest first): %q", changes)
	}
}

// An open event stream ends when its reader is taken off the exam's staff
// or logs out: the checks are not only made when it opens.
func TestStreamEndsWhenAccessEnds(t *testing.T) {
	h := newHarness(t)
	exam := h.exam()
	removed := h.staff("wang", "proctor")
	loggedOut := h.staff("zhou", "proctor")
	stays := h.staff("sun", "proctor")
	h.assign(exam, "wang", "zhou", "sun")

	open := func(tok string) <-chan error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		t.Cleanup(cancel)
		req, _ := http.NewRequestWithContext(ctx, "GET", h.base+"/api/v1/exams/"+itoa(exam)+"/events?since=now", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req) //nolint:bodyclose // the reading goroutine below closes it
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("open a stream: %d", resp.StatusCode)
		}
		ended := make(chan error, 1)
		go func() {
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
			}
			if ctx.Err() != nil {
				ended <- errors.New("still open after 20 s")
				return
			}
			ended <- nil
		}()
		return ended
	}
	a, b, c := open(removed), open(loggedOut), open(stays)
	h.assign(exam, "zhou", "sun")
	if err := <-a; err != nil {
		t.Errorf("the stream of a proctor taken off the exam: %v", err)
	}
	h.must(204, "POST", "/api/v1/auth/logout", loggedOut, nil)
	h.candidate(exam, "wakes the streams") // an event: the streams check again
	if err := <-b; err != nil {
		t.Errorf("the stream of a proctor who logged out: %v", err)
	}
	select {
	case err := <-c:
		t.Errorf("the stream of a proctor still on the exam ended (%v)", err)
	default:
	}
}

// Media tokens: a staff member's is for an exam they are on, checked again
// when it is used; any media token dies with the login it was minted from
// (logout, a password change) and is good for joining for a minute.
func TestMediaTokens(t *testing.T) {
	h := newHarness(t)
	exam := h.exam()
	other := h.exam()
	proctor := h.staff("wang", "proctor")
	h.assign(exam, "wang")
	cand := h.candidate(exam, "考生")
	ctok := h.codeLogin(cand.Codes["rest_room"]).Token

	mint := func(tok string, body any) string {
		t.Helper()
		var m mediaTokenAnswer
		h.must(200, "POST", "/api/v1/media/token", tok, body).decode(t, &m)
		return m.Token
	}
	verify := func(tok string) error {
		_, err := h.srv.VerifyMediaToken(t.Context(), tok)
		return err
	}
	if a := h.do("POST", "/api/v1/media/token", proctor, map[string]int64{"exam_id": other}); a.status != 403 || a.errCode() != "not_exam_staff" {
		t.Errorf("media token for an exam the proctor is not on: %d %s", a.status, a.body)
	}
	staffTok := mint(proctor, map[string]int64{"exam_id": exam})
	g, err := h.srv.VerifyMediaToken(t.Context(), staffTok)
	if err != nil || g.Identity != staffIdentity(h.userID("wang")) || g.Room != examRoom(exam) || !g.Hidden {
		t.Fatalf("a fresh staff token: %+v, %v", g, err)
	}
	candTok := mint(ctok, nil)
	if err := verify(candTok); err != nil {
		t.Fatalf("a fresh candidate token: %v", err)
	}

	// Good for joining for a minute, not ten.
	h.clock.Add(59 * time.Second)
	if err := verify(staffTok); err != nil {
		t.Errorf("59 s after minting: %v", err)
	}
	h.clock.Add(2 * time.Second)
	if err := verify(staffTok); !errors.Is(err, ErrMediaToken) {
		t.Errorf("61 s after minting: %v, want refused", err)
	}

	// Taken off the exam: a token minted before is refused at join.
	staffTok = mint(proctor, map[string]int64{"exam_id": exam})
	h.assign(exam)
	if err := verify(staffTok); !errors.Is(err, ErrMediaToken) {
		t.Errorf("after being taken off the exam: %v, want refused", err)
	}
	h.assign(exam, "wang")

	// Logout ends the media tokens of that login, not those of another.
	staffTok = mint(proctor, map[string]int64{"exam_id": exam})
	second := h.login("wang", "password-wang")
	secondTok := mint(second, map[string]int64{"exam_id": exam})
	candTok = mint(ctok, nil)
	h.must(204, "POST", "/api/v1/auth/logout", proctor, nil)
	h.must(204, "POST", "/api/v1/auth/logout", ctok, nil)
	if err := verify(staffTok); !errors.Is(err, ErrMediaToken) {
		t.Errorf("staff media token after its login's logout: %v, want refused", err)
	}
	if err := verify(candTok); !errors.Is(err, ErrMediaToken) {
		t.Errorf("candidate media token after its login's logout: %v, want refused", err)
	}
	if err := verify(secondTok); err != nil {
		t.Errorf("the media token of another login of the same user: %v", err)
	}
	// A password change ends every login of the user, and so their tokens.
	h.must(200, "PATCH", "/api/v1/users/"+itoa(h.userID("wang")), h.admin, map[string]string{"password": "a-new-password"})
	if err := verify(secondTok); !errors.Is(err, ErrMediaToken) {
		t.Errorf("media token after a password change: %v, want refused", err)
	}
	// A forged session claim does not help: the signature covers it.
	if err := verify(strings.Replace(secondTok, "m1.", "m1.x", 1)); !errors.Is(err, ErrMediaToken) {
		t.Errorf("a tampered token: %v", err)
	}
}
