package sfu

import (
	"context"

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

// ErrBadToken is wrapped by every token verification failure (it is the
// contract's ErrToken, which the token format's own refusals wrap).
var ErrBadToken = contract.ErrToken

// HMACTokens issues and verifies load-test tokens (contract.GrantTokens).
type HMACTokens = contract.GrantTokens
