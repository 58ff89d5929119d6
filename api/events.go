package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"invigil/contract"
	"invigil/store"
)

// sseKeepAlive is how often an idle stream sends a comment so proxies and
// the browser keep the connection.
const sseKeepAlive = 15 * time.Second

// candidateEventTypes are the events a candidate's own page needs; the
// staff's view of them (reviews, spot checks, help) stays with staff. The
// candidate's own violations opening and closing are there so the page
// can nudge ("请回到画面中") while one lasts, in the brief form of
// candidateViolation.
var candidateEventTypes = map[string]bool{
	contract.EventStageChanged: true, contract.EventCallRinging: true, contract.EventCallStarted: true,
	contract.EventCallEnded: true, contract.EventScorePublished: true,
	contract.EventViolationOpened: true, contract.EventViolationClosed: true,
}

// candidateViolation is what a candidate's page learns of their own
// violation: enough to show and clear the nudge, none of the staff's view
// (confidence, reviews and their notes, evidence and recording links).
type candidateViolation struct {
	ID        int64      `json:"id"`
	Type      string     `json:"type"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at"`
	Source    string     `json:"source,omitempty"`
}

// streamEvents writes an exam's events after `since` as Server-Sent Events
// until the client goes, then waits for new ones. keep filters (nil: all)
// and may rewrite an event's data for this stream.
// A stream outlives the checks made when it opened, so before each batch
// and each keep-alive it checks again that p may still watch (the login
// not revoked, the staff member still on the exam) and ends when not.
func (c *handlers) streamEvents(w http.ResponseWriter, r *http.Request, p *principal, examID int64, stream string, keep func(*store.Event) bool) error {
	since, err := sinceParam(r)
	if err != nil {
		return err
	}
	if since < 0 { // ?since=now: only what happens from here on
		if since, err = c.st.LastSeq(r.Context(), examID); err != nil {
			return err
		}
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// Ask the browser to reconnect quickly after a drop.
	fmt.Fprint(w, "retry: 2000\n\n")
	if err := rc.Flush(); err != nil {
		return nil
	}
	// Subscribe before the first read so nothing committed in between is
	// missed.
	wake, cancel := c.plane.Watch(examID)
	defer cancel()
	tick := time.NewTicker(sseKeepAlive)
	defer tick.Stop()
	ctx := r.Context()
	for {
		if !c.mayStillWatch(ctx, p, examID) {
			return nil
		}
		for {
			events, err := c.st.EventsSince(ctx, examID, since, 500)
			if err != nil {
				if ctx.Err() == nil {
					c.log.Warn("read events for a stream", "exam", examID, "err", err)
				}
				return nil
			}
			for _, e := range events {
				since = e.Seq
				if keep != nil && !keep(&e) {
					continue
				}
				b, _ := json.Marshal(e)
				if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Type, b); err != nil {
					return nil
				}
				c.m.eventsDelivered.WithLabelValues(stream).Inc()
			}
			if err := rc.Flush(); err != nil {
				return nil
			}
			if len(events) < 500 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.closing:
			return nil
		case <-wake:
		case <-tick.C:
			if !c.mayStillWatch(ctx, p, examID) {
				return nil
			}
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return nil
			}
			if err := rc.Flush(); err != nil {
				return nil
			}
		}
	}
}

// sinceParam is where a stream starts: Last-Event-ID (the browser's own
// reconnect), else ?since= (a number, or "now": -1), else 0 (the whole
// history).
func sinceParam(r *http.Request) (int64, error) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("since")
	}
	if v == "" {
		return 0, nil
	}
	if v == "now" {
		return -1, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, errorf(http.StatusBadRequest, "bad_since", "since %q: want a sequence number", v)
	}
	return n, nil
}

func (c *handlers) examEvents(w http.ResponseWriter, r *http.Request, p *principal) error {
	e, err := c.examFor(r, p)
	if err != nil {
		return err
	}
	return c.streamEvents(w, r, p, e.ID, "staff", nil)
}

func (c *handlers) candidateEvents(w http.ResponseWriter, r *http.Request, p *principal) error {
	id := p.candidate.ID
	return c.streamEvents(w, r, p, p.candidate.ExamID, "candidate", func(e *store.Event) bool {
		if e.CandidateID != id || !candidateEventTypes[e.Type] {
			return false
		}
		if e.Type == contract.EventViolationOpened || e.Type == contract.EventViolationClosed {
			var v violationView
			if err := json.Unmarshal(e.Data, &v); err != nil || v.CandidateID != id {
				return false
			}
			var d struct {
				Source string `json:"source"`
			}
			_ = json.Unmarshal(v.Details, &d)
			brief, err := json.Marshal(candidateViolation{ID: v.ID, Type: v.Type, StartedAt: v.StartedAt, EndedAt: v.EndedAt, Source: d.Source})
			if err != nil {
				return false
			}
			e.Data = brief
			return true
		}
		// A spot check is unannounced.
		var d struct {
			Call struct {
				Kind string `json:"kind"`
			} `json:"call"`
		}
		if json.Unmarshal(e.Data, &d) == nil && d.Call.Kind == store.CallSpotCheck {
			return false
		}
		return true
	})
}

// MediaEvent tells the control plane that identity's media session changed
// (kind: joined, resumed, disconnected, left); see control.Plane.MediaEvent.
func (s *Server) MediaEvent(ctx context.Context, identity, kind string) {
	if s.ctl != nil {
		s.ctl.plane.MediaEvent(ctx, identity, kind)
	}
}

// mayStillWatch checks again what the stream's opening checked: the login
// session is alive and, for staff, the user may still see the exam (an
// admin demoted, a member taken off it). A failed read ends the stream
// too; the page reconnects and is checked afresh.
func (c *handlers) mayStillWatch(ctx context.Context, p *principal, examID int64) bool {
	now, err := c.sessionOf(ctx, p.token.Hash)
	if err != nil {
		return false
	}
	if now.isCandidate() {
		return now.candidate.ID == p.candidate.ID
	}
	ok, err := c.onExamStaff(ctx, now, examID)
	return err == nil && ok && now.user.ID == p.user.ID
}
