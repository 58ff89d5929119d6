package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

const userColumns = "id, username, role, password_hash, disabled, created_at"

func scanUser(row scanner) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.Username, &u.Role, &u.PasswordHash, &u.Disabled, timeCol{&u.CreatedAt})
	return u, err
}

func validRole(role string) error {
	if !slices.Contains(Roles, role) {
		return fmt.Errorf("unknown role %q (want one of %s)", role, strings.Join(Roles, ", "))
	}
	return nil
}

// UserByID returns the staff account with that id.
func (q queries) UserByID(ctx context.Context, id int64) (User, error) {
	u, err := scanUser(q.db.QueryRowContext(ctx, "SELECT "+userColumns+" FROM users WHERE id = ?", id))
	if err != nil {
		return User{}, notFound(err, "user %d", id)
	}
	return u, nil
}

// UserByUsername returns the staff account with that name; names compare
// without regard to case.
func (q queries) UserByUsername(ctx context.Context, name string) (User, error) {
	u, err := scanUser(q.db.QueryRowContext(ctx, "SELECT "+userColumns+" FROM users WHERE username = ?", name))
	if err != nil {
		return User{}, notFound(err, "user %q", name)
	}
	return u, nil
}

// ListUsers returns every staff account, by id.
func (q queries) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := q.db.QueryContext(ctx, "SELECT "+userColumns+" FROM users ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	users := []User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return users, nil
}

// CountUsers returns how many staff accounts exist (the first start creates
// the admin when there are none).
func (q queries) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := q.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM users").Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// CreateUser adds a staff account. A name that is taken (in any case) is
// ErrConflict.
func (q queries) CreateUser(ctx context.Context, username, passwordHash, role string) (User, error) {
	if strings.TrimSpace(username) == "" {
		return User{}, errors.New("create user: empty username")
	}
	if err := validRole(role); err != nil {
		return User{}, fmt.Errorf("create user %q: %w", username, err)
	}
	if passwordHash == "" {
		return User{}, fmt.Errorf("create user %q: empty password hash", username)
	}
	u, err := scanUser(q.db.QueryRowContext(ctx,
		"INSERT INTO users (username, password_hash, role, created_at) VALUES (?, ?, ?, ?) RETURNING "+userColumns,
		username, passwordHash, role, dbTime(time.Now())))
	if isUnique(err) {
		return User{}, fmt.Errorf("user %q: name taken: %w", username, ErrConflict)
	}
	if err != nil {
		return User{}, fmt.Errorf("create user %q: %w", username, err)
	}
	return u, nil
}

// UpdateUser changes the fields of u that are set and returns the result.
// A new password, a new role or a change of the disabled flag revokes
// every login of the user in the same transaction: a stolen session must
// not outlive the password that made it, a session must not keep the
// powers of a role taken away, and re-enabling must not bring back the
// sessions of before the user was disabled. Doing it here rather than in
// the API means `invigil admin users` on the database file revokes too.
func (q queries) UpdateUser(ctx context.Context, id int64, u UserUpdate) (User, error) {
	if u.Role != nil {
		if err := validRole(*u.Role); err != nil {
			return User{}, fmt.Errorf("update user %d: %w", id, err)
		}
	}
	if u.PasswordHash != nil && *u.PasswordHash == "" {
		return User{}, fmt.Errorf("update user %d: empty password hash", id)
	}
	// A NULL argument keeps the column as it is.
	var disabled, role, hash any
	if u.Disabled != nil {
		// 0 or 1, the flag's stored form on both engines.
		disabled = 0
		if *u.Disabled {
			disabled = 1
		}
	}
	if u.Role != nil {
		role = *u.Role
	}
	if u.PasswordHash != nil {
		hash = *u.PasswordHash
	}
	var updated User
	err := q.atomic(ctx, func(q queries) error {
		before, err := q.UserByID(ctx, id)
		if err != nil {
			return fmt.Errorf("update user %d: %w", id, err)
		}
		updated, err = scanUser(q.db.QueryRowContext(ctx, `UPDATE users SET
				disabled = COALESCE(?, disabled),
				role = COALESCE(?, role),
				password_hash = COALESCE(?, password_hash)
			WHERE id = ? RETURNING `+userColumns, disabled, role, hash, id))
		if err != nil {
			return notFound(err, "update user %d", id)
		}
		if u.PasswordHash != nil || updated.Role != before.Role || updated.Disabled != before.Disabled {
			if _, err := q.RevokeUserTokens(ctx, id, time.Now()); err != nil {
				return fmt.Errorf("update user %d: %w", id, err)
			}
		}
		return nil
	})
	if err != nil {
		return User{}, err
	}
	return updated, nil
}

