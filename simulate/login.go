package simulate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"invigil/contract"
)

// SignallingPath is where `invigil serve` mounts the SFU's WebSocket.
const SignallingPath = contract.SignallingPath

// Endpoints are the two URLs a candidate needs.
type Endpoints struct {
	// API is the server's base URL (http or https), for the candidate login.
	API string
	// Signaling is the SFU's WebSocket URL (ws or wss).
	Signaling string
}

// ParseServer accepts the server's base URL (http://host:8080), which
// gives both endpoints, or the signaling URL itself (ws://host:8080/sfu/ws).
func ParseServer(server string) (Endpoints, error) {
	u, err := url.Parse(server)
	if err != nil || u.Host == "" {
		return Endpoints{}, fmt.Errorf("server %q: want a URL such as http://127.0.0.1:8080", server)
	}
	base := *u
	base.RawQuery, base.Fragment = "", ""
	switch u.Scheme {
	case "http", "https":
		base.Path = strings.TrimSuffix(base.Path, "/")
		sig := base
		sig.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
		sig.Path = base.Path + SignallingPath
		return Endpoints{API: base.String(), Signaling: sig.String()}, nil
	case "ws", "wss":
		api := base
		api.Scheme = map[string]string{"ws": "http", "wss": "https"}[u.Scheme]
		api.Path = strings.TrimSuffix(strings.TrimSuffix(base.Path, "/"), SignallingPath)
		return Endpoints{API: api.String(), Signaling: u.String()}, nil
	}
	return Endpoints{}, fmt.Errorf("server %q: scheme %q, want http, https, ws or wss", server, u.Scheme)
}

// Login is the control plane's answer to a candidate's invitation code.
type Login struct {
	Token       string `json:"token"`
	CandidateID int64  `json:"candidate_id"`
	Stage       string `json:"stage"`
}

// ErrNoCandidateLogin means the server has no candidate login endpoint
// (a server without the control plane).
var ErrNoCandidateLogin = errors.New("the server has no candidate login (POST /api/v1/candidate/login answered 404): it runs without the control plane; join with --token, or --token-key with the server's sfu_token_key")

// ErrWrongCode matches (errors.Is) the control plane's answer to an
// invitation code it does not know.
var ErrWrongCode = errors.New("wrong invitation code")

// APIError is an error answer of the control plane: docs/API.md's
// {"error": {"code", "message"}}, or the older {"error": "message"}, which
// has no code.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("%s (%d)", e.Message, e.Status)
	}
	return fmt.Sprintf("%s (%d %s)", e.Message, e.Status, e.Code)
}

// Is makes a 404 unknown_code match ErrWrongCode; so does a 404 with a
// message but no code, which older servers sent only for unknown codes.
func (e *APIError) Is(target error) bool {
	return target == ErrWrongCode && e.Status == http.StatusNotFound && (e.Code == "unknown_code" || e.Code == "")
}

// LoginWithCode exchanges an invitation code for a token, as the candidate
// page does: POST /api/v1/candidate/login {"code"} → {"token",…}.
func LoginWithCode(ctx context.Context, apiBase, code string) (Login, error) {
	code = strings.TrimSpace(code)
	if code == "" {
		return Login{}, errors.New("empty invitation code")
	}
	body, _ := json.Marshal(map[string]string{"code": code})
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(apiBase, "/")+"/api/v1/candidate/login", bytes.NewReader(body))
	if err != nil {
		return Login{}, fmt.Errorf("candidate login: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Login{}, fmt.Errorf("candidate login: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		ae, ok := apiError(resp.StatusCode, b)
		switch {
		case ok && errors.Is(ae, ErrWrongCode):
			// The control plane's answer to the code, not a missing endpoint.
			return Login{}, fmt.Errorf("candidate login: %w", ae)
		case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed:
			// No such route (no_such_route, or a server's plain 404): a
			// server without the control plane.
			return Login{}, ErrNoCandidateLogin
		case ok:
			return Login{}, fmt.Errorf("candidate login: %w", ae)
		}
		return Login{}, fmt.Errorf("candidate login: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var l Login
	if err := json.Unmarshal(b, &l); err != nil {
		return Login{}, fmt.Errorf("candidate login: unexpected answer: %w", err)
	}
	if l.Token == "" {
		return Login{}, errors.New("candidate login: the answer has no token")
	}
	return l, nil
}

// apiError reads a JSON error body in either shape; ok is false when the
// body is neither.
func apiError(status int, b []byte) (*APIError, bool) {
	var body struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(b, &body) != nil || len(body.Error) == 0 {
		return nil, false //nolint:nilerr // not our error format: the caller reports the status instead
	}
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(body.Error, &e); err == nil && (e.Code != "" || e.Message != "") {
		if e.Message == "" {
			e.Message = e.Code
		}
		return &APIError{Status: status, Code: e.Code, Message: e.Message}, true
	}
	var msg string
	if err := json.Unmarshal(body.Error, &msg); err == nil && msg != "" {
		return &APIError{Status: status, Message: msg}, true
	}
	return nil, false
}

// MediaURL asks the control plane where the candidate's media go, as the
// candidate page does before it joins: POST /api/v1/media/token → {"url"}.
// With several nodes that is the exam's media node (ws(s)://…/sfu/ws);
// a path (one node) is resolved against apiBase.
func MediaURL(ctx context.Context, apiBase, token string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	base := strings.TrimSuffix(apiBase, "/")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/media/token", strings.NewReader("{}"))
	if err != nil {
		return "", fmt.Errorf("media token: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("media token: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		if ae, ok := apiError(resp.StatusCode, b); ok {
			return "", fmt.Errorf("media token: %w", ae)
		}
		return "", fmt.Errorf("media token: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var answer struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal(b, &answer); err != nil || answer.URL == "" {
		return "", fmt.Errorf("media token: unexpected answer %.200q", b)
	}
	if strings.HasPrefix(answer.URL, "ws://") || strings.HasPrefix(answer.URL, "wss://") {
		return answer.URL, nil
	}
	switch {
	case strings.HasPrefix(base, "https://"):
		return "wss://" + strings.TrimPrefix(base, "https://") + answer.URL, nil
	case strings.HasPrefix(base, "http://"):
		return "ws://" + strings.TrimPrefix(base, "http://") + answer.URL, nil
	}
	return "", fmt.Errorf("media token: cannot resolve %q against %q", answer.URL, apiBase)
}
