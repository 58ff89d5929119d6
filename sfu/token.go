package sfu

import (
	"context"
	"errors"
	"fmt"
	"time"

	"invigil/contract"
)

// Grants is what a token allows its bearer (contract.Grants: the control
// plane decides them, the SFU enforces them).
type Grants = contract.Grants

// TokenVerifier checks a join token and returns its grants. The control
// plane implements it (its check reads the database, so it takes the
// joining socket's context); HMACTokens serves load tests.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (Grants, error)
}

// ErrBadToken is wrapped by every token verification failure.
var ErrBadToken = errors.New("invalid token")

// HMACTokens issues and verifies tokens of the form
// base64url(JSON grants) "." base64url(HMAC-SHA256(key, first part)).
type HMACTokens struct {
	Key []byte
	// Now is the clock used for expiry; nil means time.Now.
	Now func() time.Time
}

// tokenPayload is Grants plus the expiry as Unix seconds, which keeps tokens
// compact and free of time-zone ambiguity.
type tokenPayload struct {
	Grants
	Exp int64 `json:"exp"`
}

const minHMACKeyBytes = contract.MinTokenKeyBytes

// Issue signs g. It refuses grants without an identity, room or expiry so a
// token can never be valid forever by accident.
func (h HMACTokens) Issue(g Grants) (string, error) {
	if len(h.Key) < minHMACKeyBytes {
		return "", fmt.Errorf("issue token: HMAC key must be at least %d bytes", minHMACKeyBytes)
	}
	if g.Identity == "" || g.Room == "" {
		return "", errors.New("issue token: identity and room are required")
	}
	if g.ExpiresAt.IsZero() {
		return "", errors.New("issue token: ExpiresAt is required")
	}
	tok, err := contract.SignToken(h.Key, tokenPayload{Grants: g, Exp: g.ExpiresAt.Unix()})
	if err != nil {
		return "", fmt.Errorf("issue token: %w", err)
	}
	return tok, nil
}

// Verify checks the signature in constant time, then the expiry.
func (h HMACTokens) Verify(_ context.Context, token string) (Grants, error) {
	if len(h.Key) < minHMACKeyBytes {
		return Grants{}, fmt.Errorf("%w: server has no usable token key", ErrBadToken)
	}
	var p tokenPayload
	if err := contract.OpenToken(h.Key, token, &p); err != nil {
		return Grants{}, fmt.Errorf("%w: %w", ErrBadToken, err)
	}
	if p.Identity == "" || p.Room == "" || p.Exp == 0 {
		return Grants{}, fmt.Errorf("%w: identity, room and expiry are required", ErrBadToken)
	}
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	p.ExpiresAt = time.Unix(p.Exp, 0)
	if !now().Before(p.ExpiresAt) {
		return Grants{}, fmt.Errorf("%w: expired at %s", ErrBadToken, p.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return p.Grants, nil
}
