package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
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
	"hidden":     "the page was hidden (another tab or window in front, or minimized)",
	"blur":       "the browser window lost focus",
	"fullscreen": "the candidate left fullscreen",
}

const (
	// clockSlack absorbs the rounding and transit between the page's clock
	// readings and the server's.
	clockSlack = 2 * time.Second
	// maxSignalDuration: no episode lasts longer than an exam day.
	maxSignalDuration = 24 * time.Hour
	maxDeviceLabels   = 8
	maxLabelRunes     = 120
)

var signalKeyPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Signal is one report of the candidate's page. A report without
// DurationMS opens the violation (it lasts); one with it closes the
// violation of the same key, or stores it whole when its start never
// arrived. The page's clock may be off: SentAt, read from the same clock
// as StartedAt, lets the server place the start on its own clock
// (now − (SentAt − StartedAt)).
type Signal struct {
	Type       string
	Key        string
	StartedAt  time.Time
	SentAt     time.Time
	DurationMS *int64
	// Reason of left_page: hidden, blur or fullscreen.
	Reason string
	// Labels of headphones: the device labels that name them.
	Labels []string
}

func signalError(format string, args ...any) *Error {
	return Errorf(Invalid, "bad_signal", format, args...)
}

// BrowserSignal stores what candidate candidateID's page reported, during
// the login made at loginAt (a report cannot start before it). stored is
// false when the report repeated one already stored, which changes and
// announces nothing.
func (p *Plane) BrowserSignal(ctx context.Context, candidateID int64, loginAt time.Time, sig Signal) (v ViolationView, stored bool, err error) {
	now := p.now().UTC()
	if !signalTypes[sig.Type] {
		return v, false, signalError("type %q: want left_page, second_screen or headphones", sig.Type)
	}
	if !signalKeyPattern.MatchString(sig.Key) {
		return v, false, signalError("key %q: want 1 to 64 letters, digits, _ or -", sig.Key)
	}
	details := map[string]any{"source": SourceBrowser}
	reason := ""
	switch sig.Type {
	case SignalLeftPage:
		why, ok := leftPageReasons[sig.Reason]
		if !ok {
			return v, false, signalError("left_page reason %q: want hidden, blur or fullscreen", sig.Reason)
		}
		details["reason"] = sig.Reason
		reason = "reported by the browser: " + why
	case SignalHeadphones:
		if len(sig.Labels) == 0 || len(sig.Labels) > maxDeviceLabels {
			return v, false, signalError("headphones: want 1 to %d device labels, got %d", maxDeviceLabels, len(sig.Labels))
		}
		for _, l := range sig.Labels {
			if err := CheckText("device label", l, false); err != nil {
				return v, false, err
			}
			if l == "" || utf8.RuneCountInString(l) > maxLabelRunes {
				return v, false, signalError("headphones: a device label has 1 to %d characters", maxLabelRunes)
			}
		}
		details["labels"] = sig.Labels
		reason = "reported by the browser: a headset among the audio devices (" + strings.Join(sig.Labels, ", ") + ")"
	case SignalSecondScreen:
		reason = "reported by the browser: the screen is extended (a second screen)"
	}
	if sig.Reason != "" && sig.Type != SignalLeftPage {
		return v, false, signalError("reason is for left_page only")
	}
	if len(sig.Labels) > 0 && sig.Type != SignalHeadphones {
		return v, false, signalError("labels are for headphones only")
	}
	start, end, err := signalTimes(sig, now, loginAt)
	if err != nil {
		return v, false, err
	}
	cand, err := p.st.Candidate(ctx, candidateID)
	if err != nil {
		return v, false, fmt.Errorf("browser signal of candidate %d: %w", candidateID, err)
	}
	// Each candidate's keys are their own: a page can neither collide with
	// the pipeline's keys nor with another candidate's.
	key := "browser-" + strconv.FormatInt(cand.ID, 10) + "-" + sig.Type + "-" + sig.Key
	return p.storeSignal(ctx, cand, key, sig.Type, reason, details, start, end)
}

