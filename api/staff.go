package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"invigil/store"
)

// Staff belong to exams. An assistant, examiner or proctor acts only on
// the exams an admin assigned them to; admins act on every exam.
//
// The answers differ by what the path names:
//   - an exam the caller is not on: 403 not_exam_staff. That an exam exists
//     is no secret among staff, and the refusal tells a forgotten assignee
//     what to ask the admin for.
//   - a candidate, call or violation of such an exam: 404 not_found, the
//     very answer a missing ID gets. These are people and what happened to
//     them; a caller off the exam learns not even that they exist.

func isAdmin(p *principal) bool {
	return p != nil && !p.isCandidate() && p.user.Role == store.RoleAdmin
}

func notExamStaff(examID int64) error {
	return errorf(http.StatusForbidden, "not_exam_staff",
		"you are not on the staff of exam %d; an admin assigns staff to exams (PUT /api/v1/exams/%d/staff)", examID, examID)
}

// onExamStaff reports whether p may act on exam examID.
func (c *control) onExamStaff(ctx context.Context, p *principal, examID int64) (bool, error) {
	if p == nil || p.isCandidate() {
		return false, nil
	}
	if isAdmin(p) {
		return true, nil
	}
	return c.st.IsExamStaff(ctx, examID, p.user.ID)
}

// requireExam: p is on the staff of examID, or 403.
func (c *control) requireExam(ctx context.Context, p *principal, examID int64) error {
	ok, err := c.onExamStaff(ctx, p, examID)
	if err != nil {
		return err
	}
	if !ok {
		return notExamStaff(examID)
	}
	return nil
}

// hideUnlessStaff: p is on the staff of examID, which what (a candidate,
// call or violation with that id) belongs to; else the same 404 as for an
// id that does not exist.
func (c *control) hideUnlessStaff(ctx context.Context, p *principal, examID int64, what string, id int64) error {
	ok, err := c.onExamStaff(ctx, p, examID)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s %d: %w", what, id, store.ErrNotFound)
	}
	return nil
}

// The loaders of the rows a path names, for a caller who must be on the
// row's exam.

func (c *control) examFor(r *http.Request, p *principal) (store.Exam, error) {
	e, err := c.examFromPath(r)
	if err != nil {
		return e, err
	}
	return e, c.requireExam(r.Context(), p, e.ID)
}

func (c *control) candidateFor(r *http.Request, p *principal) (store.Candidate, error) {
	cand, err := c.candidateFromPath(r)
	if err != nil {
		return cand, err
	}
	return cand, c.hideUnlessStaff(r.Context(), p, cand.ExamID, "candidate", cand.ID)
}

func (c *control) callFor(r *http.Request, p *principal) (store.Call, error) {
	call, err := c.callFromPath(r)
	if err != nil {
		return call, err
	}
	return call, c.hideUnlessStaff(r.Context(), p, call.ExamID, "call", call.ID)
}

func (c *control) violationFor(r *http.Request, p *principal) (store.Violation, error) {
	v, err := c.violationFromPath(r)
	if err != nil {
		return v, err
	}
	return v, c.hideUnlessStaff(r.Context(), p, v.ExamID, "violation", v.ID)
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

func (c *control) examStaffAnswer(ctx context.Context, examID int64) (examStaffAnswer, error) {
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

func (c *control) getExamStaff(w http.ResponseWriter, r *http.Request, _ *principal) error {
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

func (c *control) setExamStaff(w http.ResponseWriter, r *http.Request, p *principal) error {
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
	err = c.update(r.Context(), func(ctx context.Context, tx *store.Tx) error {
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
	c.nudge(e.ID, 0)
	out, err := c.examStaffAnswer(r.Context(), e.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
