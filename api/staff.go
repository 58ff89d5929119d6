package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"

	"invigil/control"
	"invigil/store"
)

// Who may act on which exam is the control plane's rule (control.Plane's
// access checks); these load the rows a path names for the caller.

// actor is the staff member p, for the control plane; a candidate is the
// zero Actor, who is on no exam's staff.
func (p *principal) actor() control.Actor {
	if p == nil || p.isCandidate() {
		return control.Actor{}
	}
	return control.StaffActor(p.user)
}

// onExamStaff reports whether p may act on exam examID.
func (c *handlers) onExamStaff(ctx context.Context, p *principal, examID int64) (bool, error) {
	return c.plane.OnExamStaff(ctx, p.actor(), examID)
}

func (c *handlers) examFor(r *http.Request, p *principal) (store.Exam, error) {
	id, err := pathID(r, "exam")
	if err != nil {
		return store.Exam{}, err
	}
	return c.plane.Exam(r.Context(), p.actor(), id)
}

func (c *handlers) candidateFor(r *http.Request, p *principal) (store.Candidate, error) {
	id, err := pathID(r, "candidate")
	if err != nil {
		return store.Candidate{}, err
	}
	return c.plane.Candidate(r.Context(), p.actor(), id)
}

func (c *handlers) violationFor(r *http.Request, p *principal) (store.Violation, error) {
	id, err := pathID(r, "violation")
	if err != nil {
		return store.Violation{}, err
	}
	return c.plane.Violation(r.Context(), p.actor(), id)
}

// --- GET/PUT /exams/{exam}/staff ---

type examStaffRequest struct {
	// UserIDs replaces the exam's staff; [] clears it.
	UserIDs []int64 `json:"user_ids"`
}

type examStaffAnswer struct {
	UserIDs []int64    `json:"user_ids"`
	Users   []userView `json:"users"`
}

// maxExamStaff bounds one assignment (a large interview day has dozens).
const maxExamStaff = 1000

func (c *handlers) examStaffAnswer(ctx context.Context, examID int64) (examStaffAnswer, error) {
	users, err := c.st.ExamStaff(ctx, examID)
	if err != nil {
		return examStaffAnswer{}, err
	}
	out := examStaffAnswer{UserIDs: []int64{}, Users: []userView{}}
	for _, u := range users {
		out.UserIDs = append(out.UserIDs, u.ID)
		out.Users = append(out.Users, viewUser(u))
	}
	return out, nil
}

func (c *handlers) getExamStaff(w http.ResponseWriter, r *http.Request, _ *principal) error {
	e, err := c.examFromPath(r)
	if err != nil {
		return err
	}
	out, err := c.examStaffAnswer(r.Context(), e.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (c *handlers) setExamStaff(w http.ResponseWriter, r *http.Request, p *principal) error {
	e, err := c.examFromPath(r)
	if err != nil {
		return err
	}
	var req examStaffRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.UserIDs == nil {
		return errorf(http.StatusBadRequest, "bad_staff", `the body names the whole staff: {"user_ids": [1, 2, …]} ([] clears it)`)
	}
	ids := slices.Clone(req.UserIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) > maxExamStaff {
		return errorf(http.StatusBadRequest, "bad_staff", "at most %d staff on one exam, got %d", maxExamStaff, len(ids))
	}
	// Checked one by one so the answer names the user that is wrong.
	for _, id := range ids {
		u, err := c.st.UserByID(r.Context(), id)
		if errors.Is(err, store.ErrNotFound) {
			return errorf(http.StatusBadRequest, "unknown_user", "user %d does not exist (see GET /api/v1/users)", id)
		}
		if err != nil {
			return err
		}
		if u.Disabled {
			return errorf(http.StatusBadRequest, "user_disabled", "user %s (%d) is disabled: enable them before assigning them to an exam", u.Username, u.ID)
		}
	}
	err = c.plane.Update(r.Context(), func(ctx context.Context, tx *store.Tx) error {
		if err := tx.SetExamStaff(ctx, e.ID, ids); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				// A user went between the check and the write.
				return errorf(http.StatusBadRequest, "unknown_user", "%v", err)
			}
			return err
		}
		return tx.Audit(ctx, p.user.ID, "exam.staff", "exam:"+strconv.FormatInt(e.ID, 10), map[string]any{"user_ids": ids})
	})
	if err != nil {
		return err
	}
	// Open event streams check again who may watch, so one taken off the
	// exam stops receiving its events now rather than at their next event
	// (on every node).
	c.plane.Nudge(e.ID, 0)
	out, err := c.examStaffAnswer(r.Context(), e.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
