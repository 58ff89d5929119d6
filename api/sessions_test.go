package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"invigil/store"
)

func userID(t *testing.T, h *harness, name string) int64 {
	t.Helper()
	u, err := h.st.UserByUsername(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// Old logins end when what they stand for changes: a password change (from
// the admin console or `invigil admin users passwd`, which writes the store
// directly), a role change, disabling. Re-enabling brings none back.
func TestLoginsEndWithPasswordRoleAndDisable(t *testing.T) {
	h := newHarness(t)
	first := h.staff("qian", "proctor")
	second := h.login("qian", "password-qian")
	id := itoa(userID(t, h, "qian"))
	live := func(tok string) bool { return h.do("GET", "/api/v1/auth/me", tok, nil).status == 200 }

	h.must(200, "PATCH", "/api/v1/users/"+id, h.admin, map[string]string{"password": "a-new-password"})
	if live(first) || live(second) {
		t.Fatal("a login made with the old password still works after the password change")
	}
	tok := h.login("qian", "a-new-password")

	h.must(200, "PATCH", "/api/v1/users/"+id, h.admin, map[string]string{"role": "examiner"})
	if live(tok) {
		t.Fatal("a proctor's login still works after the role became examiner")
	}
	tok = h.login("qian", "a-new-password")

	h.must(200, "PATCH", "/api/v1/users/"+id, h.admin, map[string]bool{"disabled": true})
	h.must(200, "PATCH", "/api/v1/users/"+id, h.admin, map[string]bool{"disabled": false})
	if live(tok) {
		t.Fatal("a login from before disabling works again after re-enabling")
	}
	tok = h.login("qian", "a-new-password")

	// The CLI's way: the store, without the API.
	hash, err := HashPassword("set-by-the-cli")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.st.UpdateUser(context.Background(), userID(t, h, "qian"), store.UserUpdate{PasswordHash: &hash}); err != nil {
		t.Fatal(err)
	}
	if live(tok) {
		t.Fatal("a login still works after the password was changed in the store")
	}
	if !live(h.login("qian", "set-by-the-cli")) {
		t.Fatal("the new password's login does not work")
	}
	if !live(h.admin) {
		t.Error("the admin's own login ended with changes to another user")
	}
}

func cookieNamed(resp answer, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: resp.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// With secure_cookies, login cookies are Secure although the server sees
// plain HTTP (a proxy in front terminates TLS); without it they are not,
// so a plain-HTTP test setup still logs in.
func TestSecureCookies(t *testing.T) {
	for _, secure := range []bool{false, true} {
		h := newHarness(t, func(o *ControlOptions) { o.SecureCookies = secure })
		cand := h.candidate(h.exam(), "c")
		staff := h.must(200, "POST", "/api/v1/auth/login", "", loginBody("admin", adminPassword))
		candidate := h.must(200, "POST", "/api/v1/candidate/login", "", codeBody(cand.Codes["rest_room"]))
		var l loginAnswer
		staff.decode(t, &l)
		logout := h.must(204, "POST", "/api/v1/auth/logout", l.Token, nil)
		for _, c := range []struct {
			what   string
			a      answer
			cookie string
		}{{"staff login", staff, staffCookie}, {"candidate login", candidate, candidateCookie}, {"logout", logout, staffCookie}} {
			ck := cookieNamed(c.a, c.cookie)
			if ck == nil {
				t.Fatalf("%s set no %s cookie: %v", c.what, c.cookie, c.a.header["Set-Cookie"])
			}
			if ck.Secure != secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
				t.Errorf("secure_cookies %v: %s cookie %+v, want Secure %v, HttpOnly, SameSite=Strict", secure, c.what, ck, secure)
			}
		}
	}
}

// Every answer says nosniff: probes, metrics, the API's answers and
// errors, unknown paths, and what cmd mounts (the pages).
func TestNoSniffEverywhere(t *testing.T) {
	h := newHarness(t)
	h.srv.Handle("GET /page", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "<!doctype html><p>page</p>")
	}))
	for _, c := range []struct{ method, path, token string }{
		{"GET", "/healthz", ""},
		{"GET", "/readyz", ""},
		{"GET", "/metrics", ""},
		{"GET", "/page", ""},
		{"GET", "/no/such/page", ""},
		{"GET", "/api/v1/openapi.json", ""},
		{"GET", "/api/v1/exams", h.admin},
		{"GET", "/api/v1/exams", ""},
		{"GET", "/api/v1/nothing-here", h.admin},
		{"POST", "/api/v1/candidate/login", ""},
	} {
		a := h.do(c.method, c.path, c.token, nil)
		if got := a.header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s %s (%d): X-Content-Type-Options %q, want nosniff", c.method, c.path, a.status, got)
		}
	}
}

// With metrics_token set, /metrics wants it as a bearer token: 401 in the
// API's error shape without it or with a wrong one, the metrics with it.
func TestMetricsToken(t *testing.T) {
	const token = "metrics-token-for-the-scraper"
	s, err := New(Options{Registry: prometheus.NewRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MetricsToken: token})
	if err != nil {
		t.Fatal(err)
	}
	base := serveOnLoopback(t, s)
	scrape := func(auth string) (int, http.Header, string) {
		req, _ := http.NewRequest("GET", base+"/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	for _, auth := range []string{"", "Bearer wrong", "Bearer " + token + "x", "Bearer " + token[:10], "Basic " + token, token} {
		status, hdr, body := scrape(auth)
		if status != 401 || !strings.Contains(body, `"code":"unauthenticated"`) || hdr.Get("WWW-Authenticate") == "" || strings.Contains(body, "invigil_") {
			t.Errorf("Authorization %q: %d %s, want 401 in the error shape with WWW-Authenticate", auth, status, body)
		}
	}
	if status, _, body := scrape("Bearer " + token); status != 200 || !strings.Contains(body, "invigil_build_info") {
		t.Errorf("with the token: %d %.200s", status, body)
	}
	// The probes stay open for the orchestrator.
	if status, _ := get(t, base+"/healthz"); status != 200 {
		t.Errorf("/healthz with a metrics token set: %d", status)
	}
}
