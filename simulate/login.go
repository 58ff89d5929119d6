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
)

// SignallingPath is where `invigil serve` mounts the SFU's WebSocket.
const SignallingPath = "/sfu/ws"

// Endpoints are the two URLs a candidate needs.
type Endpoints struct {
	// API is the server's base URL (http or https), for the candidate login.
	API string
	// Signalling is the SFU's WebSocket URL (ws or wss).
	Signalling string
}

// ParseServer accepts the server's base URL (http://host:8080), which
// gives both endpoints, or the signalling URL itself (ws://host:8080/sfu/ws).
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
		return Endpoints{API: base.String(), Signalling: sig.String()}, nil
	case "ws", "wss":
		api := base
		api.Scheme = map[string]string{"ws": "http", "wss": "https"}[u.Scheme]
		api.Path = strings.TrimSuffix(strings.TrimSuffix(base.Path, "/"), SignallingPath)
		return Endpoints{API: api.String(), Signalling: u.String()}, nil
	}
	return Endpoints{}, fmt.Errorf("server %q: scheme %q, want http, https, ws or wss", server, u.Scheme)
}

// Login is the control plane's answer to a candidate's invitation code.
type Login struct {
	Token       string `json:"token"`
	CandidateID string `json:"candidate_id"`
	Stage       string `json:"stage"`
}

// ErrNoCandidateLogin means the server has no candidate login endpoint
// (a server without the control plane).
var ErrNoCandidateLogin = errors.New("the server has no candidate login (POST /api/v1/candidate/login answered 404): it runs without the control plane; join with --token, or --token-key with the server's sfu_token_key")

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
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed:
		// A 404 whose body names the code (an unknown code) is the control
		// plane's answer, not a missing endpoint.
		if msg := apiError(b); msg != "" && resp.StatusCode == http.StatusNotFound {
			return Login{}, fmt.Errorf("candidate login: %s", msg)
		}
		return Login{}, ErrNoCandidateLogin
	case resp.StatusCode != http.StatusOK:
		msg := apiError(b)
		if msg == "" {
			msg = strings.TrimSpace(string(b))
		}
		return Login{}, fmt.Errorf("candidate login: %s: %s", resp.Status, msg)
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

// apiError is the "error" field of a JSON error body, if there is one.
func apiError(b []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) != nil {
		return ""
	}
	return e.Error
}
