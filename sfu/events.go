package sfu

import "time"

// EventKind names what happened to a participant.
type EventKind string

const (
	EventJoined           EventKind = "joined"
	EventResumed          EventKind = "resumed"      // a new socket took the session over (Connection+1)
	EventDisconnected     EventKind = "disconnected" // the socket dropped; the session waits for a resume
	EventLeft             EventKind = "left"         // the session ended (Reason says why)
	EventTrackPublished   EventKind = "track_published"
	EventTrackUnpublished EventKind = "track_unpublished"
)

// Event tells the control plane about a participant, e.g. to show who is
// connected on the dashboard.
type Event struct {
	Kind       EventKind
	Time       time.Time
	SessionID  string
	Identity   string
	Role       string
	Room       string
	Connection int
	// Reason is the error code a left participant was sent ("kicked",
	// "replaced", "shutdown"), "expired" when no resume came, or empty for
	// a leave.
	Reason string
	// Track is set for the track events.
	Track *TrackInfo
}

// eventQueue bounds the events waiting for Config.OnEvent.
const eventQueue = 1024

// emitLocked queues an event for OnEvent without blocking; caller holds
// s.mu, which keeps the events of one participant in order.
func (s *Server) emitLocked(kind EventKind, p *participant, reason string, t *upTrack) {
	if s.events == nil {
		return
	}
	e := Event{
		Kind: kind, Time: time.Now(), SessionID: p.sessionID, Identity: p.grants.Identity,
		Role: p.grants.Role, Room: p.grants.Room, Connection: p.connection, Reason: reason,
	}
	if t != nil {
		e.Track = &TrackInfo{ID: t.info.TrackID, Kind: string(t.info.Kind), MimeType: t.info.MimeType, Started: t.info.Started}
		e.Connection = t.info.Connection
	}
	select {
	case s.events <- e:
	default:
		s.m.eventsDropped.Inc()
	}
}

// dispatchEvents calls OnEvent for each event until Close.
func (s *Server) dispatchEvents() {
	defer close(s.eventsDone)
	for {
		select {
		case e := <-s.events:
			s.cfg.OnEvent(e)
		case <-s.ctx.Done():
			for {
				select {
				case e := <-s.events:
					s.cfg.OnEvent(e)
				default:
					return
				}
			}
		}
	}
}
