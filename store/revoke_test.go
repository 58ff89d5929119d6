package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Changing what a login stands for ends the user's logins: a new password,
// a new role, disabling. Re-enabling does not bring old logins back, and
// changes that change nothing (the same role, enabling an enabled user)
// leave them alone.
func TestUpdateUserRevokesLogins(t *testing.T) { onEachEngine(t, testUpdateUserRevokesLogins) }

func testUpdateUserRevokesLogins(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	bob := mustUser(t, s, "bob", RoleProctor)
	carol := mustUser(t, s, "carol", RoleProctor)
	exam := mustExam(t, s, "e")
	cand := mustCandidate(t, s, exam.ID, "c")
	now := time.Now().UTC()
	n := 0
	token := func(userID int64) string {
		t.Helper()
		n++
		hash := "tok" + string(rune('a'+n))
		if err := s.CreateToken(ctx, Token{Hash: hash, Kind: TokenStaff, UserID: userID, CSRF: "x", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		return hash
	}
	revoked := func(hash string) bool {
		t.Helper()
		tok, err := s.TokenByHash(ctx, hash)
		if err != nil {
			t.Fatal(err)
		}
		return !tok.RevokedAt.IsZero()
	}
	if err := s.CreateToken(ctx, Token{Hash: "cand", Kind: TokenCandidate, CandidateID: cand.ID, CSRF: "y", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	carolTok := token(carol.ID)

	// A logout before the password change keeps its own time.
	loggedOut := token(bob.ID)
	earlier := now.Add(-time.Minute).Truncate(time.Millisecond)
	if err := s.RevokeToken(ctx, loggedOut, earlier); err != nil {
		t.Fatal(err)
	}
	a, b := token(bob.ID), token(bob.ID)
	hash := "new-hash"
	if _, err := s.UpdateUser(ctx, bob.ID, UserUpdate{PasswordHash: &hash}); err != nil {
		t.Fatal(err)
	}
	if !revoked(a) || !revoked(b) {
		t.Error("bob's logins survive a password change")
	}
	if tok, _ := s.TokenByHash(ctx, loggedOut); !tok.RevokedAt.Equal(earlier) {
		t.Errorf("an earlier logout's time changed to %v, want %v", tok.RevokedAt, earlier)
	}
	if revoked(carolTok) || revoked("cand") {
		t.Error("another user's or a candidate's login was revoked")
	}

	same := RoleProctor
	c := token(bob.ID)
	if _, err := s.UpdateUser(ctx, bob.ID, UserUpdate{Role: &same}); err != nil {
		t.Fatal(err)
	}
	if revoked(c) {
		t.Error("setting the role bob already has revoked his login")
	}
	other := RoleExaminer
	if _, err := s.UpdateUser(ctx, bob.ID, UserUpdate{Role: &other}); err != nil {
		t.Fatal(err)
	}
	if !revoked(c) {
		t.Error("bob's login survives a role change")
	}

	enabled, disabled := false, true
	d := token(bob.ID)
	if _, err := s.UpdateUser(ctx, bob.ID, UserUpdate{Disabled: &enabled}); err != nil {
		t.Fatal(err)
	}
	if revoked(d) {
		t.Error("enabling an enabled user revoked his login")
	}
	if _, err := s.UpdateUser(ctx, bob.ID, UserUpdate{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	if !revoked(d) {
		t.Error("bob's login survives disabling him")
	}
	// A login stored while he was disabled (by an older server, or by hand)
	// does not come to life with him either.
	e := token(bob.ID)
	if _, err := s.UpdateUser(ctx, bob.ID, UserUpdate{Disabled: &enabled}); err != nil {
		t.Fatal(err)
	}
	if !revoked(d) || !revoked(e) {
		t.Error("re-enabling bob revived a login")
	}
	if revoked(carolTok) {
		t.Error("carol's login was revoked by changes to bob")
	}
}

// The revocation is part of the user's update: when the transaction rolls
// back, neither the password nor the logins change.
func TestUpdateUserRevocationRollsBack(t *testing.T) {
	onEachEngine(t, testUpdateUserRevocationRollsBack)
}

func testUpdateUserRevocationRollsBack(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	bob := mustUser(t, s, "bob", RoleProctor)
	now := time.Now().UTC()
	if err := s.CreateToken(ctx, Token{Hash: "t", Kind: TokenStaff, UserID: bob.ID, CSRF: "x", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	stop := errors.New("changed my mind")
	hash := "new-hash"
	_, err := s.Update(ctx, func(ctx context.Context, tx *Tx) error {
		if _, err := tx.UpdateUser(ctx, bob.ID, UserUpdate{PasswordHash: &hash}); err != nil {
			return err
		}
		if tok, err := tx.TokenByHash(ctx, "t"); err != nil || tok.RevokedAt.IsZero() {
			t.Errorf("inside the transaction the login is not revoked: %+v, %v", tok, err)
		}
		return stop
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Update: %v", err)
	}
	if tok, err := s.TokenByHash(ctx, "t"); err != nil || !tok.RevokedAt.IsZero() {
		t.Errorf("after the rollback the login is revoked: %+v, %v", tok, err)
	}
	if u, err := s.UserByID(ctx, bob.ID); err != nil || u.PasswordHash != bob.PasswordHash {
		t.Errorf("after the rollback the password changed: %+v, %v", u, err)
	}
}
