package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"invigil/internal/metrictest"
	"invigil/store"
)

func loginBody(user, password string) map[string]string {
	return map[string]string{"username": user, "password": password}
}

// failedLogins are the audit log's login.failed rows for target.
func failedLogins(t *testing.T, st *store.Store, target string) []store.AuditEntry {
	t.Helper()
	log, err := st.AuditLog(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []store.AuditEntry
	for _, e := range log {
		if e.Action == "login.failed" && e.Target == target {
			out = append(out, e)
		}
	}
	return out
}

// Guessing one username's password from two networks: the count is the
// username's, across networks, with growing waits and a clear 429; the
// right password works once the wait is over and clears the username's
// count; every failure is in the audit log, without the password.
func TestStaffLoginThrottledPerUsername(t *testing.T) {
	h := newHarness(t) // LoginAttempts 5
	h.staff("zhang", "examiner")
	a, b := netClient(t, "127.0.4.1"), netClient(t, "127.0.4.2")
	const guess = "guess-number-"
	for i := range 4 {
		if ans := h.mustFrom(a, "POST", "/api/v1/auth/login", "", loginBody("zhang", guess+fmt.Sprint(i))); ans.status != 401 || ans.errCode() != "bad_credentials" {
			t.Fatalf("wrong password %d: %d %s", i+1, ans.status, ans.body)
		}
	}
	ans := h.mustFrom(a, "POST", "/api/v1/auth/login", "", loginBody("zhang", guess+"4"))
	if ans.status != 429 || ans.errCode() != "too_many_attempts" || ans.header.Get("Retry-After") != "1" ||
		!strings.Contains(ans.header.Get("Content-Type"), "application/json") {
		t.Fatalf("fifth wrong password: %d Retry-After %q %s, want a JSON 429 after 1 s", ans.status, ans.header.Get("Retry-After"), ans.body)
	}
	// During the wait even the right password is refused, from any network,
	// and such refusals are not counted as failures.
	for _, cl := range []*http.Client{a, b} {
		if ans := h.mustFrom(cl, "POST", "/api/v1/auth/login", "", loginBody("ZHANG", "password-zhang")); ans.status != 429 {
			t.Fatalf("right password during the wait: %d %s", ans.status, ans.body)
		}
	}
	h.clock.Add(time.Second)
	ans = h.mustFrom(b, "POST", "/api/v1/auth/login", "", loginBody("zhang", guess+"5"))
	if ans.status != 429 || ans.header.Get("Retry-After") != "2" {
		t.Fatalf("sixth wrong password, from another network: %d Retry-After %q, want 429 after 2 s", ans.status, ans.header.Get("Retry-After"))
	}
	h.clock.Add(2 * time.Second)
	if ans := h.mustFrom(b, "POST", "/api/v1/auth/login", "", loginBody("zhang", "password-zhang")); ans.status != 200 {
		t.Fatalf("right password after the wait: %d %s", ans.status, ans.body)
	}
	// Zhang proved his password: his own next typo is a plain 401.
	if ans := h.mustFrom(b, "POST", "/api/v1/auth/login", "", loginBody("zhang", "typo")); ans.status != 401 {
		t.Errorf("typo after a right login: %d %s, want 401", ans.status, ans.body)
	}
	rows := failedLogins(t, h.st, "user:zhang")
	if len(rows) != 7 {
		t.Errorf("%d login.failed audit rows for zhang, want 7", len(rows))
	}
	for _, e := range rows {
		if strings.Contains(string(e.Details), guess) || strings.Contains(string(e.Details), "typo") ||
			!strings.Contains(string(e.Details), `"reason":"wrong_password"`) || !strings.Contains(string(e.Details), `"network":"127.0.4.`) {
			t.Errorf("audit details %s: want the reason and network, never the password", e.Details)
		}
	}
	if n := metrictest.Sum(t, h.reg, "invigil_logins_total", "kind", "staff", "result", "limited"); n != 2 {
		t.Errorf("staff logins refused while waiting %v, want 2", n)
	}
}

// One network spraying many usernames: its count is the network's, a
// right password from it does not forgive it, and other networks are not
// slowed by it.
func TestStaffLoginThrottledPerNetwork(t *testing.T) {
	h := newHarness(t, func(o *ControlOptions) { o.LoginAttempts, o.LoginNetworkAttempts = 100, 4 })
	h.staff("li", "proctor")
	a, b := netClient(t, "127.0.5.1"), netClient(t, "127.0.5.2")
	for i := range 3 {
		if ans := h.mustFrom(a, "POST", "/api/v1/auth/login", "", loginBody(fmt.Sprintf("user%d", i), "whatever-pw")); ans.status != 401 {
			t.Fatalf("spray %d: %d %s", i, ans.status, ans.body)
		}
	}
	if ans := h.mustFrom(a, "POST", "/api/v1/auth/login", "", loginBody("user3", "whatever-pw")); ans.status != 429 || ans.header.Get("Retry-After") != "1" {
		t.Fatalf("fourth sprayed name: %d Retry-After %q, want 429 after 1 s", ans.status, ans.header.Get("Retry-After"))
	}
	if ans := h.mustFrom(a, "POST", "/api/v1/auth/login", "", loginBody("li", "password-li")); ans.status != 429 {
		t.Fatalf("right password from the spraying network during its wait: %d %s", ans.status, ans.body)
	}
	if ans := h.mustFrom(b, "POST", "/api/v1/auth/login", "", loginBody("li", "password-li")); ans.status != 200 {
		t.Fatalf("right password from another network: %d %s", ans.status, ans.body)
	}
	h.clock.Add(time.Second)
	if ans := h.mustFrom(a, "POST", "/api/v1/auth/login", "", loginBody("li", "password-li")); ans.status != 200 {
		t.Fatalf("right password from the spraying network after its wait: %d %s", ans.status, ans.body)
	}
	if ans := h.mustFrom(a, "POST", "/api/v1/auth/login", "", loginBody("user9", "whatever-pw")); ans.status != 429 || ans.header.Get("Retry-After") != "2" {
		t.Errorf("next sprayed name after a right login: %d Retry-After %q, want 429 after 2 s (not forgiven)", ans.status, ans.header.Get("Retry-After"))
	}
	if rows := failedLogins(t, h.st, "user:user0"); len(rows) != 1 || !strings.Contains(string(rows[0].Details), `"reason":"unknown_user"`) {
		t.Errorf("audit rows for an unknown name: %+v", rows)
	}
}

// A burst of 64 simultaneous wrong logins: no more hashes run at once than
// the gate has slots, so memory grows by slots × 19 MiB, not 64 × 19 MiB.
// The limits are set out of the way so that only the gate bounds them.
func TestStaffLoginBurstHashesBounded(t *testing.T) {
	const slots = 2
	h := newHarness(t, func(o *ControlOptions) {
		o.LoginAttempts, o.LoginNetworkAttempts = 1000, 1000
		o.HashConcurrency, o.HashWait = slots, 10*time.Minute
	})
	h.staff("wang", "assistant")
	gate := h.srv.ctl.hashes
	gate.peak.Store(0)
	statuses := burst(t, h, 64, func(i int) map[string]string {
		if i%2 == 0 {
			return loginBody("wang", fmt.Sprintf("wrong-%d", i))
		}
		return loginBody(fmt.Sprintf("ghost%d", i), "wrong-password")
	})
	if statuses[401] != 64 {
		t.Errorf("burst answers %v, want 64 × 401", statuses)
	}
	peak := gate.peak.Load()
	t.Logf("peak hashes at once during a burst of 64: %d (slots %d)", peak, slots)
	if peak < 1 || peak > slots {
		t.Errorf("peak hashes at once %d, want 1 to %d", peak, slots)
	}
	if n := metrictest.Sum(t, h.reg, "invigil_password_hashes_running"); n != 0 {
		t.Errorf("invigil_password_hashes_running %v after the burst, want 0", n)
	}
	if rows := failedLogins(t, h.st, "user:wang"); len(rows) != 32 {
		t.Errorf("%d audit rows for wang, want 32", len(rows))
	}
}

// A burst at one username with the default limits: attempts are admitted
// before they are checked, so the burst gets the username's five tries and
// no more, however many arrive at once.
func TestStaffLoginBurstCannotOvertakeTheCount(t *testing.T) {
	h := newHarness(t, func(o *ControlOptions) { o.LoginNetworkAttempts = 1000 })
	h.staff("zhao", "proctor")
	statuses := burst(t, h, 64, func(i int) map[string]string { return loginBody("zhao", fmt.Sprintf("wrong-%d", i)) })
	// Four plain failures; the fifth owes the first wait and says so.
	if statuses[401] != 4 || statuses[429] != 60 {
		t.Errorf("burst of 64 at one username: %v, want 4 × 401 and 60 × 429", statuses)
	}
	if rows := failedLogins(t, h.st, "user:zhao"); len(rows) != 5 {
		t.Errorf("%d passwords checked for zhao, want 5", len(rows))
	}
}

// burst sends n simultaneous logins from 127.0.6.1 and counts the answers
// by status.
func burst(t *testing.T, h *harness, n int, body func(i int) map[string]string) map[int]int {
	t.Helper()
	cl := netClient(t, "127.0.6.1")
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := h.doFrom(cl, "POST", "/api/v1/auth/login", "", body(i))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			statuses[a.status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return statuses
}

// When no hash slot frees up in time the login is answered 503 with
// Retry-After, counts as no attempt at all, and the right password works
// once a slot is free.
func TestStaffLoginBusyGate(t *testing.T) {
	h := newHarness(t, func(o *ControlOptions) {
		o.LoginAttempts, o.HashConcurrency, o.HashWait = 2, 1, 20*time.Millisecond
	})
	h.staff("sun", "proctor")
	gate := h.srv.ctl.hashes
	gate.slots <- struct{}{} // a hash that takes forever
	for i := range 3 {
		ans := h.do("POST", "/api/v1/auth/login", "", loginBody("sun", "password-sun"))
		if ans.status != 503 || ans.errCode() != "busy" || ans.header.Get("Retry-After") != "1" {
			t.Fatalf("login %d with no free slot: %d Retry-After %q %s, want 503 busy", i, ans.status, ans.header.Get("Retry-After"), ans.body)
		}
	}
	<-gate.slots
	if ans := h.do("POST", "/api/v1/auth/login", "", loginBody("sun", "password-sun")); ans.status != 200 {
		t.Fatalf("login once a slot is free: %d %s (busy answers must not count as failures)", ans.status, ans.body)
	}
	if n := metrictest.Sum(t, h.reg, "invigil_logins_total", "kind", "staff", "result", "busy"); n != 3 {
		t.Errorf("busy logins counted %v, want 3", n)
	}
}

// The dummy hash for unknown names is made on first use, once.
func TestDummyHashLazy(t *testing.T) {
	a, b := dummyHash(), dummyHash()
	if a != b || !strings.HasPrefix(a, "$argon2id$") || VerifyPassword(a, "") {
		t.Errorf("dummy hash %q, %q", a, b)
	}
}
