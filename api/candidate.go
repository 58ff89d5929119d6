package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"invigil/contract"
	"invigil/stage"
	"invigil/store"
)

type codeRequest struct {
	Code string `json:"code"`
}

type candidateLoginAnswer struct {
	Token       string     `json:"token"`
	CSRFToken   string     `json:"csrf_token"`
	CandidateID int64      `json:"candidate_id"`
	ExamID      int64      `json:"exam_id"`
	Name        string     `json:"name"`
	Stage       string     `json:"stage"`
	Message     stage.Text `json:"message"`
}

// Candidate-facing refusals, in the guide's tone.
var (
	textWrongCode   = stage.Text{ZH: "邀请码错误，请核对后重新输入。", EN: "Wrong invitation code. Please check it and try again."}
	textBadCode     = stage.Text{ZH: "邀请码为 6 位数字。", EN: "The invitation code is 6 digits."}
	textTooMany     = stage.Text{ZH: "输入错误次数过多，请稍后再试。", EN: "Too many wrong codes. Please wait and try again."}
	textThrottled   = stage.Text{ZH: "当前登录请求过多，请稍候几秒再试。", EN: "Too many logins are being tried right now. Please wait a few seconds and try again."}
	textTooLate     = stage.Text{ZH: "已超过本场面试的登录时间，无法进入。请联系主办方。", EN: "The login window of this exam has closed. Please contact the organisers."}
	textLeft        = stage.Text{ZH: "您已离开本场面试，不能再次进入。", EN: "You have left this exam and cannot enter again."}
	textInCall      = stage.Text{ZH: "您正在通话中，请先结束通话。", EN: "You are in a call; please finish it first."}
	textMockLate    = stage.Text{ZH: "设备调试后不能再进入模拟练习。", EN: "Practice is not available after the device check."}
	textInterviewed = stage.Text{ZH: "您的面试已结束，请使用休息室码进入休息室。", EN: "Your interview has ended; use the rest-room code to enter the rest room."}
)

