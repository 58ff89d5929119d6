package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"invigil/contract"
	"invigil/stage"
	"invigil/store"
)

// The browser's own signals: what the candidate page notices and the
// camera cannot (the page hidden or left, a second screen, headphones).
// They are stored as violations like the pipeline's, with
// details.source = "browser", so the dashboard, the review, the risk score
// and the report treat them alike and the proctor UI can say who saw it.

// Browser-reported violation types (API names; never renamed).
const (
	SignalLeftPage     = contract.LeftPage
	SignalSecondScreen = contract.SecondScreen
	SignalHeadphones   = contract.Headphones
)

// SourceBrowser is details.source of a violation the candidate's browser
// reported (the pipeline's carry no source).
const SourceBrowser = string(contract.SourceBrowser)

var signalTypes = map[string]bool{SignalLeftPage: true, SignalSecondScreen: true, SignalHeadphones: true}

// The reasons a page gives for left_page, and what the proctor reads.
var leftPageReasons = map[string]string{
	"hidden":     "the page was hidden (another tab or window in front, or minimised)",
	"blur":       "the browser window lost focus",
	"fullscreen": "the candidate left fullscreen",
}

const (
	// signalBodyMax is far above an honest report (~300 bytes with a few
	// device labels) and far below the server's general body limit.
	signalBodyMax = 4 << 10
	// signalsPerWindow reports per candidate per signalWindow: an honest
	// page sends two per episode (start, end) and coalesces bursts, so
	// only a broken or hostile page comes near it.
	signalsPerWindow = 60
	signalWindow     = time.Minute
	// clockSlack absorbs the rounding and transit between the page's clock
	// readings and the server's.
	clockSlack = 2 * time.Second
	// maxSignalDuration: no episode lasts longer than an exam day.
	maxSignalDuration = 24 * time.Hour
	maxDeviceLabels   = 8
	maxLabelRunes     = 120
)

var signalKeyPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// signalRequest is one report. A report without duration_ms opens the
// violation (it lasts); one with it closes the violation of the same key,
// or stores it whole when its start never arrived. The page's clock may be
// off: sent_at, read from the same clock as started_at, lets the server
// place the start on its own clock (now − (sent_at − started_at)).
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

// signalsHandler is the handler of POST /api/v1/candidate/signals with its
// own limiter: it lives as long as the mounted route.
func (c *control) signalsHandler() func(http.ResponseWriter, *http.Request, *principal) error {
	lim := &signalLimiter{times: map[int64][]time.Time{}}
	return func(w http.ResponseWriter, r *http.Request, p *principal) error {
		return c.candidateSignal(w, r, p, lim)
	}
}

func signalError(format string, args ...any) *apiError {
	return errorf(http.StatusBadRequest, "bad_signal", format, args...)
}

