package api

import (
	"context"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Guessing. Invitation codes are six digits, so a million of them with a
// few thousand active: a blind guess hits once in a few hundred tries.
// Staff passwords are stronger but their owners hold more power. Both are
// defended the same way: wrong answers are counted per client network (and,
// for staff, per username too), each key gets a few for free and then waits
// 1 s, 2 s, 4 s … (at most 15 minutes) after each further wrong one. A
// right answer does not forgive the network's wrong ones: a candidate who
// holds one valid code could otherwise guess others between logins with it.
// Codes also have a global ceiling of wrong answers per minute, because a
// botnet has more networks than any per-network limit can count.

const (
	maxFailWait = 15 * time.Minute
	// failForget: a key without a wrong answer for this long starts afresh.
	// It is the only forgiveness, so a network shared by many honest
	// candidates (a school's NAT) recovers from their typos by the hour.
	failForget = time.Hour
	// alertWindow is how far back the code-guessing alert looks.
	alertWindow = 10 * time.Minute
	// busyRetry is the wait told to a client whose key already has an
	// attempt over its free budget being checked.
	busyRetry = time.Second
	// defaultLimiterKeys caps each limiter's table: ~100 bytes a key, so
	// a few MiB at most whatever a botnet sends.
	defaultLimiterKeys = 65536
)

// clientKey is the client network the limits count (clientNetwork: an IPv4
// address, an IPv6 /64), or the raw peer address when it is not an IP.
// Behind a reverse proxy every client shares the proxy's network, so the
// README says to keep the limits per proxy in mind.
func clientKey(r *http.Request) string {
	if n := clientNetwork(r.RemoteAddr); n != "" {
		return n
	}
	return r.RemoteAddr
}

// failureLimiter counts wrong answers per key with growing waits. Its table
// holds at most max keys. At the cap, keys not yet in it share one overflow
// entry: their wrong answers count together, so they are slowed together
// rather than forgotten (an attacker cannot launder its count by filling
// the table), at the price that honest newcomers wait with them until the
// table has room again (entries leave an hour after their last wrong
// answer).
//
// Attempts are admitted before they are checked and settled after, so a
// burst of simultaneous attempts cannot overtake the count: once a key's
// free answers are used up (counting those in flight), it has at most one
// attempt in flight.
type failureLimiter struct {
	free int
	max  int
	// forgive: a success clears the key's count (a username whose owner
	// proved the password; never a network).
	forgive bool

	mu        sync.Mutex
	byKey     map[string]*failState
	overflow  failState
	lastSweep time.Time
	// recent counts the keys with a wrong answer within alertWindow; exact
	// after each sweep, an overestimate by at most a minute's aging
	// between sweeps.
	recent int
}

type failState struct {
	fails     int
	pending   int
	lastFail  time.Time
	waitUntil time.Time
}

func newFailureLimiter(free, max int, forgive bool) *failureLimiter {
	if max <= 0 {
		max = defaultLimiterKeys
	}
	return &failureLimiter{free: free, max: max, forgive: forgive, byKey: map[string]*failState{}}
}

// attempt is one admitted try; exactly one of fail, succeed or abort
// settles it (later calls do nothing).
type attempt struct {
	l       *failureLimiter
	key     string
	st      *failState
	settled bool
}

// admit lets one try of key in, or says how long key must wait.
func (l *failureLimiter) admit(key string, now time.Time) (*attempt, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	st := l.byKey[key]
	if st == nil {
		if len(l.byKey) >= l.max {
			st = &l.overflow
		} else {
			st = &failState{}
			l.byKey[key] = st
		}
	}
	if st.pending == 0 && st.fails > 0 && now.Sub(st.lastFail) > failForget && !now.Before(st.waitUntil) {
		st.fails = 0
	}
	if now.Before(st.waitUntil) {
		return nil, st.waitUntil.Sub(now)
	}
	if st.pending > 0 && st.fails+st.pending >= l.free {
		return nil, busyRetry
	}
	st.pending++
	return &attempt{l: l, key: key, st: st}, 0
}

// fail settles a wrong answer and returns the wait the key now owes.
func (a *attempt) fail(now time.Time) time.Duration {
	if a == nil || a.settled {
		return 0
	}
	l := a.l
	l.mu.Lock()
	defer l.mu.Unlock()
	a.settled = true
	st := a.st
	st.pending--
	if st.lastFail.IsZero() || now.Sub(st.lastFail) > alertWindow {
		l.recent++
	}
	st.fails++
	st.lastFail = now
	var wait time.Duration
	if over := st.fails - l.free; over >= 0 {
		wait = time.Duration(math.Min(math.Pow(2, float64(over)), maxFailWait.Seconds())) * time.Second
		st.waitUntil = now.Add(wait)
	}
	return wait
}

// succeed settles a right answer.
func (a *attempt) succeed() { a.settle(true) }

// abort settles an attempt that got no verdict (the server was busy or
// failed): it counts for nothing.
func (a *attempt) abort() { a.settle(false) }

func (a *attempt) settle(success bool) {
	if a == nil || a.settled {
		return
	}
	l := a.l
	l.mu.Lock()
	defer l.mu.Unlock()
	a.settled = true
	st := a.st
	st.pending--
	if success && l.forgive && st != &l.overflow {
		st.fails, st.waitUntil = 0, time.Time{}
	}
	// Keys that never failed need no memory.
	if st != &l.overflow && st.fails == 0 && st.pending == 0 && l.byKey[a.key] == st {
		delete(l.byKey, a.key)
	}
}

// sweepLocked drops keys quiet for failForget and recounts recent, at most
// once a minute, so the table shrinks back after an attack.
func (l *failureLimiter) sweepLocked(now time.Time) {
	if now.Sub(l.lastSweep) < time.Minute {
		return
	}
	l.lastSweep = now
	l.recent = 0
	for k, st := range l.byKey {
		if st.pending == 0 && now.Sub(st.lastFail) > failForget && !now.Before(st.waitUntil) {
			delete(l.byKey, k)
			continue
		}
		if !st.lastFail.IsZero() && now.Sub(st.lastFail) <= alertWindow {
			l.recent++
		}
	}
	if !l.overflow.lastFail.IsZero() && now.Sub(l.overflow.lastFail) <= alertWindow {
		l.recent++
	}
}

// recentKeys is how many keys had a wrong answer within alertWindow.
func (l *failureLimiter) recentKeys(now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	return l.recent
}

// tracked is how many keys the table holds.
func (l *failureLimiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byKey)
}

