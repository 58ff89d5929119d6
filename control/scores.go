package control

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"invigil/contract"
	"invigil/stage"
	"invigil/store"
)

// SaveScore enters or changes candidate candidateID's score (0 to 100)
// with a comment. Only the examiner who held their interview, or an admin,
// scores them, and once it is published only an admin changes it.
func (p *Plane) SaveScore(ctx context.Context, a Actor, candidateID int64, score *float64, comment string) (store.Score, error) {
	if score == nil || math.IsNaN(*score) || *score < 0 || *score > 100 {
		return store.Score{}, Errorf(Invalid, "bad_score", "score must be a number from 0 to 100")
	}
	comment = strings.TrimSpace(comment)
	if err := CheckText("score comment", comment, true); err != nil {
		return store.Score{}, err
	}
	if utf8.RuneCountInString(comment) > 2000 {
		return store.Score{}, Errorf(Invalid, "too_long", "a comment has at most 2000 characters")
	}
	cand, err := p.Candidate(ctx, a, candidateID)
	if err != nil {
		return store.Score{}, err
	}
	switch cand.Stage {
	case stage.InterviewCall, stage.InterviewDone, stage.RestRoom, stage.Left:
	default:
		return store.Score{}, Errorf(Conflict, "not_interviewed", "candidate %d is %s: score after the interview has started", cand.ID, cand.Stage)
	}
	if err := p.requireInterviewer(ctx, a, cand); err != nil {
		return store.Score{}, err
	}
	var sc store.Score
	err = p.Update(ctx, func(ctx context.Context, tx *store.Tx) error {
		if old, err := tx.Score(ctx, cand.ID); err == nil && !old.PublishedAt.IsZero() && !a.IsAdmin() {
			return Errorf(Conflict, "published", "the score is published; only an admin may change it")
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		var err error
		sc, err = tx.SaveScore(ctx, store.Score{CandidateID: cand.ID, ExaminerID: a.ID, Score: *score,
			Comment: comment, UpdatedAt: p.now().UTC()})
		if err != nil {
			return err
		}
		return tx.Audit(ctx, a.ID, "score.save", "candidate:"+strconv.FormatInt(cand.ID, 10), map[string]any{"score": sc.Score})
	})
	if err != nil {
		return store.Score{}, err
	}
	return sc, nil
}

// PublishScore shows candidate candidateID their score; the same people
// who may enter it may publish it.
func (p *Plane) PublishScore(ctx context.Context, a Actor, candidateID int64) (store.Score, error) {
	cand, err := p.Candidate(ctx, a, candidateID)
	if err != nil {
		return store.Score{}, err
	}
	if err := p.requireInterviewer(ctx, a, cand); err != nil {
		return store.Score{}, err
	}
	var sc store.Score
	err = p.Update(ctx, func(ctx context.Context, tx *store.Tx) error {
		var err error
		if sc, err = tx.PublishScore(ctx, cand.ID, p.now().UTC()); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return Errorf(Conflict, "no_score", "enter a score for candidate %d before publishing it", cand.ID)
			}
			return err
		}
		if _, err := tx.AppendEvent(ctx, cand.ExamID, contract.EventScorePublished, cand.ID, map[string]any{
			"score": sc.Score, "comment": sc.Comment, "name": cand.Name}); err != nil {
			return err
		}
		return tx.Audit(ctx, a.ID, "score.publish", "candidate:"+strconv.FormatInt(cand.ID, 10), nil)
	})
	if err != nil {
		return store.Score{}, err
	}
	return sc, nil
}

// Score is candidate candidateID's score, for anyone on their exam's staff.
func (p *Plane) Score(ctx context.Context, a Actor, candidateID int64) (store.Score, error) {
	cand, err := p.Candidate(ctx, a, candidateID)
	if err != nil {
		return store.Score{}, err
	}
	return p.st.Score(ctx, cand.ID)
}

// requireInterviewer: a score is the judgement of the examiner who held
// the candidate's (latest accepted) interview call; an admin may correct
// it. Another examiner on the same exam may read it, not set it.
func (p *Plane) requireInterviewer(ctx context.Context, a Actor, cand store.Candidate) error {
	if a.IsAdmin() {
		return nil
	}
	held, err := p.st.LastInterviewer(ctx, cand.ID)
	if errors.Is(err, store.ErrNotFound) {
		return Errorf(Forbidden, "not_your_interview", "nobody has interviewed candidate %d yet: only their examiner, or an admin, scores them", cand.ID)
	}
	if err != nil {
		return err
	}
	if held != a.ID {
		return Errorf(Forbidden, "not_your_interview", "another examiner interviewed candidate %d: only they, or an admin, score them", cand.ID)
	}
	return nil
}