func isSixDigits(s string) bool {
	if len(s) != 6 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (c *control) tooMany(wait time.Duration) *apiError {
	e := candidateError(http.StatusTooManyRequests, "too_many_attempts", textTooMany)
	e.RetryAfter = int(math.Ceil(wait.Seconds()))
	return e
}

// throttled is the answer to every code login while the global ceiling of
// wrong codes is reached. The code stays too_many_attempts so the page
// shows its countdown; the message says it is not the candidate's fault.
func (c *control) throttled(wait time.Duration) *apiError {
	e := candidateError(http.StatusTooManyRequests, "too_many_attempts", textThrottled)
	e.RetryAfter = int(math.Ceil(wait.Seconds()))
	return e
}

// candidateLogin turns an invitation code into a login and, when the code
// opens a new stage, moves the candidate there. Codes are never logged.
func (c *control) candidateLogin(w http.ResponseWriter, r *http.Request, _ *principal) error {
	// The body is read before the attempt is admitted: an admitted attempt
	// holds a token of the global ceiling until it is settled, and a client
	// trickling its body must not hold one.
	var req codeRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	network, now := clientKey(r), c.now()
	att, wait, global := c.limit.admit(network, now)
	if att == nil {
		if global {
			c.m.logins.WithLabelValues("candidate", "throttled").Inc()
			return c.throttled(wait)
		}
		c.m.logins.WithLabelValues("candidate", "limited").Inc()
		return c.tooMany(wait)
	}
	// Whatever ends the login without a verdict on the code (a store
	// error) counts for nothing.
	defer att.abort()
	code := strings.TrimSpace(req.Code)
	wrong := func(status int, ecode string, t stage.Text) error {
		c.m.codeFailures.Inc()
		c.m.logins.WithLabelValues("candidate", "failed").Inc()
		if wait := att.fail(now); wait > 0 {
			return c.tooMany(wait)
		}
		return candidateError(status, ecode, t)
	}
	if !isSixDigits(code) {
		return wrong(http.StatusBadRequest, "bad_code", textBadCode)
	}
	match, err := c.st.LookupCode(r.Context(), code)
	if errors.Is(err, store.ErrNotFound) {
		return wrong(http.StatusNotFound, "unknown_code", textWrongCode)
	}
	if err != nil {
		return err
	}
	// The code exists: whatever follows (too early, too late, a refusal of
	// the stage) is not a guess, and the network's earlier wrong codes stay
	// counted (a right code forgives nothing).
	att.succeed()
	exam, err := c.st.Exam(r.Context(), match.ExamID)
	if err != nil {
		return err
	}
	early := c.opts.EarlyLogin
	if exam.EarlyLoginMinutes > 0 {
		early = time.Duration(exam.EarlyLoginMinutes) * time.Minute
	}
	if opens := exam.StartsAt.Add(-early); now.Before(opens) {
		c.m.logins.WithLabelValues("candidate", "early").Inc()
		t := stage.Text{
			ZH: "面试尚未开放登录，请于 " + opens.Format("2006-01-02 15:04 MST") + " 之后再登录。",
			EN: "This exam is not open yet. Please log in after " + opens.Format("2006-01-02 15:04 MST") + ".",
		}
		return candidateError(http.StatusForbidden, "too_early", t)
	}
	// The stage is decided and moved in one write transaction, so two
	// logins with the same code at once (a double click, two tabs) move
	// the candidate once and the second resumes.
	moved := false
	err = c.update(r.Context(), func(ctx context.Context, tx *store.Tx) error {
		cur, err := tx.Candidate(ctx, match.CandidateID)
		if err != nil {
			return err
		}
		to, refusal := codeTarget(match.Kind, cur)
		if refusal != nil {
			c.m.logins.WithLabelValues("candidate", "refused").Inc()
			return refusal
		}
		firstEntry := cur.Stage == stage.Invited || cur.Stage == stage.Mock
		lateFirst := exam.LateLoginMinutes > 0 && firstEntry && to != cur.Stage &&
			!now.Before(exam.StartsAt.Add(time.Duration(exam.LateLoginMinutes)*time.Minute))
		if lateFirst || (!now.Before(exam.EndsAt) && to != cur.Stage) {
			// Arriving after the start window, or moving on after the exam's
			// end, is refused; a code still resumes where the candidate is.
			c.m.logins.WithLabelValues("candidate", "late").Inc()
			return candidateError(http.StatusForbidden, "too_late", textTooLate)
		}
		if to == cur.Stage {
			return nil
		}
		moved = true
		return moveInTx(ctx, tx, cur, to, 0, "code:"+match.Kind, now)
	})
	if err != nil {
		return err
	}
	cand, err := c.st.Candidate(r.Context(), match.CandidateID)
	if err != nil {
		return err
	}
	if moved {
		c.applyStage(r.Context(), cand)
	}
	secret, tok, err := c.issueToken(r.Context(), store.TokenCandidate, 0, cand.ID, exam.EndsAt.Add(24*time.Hour).Sub(now))
	if err != nil {
		return err
	}
	c.m.logins.WithLabelValues("candidate", "ok").Inc()
	c.setLoginCookie(w, r, candidateCookie, secret, tok.ExpiresAt)
	writeJSON(w, http.StatusOK, candidateLoginAnswer{Token: secret, CSRFToken: tok.CSRF, CandidateID: cand.ID,
		ExamID: cand.ExamID, Name: cand.Name, Stage: string(cand.Stage), Message: stage.Message(cand.Stage)})
	return nil
}

// codeTarget is the stage a code of kind opens for cand (its current stage
// when the code only resumes), or the refusal to show.
func codeTarget(kind string, cand store.Candidate) (stage.Stage, *apiError) {
	cur := cand.Stage
	if cur == stage.Left {
		return "", candidateError(http.StatusForbidden, "left", textLeft)
	}
	switch kind {
	case store.CodeMock:
		if cur == stage.Invited || cur == stage.Mock {
			return stage.Mock, nil
		}
		return "", candidateError(http.StatusConflict, "code_not_usable", textMockLate)
	case store.CodeInterview:
		switch cur {
		case stage.Invited, stage.Mock:
			return stage.DeviceCheckWaiting, nil
		case stage.DeviceChecked:
			return stage.InterviewWaiting, nil
		case stage.RestRoom:
			switch {
			case !cand.InterviewedAt.IsZero():
				return "", candidateError(http.StatusConflict, "code_not_usable", textInterviewed)
			case !cand.DeviceCheckedAt.IsZero():
				return stage.InterviewWaiting, nil
			}
			return stage.DeviceCheckWaiting, nil
		}
		return cur, nil // waiting, in a call, done: resume
	case store.CodeRestRoom:
		if cur.InCall() {
			return "", candidateError(http.StatusConflict, "in_call", textInCall)
		}
		return stage.RestRoom, nil
	}
	return "", errorf(http.StatusInternalServerError, "internal", "unknown code kind %q", kind)
}

// moveStage moves cand to `to` with its event, then tells the media plane.
func (c *control) moveStage(ctx context.Context, cand store.Candidate, to stage.Stage, actor int64, reason string) (store.Candidate, error) {
	err := c.update(ctx, func(ctx context.Context, tx *store.Tx) error {
		return moveInTx(ctx, tx, cand, to, actor, reason, c.now())
	})
	if err != nil {
		return store.Candidate{}, err
	}
	updated, err := c.st.Candidate(ctx, cand.ID)
	if err != nil {
		return store.Candidate{}, err
	}
	c.applyStage(ctx, updated)
	return updated, nil
}

// moveInTx moves a candidate and logs the stage_changed event in tx.
func moveInTx(ctx context.Context, tx *store.Tx, cand store.Candidate, to stage.Stage, actor int64, reason string, now time.Time) error {
	ch, err := tx.MoveStage(ctx, cand.ID, to, actor, reason, now.UTC())
	if err != nil {
		return err
	}
	_, err = tx.AppendEvent(ctx, cand.ExamID, contract.EventStageChanged, cand.ID, map[string]any{
		"from": ch.From, "to": ch.To, "reason": reason, "actor_id": actor, "name": cand.Name,
	})
	return err
}

// update runs fn in a write transaction and wakes the event streams.
func (c *control) update(ctx context.Context, fn func(ctx context.Context, tx *store.Tx) error) error {
	events, err := c.st.Update(ctx, fn)
	if err != nil {
		return err
	}
	c.publish(events)
	return nil
}

type scoreBrief struct {
	Score       float64   `json:"score"`
	Comment     string    `json:"comment"`
	PublishedAt time.Time `json:"published_at"`
}

type candidateMe struct {
	CandidateID  int64       `json:"candidate_id"`
	ExamID       int64       `json:"exam_id"`
	ExamName     string      `json:"exam_name"`
	Name         string      `json:"name"`
	Stage        string      `json:"stage"`
	Message      stage.Text  `json:"message"`
	Call         *callView   `json:"call"`
	Score        *scoreBrief `json:"score"`
	RestRoomCode *string     `json:"rest_room_code"`
}

func (c *control) describeCandidate(ctx context.Context, cand store.Candidate) (candidateMe, error) {
	exam, err := c.st.Exam(ctx, cand.ExamID)
	if err != nil {
		return candidateMe{}, err
	}
	me := candidateMe{CandidateID: cand.ID, ExamID: cand.ExamID, ExamName: exam.Name, Name: cand.Name,
		Stage: string(cand.Stage), Message: stage.Message(cand.Stage)}
	if call, err := c.st.CurrentCall(ctx, cand.ID); err == nil {
		v := viewCall(call)
		me.Call = &v
	} else if !errors.Is(err, store.ErrNotFound) {
		return candidateMe{}, err
	}
	if sc, err := c.st.Score(ctx, cand.ID); err == nil && !sc.PublishedAt.IsZero() {
		me.Score = &scoreBrief{Score: sc.Score, Comment: sc.Comment, PublishedAt: sc.PublishedAt}
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return candidateMe{}, err
	}
	if cand.Stage == stage.InterviewDone || cand.Stage == stage.RestRoom {
		codes, err := c.st.CandidateCodes(ctx, cand.ID)
		if err != nil {
			return candidateMe{}, err
		}
		if rc, ok := codes[store.CodeRestRoom]; ok {
			me.RestRoomCode = &rc
		}
	}
	return me, nil
}

func (c *control) candidateMe(w http.ResponseWriter, r *http.Request, p *principal) error {
	me, err := c.describeCandidate(r.Context(), p.candidate)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, me)
	return nil
}

