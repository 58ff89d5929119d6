package control

import (
	"errors"
	"fmt"

	"invigil/stage"
)

// Kind is what went wrong with an operation, in terms a transport maps to
// its own answers (api: to HTTP statuses), so that the rules never speak
// HTTP.
type Kind int

// The kinds of refusal. The zero Kind is not one, so an Error built
// without a kind shows as a bug rather than as a refusal.
const (
	// Invalid: the request itself is wrong (a bad field, a malformed id).
	Invalid Kind = iota + 1
	// Forbidden: the actor may not do this.
	Forbidden
	// NotFound: no such row, or one the actor may not know of.
	NotFound
	// Conflict: the state does not allow it now (a stage, a call, a
	// published score).
	Conflict
	// TooMany: the actor must wait (RetryAfter says how long).
	TooMany
	// Unavailable: something the operation needs is not there (live
	// analysis, a media node).
	Unavailable
	// Internal: a state the rules do not know; a bug, not the actor's
	// fault.
	Internal
)

func (k Kind) String() string {
	switch k {
	case Invalid:
		return "invalid"
	case Forbidden:
		return "forbidden"
	case NotFound:
		return "not found"
	case Conflict:
		return "conflict"
	case TooMany:
		return "too many"
	case Unavailable:
		return "unavailable"
	case Internal:
		return "internal"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Error is a refusal by the control plane's rules: its Kind, a stable
// machine-readable Code (a published contract: clients branch on it, so
// codes are never renamed) and a Message for people.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	// Text, when set, is the message in both UI languages: the candidate's
	// page shows it as it is.
	Text *stage.Text
	// RetryAfter is how many seconds a TooMany caller should wait.
	RetryAfter int
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf makes an Error of kind with code and a formatted message.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// candidateError is a refusal shown to a candidate as it is, in both
// languages.
func candidateError(kind Kind, code string, t stage.Text) *Error {
	return &Error{Kind: kind, Code: code, Message: t.EN, Text: &t}
}

// IsCode reports whether err is, or wraps, an Error with code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}
