package sfu

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"

	"invigil/sfu/protocol"
)

// Server is the SFU: an http.Handler for the signaling WebSocket and the
// Go API through which the control plane moves subscriptions.
type Server struct {
	cfg   Config
	log   *slog.Logger
	m     *metrics
	api   *webrtc.API
	muxes io.Closer // the ICE muxes, if any

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the server starts

	events     chan Event    // to Config.OnEvent; nil without one
	eventsDone chan struct{} // closed when dispatchEvents has returned

	mu         sync.Mutex
	closed     bool
	byIdentity map[string]*participant
	bySession  map[string]*participant
	rooms      map[string]map[*participant]struct{}
	conns      map[*wsConn]struct{}
}

// closeGrace bounds how long Close waits for sockets to close politely.
const closeGrace = 5 * time.Second

// Errors of the Go API.
var (
	ErrNotFound   = errors.New("sfu: no such participant")
	ErrNotAllowed = errors.New("sfu: not allowed by the participant's grants")
	ErrLimit      = errors.New("sfu: limit reached")
	ErrClosed     = errors.New("sfu: server closed")
)

// New starts a server. Close stops it.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("sfu: register metrics: %w", err)
	}
	api, muxes, err := newAPI(cfg.ICE, m, cfg.Logger.With("component", "sfu"))
	if err != nil {
		return nil, fmt.Errorf("sfu: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:        cfg,
		log:        cfg.Logger.With("component", "sfu"),
		m:          m,
		api:        api,
		muxes:      muxes,
		ctx:        ctx,
		cancel:     cancel,
		byIdentity: map[string]*participant{},
		bySession:  map[string]*participant{},
		rooms:      map[string]map[*participant]struct{}{},
		conns:      map[*wsConn]struct{}{},
	}
	if cfg.OnEvent != nil {
		s.events = make(chan Event, eventQueue)
		s.eventsDone = make(chan struct{})
		go s.dispatchEvents()
	}
	return s, nil
}

// Close disconnects everyone (their sockets get an error "shutdown"), ends
// every track (taps see Close) and waits for the server's goroutines. It
// does not wait for HTTP handlers, which return once their socket is
// closed; the HTTP server that mounts the handler shuts those down.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var all []*participant
	for _, p := range s.bySession {
		all = append(all, p)
	}
	s.mu.Unlock()
	for _, p := range all {
		s.remove(p, protocol.CodeShutdown, "server shutting down")
	}
	s.wg.Wait()
	// Give the sockets a moment to deliver their "shutdown" error and close
	// politely before the rest are cut.
	s.mu.Lock()
	var conns []*wsConn
	for c := range s.conns {
		conns = append(conns, c)
		c.close(websocket.StatusGoingAway, protocol.CodeShutdown)
	}
	s.mu.Unlock()
	deadline := time.After(closeGrace)
	for _, c := range conns {
		select {
		case <-c.done:
		case <-deadline:
		}
	}
	s.cancel()
	if s.eventsDone != nil {
		<-s.eventsDone
	}
	return s.muxes.Close()
}