func (c *control) candidateLeave(w http.ResponseWriter, r *http.Request, p *principal) error {
	cand := p.candidate
	if cand.Stage != stage.Left {
		if err := c.endCallsOf(r.Context(), cand, 0); err != nil {
			return err
		}
		var err error
		if cand, err = c.st.Candidate(r.Context(), cand.ID); err != nil {
			return err
		}
		if cand, err = c.moveStage(r.Context(), cand, stage.Left, 0, "candidate left"); err != nil {
			return err
		}
	}
	me, err := c.describeCandidate(r.Context(), cand)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, me)
	return nil
}

type helpRequest struct {
	Message string `json:"message"`
}

func (c *control) candidateHelp(w http.ResponseWriter, r *http.Request, p *principal) error {
	var req helpRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	msg := strings.TrimSpace(req.Message)
	if r, _, _, found := refusedRune(msg, true); found {
		// Said to the candidate in both languages, as their page shows it.
		return candidateError(http.StatusBadRequest, "bad_text", stage.Text{
			ZH: fmt.Sprintf("求助内容含有不允许的字符 U+%04X，请删除后再发送。", r),
			EN: fmt.Sprintf("help message: the character U+%04X is not allowed; please remove it and send again.", r),
		})
	}
	if utf8.RuneCountInString(msg) > 500 {
		return errorf(http.StatusBadRequest, "too_long", "a help message has at most 500 characters")
	}
	err := c.update(r.Context(), func(ctx context.Context, tx *store.Tx) error {
		_, err := tx.AppendEvent(ctx, p.candidate.ExamID, contract.EventHelpRequested, p.candidate.ID, map[string]any{
			"message": msg, "name": p.candidate.Name, "stage": p.candidate.Stage,
		})
		return err
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (c *control) candidateAnalysis(w http.ResponseWriter, r *http.Request, p *principal) error {
	if c.opts.Analysis == nil {
		return errorf(http.StatusServiceUnavailable, "no_analysis", "this server runs without live analysis")
	}
	snap, ok := c.opts.Analysis.Latest(candidateIdentity(p.candidate.ID))
	if !ok {
		return errorf(http.StatusNotFound, "no_video", "no analysed video from your camera yet")
	}
	writeJSON(w, http.StatusOK, snap)
	return nil
}