// signalTimes places a report on the server's clock and refuses what
// cannot be: a start after the report was sent, before this login, an
// end in the future, a negative or absurd duration.
func signalTimes(sig Signal, now, loginAt time.Time) (start, end time.Time, err error) {
	if sig.StartedAt.IsZero() {
		return start, end, signalError("started_at is required (RFC 3339)")
	}
	start = sig.StartedAt.UTC()
	if !sig.SentAt.IsZero() {
		age := sig.SentAt.Sub(sig.StartedAt)
		if age < -clockSlack {
			return start, end, signalError("started_at %s is after sent_at %s", sig.StartedAt.Format(time.RFC3339Nano), sig.SentAt.Format(time.RFC3339Nano))
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
	if sig.DurationMS == nil {
		return start, time.Time{}, nil
	}
	d := time.Duration(*sig.DurationMS) * time.Millisecond
	if *sig.DurationMS < 0 || *sig.DurationMS > int64(maxSignalDuration/time.Millisecond) {
		return start, end, signalError("duration_ms %d: want 0 to %d", *sig.DurationMS, int64(maxSignalDuration/time.Millisecond))
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
func (p *Plane) storeSignal(ctx context.Context, cand store.Candidate, key, typ, reason string, details map[string]any, start, end time.Time) (ViolationView, bool, error) {
	var out store.Violation
	changed, opened := false, false
	err := p.Update(ctx, func(ctx context.Context, tx *store.Tx) error {
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
			if now := p.now().UTC(); end.After(now) {
				end = now
			}
			if out, err = tx.EndViolation(ctx, key, end); err != nil {
				return err
			}
			changed = true
			_, err = tx.AppendEvent(ctx, cand.ExamID, contract.EventViolationClosed, cand.ID, ViewViolation(out, cand.Name))
			return err
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		// Only a new episode needs a stage where the signal is watched: the
		// end of one that began there is always taken (the interview's end
		// moves the candidate on while the page is still away).
		if !signalWatched(cand.Stage) {
			return Errorf(Conflict, "signal_not_watched",
				"browser signals are not watched in stage %s (only in waiting rooms, calls and the rest room)", cand.Stage)
		}
		raw, err := json.Marshal(details)
		if err != nil {
			return fmt.Errorf("details: %w", err)
		}
		row := store.Violation{Key: key, ExamID: cand.ExamID, CandidateID: cand.ID, Type: typ, Policy: cand.Stage.Room(),
			Reason: reason, Confidence: 1, StartedAt: start, OpenedAt: p.now().UTC(), EndedAt: end, Details: raw}
		var inserted bool
		if out, inserted, err = tx.InsertViolation(ctx, row); err != nil || !inserted {
			return err
		}
		changed, opened = true, true
		if _, err := tx.AppendEvent(ctx, cand.ExamID, contract.EventViolationOpened, cand.ID, ViewViolation(out, cand.Name)); err != nil {
			return err
		}
		if !end.IsZero() {
			// Stored whole (its start report was lost): the close is
			// announced too, so every stream sees it end.
			_, err = tx.AppendEvent(ctx, cand.ExamID, contract.EventViolationClosed, cand.ID, ViewViolation(out, cand.Name))
		}
		return err
	})
	if err != nil {
		var refusal *Error
		if errors.As(err, &refusal) {
			return ViolationView{}, false, err
		}
		return ViolationView{}, false, fmt.Errorf("store browser signal %s of candidate %d: %w", key, cand.ID, err)
	}
	if opened {
		p.opts.ViolationStored(typ)
	}
	return ViewViolation(out, cand.Name), changed, nil
}

// signalWatched: the stages where the page reports (waiting rooms, calls,
// rest room). Not before the device check, not in practice, not after
// leaving.
func signalWatched(s stage.Stage) bool {
	return s.Room() != "" && s != stage.Mock
}
