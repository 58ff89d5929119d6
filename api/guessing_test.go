package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"invigil/internal/metrictest"
)

// netClient is an HTTP client whose connections come from the loopback
// address ip, so the server sees it as another client network.
func netClient(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}

// doFrom is harness.do through cl; safe to call from several goroutines.
func (h *harness) doFrom(cl *http.Client, method, path, token string, body any) (answer, error) {
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			return answer{}, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.base+path, rd)
	if err != nil {
		return answer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := cl.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, body: b, header: resp.Header}, err
}

// mustFrom is doFrom that fails the test on a transport error.
func (h *harness) mustFrom(cl *http.Client, method, path, token string, body any) answer {
	h.t.Helper()
	a, err := h.doFrom(cl, method, path, token, body)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	return a
}

// wrongCode is a six-digit code that is none of codes.
func wrongCode(codes map[string]string, n int) string {
	for {
		c := fmt.Sprintf("%06d", n%1000000)
		taken := false
		for _, v := range codes {
			taken = taken || v == c
		}
		if !taken {
			return c
		}
		n++
	}
}

func codeBody(code string) map[string]string { return map[string]string{"code": code} }

// The attack of issue 10: a candidate who holds a valid code logs in with
// it between wrong guesses. The valid logins forgive nothing: the fifth
// wrong guess already owes a wait, and each further one twice as long, for
// all the valid logins between them.
func TestValidCodeForgivesNoGuesses(t *testing.T) {
	h := newHarness(t) // CodeAttempts 5
	cand := h.candidate(h.exam(), "holder")
	own := cand.Codes["rest_room"]
	for i := range 4 {
		if a := h.do("POST", "/api/v1/candidate/login", "", codeBody(wrongCode(cand.Codes, 100+i))); a.status != 404 {
			t.Fatalf("wrong guess %d: %d %s", i+1, a.status, a.body)
		}
		h.codeLogin(own)
	}
	wantWait := 1
	for i := 4; i < 24; i++ {
		a := h.do("POST", "/api/v1/candidate/login", "", codeBody(wrongCode(cand.Codes, 100+i)))
		if a.status != 429 || a.header.Get("Retry-After") != strconv.Itoa(wantWait) {
			t.Fatalf("wrong guess %d after valid logins: %d Retry-After %q %s, want 429 after %d s",
				i+1, a.status, a.header.Get("Retry-After"), a.body, wantWait)
		}
		// Until the wait is over, not even the valid code gets in.
		if a := h.do("POST", "/api/v1/candidate/login", "", codeBody(own)); a.status != 429 {
			t.Fatalf("valid code during the wait: %d %s", a.status, a.body)
		}
		h.clock.Add(time.Duration(wantWait)*time.Second + time.Millisecond)
		h.codeLogin(own)
		wantWait = min(wantWait*2, int(maxFailWait.Seconds()))
	}
	if n := metrictest.Sum(t, h.reg, "invigil_code_attempts_failed_total"); n != 24 {
		t.Errorf("invigil_code_attempts_failed_total %v, want 24", n)
	}
}

// Wrong codes count per client network: one network's wait is not
// another's.
func TestCodeLimitPerNetwork(t *testing.T) {
	h := newHarness(t, func(o *ControlOptions) { o.CodeAttempts = 3 })
	cand := h.candidate(h.exam(), "c")
	a, b := netClient(t, "127.0.0.2"), netClient(t, "127.0.0.3")
	for i := range 3 {
		h.mustFrom(a, "POST", "/api/v1/candidate/login", "", codeBody(wrongCode(cand.Codes, i)))
	}
	if ans := h.mustFrom(a, "POST", "/api/v1/candidate/login", "", codeBody(cand.Codes["rest_room"])); ans.status != 429 {
		t.Fatalf("network A after 3 wrong codes: %d %s, want 429", ans.status, ans.body)
	}
	if ans := h.mustFrom(b, "POST", "/api/v1/candidate/login", "", codeBody(wrongCode(cand.Codes, 50))); ans.status != 404 {
		t.Errorf("network B's first wrong code: %d %s, want 404 (its own count)", ans.status, ans.body)
	}
	if ans := h.mustFrom(b, "POST", "/api/v1/candidate/login", "", codeBody(cand.Codes["rest_room"])); ans.status != 200 {
		t.Errorf("network B's right code: %d %s, want 200", ans.status, ans.body)
	}
}

