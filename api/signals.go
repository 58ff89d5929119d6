package api

import (
	"math"
	"net/http"
	"sync"
	"time"

	"invigil/control"
)

// The browser's own signals (control.Plane.BrowserSignal): here, the
// request's shape and the limits on how much and how often a page sends.

// Browser-reported violation types (API names; never renamed).
const (
	SignalLeftPage     = control.SignalLeftPage
	SignalSecondScreen = control.SignalSecondScreen
	SignalHeadphones   = control.SignalHeadphones
)

// SourceBrowser is details.source of a violation the candidate's browser
// reported (the pipeline's carry no source).
const SourceBrowser = control.SourceBrowser

const (
	// signalBodyMax is far above an honest report (~300 bytes with a few
	// device labels) and far below the server's general body limit.
	signalBodyMax = 4 << 10
	// signalsPerWindow reports per candidate per signalWindow: an honest
	// page sends two per episode (start, end) and coalesces bursts, so
	// only a broken or hostile page comes near it.
	signalsPerWindow = 60
	signalWindow     = time.Minute
)

// signalRequest is one report, a control.Signal in JSON.
type signalRequest struct {
	Type       string    `json:"type"`
	Key        string    `json:"key"`
	StartedAt  time.Time `json:"started_at"`
	SentAt     time.Time `json:"sent_at,omitzero"`
	DurationMS *int64    `json:"duration_ms,omitempty"`
	// Reason of left_page: hidden, blur or fullscreen.
	Reason string `json:"reason,omitempty"`
	// Labels of headphones: the device labels that name them.
	Labels []string `json:"labels,omitempty"`
}

type signalAnswer struct {
	Violation violationView `json:"violation"`
	// Stored is false when the report repeated one already stored.
	Stored bool `json:"stored"`
}

// signalLimiter counts each candidate's reports in a sliding window.
type signalLimiter struct {
	mu    sync.Mutex
	times map[int64][]time.Time
}

// admit records a report of candidate at now, or says how long until the
// oldest one in the window ages out.
func (l *signalLimiter) admit(candidate int64, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Forget every candidate's aged reports, so the table holds only the
	// candidates who reported within the window.
	for id, ts := range l.times {
		i := 0
		for i < len(ts) && now.Sub(ts[i]) >= signalWindow {
			i++
		}
		if i == len(ts) {
			delete(l.times, id)
		} else {
			l.times[id] = ts[i:]
		}
	}
	ts := l.times[candidate]
	if len(ts) >= signalsPerWindow {
		return signalWindow - now.Sub(ts[0]), false
	}
	l.times[candidate] = append(ts, now)
	return 0, true
}

// candidateSignal is POST /api/v1/candidate/signals: admitted by the
// candidate's report rate, then stored by the plane.
func (c *handlers) candidateSignal(w http.ResponseWriter, r *http.Request, p *principal) error {
	now := c.now().UTC()
	if wait, ok := c.signals.admit(p.candidate.ID, now); !ok {
		e := errorf(http.StatusTooManyRequests, "too_many_signals",
			"more than %d browser reports in %s from this candidate; retry in %d s",
			signalsPerWindow, signalWindow, int(math.Ceil(wait.Seconds())))
		e.RetryAfter = max(1, int(math.Ceil(wait.Seconds())))
		return e
	}
	r.Body = http.MaxBytesReader(w, r.Body, signalBodyMax)
	var req signalRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	view, stored, err := c.plane.BrowserSignal(r.Context(), p.candidate.ID, p.token.CreatedAt, control.Signal(req))
	if err != nil {
		return err
	}
	status := http.StatusOK
	if stored {
		status = http.StatusCreated
	}
	writeJSON(w, status, signalAnswer{Violation: view, Stored: stored})
	return nil
}
