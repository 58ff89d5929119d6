package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

var (
	callKinds  = []string{CallDeviceCheck, CallInterview, CallSpotCheck}
	callStates = []string{CallRinging, CallActive, CallEnded, CallDeclined}
)

func oneOf(what, v string, allowed []string) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	return fmt.Errorf("unknown %s %q (want one of %v)", what, v, allowed)
}

// callSelect reads calls with the staff member's name.
const callSelect = `SELECT c.id, c.exam_id, c.candidate_id, c.staff_id, COALESCE(u.username, ''), c.kind, c.state,
	c.outcome, c.created_at, c.accepted_at, c.ended_at
	FROM calls c LEFT JOIN users u ON u.id = c.staff_id `

func scanCall(row scanner) (Call, error) {
	var c Call
	err := row.Scan(&c.ID, &c.ExamID, &c.CandidateID, &c.StaffID, &c.StaffName, &c.Kind, &c.State, &c.Outcome,
		timeCol{&c.CreatedAt}, timeCol{&c.AcceptedAt}, timeCol{&c.EndedAt})
	return c, err
}

func (q queries) listCalls(ctx context.Context, what, where string, args ...any) ([]Call, error) {
	rows, err := q.db.QueryContext(ctx, callSelect+where, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	calls := []Call{}
	for rows.Next() {
		c, err := scanCall(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		calls = append(calls, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return calls, nil
}

// Call returns the call with that id.
func (q queries) Call(ctx context.Context, id int64) (Call, error) {
	c, err := scanCall(q.db.QueryRowContext(ctx, callSelect+"WHERE c.id = ?", id))
	if err != nil {
		return Call{}, notFound(err, "call %d", id)
	}
	return c, nil
}

// CurrentCall returns the candidate's newest ringing or active call, or
// ErrNotFound when there is none.
func (q queries) CurrentCall(ctx context.Context, candidateID int64) (Call, error) {
	c, err := scanCall(q.db.QueryRowContext(ctx, callSelect+`WHERE c.candidate_id = ? AND c.state IN (?, ?)
		ORDER BY c.id DESC LIMIT 1`, candidateID, CallRinging, CallActive))
	if err != nil {
		return Call{}, notFound(err, "current call of candidate %d", candidateID)
	}
	return c, nil
}

// ListCalls returns the calls of an exam in one state ("" for all), by id.
func (q queries) ListCalls(ctx context.Context, examID int64, state string) ([]Call, error) {
	what := fmt.Sprintf("list calls of exam %d", examID)
	if state == "" {
		return q.listCalls(ctx, what, "WHERE c.exam_id = ? ORDER BY c.id", examID)
	}
	if err := oneOf("call state", state, callStates); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return q.listCalls(ctx, what, "WHERE c.exam_id = ? AND c.state = ? ORDER BY c.id", examID, state)
}

// examOf returns the exam of a candidate, and checks that it is examID
// when that is set; callers leave ExamID 0 to have it filled in.
func (q queries) examOf(ctx context.Context, candidateID, examID int64) (int64, error) {
	var exam int64
	if err := q.db.QueryRowContext(ctx, "SELECT exam_id FROM candidates WHERE id = ?", candidateID).Scan(&exam); err != nil {
		return 0, notFound(err, "candidate %d", candidateID)
	}
	if examID != 0 && examID != exam {
		return 0, fmt.Errorf("candidate %d is in exam %d, not %d", candidateID, exam, examID)
	}
	return exam, nil
}

// CreateCall stores a new call and returns it with its id and staff name.
// ExamID may be 0 (taken from the candidate); State defaults to ringing and
// CreatedAt to now.
func (q queries) CreateCall(ctx context.Context, c Call) (Call, error) {
	if c.State == "" {
		c.State = CallRinging
	}
	if err := oneOf("call kind", c.Kind, callKinds); err != nil {
		return Call{}, fmt.Errorf("create call: %w", err)
	}
	if err := oneOf("call state", c.State, callStates); err != nil {
		return Call{}, fmt.Errorf("create call: %w", err)
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now()
	}
	exam, err := q.examOf(ctx, c.CandidateID, c.ExamID)
	if err != nil {
		return Call{}, fmt.Errorf("create call: %w", err)
	}
	var id int64
	err = q.db.QueryRowContext(ctx, `INSERT INTO calls
		(exam_id, candidate_id, staff_id, kind, state, outcome, created_at, accepted_at, ended_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		exam, c.CandidateID, c.StaffID, c.Kind, c.State, c.Outcome,
		dbTime(c.CreatedAt), dbTime(c.AcceptedAt), dbTime(c.EndedAt)).Scan(&id)
	if isForeignKey(err) {
		return Call{}, fmt.Errorf("create call: candidate %d or staff user %d: %w", c.CandidateID, c.StaffID, ErrNotFound)
	}
	if err != nil {
		return Call{}, fmt.Errorf("create call: %w", err)
	}
	return q.Call(ctx, id)
}

// UpdateCall stores a call's state, outcome, accepted_at and ended_at.
func (q queries) UpdateCall(ctx context.Context, c Call) error {
	if err := oneOf("call state", c.State, callStates); err != nil {
		return fmt.Errorf("update call %d: %w", c.ID, err)
	}
	res, err := q.db.ExecContext(ctx, "UPDATE calls SET state = ?, outcome = ?, accepted_at = ?, ended_at = ? WHERE id = ?",
		c.State, c.Outcome, dbTime(c.AcceptedAt), dbTime(c.EndedAt), c.ID)
	if err != nil {
		return fmt.Errorf("update call %d: %w", c.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update call %d: %w", c.ID, err)
	} else if n == 0 {
		return fmt.Errorf("call %d: %w", c.ID, ErrNotFound)
	}
	return nil
}

const scoreColumns = "candidate_id, examiner_id, score, comment, updated_at, published_at"

func scanScore(row scanner) (Score, error) {
	var s Score
	err := row.Scan(&s.CandidateID, idCol{&s.ExaminerID}, &s.Score, &s.Comment, timeCol{&s.UpdatedAt}, timeCol{&s.PublishedAt})
	return s, err
}

// Score returns a candidate's score.
func (q queries) Score(ctx context.Context, candidateID int64) (Score, error) {
	s, err := scanScore(q.db.QueryRowContext(ctx, "SELECT "+scoreColumns+" FROM scores WHERE candidate_id = ?", candidateID))
	if err != nil {
		return Score{}, notFound(err, "score of candidate %d", candidateID)
	}
	return s, nil
}

// SaveScore stores a candidate's score (0 to 100), replacing an earlier one
// but keeping when it was published. UpdatedAt defaults to now.
func (q queries) SaveScore(ctx context.Context, sc Score) (Score, error) {
	if math.IsNaN(sc.Score) || sc.Score < 0 || sc.Score > 100 {
		return Score{}, fmt.Errorf("score of candidate %d: %v is not between 0 and 100", sc.CandidateID, sc.Score)
	}
	if sc.UpdatedAt.IsZero() {
		sc.UpdatedAt = time.Now()
	}
	saved, err := scanScore(q.db.QueryRowContext(ctx, `INSERT INTO scores (candidate_id, examiner_id, score, comment, updated_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (candidate_id) DO UPDATE SET examiner_id = excluded.examiner_id, score = excluded.score,
			comment = excluded.comment, updated_at = excluded.updated_at
		RETURNING `+scoreColumns,
		sc.CandidateID, nullID(sc.ExaminerID), sc.Score, sc.Comment, dbTime(sc.UpdatedAt)))
	if isForeignKey(err) {
		return Score{}, fmt.Errorf("score of candidate %d: candidate or examiner %d: %w", sc.CandidateID, sc.ExaminerID, ErrNotFound)
	}
	if err != nil {
		return Score{}, fmt.Errorf("save score of candidate %d: %w", sc.CandidateID, err)
	}
	return saved, nil
}

// PublishScore makes a candidate's score visible to the candidate from at
// (now when zero); ErrNotFound when there is no score yet.
func (q queries) PublishScore(ctx context.Context, candidateID int64, at time.Time) (Score, error) {
	if at.IsZero() {
		at = time.Now()
	}
	s, err := scanScore(q.db.QueryRowContext(ctx, "UPDATE scores SET published_at = ? WHERE candidate_id = ? RETURNING "+scoreColumns,
		dbTime(at), candidateID))
	if errors.Is(err, sql.ErrNoRows) {
		return Score{}, fmt.Errorf("score of candidate %d: %w", candidateID, ErrNotFound)
	}
	if err != nil {
		return Score{}, fmt.Errorf("publish score of candidate %d: %w", candidateID, err)
	}
	return s, nil
}