// codeLimiter guards invitation codes: per network, and under a global
// token bucket of wrong codes. Each code login takes a token when it is
// admitted and gives it back unless the code was wrong, so the bucket
// refills at perMinute wrong codes a minute with a burst of one minute's
// worth. While it is empty every code login, right or wrong, is answered
// 429 before the code is looked at — an answer that depends on the code
// would tell a guesser which one is right — and the guessing alert is
// raised. The alert is also raised while alertAt or more networks sent
// wrong codes within 10 minutes.
type codeLimiter struct {
	nets    *failureLimiter
	alertAt int
	alert   prometheus.Gauge

	mu        sync.Mutex
	perMinute float64
	tokens    float64
	refilled  time.Time
	// ceilingHit is the last time the bucket refused a login.
	ceilingHit time.Time
}

func newCodeLimiter(free, alertAt, perMinute, maxNetworks int, alert prometheus.Gauge) *codeLimiter {
	return &codeLimiter{nets: newFailureLimiter(free, maxNetworks, false), alertAt: alertAt, alert: alert,
		perMinute: float64(perMinute), tokens: float64(perMinute)}
}

// codeAttempt is one admitted code login.
type codeAttempt struct {
	l       *codeLimiter
	net     *attempt
	settled bool
}

// admit lets one code login from network in, or says how long it must
// wait and whether the wait is the global ceiling's (else the network's).
func (l *codeLimiter) admit(network string, now time.Time) (a *codeAttempt, wait time.Duration, global bool) {
	defer l.updateAlert(now)
	na, wait := l.nets.admit(network, now)
	if na == nil {
		return nil, wait, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refillLocked(now)
	if l.tokens < 1 {
		l.ceilingHit = now
		na.abort()
		wait = time.Duration((1 - l.tokens) / l.perMinute * float64(time.Minute))
		return nil, max(wait, time.Second), true
	}
	l.tokens--
	return &codeAttempt{l: l, net: na}, 0, false
}

func (l *codeLimiter) refillLocked(now time.Time) {
	if !l.refilled.IsZero() && now.After(l.refilled) {
		l.tokens = math.Min(l.perMinute, l.tokens+now.Sub(l.refilled).Minutes()*l.perMinute)
	}
	if l.refilled.IsZero() || now.After(l.refilled) {
		l.refilled = now
	}
}

// fail settles a wrong code: its token stays spent, and the network owes
// the returned wait.
func (a *codeAttempt) fail(now time.Time) time.Duration {
	if a == nil || a.settled {
		return 0
	}
	a.settled = true
	wait := a.net.fail(now)
	a.l.updateAlert(now)
	return wait
}

// succeed settles a code that exists (whether or not it let the candidate
// in): the token goes back, the network's count stays.
func (a *codeAttempt) succeed() { a.settle(true) }

// abort settles a login that got no verdict.
func (a *codeAttempt) abort() { a.settle(false) }

func (a *codeAttempt) settle(success bool) {
	if a == nil || a.settled {
		return
	}
	a.settled = true
	if success {
		a.net.succeed()
	} else {
		a.net.abort()
	}
	a.l.mu.Lock()
	a.l.tokens = math.Min(a.l.perMinute, a.l.tokens+1)
	a.l.mu.Unlock()
}

func (l *codeLimiter) updateAlert(now time.Time) {
	recent := l.nets.recentKeys(now)
	l.mu.Lock()
	hit := !l.ceilingHit.IsZero() && now.Sub(l.ceilingHit) <= alertWindow
	l.mu.Unlock()
	v := 0.0
	if hit || recent >= l.alertAt {
		v = 1
	}
	l.alert.Set(v)
}

// loginLimiter guards staff logins per username (across networks: a
// distributed guess at one account) and per network (across usernames: one
// network spraying many). Usernames are keyed without case, as the store
// compares them. A username's count is cleared by its owner's right
// password; a network's is not.
type loginLimiter struct {
	users, nets *failureLimiter
}

func newLoginLimiter(perUser, perNetwork, maxKeys int) *loginLimiter {
	return &loginLimiter{users: newFailureLimiter(perUser, maxKeys, true), nets: newFailureLimiter(perNetwork, maxKeys, false)}
}

type loginAttempt struct{ user, net *attempt }

func (l *loginLimiter) admit(username, network string, now time.Time) (*loginAttempt, time.Duration) {
	na, wait := l.nets.admit(network, now)
	if na == nil {
		return nil, wait
	}
	ua, wait := l.users.admit(strings.ToLower(username), now)
	if ua == nil {
		na.abort()
		return nil, wait
	}
	return &loginAttempt{user: ua, net: na}, 0
}

// fail settles a wrong login; the wait is the longer of the two keys'.
func (a *loginAttempt) fail(now time.Time) time.Duration {
	return max(a.user.fail(now), a.net.fail(now))
}

func (a *loginAttempt) succeed() { a.user.succeed(); a.net.succeed() }
func (a *loginAttempt) abort()   { a.user.abort(); a.net.abort() }

// hashGate bounds how many argon2id hashes run at once: each takes 19 MiB
// for its duration, so 64 simultaneous logins would otherwise take more
// than a GiB. A login waits for a slot for at most wait (or until its
// request ends) and is then told to come back.
type hashGate struct {
	slots   chan struct{}
	wait    time.Duration
	gauge   prometheus.Gauge
	running atomic.Int64
	// peak is the most hashes ever running at once (tests).
	peak atomic.Int64
}

var errHashBusy = &apiError{Status: http.StatusServiceUnavailable, Code: "busy",
	Message: "the server is checking too many passwords at once; try again in a moment", RetryAfter: 1}

func newHashGate(n int, wait time.Duration, gauge prometheus.Gauge) *hashGate {
	return &hashGate{slots: make(chan struct{}, n), wait: wait, gauge: gauge}
}

// do runs fn in a slot, or returns errHashBusy without running it.
func (g *hashGate) do(ctx context.Context, fn func()) error {
	t := time.NewTimer(g.wait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		return errHashBusy
	case <-t.C:
		return errHashBusy
	}
	defer func() { <-g.slots }()
	n := g.running.Add(1)
	for p := g.peak.Load(); n > p && !g.peak.CompareAndSwap(p, n); p = g.peak.Load() {
	}
	g.gauge.Inc()
	defer func() {
		g.running.Add(-1)
		g.gauge.Dec()
	}()
	fn()
	return nil
}
