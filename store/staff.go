package store

import (
	"context"
	"fmt"
	"slices"
)

// ExamStaff returns the staff accounts assigned to an exam, by id. An exam
// that does not exist is ErrNotFound.
func (q queries) ExamStaff(ctx context.Context, examID int64) ([]User, error) {
	if err := q.examExists(ctx, examID); err != nil {
		return nil, err
	}
	// userColumns unqualified, so the list follows users.go's scanUser.
	rows, err := q.db.QueryContext(ctx, "SELECT "+userColumns+
		" FROM users WHERE id IN (SELECT user_id FROM exam_staff WHERE exam_id = ?) ORDER BY id", examID)
	if err != nil {
		return nil, fmt.Errorf("staff of exam %d: %w", examID, err)
	}
	defer rows.Close()
	users := []User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("staff of exam %d: %w", examID, err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("staff of exam %d: %w", examID, err)
	}
	return users, nil
}

// SetExamStaff replaces an exam's staff with userIDs (duplicates count
// once), all or nothing. An exam or a user that does not exist is
// ErrNotFound, naming which; whether a user may be assigned (enabled, a
// fitting role) is the caller's rule.
func (q queries) SetExamStaff(ctx context.Context, examID int64, userIDs []int64) error {
	ids := slices.Clone(userIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	return q.atomic(ctx, func(q queries) error {
		if err := q.examExists(ctx, examID); err != nil {
			return err
		}
		if _, err := q.db.ExecContext(ctx, "DELETE FROM exam_staff WHERE exam_id = ?", examID); err != nil {
			return fmt.Errorf("set staff of exam %d: %w", examID, err)
		}
		for _, id := range ids {
			_, err := q.db.ExecContext(ctx, "INSERT INTO exam_staff (exam_id, user_id) VALUES (?, ?)", examID, id)
			if isForeignKey(err) {
				return fmt.Errorf("set staff of exam %d: user %d: %w", examID, id, ErrNotFound)
			}
			if err != nil {
				return fmt.Errorf("set staff of exam %d: user %d: %w", examID, id, err)
			}
		}
		return nil
	})
}

// IsExamStaff reports whether the user is assigned to the exam. It does not
// know about roles: admins see every exam without being assigned, which is
// the caller's rule.
func (q queries) IsExamStaff(ctx context.Context, examID, userID int64) (bool, error) {
	var n int
	if err := q.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM exam_staff WHERE exam_id = ? AND user_id = ?",
		examID, userID).Scan(&n); err != nil {
		return false, fmt.Errorf("is user %d on the staff of exam %d: %w", userID, examID, err)
	}
	return n > 0, nil
}

// StaffExamIDs returns the ids of the exams a user is assigned to, in
// order.
func (q queries) StaffExamIDs(ctx context.Context, userID int64) ([]int64, error) {
	rows, err := q.db.QueryContext(ctx, "SELECT exam_id FROM exam_staff WHERE user_id = ? ORDER BY exam_id", userID)
	if err != nil {
		return nil, fmt.Errorf("exams of user %d: %w", userID, err)
	}
	defer rows.Close()
	ids := []int64{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("exams of user %d: %w", userID, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("exams of user %d: %w", userID, err)
	}
	return ids, nil
}

// LastInterviewer returns the id of the staff member who held the
// candidate's latest accepted interview call (the examiner who interviewed
// them), or ErrNotFound when nobody has interviewed them yet.
func (q queries) LastInterviewer(ctx context.Context, candidateID int64) (int64, error) {
	var id int64
	err := q.db.QueryRowContext(ctx, `SELECT staff_id FROM calls
		WHERE candidate_id = ? AND kind = ? AND accepted_at IS NOT NULL ORDER BY id DESC LIMIT 1`,
		candidateID, CallInterview).Scan(&id)
	if err != nil {
		return 0, notFound(err, "interview call of candidate %d", candidateID)
	}
	return id, nil
}

func (q queries) examExists(ctx context.Context, examID int64) error {
	var one int
	if err := q.db.QueryRowContext(ctx, "SELECT 1 FROM exams WHERE id = ?", examID).Scan(&one); err != nil {
		return notFound(err, "exam %d", examID)
	}
	return nil
}