// An IPv6 client is counted by its /64, so walking through the addresses
// of one allocation does not buy new guesses.
func TestCodeLimitIPv6Slash64(t *testing.T) {
	l := newCodeLimiter(2, 1000, 1000, 0, prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"}))
	now := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	key := func(addr string) string { return clientKey(&http.Request{RemoteAddr: addr}) }
	for _, addr := range []string{"[2001:db8:7:7::1]:5000", "[2001:db8:7:7:ffff::2]:5001"} {
		a, wait, _ := l.admit(key(addr), now)
		if a == nil {
			t.Fatalf("%s refused (%s) before its network's free codes were used", addr, wait)
		}
		a.fail(now)
	}
	if a, wait, global := l.admit(key("[2001:db8:7:7::abcd]:6000"), now); a != nil || wait != time.Second || global {
		t.Errorf("a third address of the same /64: admitted %v, wait %s, global %v; want refused for 1 s by its network", a != nil, wait, global)
	}
	if a, _, _ := l.admit(key("[2001:db8:7:8::1]:5000"), now); a == nil {
		t.Error("the next /64 was refused")
	}
}

// The global ceiling: when many networks guess at once, each within its
// own allowance, the ceiling of wrong codes a minute stops them together,
// slows every code login (a right one too, from a network that never
// guessed) and raises the alert. Simultaneous guesses cannot overshoot it.
func TestCodeGlobalCeiling(t *testing.T) {
	const perMinute = 10
	h := newHarness(t, func(o *ControlOptions) {
		o.CodeAttempts, o.CodeAlertAddresses, o.CodeFailuresPerMinute = 100, 1000, perMinute
	})
	cand := h.candidate(h.exam(), "c")
	// 40 networks, one wrong code each, all at once.
	var wg sync.WaitGroup
	answers := make(chan answer, 40)
	for i := range 40 {
		cl := netClient(t, fmt.Sprintf("127.0.1.%d", i+1))
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := h.doFrom(cl, "POST", "/api/v1/candidate/login", "", codeBody(wrongCode(cand.Codes, 1000+i)))
			if err != nil {
				t.Error(err)
			}
			answers <- a
		}()
	}
	wg.Wait()
	close(answers)
	statuses := map[int]int{}
	for a := range answers {
		statuses[a.status]++
		if a.status == 429 && (a.header.Get("Retry-After") == "" || a.header.Get("Retry-After") == "0") {
			t.Errorf("429 without a Retry-After: %s", a.body)
		}
	}
	if statuses[404] != perMinute || statuses[429] != 40-perMinute {
		t.Errorf("40 simultaneous wrong codes: %v, want %d answered 404 and the rest 429", statuses, perMinute)
	}
	if n := metrictest.Sum(t, h.reg, "invigil_code_attempts_failed_total"); n != perMinute {
		t.Errorf("failed attempts %v, want %d (refused ones were never checked)", n, perMinute)
	}
	if n := metrictest.Sum(t, h.reg, "invigil_code_guessing_alert"); n != 1 {
		t.Errorf("guessing alert %v at the ceiling, want 1", n)
	}
	fresh := netClient(t, "127.0.2.1")
	a := h.mustFrom(fresh, "POST", "/api/v1/candidate/login", "", codeBody(cand.Codes["rest_room"]))
	// One wrong code's worth of the bucket comes back every 6 s.
	if a.status != 429 || a.errCode() != "too_many_attempts" || a.header.Get("Retry-After") != "6" {
		t.Fatalf("right code from a new network at the ceiling: %d Retry-After %q %s, want 429 after 6 s", a.status, a.header.Get("Retry-After"), a.body)
	}
	var e struct{ Error apiError }
	a.decode(t, &e)
	if e.Error.EN != textThrottled.EN || e.Error.ZH != textThrottled.ZH {
		t.Errorf("message at the ceiling %q, want the one that says it is not the candidate's fault", e.Error.EN)
	}
	h.clock.Add(6 * time.Second)
	if a := h.mustFrom(fresh, "POST", "/api/v1/candidate/login", "", codeBody(cand.Codes["rest_room"])); a.status != 200 {
		t.Fatalf("right code once the bucket refilled: %d %s", a.status, a.body)
	}
	// A right code gives its token back: the next one gets in too.
	if a := h.mustFrom(fresh, "POST", "/api/v1/candidate/login", "", codeBody(cand.Codes["rest_room"])); a.status != 200 {
		t.Fatalf("second right code: %d %s", a.status, a.body)
	}
	h.clock.Add(11 * time.Minute)
	h.mustFrom(fresh, "POST", "/api/v1/candidate/login", "", codeBody(cand.Codes["rest_room"]))
	if n := metrictest.Sum(t, h.reg, "invigil_code_guessing_alert"); n != 0 {
		t.Errorf("guessing alert %v 11 minutes after the ceiling was hit, want 0", n)
	}
}