func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// ServeHTTP upgrades to a WebSocket and runs one signaling session on it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: s.cfg.OriginPatterns})
	if err != nil {
		s.log.Debug("sfu: websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	// A message over the limit is drained and answered with an error; one
	// this large is not worth draining and closes the socket.
	ws.SetReadLimit(64 * s.cfg.MaxMessageBytes)

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel) //nolint:contextcheck // the server closing ends every socket, as does the request ending
	defer stop()

	c := newWSConn(s, ws)
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	go c.writeLoop(ctx)
	defer func() {
		c.close(websocket.StatusNormalClosure, "")
		<-c.done
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()

	p := s.awaitJoin(ctx, c)
	if p == nil {
		return
	}
	for {
		data, ok := s.readFrame(ctx, c)
		if !ok {
			s.disconnected(p, c)
			return
		}
		msg, err := protocol.Parse(data)
		if err != nil {
			var pe *protocol.Error
			errors.As(err, &pe)
			c.sendError(pe.Code, pe.Reason)
			continue
		}
		switch msg.Type {
		case protocol.TypePing:
			c.send(protocol.Message{Type: protocol.TypePong})
		case protocol.TypeLeave:
			if s.current(p, c) {
				s.remove(p, "", "")
			}
			return
		case protocol.TypeJoin:
			c.sendError(protocol.CodeAlreadyJoined, "this socket has joined already")
		default:
			if !p.call(func() { p.handle(c, msg) }) {
				return
			}
		}
	}
}

// readFrame reads the next message. A message that is too large or not a
// text frame is answered with an error and skipped; ok is false once the
// socket is done.
func (s *Server) readFrame(ctx context.Context, c *wsConn) (data []byte, ok bool) {
	for {
		data, err := c.read(ctx)
		if err == nil {
			return data, true
		}
		if errors.Is(err, errTooLarge) {
			c.sendError(protocol.CodeTooLarge, fmt.Sprintf("messages are limited to %d bytes", s.cfg.MaxMessageBytes))
			continue
		}
		var pe *protocol.Error
		if errors.As(err, &pe) {
			c.sendError(pe.Code, pe.Reason)
			continue
		}
		return nil, false
	}
}

// awaitJoin reads until a valid join (or the join timeout) and returns the
// participant, or nil when the socket is done.
func (s *Server) awaitJoin(ctx context.Context, c *wsConn) *participant {
	jctx, cancel := context.WithTimeout(ctx, s.cfg.JoinTimeout)
	defer cancel()
	for {
		data, ok := s.readFrame(jctx, c)
		if !ok {
			return nil
		}
		msg, err := protocol.Parse(data)
		if err != nil {
			var pe *protocol.Error
			errors.As(err, &pe)
			c.sendError(pe.Code, pe.Reason)
			continue
		}
		switch msg.Type {
		case protocol.TypeJoin:
		case protocol.TypePing:
			c.send(protocol.Message{Type: protocol.TypePong})
			continue
		default:
			c.sendError(protocol.CodeNotJoined, "join first")
			continue
		}
		vctx, cancel := context.WithTimeout(ctx, tokenCheckTimeout)
		grants, err := s.cfg.Tokens.Verify(vctx, msg.Token)
		cancel()
		if err != nil {
			c.fail(protocol.CodeUnauthorized, err.Error(), websocket.StatusPolicyViolation)
			return nil
		}
		if grants.Identity == "" || grants.Room == "" {
			c.fail(protocol.CodeUnauthorized, "token names no identity or room", websocket.StatusPolicyViolation)
			return nil
		}
		p, code, reason := s.join(c, grants, msg.ResumeSession)
		if p == nil {
			c.fail(code, reason, websocket.StatusTryAgainLater)
			return nil
		}
		return p
	}
}

// join creates a session, or takes one over for a resume, and attaches c.
func (s *Server) join(c *wsConn, g Grants, resume string) (p *participant, code, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, protocol.CodeShutdown, "server shutting down"
	}
	if resume != "" {
		old := s.bySession[resume]
		if old != nil && !old.removed && old.grants.Identity == g.Identity && old.grants.Room == g.Room {
			s.resumeLocked(old, c, g)
			return old, "", ""
		}
		s.m.reconnects.WithLabelValues("resume_failed").Inc()
	}
	var replaced *participant
	if existing := s.byIdentity[g.Identity]; existing != nil {
		replaced = existing
	}
	n := len(s.rooms[g.Room])
	if replaced != nil && replaced.grants.Room == g.Room {
		n--
	}
	if n >= s.cfg.MaxParticipantsPerRoom {
		return nil, protocol.CodeLimit, fmt.Sprintf("room %q is full (%d participants)", g.Room, s.cfg.MaxParticipantsPerRoom)
	}
	if replaced != nil {
		s.removeLocked(replaced, protocol.CodeReplaced, "the same identity joined from elsewhere")
	}
	p = newParticipant(s, g)
	p.conn = c
	s.byIdentity[g.Identity] = p
	s.bySession[p.sessionID] = p
	if s.rooms[g.Room] == nil {
		s.rooms[g.Room] = map[*participant]struct{}{}
	}
	s.rooms[g.Room][p] = struct{}{}
	s.m.participants.Inc()
	s.wg.Add(1)
	go p.run()

	joined := protocol.Message{
		Type: protocol.TypeJoined, SessionID: p.sessionID, Identity: g.Identity,
		Connection: p.connection, Participants: s.visibleLocked(p),
	}
	if resume != "" {
		joined.Code = protocol.CodeSessionNotFound
		joined.Reason = "the session to resume has ended; this is a new session"
	}
	c.send(joined)
	for q := range s.rooms[g.Room] {
		if q != p && s.canSeeLocked(q, p) {
			q.sendLocked(protocol.Message{Type: protocol.TypeParticipantJoined, Participant: s.describeLocked(p)})
		}
	}
	s.emitLocked(EventJoined, p, "", nil)
	s.log.Info("sfu: joined", "session", p.sessionID, "identity", g.Identity, "role", g.Role, "room", g.Room)
	return p, "", ""
}