// RevokeUserTokens ends every login session of a staff user that is not
// already revoked and returns how many it ended.
func (q queries) RevokeUserTokens(ctx context.Context, userID int64, at time.Time) (int64, error) {
	res, err := q.db.ExecContext(ctx, "UPDATE tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
		dbTime(at), userID)
	if err != nil {
		return 0, fmt.Errorf("revoke tokens of user %d: %w", userID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("revoke tokens of user %d: %w", userID, err)
	}
	return n, nil
}

const tokenColumns = "hash, kind, user_id, candidate_id, csrf, created_at, expires_at, revoked_at"

// TokenByHash returns the login session with that hash, even an expired or
// revoked one: the caller decides, and can say why it is refused.
func (q queries) TokenByHash(ctx context.Context, hash string) (Token, error) {
	var t Token
	err := q.db.QueryRowContext(ctx, "SELECT "+tokenColumns+" FROM tokens WHERE hash = ?", hash).Scan(
		&t.Hash, &t.Kind, idCol{&t.UserID}, idCol{&t.CandidateID}, &t.CSRF,
		timeCol{&t.CreatedAt}, timeCol{&t.ExpiresAt}, timeCol{&t.RevokedAt})
	if err != nil {
		// The hash is a credential's digest; keep it out of messages.
		return Token{}, notFound(err, "token")
	}
	return t, nil
}

// CreateToken stores a login session. CreatedAt defaults to now.
func (q queries) CreateToken(ctx context.Context, t Token) error {
	if t.Hash == "" {
		return errors.New("create token: empty hash")
	}
	switch {
	case t.Kind == TokenStaff && t.UserID != 0 && t.CandidateID == 0:
	case t.Kind == TokenCandidate && t.CandidateID != 0 && t.UserID == 0:
	default:
		return fmt.Errorf("create token: kind %q with user %d and candidate %d: a staff token names a user, a candidate token a candidate", t.Kind, t.UserID, t.CandidateID)
	}
	if t.ExpiresAt.IsZero() {
		return errors.New("create token: no expiry")
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = time.Now()
	}
	_, err := q.db.ExecContext(ctx, "INSERT INTO tokens ("+tokenColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		t.Hash, t.Kind, nullID(t.UserID), nullID(t.CandidateID), t.CSRF,
		dbTime(t.CreatedAt), dbTime(t.ExpiresAt), dbTime(t.RevokedAt))
	switch {
	case isUnique(err):
		return fmt.Errorf("create token: hash exists: %w", ErrConflict)
	case isForeignKey(err):
		return fmt.Errorf("create token: %s %d: %w", t.Kind, max(t.UserID, t.CandidateID), ErrNotFound)
	case err != nil:
		return fmt.Errorf("create token: %w", err)
	}
	return nil
}

// RevokeToken ends a login session. Revoking twice keeps the first time.
func (q queries) RevokeToken(ctx context.Context, hash string, at time.Time) error {
	res, err := q.db.ExecContext(ctx, "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE hash = ?",
		dbTime(at), hash)
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("revoke token: %w", err)
	} else if n == 0 {
		return fmt.Errorf("revoke token: %w", ErrNotFound)
	}
	return nil
}

// DeleteExpiredTokens removes the sessions that expired at or before now
// and returns how many.
func (q queries) DeleteExpiredTokens(ctx context.Context, now time.Time) (int64, error) {
	res, err := q.db.ExecContext(ctx, "DELETE FROM tokens WHERE expires_at <= ?", dbTime(now))
	if err != nil {
		return 0, fmt.Errorf("delete expired tokens: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete expired tokens: %w", err)
	}
	return n, nil
}

// Audit records who did what. actorID 0 is the system; details may be nil.
func (q queries) Audit(ctx context.Context, actorID int64, action, target string, details any) error {
	if action == "" {
		return errors.New("audit: empty action")
	}
	d, err := encodeJSON(details)
	if err != nil {
		return fmt.Errorf("audit %s: details: %w", action, err)
	}
	if _, err := q.db.ExecContext(ctx,
		"INSERT INTO audit_log (at, actor_id, action, target, details) VALUES (?, ?, ?, ?, ?)",
		dbTime(time.Now()), nullID(actorID), action, target, nullText(d)); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// AuditLog returns the newest limit entries, newest first; limit 0 is 1000.
func (q queries) AuditLog(ctx context.Context, limit int) ([]AuditEntry, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := q.db.QueryContext(ctx,
		"SELECT id, at, actor_id, action, target, details FROM audit_log ORDER BY id DESC LIMIT ?", limit)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	entries := []AuditEntry{}
	for rows.Next() {
		var e AuditEntry
		if err := rows.Scan(&e.ID, timeCol{&e.At}, idCol{&e.ActorID}, &e.Action, &e.Target, jsonCol{&e.Details}); err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return entries, nil
}
