package sfu

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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

const minHMACKeyBytes = 16

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
	body, err := json.Marshal(tokenPayload{Grants: g, Exp: g.ExpiresAt.Unix()})
	if err != nil {
		return "", fmt.Errorf("issue token: %w", err)
	}
	payload := base64.RawURLEncoding.EncodeToString(body)
	return payload + "." + base64.RawURLEncoding.EncodeToString(h.sign(payload)), nil
}

func (h HMACTokens) sign(payload string) []byte {
	mac := hmac.New(sha256.New, h.Key)
	mac.Write([]byte(payload))
	return mac.Sum(nil)
}

// maxTokenBytes bounds the work an attacker can cause with one token.
const maxTokenBytes = 8 << 10

// Verify checks the signature in constant time, then the expiry.
func (h HMACTokens) Verify(_ context.Context, token string) (Grants, error) {
	if len(h.Key) < minHMACKeyBytes {
		return Grants{}, fmt.Errorf("%w: server has no usable token key", ErrBadToken)
	}
	if len(token) > maxTokenBytes {
		return Grants{}, fmt.Errorf("%w: too long", ErrBadToken)
	}
	payload, sig, ok := strings.Cut(token, ".")
	if !ok {
		return Grants{}, fmt.Errorf("%w: malformed", ErrBadToken)
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, h.sign(payload)) {
		return Grants{}, fmt.Errorf("%w: bad signature", ErrBadToken)
	}
	body, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return Grants{}, fmt.Errorf("%w: malformed payload", ErrBadToken)
	}
	var p tokenPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return Grants{}, fmt.Errorf("%w: malformed payload", ErrBadToken)
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