// resumeLocked hands an existing session to a new socket: the old socket
// (if the server had not noticed it drop) is closed, the media connections
// start anew (Connection+1) and subscriptions carry over.
func (s *Server) resumeLocked(p *participant, c *wsConn, g Grants) {
	if p.conn != nil {
		p.conn.fail(protocol.CodeReplaced, "the session was resumed from elsewhere", websocket.StatusPolicyViolation)
	}
	if p.expiry != nil {
		p.expiry.Stop()
		p.expiry = nil
	}
	p.conn = c
	p.grants = g
	p.connection++
	s.m.reconnects.WithLabelValues("resume").Inc()
	s.emitLocked(EventResumed, p, "", nil)
	connection := p.connection
	s.log.Info("sfu: resumed", "session", p.sessionID, "identity", g.Identity, "connection", connection)
	p.post(func() {
		p.resetMedia()
		s.mu.Lock()
		if p.conn == c {
			c.send(protocol.Message{
				Type: protocol.TypeJoined, SessionID: p.sessionID, Identity: p.grants.Identity,
				Resumed: true, Connection: connection, Participants: s.visibleLocked(p),
			})
		}
		s.mu.Unlock()
		p.reconcile()
	})
}

// disconnected is called when c's socket ends without a leave: the
// participant stays for the resume window, media still flowing.
func (s *Server) disconnected(p *participant, c *wsConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.conn != c || p.removed {
		return
	}
	p.conn = nil
	s.emitLocked(EventDisconnected, p, "", nil)
	s.log.Info("sfu: signaling dropped, waiting for resume", "session", p.sessionID, "identity", p.grants.Identity,
		"window", s.cfg.ResumeWindow)
	p.expiry = time.AfterFunc(s.cfg.ResumeWindow, func() {
		s.mu.Lock()
		expired := p.conn == nil && !p.removed
		s.mu.Unlock()
		if expired {
			s.m.reconnects.WithLabelValues("expired").Inc()
			s.mu.Lock()
			s.removeLocked(p, "", "expired")
			s.mu.Unlock()
		}
	})
}

// current reports whether c is still p's socket.
func (s *Server) current(p *participant, c *wsConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return p.conn == c && !p.removed
}

// remove ends p's session. With a code, its socket gets an error first.
func (s *Server) remove(p *participant, code, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked(p, code, reason)
}

func (s *Server) removeLocked(p *participant, code, reason string) {
	if p.removed {
		return
	}
	p.removed = true
	if s.byIdentity[p.grants.Identity] == p {
		delete(s.byIdentity, p.grants.Identity)
	}
	delete(s.bySession, p.sessionID)
	room := s.rooms[p.grants.Room]
	delete(room, p)
	if len(room) == 0 {
		delete(s.rooms, p.grants.Room)
	}
	if p.expiry != nil {
		p.expiry.Stop()
		p.expiry = nil
	}
	s.m.participants.Dec()
	why := code
	if why == "" {
		why = reason
	}
	s.emitLocked(EventLeft, p, why, nil)
	if p.conn != nil {
		if code != "" {
			p.conn.fail(code, reason, websocket.StatusNormalClosure)
		} else {
			p.conn.close(websocket.StatusNormalClosure, "")
		}
		p.conn = nil
	}
	for q := range room {
		if s.canSeeLocked(q, p) {
			q.sendLocked(protocol.Message{Type: protocol.TypeParticipantLeft, Identity: p.grants.Identity})
		}
		if q.subs[p.grants.Identity] {
			q.requestReconcile()
		}
	}
	p.stop()
	s.log.Info("sfu: left", "session", p.sessionID, "identity", p.grants.Identity, "reason", code)
}

// canSeeLocked reports whether viewer may know about target: it is not
// hidden, shares the room, and viewer is subscribed or may subscribe to it.
func (s *Server) canSeeLocked(viewer, target *participant) bool {
	if viewer == target || target.grants.Hidden || viewer.grants.Room != target.grants.Room {
		return false
	}
	id := target.grants.Identity
	return viewer.subs[id] || viewer.allowed[id] || viewer.grants.MaySubscribeTo(id)
}

func (s *Server) describeLocked(p *participant) *protocol.Participant {
	d := &protocol.Participant{Identity: p.grants.Identity, Name: p.grants.Name, Role: p.grants.Role}
	for _, t := range p.published {
		d.Tracks = append(d.Tracks, t.describe())
	}
	return d
}

func (s *Server) visibleLocked(p *participant) []protocol.Participant {
	var out []protocol.Participant
	for q := range s.rooms[p.grants.Room] {
		if s.canSeeLocked(p, q) {
			out = append(out, *s.describeLocked(q))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Identity < out[j].Identity })
	return out
}

// lookupLocked finds a participant by session ID, then by identity.
func (s *Server) lookupLocked(sessionOrIdentity string) *participant {
	if p := s.bySession[sessionOrIdentity]; p != nil {
		return p
	}
	return s.byIdentity[sessionOrIdentity]
}