func (c *control) candidateSignal(w http.ResponseWriter, r *http.Request, p *principal, lim *signalLimiter) error {
	now := c.now().UTC()
	if wait, ok := lim.admit(p.candidate.ID, now); !ok {
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
	if !signalTypes[req.Type] {
		return signalError("type %q: want left_page, second_screen or headphones", req.Type)
	}
	if !signalKeyPattern.MatchString(req.Key) {
		return signalError("key %q: want 1 to 64 letters, digits, _ or -", req.Key)
	}
	details := map[string]any{"source": SourceBrowser}
	reason := ""
	switch req.Type {
	case SignalLeftPage:
		why, ok := leftPageReasons[req.Reason]
		if !ok {
			return signalError("left_page reason %q: want hidden, blur or fullscreen", req.Reason)
		}
		details["reason"] = req.Reason
		reason = "reported by the browser: " + why
	case SignalHeadphones:
		if len(req.Labels) == 0 || len(req.Labels) > maxDeviceLabels {
			return signalError("headphones: want 1 to %d device labels, got %d", maxDeviceLabels, len(req.Labels))
		}
		for _, l := range req.Labels {
			if err := checkText("device label", l, false); err != nil {
				return err
			}
			if l == "" || utf8.RuneCountInString(l) > maxLabelRunes {
				return signalError("headphones: a device label has 1 to %d characters", maxLabelRunes)
			}
		}
		details["labels"] = req.Labels
		reason = "reported by the browser: a headset among the audio devices (" + strings.Join(req.Labels, ", ") + ")"
	case SignalSecondScreen:
		reason = "reported by the browser: the screen is extended (a second screen)"
	}
	if req.Reason != "" && req.Type != SignalLeftPage {
		return signalError("reason is for left_page only")
	}
	if len(req.Labels) > 0 && req.Type != SignalHeadphones {
		return signalError("labels are for headphones only")
	}
	start, end, err := signalTimes(req, now, p.token.CreatedAt)
	if err != nil {
		return err
	}
	cand, err := c.st.Candidate(r.Context(), p.candidate.ID)
	if err != nil {
		return fmt.Errorf("browser signal of candidate %d: %w", p.candidate.ID, err)
	}
	// Each candidate's keys are their own: a page can neither collide with
	// the pipeline's keys nor with another candidate's.
	key := "browser-" + strconv.FormatInt(cand.ID, 10) + "-" + req.Type + "-" + req.Key
	view, stored, err := c.storeSignal(r, cand, key, req.Type, reason, details, start, end)
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

// signalTimes places a report on the server's clock and refuses what
// cannot be: a start after the report was sent, before this login, an
// end in the future, a negative or absurd duration.
func signalTimes(req signalRequest, now, loginAt time.Time) (start, end time.Time, err error) {
	if req.StartedAt.IsZero() {
		return start, end, signalError("started_at is required (RFC 3339)")
	}
	start = req.StartedAt.UTC()
	if !req.SentAt.IsZero() {
		age := req.SentAt.Sub(req.StartedAt)
		if age < -clockSlack {
			return start, end, signalError("started_at %s is after sent_at %s", req.StartedAt.Format(time.RFC3339Nano), req.SentAt.Format(time.RFC3339Nano))
		}
		start = now.Add(-max(age, 0))
	}
	if start.After(now.Add(clockSlack)) {
		return start, end, signalError("started_at %s is in the future (server time %s)", start.Format(time.RFC3339Nano), now.Format(time.RFC3339Nano))
	}
	if start.Before(loginAt.Add(-clockSlack)) {
		return start, end, signalError("started_at %s is before this login (%s)", start.Format(time.RFC3339Nano), loginAt.UTC().Format(time.RFC3339Nano))
	}
	if start.Before(loginAt) {
		start = loginAt.UTC()
	}
	if req.DurationMS == nil {
		return start, time.Time{}, nil
	}
	d := time.Duration(*req.DurationMS) * time.Millisecond
	if *req.DurationMS < 0 || *req.DurationMS > int64(maxSignalDuration/time.Millisecond) {
		return start, end, signalError("duration_ms %d: want 0 to %d", *req.DurationMS, int64(maxSignalDuration/time.Millisecond))
	}
	end = start.Add(d)
	if end.After(now.Add(clockSlack)) {
		return start, end, signalError("started_at plus duration_ms ends at %s, in the future (server time %s)", end.Format(time.RFC3339Nano), now.Format(time.RFC3339Nano))
	}
	if end.After(now) {
		end = now
	}
	return start, end, nil
}

// storeSignal opens, closes or stores whole the violation of key, and
// announces what changed on the exam's event log. A repeated report
// changes and announces nothing.
func (c *control) storeSignal(r *http.Request, cand store.Candidate, key, typ, reason string, details map[string]any, start, end time.Time) (violationView, bool, error) {
	ctx := r.Context()
	var out store.Violation
	changed, opened := false, false
	err := c.update(ctx, func(ctx context.Context, tx *store.Tx) error {
		old, err := tx.ViolationByKey(ctx, key)
		switch {
		case err == nil:
			out = old
			if end.IsZero() || !old.EndedAt.IsZero() {
				return nil // a retried start, or an end already stored
			}
			// The episode's length is the page's own measure; its start is
			// where the start report placed it.
			end = old.StartedAt.Add(end.Sub(start))
			if now := c.now().UTC(); end.After(now) {
				end = now
			}
			if out, err = tx.EndViolation(ctx, key, end); err != nil {
				return err
			}
			changed = true
			_, err = tx.AppendEvent(ctx, cand.ExamID, contract.EventViolationClosed, cand.ID, c.viewViolation(out, cand.Name))
			return err
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		// Only a new episode needs a stage where the signal is watched: the
		// end of one that began there is always taken (the interview's end
		// moves the candidate on while the page is still away).
		if !signalWatched(cand.Stage) {
			return errorf(http.StatusConflict, "signal_not_watched",
				"browser signals are not watched in stage %s (only in waiting rooms, calls and the rest room)", cand.Stage)
		}
		raw, err := json.Marshal(details)
		if err != nil {
			return fmt.Errorf("details: %w", err)
		}
		row := store.Violation{Key: key, ExamID: cand.ExamID, CandidateID: cand.ID, Type: typ, Policy: cand.Stage.Room(),
			Reason: reason, Confidence: 1, StartedAt: start, OpenedAt: c.now().UTC(), EndedAt: end, Details: raw}
		var inserted bool
		if out, inserted, err = tx.InsertViolation(ctx, row); err != nil || !inserted {
			return err
		}
		changed, opened = true, true
		if _, err := tx.AppendEvent(ctx, cand.ExamID, contract.EventViolationOpened, cand.ID, c.viewViolation(out, cand.Name)); err != nil {
			return err
		}
		if !end.IsZero() {
			// Stored whole (its start report was lost): the close is
			// announced too, so every stream sees it end.
			_, err = tx.AppendEvent(ctx, cand.ExamID, contract.EventViolationClosed, cand.ID, c.viewViolation(out, cand.Name))
		}
		return err
	})
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			return violationView{}, false, err
		}
		return violationView{}, false, fmt.Errorf("store browser signal %s of candidate %d: %w", key, cand.ID, err)
	}
	if opened {
		c.m.violations.WithLabelValues(typ).Inc()
	}
	return c.viewViolation(out, cand.Name), changed, nil
}

// signalWatched: the stages where the page reports (waiting rooms, calls,
// rest room). Not before the device check, not in practice, not after
// leaving.
func signalWatched(s stage.Stage) bool {
	return s.Room() != "" && s != stage.Mock
}
