package store

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestUsers(t *testing.T) { onEachEngine(t, testUsers) }

func testUsers(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()

	if n, err := s.CountUsers(ctx); err != nil || n != 0 {
		t.Fatalf("CountUsers on a new store: %d, %v", n, err)
	}
	alice, err := s.CreateUser(ctx, "alice", "h1", RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if alice.ID == 0 || alice.Username != "alice" || alice.Role != RoleAdmin || alice.PasswordHash != "h1" ||
		alice.Disabled || alice.CreatedAt.IsZero() || alice.CreatedAt.Location() != time.UTC {
		t.Errorf("created %+v", alice)
	}
	bob := mustUser(t, s, "bob", RoleProctor)

	for _, name := range []string{"alice", "ALICE"} {
		if _, err := s.CreateUser(ctx, name, "h", RoleProctor); !errors.Is(err, ErrConflict) {
			t.Errorf("duplicate user %q: %v, want ErrConflict", name, err)
		}
	}
	if _, err := s.CreateUser(ctx, "carol", "h", "janitor"); err == nil || errors.Is(err, ErrConflict) {
		t.Errorf("unknown role: %v, want a validation error", err)
	}
	if _, err := s.CreateUser(ctx, " ", "h", RoleProctor); err == nil {
		t.Error("empty username accepted")
	}

	if got, err := s.UserByID(ctx, bob.ID); err != nil || got != bob {
		t.Errorf("UserByID: %+v, %v, want %+v", got, err, bob)
	}
	if got, err := s.UserByUsername(ctx, "Alice"); err != nil || got.ID != alice.ID {
		t.Errorf("UserByUsername ignoring case: %+v, %v", got, err)
	}
	if _, err := s.UserByID(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("UserByID(999): %v, want ErrNotFound", err)
	}
	if _, err := s.UserByUsername(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("UserByUsername(nobody): %v, want ErrNotFound", err)
	}
	users, err := s.ListUsers(ctx)
	if err != nil || len(users) != 2 || users[0].ID != alice.ID || users[1].ID != bob.ID {
		t.Errorf("ListUsers: %+v, %v", users, err)
	}
	if n, err := s.CountUsers(ctx); err != nil || n != 2 {
		t.Errorf("CountUsers: %d, %v", n, err)
	}

	disabled, role, hash := true, RoleExaminer, "h2"
	got, err := s.UpdateUser(ctx, bob.ID, UserUpdate{Disabled: &disabled, Role: &role})
	if err != nil || !got.Disabled || got.Role != RoleExaminer || got.PasswordHash != bob.PasswordHash {
		t.Errorf("UpdateUser disabled+role: %+v, %v", got, err)
	}
	got, err = s.UpdateUser(ctx, bob.ID, UserUpdate{PasswordHash: &hash})
	if err != nil || got.PasswordHash != "h2" || !got.Disabled || got.Role != RoleExaminer {
		t.Errorf("UpdateUser password only: %+v, %v", got, err)
	}
	if got, err := s.UpdateUser(ctx, bob.ID, UserUpdate{}); err != nil || got.PasswordHash != "h2" {
		t.Errorf("empty UpdateUser: %+v, %v", got, err)
	}
	bad := "janitor"
	if _, err := s.UpdateUser(ctx, bob.ID, UserUpdate{Role: &bad}); err == nil {
		t.Error("UpdateUser accepted an unknown role")
	}
	if _, err := s.UpdateUser(ctx, 999, UserUpdate{Disabled: &disabled}); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateUser(999): %v, want ErrNotFound", err)
	}
}

func TestTokens(t *testing.T) { onEachEngine(t, testTokens) }

