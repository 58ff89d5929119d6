package api

import (
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// codeLimiter slows down guessing invitation codes. A million codes and a
// few hundred active ones make a blind guess hit once in a few thousand
// tries, so each client address gets `free` wrong codes, then waits 1 s,
// 2 s, 4 s … (at most 15 minutes) after each further wrong one. Wrong
// codes from many addresses at once (a botnet, which per-address limits do
// not stop) raise an alert gauge for the operator.
type codeLimiter struct {
	free        int
	alertAt     int
	alert       prometheus.Gauge
	mu          sync.Mutex
	byAddr      map[string]*addrState
	lastCleanup time.Time
}

type addrState struct {
	fails     int
	lastFail  time.Time
	waitUntil time.Time
}

const (
	maxCodeWait     = 15 * time.Minute
	codeAlertWindow = 10 * time.Minute
	// codeForget: an address quiet this long starts afresh.
	codeForget = time.Hour
)

func newCodeLimiter(free, alertAt int, alert prometheus.Gauge) *codeLimiter {
	return &codeLimiter{free: free, alertAt: alertAt, alert: alert, byAddr: map[string]*addrState{}}
}

// wait is how long addr must still wait before its next code; 0 if none.
func (l *codeLimiter) wait(addr string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Every attempt may also let the guessing alert fall back once the
	// failures have aged out of its window.
	l.cleanupLocked(now)
	if st := l.byAddr[addr]; st != nil && now.Before(st.waitUntil) {
		return st.waitUntil.Sub(now)
	}
	return 0
}

// fail records a wrong code from addr and returns the wait it now owes.
func (l *codeLimiter) fail(addr string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cleanupLocked(now)
	st := l.byAddr[addr]
	if st == nil || now.Sub(st.lastFail) > codeForget {
		st = &addrState{}
		l.byAddr[addr] = st
	}
	st.fails++
	st.lastFail = now
	var wait time.Duration
	if over := st.fails - l.free; over >= 0 {
		wait = time.Duration(math.Min(math.Pow(2, float64(over)), maxCodeWait.Seconds())) * time.Second
		st.waitUntil = now.Add(wait)
	}
	l.updateAlertLocked(now)
	return wait
}

// success forgets addr's wrong codes: a candidate who mistyped once and then
// got it right is not a guesser.
func (l *codeLimiter) success(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.byAddr, addr)
}

func (l *codeLimiter) updateAlertLocked(now time.Time) {
	n := 0
	for _, st := range l.byAddr {
		if now.Sub(st.lastFail) <= codeAlertWindow {
			n++
		}
	}
	v := 0.0
	if n >= l.alertAt {
		v = 1
	}
	l.alert.Set(v)
}

// cleanupLocked drops addresses that have been quiet for codeForget, at
// most once a minute, so the map cannot grow without bound.
func (l *codeLimiter) cleanupLocked(now time.Time) {
	if now.Sub(l.lastCleanup) < time.Minute {
		return
	}
	l.lastCleanup = now
	for a, st := range l.byAddr {
		if now.Sub(st.lastFail) > codeForget && !now.Before(st.waitUntil) {
			delete(l.byAddr, a)
		}
	}
	l.updateAlertLocked(now)
}
