package contract

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// GrantTokens issues and verifies tokens that carry their grants, in the
// one token format (SignToken): the load-test tokens, signed with the
// configured sfu_token_key, which the SFU takes without asking the control
// plane (cmd/invigil limits them to load-test identities and rooms).
type GrantTokens struct {
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

// Issue signs g. It refuses grants without an identity, room or expiry so a
// token can never be valid forever by accident.
func (h GrantTokens) Issue(g Grants) (string, error) {
	if len(h.Key) < MinTokenKeyBytes {
		return "", fmt.Errorf("issue token: HMAC key must be at least %d bytes", MinTokenKeyBytes)
	}
	if g.Identity == "" || g.Room == "" {
		return "", errors.New("issue token: identity and room are required")
	}
	if g.ExpiresAt.IsZero() {
		return "", errors.New("issue token: ExpiresAt is required")
	}
	tok, err := SignToken(h.Key, tokenPayload{Grants: g, Exp: g.ExpiresAt.Unix()})
	if err != nil {
		return "", fmt.Errorf("issue token: %w", err)
	}
	return tok, nil
}

// Verify checks the signature in constant time, then the expiry.
func (h GrantTokens) Verify(_ context.Context, token string) (Grants, error) {
	if len(h.Key) < MinTokenKeyBytes {
		return Grants{}, fmt.Errorf("%w: server has no usable token key", ErrToken)
	}
	var p tokenPayload
	if err := OpenToken(h.Key, token, &p); err != nil {
		return Grants{}, err
	}
	if p.Identity == "" || p.Room == "" || p.Exp == 0 {
		return Grants{}, fmt.Errorf("%w: identity, room and expiry are required", ErrToken)
	}
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	p.ExpiresAt = time.Unix(p.Exp, 0)
	if !now().Before(p.ExpiresAt) {
		return Grants{}, fmt.Errorf("%w: expired at %s", ErrToken, p.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return p.Grants, nil
}
