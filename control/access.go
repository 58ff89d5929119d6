package control

import (
	"context"
	"fmt"
	"slices"

	"invigil/store"
)

// Actor is the staff member an operation is done by (candidates act
// through the operations that take their own store.Candidate).
type Actor struct {
	ID       int64
	Username string
	Role     string
}

// StaffActor is the actor of a logged-in staff user.
func StaffActor(u store.User) Actor { return Actor{ID: u.ID, Username: u.Username, Role: u.Role} }

// IsAdmin reports whether the actor is an admin, who acts on every exam.
func (a Actor) IsAdmin() bool { return a.Role == store.RoleAdmin }

// Staff belong to exams. An assistant, examiner or proctor acts only on
// the exams an admin assigned them to; admins act on every exam.
//
// The answers differ by what is named:
//   - an exam the actor is not on: Forbidden not_exam_staff. That an exam
//     exists is no secret among staff, and the refusal tells a forgotten
//     assignee what to ask the admin for.
//   - a candidate, call or violation of such an exam: store.ErrNotFound,
//     the very answer a missing ID gets. These are people and what
//     happened to them; an actor off the exam learns not even that they
//     exist.

// OnExamStaff reports whether a may act on exam examID.
func (p *Plane) OnExamStaff(ctx context.Context, a Actor, examID int64) (bool, error) {
	if a.IsAdmin() {
		return true, nil
	}
	if a.ID == 0 {
		return false, nil
	}
	return p.st.IsExamStaff(ctx, examID, a.ID)
}

func notExamStaff(examID int64) *Error {
	return Errorf(Forbidden, "not_exam_staff",
		"you are not on the staff of exam %d; an admin assigns staff to exams (PUT /api/v1/exams/%d/staff)", examID, examID)
}

// RequireExam: a is on the staff of examID, or Forbidden not_exam_staff.
func (p *Plane) RequireExam(ctx context.Context, a Actor, examID int64) error {
	ok, err := p.OnExamStaff(ctx, a, examID)
	if err != nil {
		return err
	}
	if !ok {
		return notExamStaff(examID)
	}
	return nil
}

// hideUnlessStaff: a is on the staff of examID, which what (a candidate,
// call or violation with that id) belongs to; else the same
// store.ErrNotFound as for an id that does not exist.
func (p *Plane) hideUnlessStaff(ctx context.Context, a Actor, examID int64, what string, id int64) error {
	ok, err := p.OnExamStaff(ctx, a, examID)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s %d: %w", what, id, store.ErrNotFound)
	}
	return nil
}

// Exams are the exams a may see: every exam for an admin, else those a
// is on the staff of.
func (p *Plane) Exams(ctx context.Context, a Actor) ([]store.Exam, error) {
	exams, err := p.st.ListExams(ctx)
	if err != nil || a.IsAdmin() {
		return exams, err
	}
	mine, err := p.st.StaffExamIDs(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(exams, func(e store.Exam) bool { return !slices.Contains(mine, e.ID) }), nil
}

// The loaders of rows for an actor who must be on the row's exam.

// Exam is exam id for a, who must be on its staff.
func (p *Plane) Exam(ctx context.Context, a Actor, id int64) (store.Exam, error) {
	e, err := p.st.Exam(ctx, id)
	if err != nil {
		return e, err
	}
	return e, p.RequireExam(ctx, a, e.ID)
}

// Candidate is candidate id for a, who must be on the staff of their exam.
func (p *Plane) Candidate(ctx context.Context, a Actor, id int64) (store.Candidate, error) {
	cand, err := p.st.Candidate(ctx, id)
	if err != nil {
		return cand, err
	}
	return cand, p.hideUnlessStaff(ctx, a, cand.ExamID, "candidate", cand.ID)
}

// Call is call id for a, who must be on the staff of its exam.
func (p *Plane) Call(ctx context.Context, a Actor, id int64) (store.Call, error) {
	call, err := p.st.Call(ctx, id)
	if err != nil {
		return call, err
	}
	return call, p.hideUnlessStaff(ctx, a, call.ExamID, "call", call.ID)
}

// Violation is violation id for a, who must be on the staff of its exam.
func (p *Plane) Violation(ctx context.Context, a Actor, id int64) (store.Violation, error) {
	v, err := p.st.Violation(ctx, id)
	if err != nil {
		return v, err
	}
	return v, p.hideUnlessStaff(ctx, a, v.ExamID, "violation", v.ID)
}