func testTokens(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	u := mustUser(t, s, "alice", RoleAdmin)
	exam := mustExam(t, s, "e")
	cand := mustCandidate(t, s, exam.ID, "c")
	now := time.Date(2026, 11, 26, 8, 0, 0, 123456789, time.UTC)

	staff := Token{Hash: "aa", Kind: TokenStaff, UserID: u.ID, CSRF: "x", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.CreateToken(ctx, staff); err != nil {
		t.Fatal(err)
	}
	candTok := Token{Hash: "bb", Kind: TokenCandidate, CandidateID: cand.ID, CSRF: "y", CreatedAt: now, ExpiresAt: now.Add(2 * time.Hour)}
	if err := s.CreateToken(ctx, candTok); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateToken(ctx, staff); !errors.Is(err, ErrConflict) {
		t.Errorf("duplicate token: %v, want ErrConflict", err)
	}
	if err := s.CreateToken(ctx, Token{Hash: "cc", Kind: TokenStaff, CandidateID: cand.ID, ExpiresAt: now}); err == nil {
		t.Error("a staff token naming a candidate was accepted")
	}
	if err := s.CreateToken(ctx, Token{Hash: "dd", Kind: TokenStaff, UserID: 999, ExpiresAt: now}); !errors.Is(err, ErrNotFound) {
		t.Errorf("token of a missing user: %v, want ErrNotFound", err)
	}

	got, err := s.TokenByHash(ctx, "aa")
	if err != nil || got != staff {
		t.Errorf("TokenByHash: %+v, %v, want %+v", got, err, staff)
	}
	if got, err := s.TokenByHash(ctx, "bb"); err != nil || got != candTok {
		t.Errorf("TokenByHash(candidate): %+v, %v, want %+v", got, err, candTok)
	}
	if _, err := s.TokenByHash(ctx, "zz"); !errors.Is(err, ErrNotFound) {
		t.Errorf("TokenByHash(zz): %v, want ErrNotFound", err)
	}

	revoked := now.Add(10 * time.Minute)
	if err := s.RevokeToken(ctx, "aa", revoked); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, "aa", revoked.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// Revoked tokens are still returned: the caller tells why they fail.
	if got, err := s.TokenByHash(ctx, "aa"); err != nil || !got.RevokedAt.Equal(revoked) {
		t.Errorf("after revoking twice: %+v, %v (want the first time kept)", got, err)
	}
	if err := s.RevokeToken(ctx, "zz", revoked); !errors.Is(err, ErrNotFound) {
		t.Errorf("RevokeToken(zz): %v, want ErrNotFound", err)
	}

	n, err := s.DeleteExpiredTokens(ctx, now.Add(time.Hour))
	if err != nil || n != 1 {
		t.Errorf("DeleteExpiredTokens: %d, %v, want 1", n, err)
	}
	if _, err := s.TokenByHash(ctx, "aa"); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired token still there: %v", err)
	}
	if _, err := s.TokenByHash(ctx, "bb"); err != nil {
		t.Errorf("unexpired token gone: %v", err)
	}
}

func TestAudit(t *testing.T) { onEachEngine(t, testAudit) }

func testAudit(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	u := mustUser(t, s, "alice", RoleAdmin)
	if err := s.Audit(ctx, u.ID, "exam.create", "exam/1", map[string]string{"name": "e"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Audit(ctx, 0, "tokens.purge", "", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Audit(ctx, u.ID, "x", "", json.RawMessage(`{bad`)); err == nil {
		t.Error("invalid raw JSON details accepted")
	}
	if err := s.Audit(ctx, u.ID, "", "", nil); err == nil {
		t.Error("empty action accepted")
	}
	log, err := s.AuditLog(ctx, 0)
	if err != nil || len(log) != 2 {
		t.Fatalf("AuditLog: %+v, %v", log, err)
	}
	if log[0].Action != "tokens.purge" || log[0].ActorID != 0 || log[0].Details != nil {
		t.Errorf("newest entry %+v", log[0])
	}
	if log[1].Action != "exam.create" || log[1].ActorID != u.ID || log[1].Target != "exam/1" ||
		string(log[1].Details) != `{"name":"e"}` || log[1].At.IsZero() {
		t.Errorf("oldest entry %+v", log[1])
	}
	if log, err := s.AuditLog(ctx, 1); err != nil || len(log) != 1 || log[0].Action != "tokens.purge" {
		t.Errorf("AuditLog(1): %+v, %v", log, err)
	}
}
