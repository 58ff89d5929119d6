package api

import (
	"context"
	"errors"
	"math"
	"net/http"
	"time"

	"invigil/control"
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

// Candidate-facing refusals of the login limiter, in the guide's tone
// (the stage machine's own refusals are control's).
var (
	textTooMany   = stage.Text{ZH: "输入错误次数过多，请稍后再试。", EN: "Too many wrong codes. Please wait and try again."}
	textThrottled = stage.Text{ZH: "当前登录请求过多，请稍候几秒再试。", EN: "Too many logins are being tried right now. Please wait a few seconds and try again."}
)

// isSixDigits is the form of an invitation code.
func isSixDigits(s string) bool { return control.IsSixDigits(s) }

func (c *handlers) tooMany(wait time.Duration) *apiError {
	e := candidateError(http.StatusTooManyRequests, "too_many_attempts", textTooMany)
	e.RetryAfter = int(math.Ceil(wait.Seconds()))
	return e
}

// throttled is the answer to every code login while the global ceiling of
// wrong codes is reached. The code stays too_many_attempts so the page
// shows its countdown; the message says it is not the candidate's fault.
func (c *handlers) throttled(wait time.Duration) *apiError {
	e := candidateError(http.StatusTooManyRequests, "too_many_attempts", textThrottled)
	e.RetryAfter = int(math.Ceil(wait.Seconds()))
	return e
}

// candidateLogin turns an invitation code into a login and, when the code
// opens a new stage, moves the candidate there. Codes are never logged.
func (c *handlers) candidateLogin(w http.ResponseWriter, r *http.Request, _ *principal) error {
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
	match, err := c.plane.FindCode(r.Context(), req.Code)
	if control.IsCode(err, control.CodeBadCode) || control.IsCode(err, control.CodeUnknownCode) {
		c.m.codeFailures.Inc()
		c.m.logins.WithLabelValues("candidate", "failed").Inc()
		if wait := att.fail(now); wait > 0 {
			return c.tooMany(wait)
		}
		return err
	}
	if err != nil {
		return err
	}
	// The code exists: whatever follows (too early, too late, a refusal of
	// the stage) is not a guess, and the network's earlier wrong codes stay
	// counted (a right code forgives nothing).
	att.succeed()
	cand, exam, err := c.plane.Enter(r.Context(), match)
	var refusal *control.Error
	if errors.As(err, &refusal) {
		c.m.logins.WithLabelValues("candidate", loginRefusal(refusal.Code)).Inc()
	}
	if err != nil {
		return err
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

// loginRefusal is the invigil_logins_total result of a code login refused
// by the stage machine or the exam's window.
func loginRefusal(code string) string {
	switch code {
	case "too_early":
		return "early"
	case "too_late":
		return "late"
	}
	return "refused"
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

func (c *handlers) describeCandidate(ctx context.Context, cand store.Candidate) (candidateMe, error) {
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

func (c *handlers) candidateMe(w http.ResponseWriter, r *http.Request, p *principal) error {
	me, err := c.describeCandidate(r.Context(), p.candidate)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, me)
	return nil
}

func (c *handlers) candidateLeave(w http.ResponseWriter, r *http.Request, p *principal) error {
	cand, err := c.plane.Leave(r.Context(), p.candidate)
	if err != nil {
		return err
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

func (c *handlers) candidateHelp(w http.ResponseWriter, r *http.Request, p *principal) error {
	var req helpRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := c.plane.AskForHelp(r.Context(), p.candidate, req.Message); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (c *handlers) candidateAnalysis(w http.ResponseWriter, r *http.Request, p *principal) error {
	snap, err := c.plane.LiveAnalysis(p.candidate)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, snap)
	return nil
}
