package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"invigil/control"
	"invigil/stage"
	"invigil/store"
)

// apiError is the one error shape of the API:
// {"error": {"code": …, "message": …}}. Candidate-facing errors carry the
// message in both UI languages so the page shows it as it is.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	ZH      string `json:"message_zh,omitempty"`
	EN      string `json:"message_en,omitempty"`
	// RetryAfter, in seconds, is sent as the Retry-After header.
	RetryAfter int `json:"retry_after,omitempty"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// candidateError is an error shown to a candidate as it is, in both languages.
func candidateError(status int, code string, t stage.Text) *apiError {
	return &apiError{Status: status, Code: code, Message: t.EN, ZH: t.ZH, EN: t.EN}
}

var (
	errUnauthenticated = errorf(http.StatusUnauthorized, "unauthenticated", "log in first (a missing, expired or revoked token)")
	errForbidden       = errorf(http.StatusForbidden, "forbidden", "your role may not do this")
	errCSRF            = errorf(http.StatusForbidden, "csrf", "missing or wrong X-CSRF-Token header for a cookie-authenticated request")
)

// statusOf is the HTTP status of each kind of the control plane's
// refusals: the one place the plane's rules meet HTTP.
var statusOf = map[control.Kind]int{
	control.Invalid:     http.StatusBadRequest,
	control.Forbidden:   http.StatusForbidden,
	control.NotFound:    http.StatusNotFound,
	control.Conflict:    http.StatusConflict,
	control.TooMany:     http.StatusTooManyRequests,
	control.Unavailable: http.StatusServiceUnavailable,
	control.Internal:    http.StatusInternalServerError,
}

// fromControl is the API's answer to a refusal of the control plane.
func fromControl(e *control.Error) *apiError {
	status, ok := statusOf[e.Kind]
	if !ok {
		status = http.StatusInternalServerError
	}
	ae := &apiError{Status: status, Code: e.Code, Message: e.Message, RetryAfter: e.RetryAfter}
	if e.Text != nil {
		ae.ZH, ae.EN = e.Text.ZH, e.Text.EN
	}
	return ae
}

// writeError answers with err: an *apiError as it is; a refusal of the
// control plane with its code and its kind's status; store errors as 404
// and 409 with their text; anything else as a 500 whose details go only to
// the log (they may name files and queries).
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var refusal *control.Error
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &refusal):
		ae = fromControl(refusal)
	case errors.Is(err, store.ErrNotFound):
		ae = errorf(http.StatusNotFound, "not_found", "%s", err.Error())
	case errors.Is(err, store.ErrConflict):
		ae = errorf(http.StatusConflict, "conflict", "%s", err.Error())
	default:
		s.log.Error("request failed", "method", r.Method, "route", r.Pattern, "err", err)
		ae = errorf(http.StatusInternalServerError, "internal", "the server failed to do this; the error is in its log")
	}
	if ae.Status == http.StatusRequestTimeout {
		// The rest of a late body may still be trickling in: end the
		// connection rather than read it.
		w.Header().Set("Connection", "close")
	}
	if ae.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(ae.RetryAfter))
	}
	writeJSON(w, ae.Status, map[string]*apiError{"error": ae})
}

// decodeJSON reads the body strictly: one JSON object of exactly v's
// fields, nothing after it. A typo in a field name is an error, not a
// silently ignored setting.
func decodeJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return errorf(http.StatusUnsupportedMediaType, "bad_content_type", "send JSON with Content-Type: application/json, not %q", ct)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errorf(http.StatusRequestEntityTooLarge, "body_too_large", "request body larger than %d bytes", tooBig.Limit)
		}
		return bodyReadError(err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return errorf(http.StatusBadRequest, "bad_json", "the request needs a JSON body")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, "bad_json", "%s", describeDecodeError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, "bad_json", "unexpected data after the JSON object")
	}
	return nil
}

// bodyReadError is the answer to a body that could not be read: 408 when
// it came too slowly (the connection is closed after the answer), 400
// otherwise.
func bodyReadError(err error) *apiError {
	if errors.Is(err, errBodyTimeout) {
		return errorf(http.StatusRequestTimeout, "body_timeout", "%v; send the whole body at once", err)
	}
	return errorf(http.StatusBadRequest, "bad_body", "cannot read the request body: %v", err)
}

func describeDecodeError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tm *time.ParseError
	switch {
	case errors.As(err, &tm):
		return fmt.Sprintf("time %q is not RFC 3339 (write e.g. 2026-11-26T09:00:00+08:00)", tm.Value)
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, err)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q must be %s, not JSON %s", typ.Field, typ.Type, typ.Value)
		}
		return fmt.Sprintf("the body must be a JSON %s, not %s", typ.Type, typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return strings.TrimPrefix(err.Error(), "json: ")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: the body ends too early"
	}
	return "malformed JSON: " + err.Error()
}
