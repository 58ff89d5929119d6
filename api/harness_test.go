package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"invigil/contract"
	"invigil/store"
)

// clock is a test clock the control plane reads through ControlOptions.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// harness is a real API server on loopback over a real SQLite file.
type harness struct {
	t       *testing.T
	base    string
	srv     *Server
	st      *store.Store
	clock   *clock
	reg     *prometheus.Registry
	dataDir string
	admin   string // admin's bearer token
}

const adminPassword = "correct horse battery"

func newHarness(t *testing.T, mutate ...func(*ControlOptions)) *harness {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "invigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &harness{t: t, st: st, dataDir: dir, reg: prometheus.NewRegistry(),
		clock: &clock{t: time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)}}
	co := ControlOptions{Store: st, DataDir: dir, Now: h.clock.Now, CodeAttempts: 5}
	for _, m := range mutate {
		m(&co)
	}
	s, err := New(Options{Registry: h.reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Control: &co})
	if err != nil {
		t.Fatal(err)
	}
	h.srv = s
	h.base = serveOnLoopback(t, s)
	hash, err := HashPassword(adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(context.Background(), "admin", hash, store.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	h.admin = h.login("admin", adminPassword)
	return h
}

type answer struct {
	status int
	body   []byte
	header http.Header
}

// errCode is the "code" of an error answer ("" for none).
func (a answer) errCode() string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(a.body, &e)
	return e.Error.Code
}

func (a answer) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("decode %s: %v", a.body, err)
	}
}

// do sends a request with a bearer token ("" for none). body is nil, a
// string sent as it is, or a value sent as JSON.
func (h *harness) do(method, path, token string, body any) answer {
	h.t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd, ct = strings.NewReader(b), "application/json"
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd, ct = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, h.base+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, body: b, header: resp.Header}
}

// must is do that fails the test unless the status is want.
func (h *harness) must(want int, method, path, token string, body any) answer {
	h.t.Helper()
	a := h.do(method, path, token, body)
	if a.status != want {
		h.t.Fatalf("%s %s: %d %s, want %d", method, path, a.status, a.body, want)
	}
	return a
}

func (h *harness) login(user, password string) string {
	h.t.Helper()
	var l loginAnswer
	h.must(200, "POST", "/api/v1/auth/login", "", map[string]string{"username": user, "password": password}).decode(h.t, &l)
	return l.Token
}

// staff adds a user with role and returns their token.
func (h *harness) staff(name, role string) string {
	h.t.Helper()
	h.must(201, "POST", "/api/v1/users", h.admin, map[string]string{"username": name, "password": "password-" + name, "role": role})
	return h.login(name, "password-"+name)
}

// assign puts the named staff users on the exam's staff (replacing it),
// through the API as an admin does.
func (h *harness) assign(exam int64, usernames ...string) {
	h.t.Helper()
	var users []userView
	h.must(200, "GET", "/api/v1/users", h.admin, nil).decode(h.t, &users)
	ids := []int64{}
	for _, name := range usernames {
		found := false
		for _, u := range users {
			if u.Username == name {
				ids, found = append(ids, u.ID), true
			}
		}
		if !found {
			h.t.Fatalf("assign: no user %q", name)
		}
	}
	h.must(200, "PUT", "/api/v1/exams/"+itoa(exam)+"/staff", h.admin, map[string]any{"user_ids": ids})
}

// userID is the id of the staff user with that name.
func (h *harness) userID(name string) int64 {
	h.t.Helper()
	u, err := h.st.UserByUsername(context.Background(), name)
	if err != nil {
		h.t.Fatal(err)
	}
	return u.ID
}

// exam creates an exam running from an hour ago for three hours.
func (h *harness) exam() int64 {
	h.t.Helper()
	var id idAnswer
	now := h.clock.Now()
	h.must(201, "POST", "/api/v1/exams", h.admin, map[string]any{
		"name": "Interview day", "starts_at": now.Add(-time.Hour), "ends_at": now.Add(2 * time.Hour)}).decode(h.t, &id)
	return id.ID
}

func (h *harness) candidate(exam int64, name string) candidateCodesAnswer {
	h.t.Helper()
	var c candidateCodesAnswer
	h.must(201, "POST", "/api/v1/exams/"+itoa(exam)+"/candidates", h.admin, map[string]string{"name": name}).decode(h.t, &c)
	return c
}

func (h *harness) codeLogin(code string) candidateLoginAnswer {
	h.t.Helper()
	var l candidateLoginAnswer
	h.must(200, "POST", "/api/v1/candidate/login", "", map[string]string{"code": code}).decode(h.t, &l)
	return l
}

// events reads an exam's event stream from since until n events arrived
// or the timeout passed.
func (h *harness) events(path, token string, since string, n int) []store.Event {
	h.t.Helper()
	return h.openEvents(path, token, since)(n)
}

// openEvents opens an event stream and returns once the server has
// answered with its headers, which it sends after fixing where the stream
// starts (?since=now included): whatever commits after openEvents returns
// is on the stream. The returned function reads the next n events.
func (h *harness) openEvents(path, token string, since string) func(n int) []store.Event {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	req, _ := http.NewRequestWithContext(ctx, "GET", h.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if since != "" {
		req.Header.Set("Last-Event-ID", since)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		cancel()
		resp.Body.Close()
	})
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		h.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	sc := bufio.NewScanner(resp.Body)
	return func(n int) []store.Event {
		h.t.Helper()
		var out []store.Event
		for len(out) < n && sc.Scan() {
			line := sc.Text()
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				var e store.Event
				if err := json.Unmarshal([]byte(data), &e); err != nil {
					h.t.Fatalf("event data %q: %v", data, err)
				}
				out = append(out, e)
			}
		}
		return out
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func staffIdentity(id int64) string { return contract.StaffIdentity(id) }

func examRoom(id int64) string { return contract.ExamRoom(id) }
