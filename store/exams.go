package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"invigil/stage"
)

// policyRooms are the rooms a detection policy can be set for (stage.Room).
var policyRooms = []string{"waiting", "interview", "rest_room"}

// maxCodeDraws bounds the redraws when a new code collides with an active
// one; reaching it means the code space is nearly used up.
const maxCodeDraws = 20

const examColumns = "id, name, starts_at, ends_at, early_login_minutes, late_login_minutes, policies, created_at"

func scanExam(row scanner) (Exam, error) {
	var e Exam
	var policies string
	if err := row.Scan(&e.ID, &e.Name, timeCol{&e.StartsAt}, timeCol{&e.EndsAt}, &e.EarlyLoginMinutes,
		&e.LateLoginMinutes, &policies, timeCol{&e.CreatedAt}); err != nil {
		return Exam{}, err
	}
	e.Policies = map[string]json.RawMessage{}
	if err := json.Unmarshal([]byte(policies), &e.Policies); err != nil {
		return Exam{}, fmt.Errorf("exam %d: stored policies: %w", e.ID, err)
	}
	// SQLite's json_set writes an override compactly, PostgreSQL's jsonb
	// with spaces; callers get the same bytes from either.
	for room, raw := range e.Policies {
		var compact bytes.Buffer
		if err := json.Compact(&compact, raw); err != nil {
			return Exam{}, fmt.Errorf("exam %d: stored %s policy: %w", e.ID, room, err)
		}
		e.Policies[room] = compact.Bytes()
	}
	return e, nil
}

// Exam returns the exam with that id.
func (q queries) Exam(ctx context.Context, id int64) (Exam, error) {
	e, err := scanExam(q.db.QueryRowContext(ctx, "SELECT "+examColumns+" FROM exams WHERE id = ?", id))
	if err != nil {
		return Exam{}, notFound(err, "exam %d", id)
	}
	return e, nil
}