// Subscribe makes subscriber (a session ID or identity) receive publisher's
// tracks, now and whenever publisher (re)publishes, until Unsubscribe. It
// is the control plane's call, so it may go beyond the token's Subscribe
// list, but not beyond CanSubscribe. The publisher need not have joined.
func (s *Server) Subscribe(subscriber, publisher string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	p := s.lookupLocked(subscriber)
	if p == nil {
		return fmt.Errorf("subscribe %s to %s: %w", subscriber, publisher, ErrNotFound)
	}
	if !p.grants.CanSubscribe {
		return fmt.Errorf("subscribe %s to %s: %w (no CanSubscribe)", subscriber, publisher, ErrNotAllowed)
	}
	if publisher == p.grants.Identity {
		return fmt.Errorf("subscribe %s to itself: %w", subscriber, ErrNotAllowed)
	}
	p.allowed[publisher] = true
	return s.subscribeLocked(p, publisher)
}

func (s *Server) subscribeLocked(p *participant, publisher string) error {
	if p.subs[publisher] {
		return nil
	}
	if len(p.subs) >= s.cfg.MaxSubscriptions {
		return fmt.Errorf("subscribe %s to %s: %w (%d subscriptions)", p.grants.Identity, publisher, ErrLimit, s.cfg.MaxSubscriptions)
	}
	p.subs[publisher] = true
	p.sendLocked(protocol.Message{Type: protocol.TypeSubscribed, Identity: publisher})
	if pub := s.byIdentity[publisher]; pub != nil && pub.grants.Room == p.grants.Room && !pub.grants.Hidden && !pub.removed {
		// The subscriber may not have been told about it before.
		p.sendLocked(protocol.Message{Type: protocol.TypeParticipantJoined, Participant: s.describeLocked(pub)})
	}
	p.requestReconcile()
	return nil
}

// Unsubscribe stops forwarding publisher's tracks to subscriber and takes
// back what Subscribe allowed (the token's own grants remain).
func (s *Server) Unsubscribe(subscriber, publisher string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	p := s.lookupLocked(subscriber)
	if p == nil {
		return fmt.Errorf("unsubscribe %s from %s: %w", subscriber, publisher, ErrNotFound)
	}
	delete(p.allowed, publisher)
	s.unsubscribeLocked(p, publisher)
	return nil
}

func (s *Server) unsubscribeLocked(p *participant, publisher string) {
	if !p.subs[publisher] {
		return
	}
	delete(p.subs, publisher)
	p.sendLocked(protocol.Message{Type: protocol.TypeUnsubscribed, Identity: publisher})
	p.requestReconcile()
}

// Kick ends the session of identity (or session ID): its socket gets an
// error "kicked" and is closed; it cannot resume.
func (s *Server) Kick(identity string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	p := s.lookupLocked(identity)
	if p == nil {
		return fmt.Errorf("kick %s: %w", identity, ErrNotFound)
	}
	s.removeLocked(p, protocol.CodeKicked, "removed by staff")
	return nil
}

// ParticipantInfo is the control plane's view of a participant.
type ParticipantInfo struct {
	SessionID string
	Identity  string
	Name      string
	Role      string
	Room      string
	Hidden    bool
	// Connected is false while the signaling socket is down and the
	// session waits for a resume.
	Connected bool
	// Connection counts the session's media connections, from 1.
	Connection    int
	JoinedAt      time.Time
	Tracks        []TrackInfo
	Subscriptions []string
}

// TrackInfo describes a published track.
type TrackInfo struct {
	ID          string
	Kind        string
	MimeType    string
	Started     time.Time
	Subscribers int
}

// Participants lists everyone in room, hidden ones included, by identity.
func (s *Server) Participants(room string) []ParticipantInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ParticipantInfo
	for p := range s.rooms[room] {
		info := ParticipantInfo{
			SessionID: p.sessionID, Identity: p.grants.Identity, Name: p.grants.Name, Role: p.grants.Role,
			Room: p.grants.Room, Hidden: p.grants.Hidden, Connected: p.conn != nil, Connection: p.connection,
			JoinedAt: p.joinedAt,
		}
		for _, t := range p.published {
			info.Tracks = append(info.Tracks, TrackInfo{
				ID: t.info.TrackID, Kind: string(t.info.Kind), MimeType: t.info.MimeType,
				Started: t.info.Started, Subscribers: t.subscriberCount(),
			})
		}
		for id := range p.subs {
			info.Subscriptions = append(info.Subscriptions, id)
		}
		sort.Strings(info.Subscriptions)
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Identity < out[j].Identity })
	return out
}

// CountRole counts the participants of role in every room, connected or
// waiting for a resume: a media node's load as it announces it.
func (s *Server) CountRole(role string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, room := range s.rooms {
		for p := range room {
			if p.grants.Role == role {
				n++
			}
		}
	}
	return n
}
