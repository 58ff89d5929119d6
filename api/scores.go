package api

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"invigil/contract"
	"invigil/stage"
	"invigil/store"
)

type scoreRequest struct {
	Score   *float64 `json:"score"`
	Comment string   `json:"comment"`
}

type scoreView struct {
	CandidateID int64     `json:"candidate_id"`
	ExaminerID  int64     `json:"examiner_id"`
	Score       float64   `json:"score"`
	Comment     string    `json:"comment"`
	UpdatedAt   time.Time `json:"updated_at"`
	PublishedAt time.Time `json:"published_at,omitzero"`
	Published   bool      `json:"published"`
}

func viewScore(s store.Score) scoreView {
	return scoreView{CandidateID: s.CandidateID, ExaminerID: s.ExaminerID, Score: s.Score, Comment: s.Comment,
		UpdatedAt: s.UpdatedAt, PublishedAt: s.PublishedAt, Published: !s.PublishedAt.IsZero()}
}

func (c *control) saveScore(w http.ResponseWriter, r *http.Request, p *principal) error {
	var req scoreRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Score == nil || math.IsNaN(*req.Score) || *req.Score < 0 || *req.Score > 100 {
		return errorf(http.StatusBadRequest, "bad_score", "score must be a number from 0 to 100")
	}
	req.Comment = strings.TrimSpace(req.Comment)
	if err := checkText("score comment", req.Comment, true); err != nil {
		return err
	}
	if utf8.RuneCountInString(req.Comment) > 2000 {
		return errorf(http.StatusBadRequest, "too_long", "a comment has at most 2000 characters")
	}
	cand, err := c.candidateFor(r, p)
	if err != nil {
		return err
	}
	switch cand.Stage {
	case stage.InterviewCall, stage.InterviewDone, stage.RestRoom, stage.Left:
	default:
		return errorf(http.StatusConflict, "not_interviewed", "candidate %d is %s: score after the interview has started", cand.ID, cand.Stage)
	}
	if err := c.requireInterviewer(r.Context(), p, cand); err != nil {
		return err
	}
	var sc store.Score
	err = c.update(r.Context(), func(ctx context.Context, tx *store.Tx) error {
		if old, err := tx.Score(ctx, cand.ID); err == nil && !old.PublishedAt.IsZero() && p.user.Role != "admin" {
			return errorf(http.StatusConflict, "published", "the score is published; only an admin may change it")
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		var err error
		sc, err = tx.SaveScore(ctx, store.Score{CandidateID: cand.ID, ExaminerID: p.user.ID, Score: *req.Score,
			Comment: req.Comment, UpdatedAt: c.now().UTC()})
		if err != nil {
			return err
		}
		return tx.Audit(ctx, p.user.ID, "score.save", "candidate:"+strconv.FormatInt(cand.ID, 10), map[string]any{"score": sc.Score})
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewScore(sc))
	return nil
}

func (c *control) publishScore(w http.ResponseWriter, r *http.Request, p *principal) error {
	cand, err := c.candidateFor(r, p)
	if err != nil {
		return err
	}
	if err := c.requireInterviewer(r.Context(), p, cand); err != nil {
		return err
	}
	var sc store.Score
	err = c.update(r.Context(), func(ctx context.Context, tx *store.Tx) error {
		var err error
		if sc, err = tx.PublishScore(ctx, cand.ID, c.now().UTC()); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return errorf(http.StatusConflict, "no_score", "enter a score for candidate %d before publishing it", cand.ID)
			}
			return err
		}
		if _, err := tx.AppendEvent(ctx, cand.ExamID, contract.EventScorePublished, cand.ID, map[string]any{
			"score": sc.Score, "comment": sc.Comment, "name": cand.Name}); err != nil {
			return err
		}
		return tx.Audit(ctx, p.user.ID, "score.publish", "candidate:"+strconv.FormatInt(cand.ID, 10), nil)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewScore(sc))
	return nil
}

func (c *control) getScore(w http.ResponseWriter, r *http.Request, p *principal) error {
	cand, err := c.candidateFor(r, p)
	if err != nil {
		return err
	}
	sc, err := c.st.Score(r.Context(), cand.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewScore(sc))
	return nil
}

// requireInterviewer: a score is the judgement of the examiner who held
// the candidate's (latest accepted) interview call; an admin may correct
// it. Another examiner on the same exam may read it, not set it.
func (c *control) requireInterviewer(ctx context.Context, p *principal, cand store.Candidate) error {
	if isAdmin(p) {
		return nil
	}
	held, err := c.st.LastInterviewer(ctx, cand.ID)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusForbidden, "not_your_interview", "nobody has interviewed candidate %d yet: only their examiner, or an admin, scores them", cand.ID)
	}
	if err != nil {
		return err
	}
	if held != p.user.ID {
		return errorf(http.StatusForbidden, "not_your_interview", "another examiner interviewed candidate %d: only they, or an admin, score them", cand.ID)
	}
	return nil
}
