package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

var (
	violationStatuses = []string{StatusPending, StatusConfirmed, StatusDismissed}
	reviewDecisions   = []string{StatusConfirmed, StatusDismissed}
)

// queryViolations reads the violations that match where (on alias v), in
// order of onset, together with their reviews. One statement reads both, so
// a violation's status and its reviews always agree.
func (q queries) queryViolations(ctx context.Context, where string, args []any, limit int) ([]Violation, error) {
	inner := "SELECT v.* FROM violations v " + where + " ORDER BY v.started_at, v.id"
	if limit > 0 {
		inner += " LIMIT ?"
		args = append(args, limit)
	}
	rows, err := q.db.QueryContext(ctx, `SELECT v.id, v.key, v.exam_id, v.candidate_id, v.type, v.policy, v.reason,
			v.confidence, v.started_at, v.opened_at, v.ended_at, v.details, v.evidence_path, v.clip_path, v.recording_path,
			v.recording_offset_ms, v.status, v.recording_node, v.evidence_node,
			r.id, r.reviewer_id, COALESCE(u.username, ''), r.decision, r.note, r.at
		FROM (`+inner+`) v
		LEFT JOIN reviews r ON r.violation_id = v.id
		LEFT JOIN users u ON u.id = r.reviewer_id
		ORDER BY v.started_at, v.id, r.id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []Violation{}
	for rows.Next() {
		var v Violation
		var reviewID, reviewerID sql.NullInt64
		var decision, note sql.NullString
		var r Review
		if err := rows.Scan(&v.ID, &v.Key, &v.ExamID, &v.CandidateID, &v.Type, &v.Policy, &v.Reason,
			&v.Confidence, timeCol{&v.StartedAt}, timeCol{&v.OpenedAt}, timeCol{&v.EndedAt}, jsonCol{&v.Details},
			&v.EvidencePath, &v.ClipPath, &v.RecordingPath, &v.RecordingOffsetMS, &v.Status,
			&v.RecordingNode, &v.EvidenceNode, &reviewID, &reviewerID, &r.Reviewer, &decision, &note, timeCol{&r.At}); err != nil {
			return nil, err
		}
		if len(list) == 0 || list[len(list)-1].ID != v.ID {
			v.Reviews = []Review{}
			list = append(list, v)
		}
		if reviewID.Valid {
			r.ID, r.ViolationID, r.ReviewerID = reviewID.Int64, v.ID, reviewerID.Int64
			r.Decision, r.Note = decision.String, note.String
			last := &list[len(list)-1]
			last.Reviews = append(last.Reviews, r)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return list, nil
}

func (q queries) oneViolation(ctx context.Context, where string, args ...any) (Violation, error) {
	list, err := q.queryViolations(ctx, where, args, 0)
	if err != nil {
		return Violation{}, err
	}
	if len(list) == 0 {
		return Violation{}, sql.ErrNoRows
	}
	return list[0], nil
}

// Violation returns the violation with that id, with its reviews.
func (q queries) Violation(ctx context.Context, id int64) (Violation, error) {
	v, err := q.oneViolation(ctx, "WHERE v.id = ?", id)
	if err != nil {
		return Violation{}, notFound(err, "violation %d", id)
	}
	return v, nil
}

// ViolationByKey returns the violation with the pipeline's key.
func (q queries) ViolationByKey(ctx context.Context, key string) (Violation, error) {
	v, err := q.oneViolation(ctx, "WHERE v.key = ?", key)
	if err != nil {
		return Violation{}, notFound(err, "violation %q", key)
	}
	return v, nil
}

// ListViolations returns the violations that match f, ordered by onset,
// with their reviews. From is inclusive and To exclusive, on StartedAt; an
// ExamID of 0 means all exams.
func (q queries) ListViolations(ctx context.Context, f ViolationFilter) ([]Violation, error) {
	var conds []string
	var args []any
	add := func(cond string, arg any) {
		conds = append(conds, cond)
		args = append(args, arg)
	}
	if f.ExamID != 0 {
		add("v.exam_id = ?", f.ExamID)
	}
	if f.CandidateID != 0 {
		add("v.candidate_id = ?", f.CandidateID)
	}
	if f.Type != "" {
		add("v.type = ?", f.Type)
	}
	if f.Status != "" {
		if err := oneOf("violation status", f.Status, violationStatuses); err != nil {
			return nil, fmt.Errorf("list violations: %w", err)
		}
		add("v.status = ?", f.Status)
	}
	if !f.From.IsZero() {
		add("v.started_at >= ?", dbTime(f.From))
	}
	if !f.To.IsZero() {
		add("v.started_at < ?", dbTime(f.To))
	}
	where := ""
	if len(conds) > 0 {
		where = "WHERE " + strings.Join(conds, " AND ")
	}
	list, err := q.queryViolations(ctx, where, args, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list violations of exam %d: %w", f.ExamID, err)
	}
	return list, nil
}

// PendingViolations counts the violations awaiting review per candidate of
// an exam; candidates with none are absent.
func (q queries) PendingViolations(ctx context.Context, examID int64) (map[int64]int, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT candidate_id, COUNT(*) FROM violations
		WHERE exam_id = ? AND status = 'pending' GROUP BY candidate_id`, examID)
	if err != nil {
		return nil, fmt.Errorf("pending violations of exam %d: %w", examID, err)
	}
	defer rows.Close()
	counts := map[int64]int{}
	for rows.Next() {
		var id int64
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("pending violations of exam %d: %w", examID, err)
		}
		counts[id] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pending violations of exam %d: %w", examID, err)
	}
	return counts, nil
}