// ListExams returns every exam, by id.
func (q queries) ListExams(ctx context.Context) ([]Exam, error) {
	rows, err := q.db.QueryContext(ctx, "SELECT "+examColumns+" FROM exams ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("list exams: %w", err)
	}
	defer rows.Close()
	exams := []Exam{}
	for rows.Next() {
		e, err := scanExam(rows)
		if err != nil {
			return nil, fmt.Errorf("list exams: %w", err)
		}
		exams = append(exams, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list exams: %w", err)
	}
	return exams, nil
}

// policyObject checks that raw is a policy override: a JSON object.
func policyObject(room string, raw json.RawMessage) error {
	if !slices.Contains(policyRooms, room) {
		return fmt.Errorf("unknown room %q (want one of %s)", room, strings.Join(policyRooms, ", "))
	}
	raw = bytes.TrimSpace(raw)
	if !json.Valid(raw) || len(raw) == 0 || raw[0] != '{' {
		return fmt.Errorf("policy for %s is not a JSON object", room)
	}
	return nil
}

// CreateExam adds an exam. EarlyLoginMinutes is stored as given (the
// caller applies the default); CreatedAt defaults to now.
func (q queries) CreateExam(ctx context.Context, e Exam) (Exam, error) {
	if strings.TrimSpace(e.Name) == "" {
		return Exam{}, errors.New("create exam: empty name")
	}
	if e.StartsAt.IsZero() || e.EndsAt.IsZero() {
		return Exam{}, fmt.Errorf("create exam %q: start and end times are required", e.Name)
	}
	if !e.EndsAt.After(e.StartsAt) {
		return Exam{}, fmt.Errorf("create exam %q: ends at %s, not after its start %s",
			e.Name, e.EndsAt.UTC().Format(time.RFC3339), e.StartsAt.UTC().Format(time.RFC3339))
	}
	if e.EarlyLoginMinutes < 0 || e.LateLoginMinutes < 0 {
		return Exam{}, fmt.Errorf("create exam %q: negative early or late login minutes", e.Name)
	}
	if e.Policies == nil {
		e.Policies = map[string]json.RawMessage{}
	}
	for room, raw := range e.Policies {
		if err := policyObject(room, raw); err != nil {
			return Exam{}, fmt.Errorf("create exam %q: %w", e.Name, err)
		}
	}
	policies, err := json.Marshal(e.Policies)
	if err != nil {
		return Exam{}, fmt.Errorf("create exam %q: encode policies: %w", e.Name, err)
	}
	if e.CreatedAt.IsZero() {
		e.CreatedAt = time.Now()
	}
	created, err := scanExam(q.db.QueryRowContext(ctx, `INSERT INTO exams
		(name, starts_at, ends_at, early_login_minutes, late_login_minutes, policies, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING `+examColumns,
		e.Name, dbTime(e.StartsAt), dbTime(e.EndsAt), e.EarlyLoginMinutes, e.LateLoginMinutes, string(policies), dbTime(e.CreatedAt)))
	if err != nil {
		return Exam{}, fmt.Errorf("create exam %q: %w", e.Name, err)
	}
	return created, nil
}

// SetExamPolicy sets the policy override of one room (waiting, interview or
// rest_room); a nil, empty or null override removes it, so the room uses
// the defaults again.
func (q queries) SetExamPolicy(ctx context.Context, examID int64, room string, override json.RawMessage) error {
	override = bytes.TrimSpace(override)
	// The JSON functions are the one place where the engines' SQL differs:
	// SQLite edits by path ($.room), PostgreSQL's jsonb by key.
	pg := q.db.d.postgres
	var query string
	args := []any{"$." + room}
	if pg {
		args = []any{room}
	}
	if len(override) == 0 || string(override) == "null" {
		if !slices.Contains(policyRooms, room) {
			return fmt.Errorf("exam %d: unknown room %q (want one of %s)", examID, room, strings.Join(policyRooms, ", "))
		}
		query = "UPDATE exams SET policies = json_remove(policies, ?) WHERE id = ?"
		if pg {
			query = "UPDATE exams SET policies = (policies::jsonb - ?::text)::json WHERE id = ?"
		}
	} else {
		if err := policyObject(room, override); err != nil {
			return fmt.Errorf("exam %d: %w", examID, err)
		}
		query = "UPDATE exams SET policies = json_set(policies, ?, json(?)) WHERE id = ?"
		if pg {
			query = "UPDATE exams SET policies = jsonb_set(policies::jsonb, ARRAY[?::text], ?::jsonb)::json WHERE id = ?"
		}
		args = append(args, string(override))
	}
	args = append(args, examID)
	// One statement edits the stored object in place, so two admins setting
	// different rooms at once do not undo each other.
	res, err := q.db.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("exam %d: set %s policy: %w", examID, room, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("exam %d: set %s policy: %w", examID, room, err)
	} else if n == 0 {
		return fmt.Errorf("exam %d: %w", examID, ErrNotFound)
	}
	return nil
}

const candidateColumns = "id, exam_id, name, external_id, stage, stage_since, device_checked_at, interviewed_at, created_at"

func scanCandidate(row scanner) (Candidate, error) {
	var c Candidate
	err := row.Scan(&c.ID, &c.ExamID, &c.Name, &c.ExternalID, &c.Stage, timeCol{&c.StageSince},
		timeCol{&c.DeviceCheckedAt}, timeCol{&c.InterviewedAt}, timeCol{&c.CreatedAt})
	return c, err
}

// Candidate returns the candidate with that id.
func (q queries) Candidate(ctx context.Context, id int64) (Candidate, error) {
	c, err := scanCandidate(q.db.QueryRowContext(ctx, "SELECT "+candidateColumns+" FROM candidates WHERE id = ?", id))
	if err != nil {
		return Candidate{}, notFound(err, "candidate %d", id)
	}
	return c, nil
}

// ListCandidates returns the candidates of an exam, by id; none for an
// exam that does not exist.
func (q queries) ListCandidates(ctx context.Context, examID int64) ([]Candidate, error) {
	rows, err := q.db.QueryContext(ctx, "SELECT "+candidateColumns+" FROM candidates WHERE exam_id = ? ORDER BY id", examID)
	if err != nil {
		return nil, fmt.Errorf("list candidates of exam %d: %w", examID, err)
	}
	defer rows.Close()
	list := []Candidate{}
	for rows.Next() {
		c, err := scanCandidate(rows)
		if err != nil {
			return nil, fmt.Errorf("list candidates of exam %d: %w", examID, err)
		}
		list = append(list, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list candidates of exam %d: %w", examID, err)
	}
	return list, nil
}

// CreateCandidate adds a candidate to an exam in stage invited, with one
// active code per kind in CodeKinds drawn from newCode. A code that is
// already active elsewhere is drawn again. An external ID already used in
// the exam is ErrConflict.
func (q queries) CreateCandidate(ctx context.Context, examID int64, c NewCandidate, newCode func() (string, error)) (CandidateCodes, error) {
	if strings.TrimSpace(c.Name) == "" {
		return CandidateCodes{}, fmt.Errorf("exam %d: create candidate: empty name", examID)
	}
	if newCode == nil {
		return CandidateCodes{}, fmt.Errorf("exam %d: create candidate %q: no code generator", examID, c.Name)
	}
	var out CandidateCodes
	err := q.atomic(ctx, func(q queries) error {
		now := dbTime(time.Now())
		cand, err := scanCandidate(q.db.QueryRowContext(ctx, `INSERT INTO candidates
			(exam_id, name, external_id, stage, stage_since, created_at)
			VALUES (?, ?, ?, ?, ?, ?) RETURNING `+candidateColumns,
			examID, c.Name, c.ExternalID, string(stage.Invited), now, now))
		switch {
		case isForeignKey(err):
			return fmt.Errorf("exam %d: %w", examID, ErrNotFound)
		case isUnique(err):
			return fmt.Errorf("exam %d: external ID %q is already used: %w", examID, c.ExternalID, ErrConflict)
		case err != nil:
			return fmt.Errorf("exam %d: create candidate %q: %w", examID, c.Name, err)
		}
		codes := make(map[string]string, len(CodeKinds))
		for _, kind := range CodeKinds {
			code, err := q.insertCode(ctx, cand, kind, newCode)
			if err != nil {
				return fmt.Errorf("exam %d: create candidate %q: %w", examID, c.Name, err)
			}
			codes[kind] = code
		}
		out = CandidateCodes{Candidate: cand, Codes: codes}
		return nil
	})
	if err != nil {
		return CandidateCodes{}, err
	}
	return out, nil
}

// insertCode gives the candidate an active code of that kind, drawing until
// one is free among the active codes.
func (q queries) insertCode(ctx context.Context, c Candidate, kind string, newCode func() (string, error)) (string, error) {
	now := dbTime(time.Now())
	for range maxCodeDraws {
		code, err := newCode()
		if err != nil {
			return "", fmt.Errorf("draw %s code: %w", kind, err)
		}
		if code == "" {
			return "", fmt.Errorf("draw %s code: the generator returned an empty code", kind)
		}
		// DO NOTHING on the active-code index tells a collision apart
		// from every other failure without aborting the statement.
		res, err := q.db.ExecContext(ctx, `INSERT INTO codes (code, candidate_id, exam_id, kind, created_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, code, c.ID, c.ExamID, kind, now)
		if err != nil {
			return "", fmt.Errorf("store %s code: %w", kind, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return "", fmt.Errorf("store %s code: %w", kind, err)
		}
		if n == 1 {
			return code, nil
		}
	}
	return "", fmt.Errorf("draw %s code: %d draws in a row were already active codes (deactivate the codes of finished exams): %w",
		kind, maxCodeDraws, ErrConflict)
}

// CandidateCodes returns a candidate's codes by kind, active or not.
func (q queries) CandidateCodes(ctx context.Context, candidateID int64) (map[string]string, error) {
	rows, err := q.db.QueryContext(ctx, "SELECT kind, code FROM codes WHERE candidate_id = ?", candidateID)
	if err != nil {
		return nil, fmt.Errorf("codes of candidate %d: %w", candidateID, err)
	}
	defer rows.Close()
	codes := map[string]string{}
	for rows.Next() {
		var kind, code string
		if err := rows.Scan(&kind, &code); err != nil {
			return nil, fmt.Errorf("codes of candidate %d: %w", candidateID, err)
		}
		codes[kind] = code
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("codes of candidate %d: %w", candidateID, err)
	}
	// Every candidate gets its codes when it is created.
	if len(codes) == 0 {
		return nil, fmt.Errorf("candidate %d: %w", candidateID, ErrNotFound)
	}
	return codes, nil
}

// ExamCodes returns the candidates of an exam with their codes (active or
// not), by candidate id.
func (q queries) ExamCodes(ctx context.Context, examID int64) ([]CandidateCodes, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT c.id, c.exam_id, c.name, c.external_id, c.stage, c.stage_since,
			c.device_checked_at, c.interviewed_at, c.created_at, k.kind, k.code
		FROM candidates c LEFT JOIN codes k ON k.candidate_id = c.id
		WHERE c.exam_id = ? ORDER BY c.id`, examID)
	if err != nil {
		return nil, fmt.Errorf("codes of exam %d: %w", examID, err)
	}
	defer rows.Close()
	list := []CandidateCodes{}
	for rows.Next() {
		var c Candidate
		var kind, code *string
		if err := rows.Scan(&c.ID, &c.ExamID, &c.Name, &c.ExternalID, &c.Stage, timeCol{&c.StageSince},
			timeCol{&c.DeviceCheckedAt}, timeCol{&c.InterviewedAt}, timeCol{&c.CreatedAt}, &kind, &code); err != nil {
			return nil, fmt.Errorf("codes of exam %d: %w", examID, err)
		}
		if len(list) == 0 || list[len(list)-1].ID != c.ID {
			list = append(list, CandidateCodes{Candidate: c, Codes: map[string]string{}})
		}
		if kind != nil && code != nil {
			list[len(list)-1].Codes[*kind] = *code
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("codes of exam %d: %w", examID, err)
	}
	return list, nil
}

// LookupCode returns what an active code opens; an unknown or deactivated
// code is ErrNotFound.
func (q queries) LookupCode(ctx context.Context, code string) (CodeMatch, error) {
	var m CodeMatch
	err := q.db.QueryRowContext(ctx, "SELECT candidate_id, exam_id, kind FROM codes WHERE code = ? AND active = 1", code).
		Scan(&m.CandidateID, &m.ExamID, &m.Kind)
	if err != nil {
		// The code is a credential; keep it out of messages.
		return CodeMatch{}, notFound(err, "invitation code")
	}
	return m, nil
}

// DeactivateCodes retires every code of an exam (when it is over), which
// frees them to be drawn for other exams.
func (q queries) DeactivateCodes(ctx context.Context, examID int64) error {
	if _, err := q.Exam(ctx, examID); err != nil {
		return err
	}
	if _, err := q.db.ExecContext(ctx, "UPDATE codes SET active = 0 WHERE exam_id = ? AND active = 1", examID); err != nil {
		return fmt.Errorf("exam %d: deactivate codes: %w", examID, err)
	}
	return nil
}

// MoveStage moves a candidate to another stage if the stage machine allows
// it (else ErrConflict, and nothing changes), and records the move. at
// defaults to now; actorID 0 is the candidate or the system.
func (q queries) MoveStage(ctx context.Context, candidateID int64, to stage.Stage, actorID int64, reason string, at time.Time) (StageChange, error) {
	if at.IsZero() {
		at = time.Now()
	}
	at = at.UTC()
	var ch StageChange
	err := q.atomic(ctx, func(q queries) error {
		var from stage.Stage
		if err := q.db.QueryRowContext(ctx, "SELECT stage FROM candidates WHERE id = ?", candidateID).Scan(&from); err != nil {
			return notFound(err, "candidate %d", candidateID)
		}
		if err := stage.CheckMove(from, to); err != nil {
			return fmt.Errorf("candidate %d: %w: %w", candidateID, err, ErrConflict)
		}
		// "AND stage = ?4" keeps the move honest even if a caller ever
		// reads the stage outside this transaction.
		res, err := q.db.ExecContext(ctx, `UPDATE candidates SET stage = ?1, stage_since = ?2,
				device_checked_at = CASE WHEN ?1 = 'device_checked' THEN ?2 ELSE device_checked_at END,
				interviewed_at = CASE WHEN ?1 = 'interview_done' THEN ?2 ELSE interviewed_at END
			WHERE id = ?3 AND stage = ?4`, string(to), dbTime(at), candidateID, string(from))
		if err != nil {
			return fmt.Errorf("candidate %d: move to %s: %w", candidateID, to, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("candidate %d: move to %s: %w", candidateID, to, err)
		} else if n == 0 {
			return fmt.Errorf("candidate %d: left %s meanwhile: %w", candidateID, from, ErrConflict)
		}
		ch = StageChange{CandidateID: candidateID, From: from, To: to, At: at, ActorID: actorID, Reason: reason}
		err = q.db.QueryRowContext(ctx, `INSERT INTO stage_history (candidate_id, from_stage, to_stage, at, actor_id, reason)
			VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
			candidateID, string(from), string(to), dbTime(at), nullID(actorID), reason).Scan(&ch.ID)
		if isForeignKey(err) {
			return fmt.Errorf("candidate %d: move to %s: actor user %d: %w", candidateID, to, actorID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("candidate %d: record move to %s: %w", candidateID, to, err)
		}
		return nil
	})
	if err != nil {
		return StageChange{}, err
	}
	return ch, nil
}

// StageHistory returns a candidate's stage moves, oldest first; none for a
// candidate that never moved or does not exist.
func (q queries) StageHistory(ctx context.Context, candidateID int64) ([]StageChange, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT id, candidate_id, from_stage, to_stage, at, actor_id, reason
		FROM stage_history WHERE candidate_id = ? ORDER BY id`, candidateID)
	if err != nil {
		return nil, fmt.Errorf("stage history of candidate %d: %w", candidateID, err)
	}
	defer rows.Close()
	list := []StageChange{}
	for rows.Next() {
		var ch StageChange
		if err := rows.Scan(&ch.ID, &ch.CandidateID, &ch.From, &ch.To, timeCol{&ch.At}, idCol{&ch.ActorID}, &ch.Reason); err != nil {
			return nil, fmt.Errorf("stage history of candidate %d: %w", candidateID, err)
		}
		list = append(list, ch)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("stage history of candidate %d: %w", candidateID, err)
	}
	return list, nil
}

// CountCandidatesByStage counts the candidates of all exams in each stage;
// every stage is present, zero included, so a gauge drops to 0 when the
// last candidate leaves a stage.
func (q queries) CountCandidatesByStage(ctx context.Context) (map[stage.Stage]int, error) {
	counts := make(map[stage.Stage]int, len(stage.All))
	for _, s := range stage.All {
		counts[s] = 0
	}
	rows, err := q.db.QueryContext(ctx, "SELECT stage, COUNT(*) FROM candidates GROUP BY stage")
	if err != nil {
		return nil, fmt.Errorf("count candidates by stage: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s stage.Stage
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("count candidates by stage: %w", err)
		}
		counts[s] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count candidates by stage: %w", err)
	}
	return counts, nil
}