// The limiter's memory is bounded: a hundred thousand guessing networks
// leave at most RateLimitKeys entries. At the cap, networks not yet
// tracked share one entry, so they are slowed together, not forgotten;
// tracked networks keep their own counts; after an hour without wrong
// codes the table empties and newcomers are tracked one by one again.
func TestCodeLimiterBoundedMemory(t *testing.T) {
	const maxKeys, free = 1000, 5
	l := newCodeLimiter(free, 1<<30, 1<<30, maxKeys, prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"}))
	now := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	ip := func(i int) string { return fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255) }
	tracked := ip(0)
	refusedNewcomers := 0
	for i := range 100_000 {
		a, _, _ := l.admit(ip(i), now)
		if a == nil {
			refusedNewcomers++
			continue
		}
		a.fail(now)
	}
	if n := l.nets.tracked(); n != maxKeys {
		t.Fatalf("tracked networks %d after 100000 guessing networks, want the cap %d", n, maxKeys)
	}
	// The overflow entry had its free codes and then a wait after each:
	// nearly all of the 99000 untracked networks were refused.
	if refusedNewcomers < 99_000-free-1 {
		t.Errorf("untracked networks refused %d times, want nearly all of 99000 (they share one count)", refusedNewcomers)
	}
	if a, wait, _ := l.admit(ip(200_000), now); a != nil || wait <= 0 {
		t.Errorf("a new network at the cap: admitted %v, wait %s; want the shared wait", a != nil, wait)
	}
	// A tracked network still has its own count: one wrong code, so it is
	// admitted.
	if a, _, _ := l.admit(tracked, now); a == nil {
		t.Error("a tracked network was refused by the others' overflow")
	} else {
		a.succeed()
	}
	now = now.Add(failForget + maxFailWait + time.Minute)
	a, _, _ := l.admit(ip(300_000), now)
	if a == nil {
		t.Fatal("a new network after the table aged out was refused")
	}
	a.fail(now)
	if n := l.nets.tracked(); n != 1 {
		t.Errorf("tracked networks %d after an hour of quiet and one new wrong code, want 1", n)
	}
}

// The cap over HTTP, with a table of two networks: the third and fourth
// share one count.
func TestCodeLimiterCapOverHTTP(t *testing.T) {
	h := newHarness(t, func(o *ControlOptions) { o.CodeAttempts, o.RateLimitKeys = 2, 2 })
	cand := h.candidate(h.exam(), "c")
	right := cand.Codes["rest_room"]
	nets := []*http.Client{netClient(t, "127.0.3.1"), netClient(t, "127.0.3.2"), netClient(t, "127.0.3.3"), netClient(t, "127.0.3.4")}
	h.mustFrom(nets[0], "POST", "/api/v1/candidate/login", "", codeBody(wrongCode(cand.Codes, 1)))
	h.mustFrom(nets[1], "POST", "/api/v1/candidate/login", "", codeBody(wrongCode(cand.Codes, 2)))
	if a := h.mustFrom(nets[2], "POST", "/api/v1/candidate/login", "", codeBody(wrongCode(cand.Codes, 3))); a.status != 404 {
		t.Fatalf("third network's first wrong code: %d %s", a.status, a.body)
	}
	// The second wrong code of the untracked ones uses up their shared
	// allowance, although it is the fourth network's first.
	if a := h.mustFrom(nets[3], "POST", "/api/v1/candidate/login", "", codeBody(wrongCode(cand.Codes, 4))); a.status != 429 {
		t.Fatalf("fourth network's first wrong code at the cap: %d %s, want 429 (shared count)", a.status, a.body)
	}
	if a := h.mustFrom(nets[2], "POST", "/api/v1/candidate/login", "", codeBody(right)); a.status != 429 {
		t.Errorf("third network's right code during the shared wait: %d %s, want 429", a.status, a.body)
	}
	if a := h.mustFrom(nets[0], "POST", "/api/v1/candidate/login", "", codeBody(right)); a.status != 200 {
		t.Errorf("a tracked network's right code: %d %s, want 200", a.status, a.body)
	}
	if n := metrictest.Sum(t, h.reg, "invigil_rate_limit_keys", "limiter", "code_network"); n != 2 {
		t.Errorf("invigil_rate_limit_keys{limiter=code_network} %v, want 2", n)
	}
}

// Abandoned attempts (no verdict) count for nothing and give the global
// token back; settling twice changes nothing.
func TestCodeAttemptSettlesOnce(t *testing.T) {
	l := newCodeLimiter(1, 1000, 2, 0, prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"}))
	now := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	for range 10 {
		a, wait, _ := l.admit("192.0.2.1", now)
		if a == nil {
			t.Fatalf("refused (%s) after only aborted attempts", wait)
		}
		a.abort()
		a.fail(now)
	}
	if n := l.nets.tracked(); n != 0 {
		t.Errorf("%d networks tracked after attempts without a verdict", n)
	}
}
