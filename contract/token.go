package contract

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// The one signed-token format of Invigil: base64url(JSON claims) "."
// base64url(HMAC-SHA256(key, first part)). The control plane's media
// tokens (with a version prefix, signed with its media key) and the
// load-test tokens (signed with sfu_token_key) are both this; they differ
// in their claims and keys, not in how they are made or checked.

// MaxTokenBytes bounds the work one token can cause.
const MaxTokenBytes = 8 << 10

// MinTokenKeyBytes is the shortest key the format accepts.
const MinTokenKeyBytes = 16

// ErrToken is wrapped by every refusal of OpenToken.
var ErrToken = errors.New("bad token")

// SignToken signs claims (any JSON-encodable value) with key.
func SignToken(key []byte, claims any) (string, error) {
	if len(key) < MinTokenKeyBytes {
		return "", fmt.Errorf("sign token: key must be at least %d bytes", MinTokenKeyBytes)
	}
	body, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	payload := base64.RawURLEncoding.EncodeToString(body)
	return payload + "." + base64.RawURLEncoding.EncodeToString(tokenMAC(key, payload)), nil
}

// OpenToken checks token's signature with key in constant time and decodes
// its claims into claims. Checking what the claims say (expiry, identity)
// is the caller's.
func OpenToken(key []byte, token string, claims any) error {
	if len(key) < MinTokenKeyBytes {
		return fmt.Errorf("%w: no usable key", ErrToken)
	}
	if len(token) > MaxTokenBytes {
		return fmt.Errorf("%w: too long", ErrToken)
	}
	payload, sig, ok := strings.Cut(token, ".")
	if !ok {
		return fmt.Errorf("%w: malformed", ErrToken)
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, tokenMAC(key, payload)) {
		return fmt.Errorf("%w: bad signature", ErrToken)
	}
	body, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return fmt.Errorf("%w: malformed payload", ErrToken)
	}
	if err := json.Unmarshal(body, claims); err != nil {
		return fmt.Errorf("%w: malformed payload", ErrToken)
	}
	return nil
}

func tokenMAC(key []byte, payload string) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(payload))
	return mac.Sum(nil)
}