// InsertViolation stores a violation the pipeline opened, as pending. The
// key makes it idempotent: a key already stored returns that violation and
// false, so a retried write never makes a second alert. ExamID may be 0
// (taken from the candidate); OpenedAt defaults to now and StartedAt to
// OpenedAt.
func (q queries) InsertViolation(ctx context.Context, v Violation) (Violation, bool, error) {
	if v.Key == "" {
		return Violation{}, false, errors.New("insert violation: empty key")
	}
	if v.Type == "" {
		return Violation{}, false, fmt.Errorf("insert violation %q: empty type", v.Key)
	}
	if math.IsNaN(v.Confidence) || math.IsInf(v.Confidence, 0) {
		return Violation{}, false, fmt.Errorf("insert violation %q: confidence %v is not a number", v.Key, v.Confidence)
	}
	if len(v.Details) > 0 && !json.Valid(v.Details) {
		return Violation{}, false, fmt.Errorf("insert violation %q: details are not valid JSON", v.Key)
	}
	if v.OpenedAt.IsZero() {
		v.OpenedAt = time.Now()
	}
	if v.StartedAt.IsZero() {
		v.StartedAt = v.OpenedAt
	}
	var out Violation
	created := false
	err := q.atomic(ctx, func(q queries) error {
		existing, err := q.ViolationByKey(ctx, v.Key)
		if err == nil {
			out = existing
			return nil
		}
		if !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("insert violation: %w", err)
		}
		exam, err := q.examOf(ctx, v.CandidateID, v.ExamID)
		if err != nil {
			return fmt.Errorf("insert violation %q: %w", v.Key, err)
		}
		var id int64
		err = q.db.QueryRowContext(ctx, `INSERT INTO violations (key, exam_id, candidate_id, type, policy, reason,
				confidence, started_at, opened_at, ended_at, details, evidence_path, clip_path, recording_path,
				recording_offset_ms, status, recording_node, evidence_node)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			v.Key, exam, v.CandidateID, v.Type, v.Policy, v.Reason, v.Confidence,
			dbTime(v.StartedAt), dbTime(v.OpenedAt), dbTime(v.EndedAt), jsonText(v.Details),
			v.EvidencePath, v.ClipPath, v.RecordingPath, v.RecordingOffsetMS, StatusPending,
			v.RecordingNode, v.EvidenceNode).Scan(&id)
		if err != nil {
			return fmt.Errorf("insert violation %q: %w", v.Key, err)
		}
		if out, err = q.Violation(ctx, id); err != nil {
			return err
		}
		created = true
		return nil
	})
	if err != nil {
		return Violation{}, false, err
	}
	return out, created, nil
}

// EndViolation records when a violation's condition ended (now when
// endedAt is zero). The first end stands: ending it again changes nothing.
func (q queries) EndViolation(ctx context.Context, key string, endedAt time.Time) (Violation, error) {
	if endedAt.IsZero() {
		endedAt = time.Now()
	}
	var out Violation
	err := q.atomic(ctx, func(q queries) error {
		v, err := q.ViolationByKey(ctx, key)
		if err != nil {
			return err
		}
		if !v.EndedAt.IsZero() {
			out = v
			return nil
		}
		if endedAt.Before(v.StartedAt) {
			return fmt.Errorf("end violation %q: end %s is before its start %s", key,
				endedAt.UTC().Format(time.RFC3339Nano), v.StartedAt.Format(time.RFC3339Nano))
		}
		if _, err := q.db.ExecContext(ctx, "UPDATE violations SET ended_at = ? WHERE id = ?", dbTime(endedAt), v.ID); err != nil {
			return fmt.Errorf("end violation %q: %w", key, err)
		}
		out, err = q.Violation(ctx, v.ID)
		return err
	})
	if err != nil {
		return Violation{}, err
	}
	return out, nil
}

// AddReview records a proctor's decision on a violation, sets the
// violation's status to it, and returns the violation with all its
// reviews. At defaults to now.
func (q queries) AddReview(ctx context.Context, r Review) (Violation, error) {
	if err := oneOf("review decision", r.Decision, reviewDecisions); err != nil {
		return Violation{}, fmt.Errorf("review violation %d: %w", r.ViolationID, err)
	}
	if r.At.IsZero() {
		r.At = time.Now()
	}
	var out Violation
	err := q.atomic(ctx, func(q queries) error {
		res, err := q.db.ExecContext(ctx, "UPDATE violations SET status = ? WHERE id = ?", r.Decision, r.ViolationID)
		if err != nil {
			return fmt.Errorf("review violation %d: %w", r.ViolationID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("review violation %d: %w", r.ViolationID, err)
		} else if n == 0 {
			return fmt.Errorf("violation %d: %w", r.ViolationID, ErrNotFound)
		}
		_, err = q.db.ExecContext(ctx, "INSERT INTO reviews (violation_id, reviewer_id, decision, note, at) VALUES (?, ?, ?, ?, ?)",
			r.ViolationID, r.ReviewerID, r.Decision, r.Note, dbTime(r.At))
		if isForeignKey(err) {
			return fmt.Errorf("review violation %d: reviewer %d: %w", r.ViolationID, r.ReviewerID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("review violation %d: %w", r.ViolationID, err)
		}
		out, err = q.Violation(ctx, r.ViolationID)
		return err
	})
	if err != nil {
		return Violation{}, err
	}
	return out, nil
}

const recordingColumns = "id, exam_id, candidate_id, session_id, path, started_at"

func scanRecording(row scanner) (Recording, error) {
	var r Recording
	err := row.Scan(&r.ID, &r.ExamID, &r.CandidateID, &r.SessionID, &r.Path, timeCol{&r.StartedAt})
	return r, err
}

// Recording returns the recording segment with that id.
func (q queries) Recording(ctx context.Context, id int64) (Recording, error) {
	r, err := scanRecording(q.db.QueryRowContext(ctx, "SELECT "+recordingColumns+" FROM recordings WHERE id = ?", id))
	if err != nil {
		return Recording{}, notFound(err, "recording %d", id)
	}
	return r, nil
}

// RecordingByPath returns the recording segment stored at path.
func (q queries) RecordingByPath(ctx context.Context, path string) (Recording, error) {
	r, err := scanRecording(q.db.QueryRowContext(ctx, "SELECT "+recordingColumns+" FROM recordings WHERE path = ?", path))
	if err != nil {
		return Recording{}, notFound(err, "recording %q", path)
	}
	return r, nil
}

// AddRecording stores a recording segment. The path makes it idempotent: a
// path already stored returns that row, unless it belongs to another
// candidate (ErrConflict). ExamID may be 0 (taken from the candidate);
// StartedAt defaults to now.
func (q queries) AddRecording(ctx context.Context, r Recording) (Recording, error) {
	if r.Path == "" {
		return Recording{}, errors.New("add recording: empty path")
	}
	if r.StartedAt.IsZero() {
		r.StartedAt = time.Now()
	}
	var out Recording
	err := q.atomic(ctx, func(q queries) error {
		existing, err := q.RecordingByPath(ctx, r.Path)
		if err == nil {
			if existing.CandidateID != r.CandidateID {
				return fmt.Errorf("recording %q belongs to candidate %d, not %d: %w",
					r.Path, existing.CandidateID, r.CandidateID, ErrConflict)
			}
			out = existing
			return nil
		}
		if !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("add recording: %w", err)
		}
		exam, err := q.examOf(ctx, r.CandidateID, r.ExamID)
		if err != nil {
			return fmt.Errorf("add recording %q: %w", r.Path, err)
		}
		out, err = scanRecording(q.db.QueryRowContext(ctx, `INSERT INTO recordings
			(exam_id, candidate_id, session_id, path, started_at) VALUES (?, ?, ?, ?, ?) RETURNING `+recordingColumns,
			exam, r.CandidateID, r.SessionID, r.Path, dbTime(r.StartedAt)))
		if err != nil {
			return fmt.Errorf("add recording %q: %w", r.Path, err)
		}
		return nil
	})
	if err != nil {
		return Recording{}, err
	}
	return out, nil
}
