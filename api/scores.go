package api

import (
	"net/http"
	"time"

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

func (c *handlers) saveScore(w http.ResponseWriter, r *http.Request, p *principal) error {
	var req scoreRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	id, err := pathID(r, "candidate")
	if err != nil {
		return err
	}
	sc, err := c.plane.SaveScore(r.Context(), p.actor(), id, req.Score, req.Comment)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewScore(sc))
	return nil
}

func (c *handlers) publishScore(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r, "candidate")
	if err != nil {
		return err
	}
	sc, err := c.plane.PublishScore(r.Context(), p.actor(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewScore(sc))
	return nil
}

func (c *handlers) getScore(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r, "candidate")
	if err != nil {
		return err
	}
	sc, err := c.plane.Score(r.Context(), p.actor(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewScore(sc))
	return nil
}
