package store

import (
	"context"
	"fmt"
	"time"
)

// AppendEvent adds an event to an exam's log as part of this transaction.
// Its Seq is the exam's last plus one: the transaction holds the write
// lock (SQLite's, or on PostgreSQL the writer lock that every node's write
// transactions take), so no other writer can take the same number, and a
// rollback takes the number back with the change. data is encoded as JSON ({} for nil).
// Store.Update returns the event once the transaction has committed.
func (tx *Tx) AppendEvent(ctx context.Context, examID int64, typ string, candidateID int64, data any) (Event, error) {
	if typ == "" {
		return Event{}, fmt.Errorf("exam %d: append event: empty type", examID)
	}
	payload, err := encodeJSON(data)
	if err != nil {
		return Event{}, fmt.Errorf("exam %d: append %s event: data: %w", examID, typ, err)
	}
	if payload == "" {
		payload = "{}"
	}
	e := Event{ExamID: examID, Type: typ, At: time.Now().UTC(), CandidateID: candidateID, Data: []byte(payload)}
	err = tx.db.QueryRowContext(ctx, `INSERT INTO events (exam_id, seq, type, at, candidate_id, data)
		VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE exam_id = ?1), ?2, ?3, ?4, ?5)
		RETURNING seq`, examID, typ, dbTime(e.At), nullID(candidateID), payload).Scan(&e.Seq)
	if isForeignKey(err) {
		return Event{}, fmt.Errorf("append %s event: exam %d or candidate %d: %w", typ, examID, candidateID, ErrNotFound)
	}
	if err != nil {
		return Event{}, fmt.Errorf("exam %d: append %s event: %w", examID, typ, err)
	}
	tx.events = append(tx.events, e)
	return e, nil
}

// EventsSince returns an exam's events after seq after, oldest first, at
// most limit of them (1000 when limit is 0).
func (q queries) EventsSince(ctx context.Context, examID, after int64, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := q.db.QueryContext(ctx, `SELECT exam_id, seq, type, at, candidate_id, data FROM events
		WHERE exam_id = ? AND seq > ? ORDER BY seq LIMIT ?`, examID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("events of exam %d after %d: %w", examID, after, err)
	}
	defer rows.Close()
	events := []Event{}
	for rows.Next() {
		var e Event
		if err := rows.Scan(&e.ExamID, &e.Seq, &e.Type, timeCol{&e.At}, idCol{&e.CandidateID}, jsonCol{&e.Data}); err != nil {
			return nil, fmt.Errorf("events of exam %d after %d: %w", examID, after, err)
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events of exam %d after %d: %w", examID, after, err)
	}
	return events, nil
}

// LastSeq returns the seq of an exam's newest event, 0 when it has none.
func (q queries) LastSeq(ctx context.Context, examID int64) (int64, error) {
	var seq int64
	if err := q.db.QueryRowContext(ctx, "SELECT COALESCE(MAX(seq), 0) FROM events WHERE exam_id = ?", examID).Scan(&seq); err != nil {
		return 0, fmt.Errorf("last event of exam %d: %w", examID, err)
	}
	return seq, nil
}
