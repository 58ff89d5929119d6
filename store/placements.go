package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Placement says which media node an exam's rooms live on.
type Placement struct {
	ExamID   int64
	Node     string
	PlacedAt time.Time
}

// ExamPlacement returns the exam's placement; an exam never placed is
// ErrNotFound.
func (q queries) ExamPlacement(ctx context.Context, examID int64) (Placement, error) {
	p := Placement{ExamID: examID}
	err := q.db.QueryRowContext(ctx, "SELECT node, placed_at FROM exam_placements WHERE exam_id = ?", examID).
		Scan(&p.Node, timeCol{&p.PlacedAt})
	if errors.Is(err, sql.ErrNoRows) {
		return Placement{}, fmt.Errorf("placement of exam %d: %w", examID, ErrNotFound)
	}
	if err != nil {
		return Placement{}, fmt.Errorf("placement of exam %d: %w", examID, err)
	}
	return p, nil
}

// PlaceExam puts the exam on node (replacing an earlier placement). An
// exam that does not exist is ErrNotFound. Choosing the node is the
// caller's rule; run it with the read in one Update so that two control
// nodes cannot place one exam twice.
func (q queries) PlaceExam(ctx context.Context, examID int64, node string, at time.Time) error {
	if node == "" {
		return errors.New("place exam: no node given")
	}
	_, err := q.db.ExecContext(ctx, `INSERT INTO exam_placements (exam_id, node, placed_at) VALUES (?, ?, ?)
		ON CONFLICT (exam_id) DO UPDATE SET node = excluded.node, placed_at = excluded.placed_at`, examID, node, dbTime(at))
	if isForeignKey(err) {
		return fmt.Errorf("place exam %d: %w", examID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("place exam %d on %s: %w", examID, node, err)
	}
	return nil
}

// PlacementsOn counts the exams placed on each node.
func (q queries) PlacementsOn(ctx context.Context) (map[string]int, error) {
	rows, err := q.db.QueryContext(ctx, "SELECT node, COUNT(*) FROM exam_placements GROUP BY node")
	if err != nil {
		return nil, fmt.Errorf("placements by node: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var node string
		var n int
		if err := rows.Scan(&node, &n); err != nil {
			return nil, fmt.Errorf("placements by node: %w", err)
		}
		out[node] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("placements by node: %w", err)
	}
	return out, nil
}
