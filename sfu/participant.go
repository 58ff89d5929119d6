package sfu

import (
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"invigil/sfu/protocol"
)

// participant is one session. Its media state (the two peer connections
// and the tracks forwarded to it) is touched only by its own loop
// goroutine, which runs the closures posted to it one at a time; the
// membership and subscription state is guarded by Server.mu. Changes that
// concern a participant's media (a subscription, a track published or
// ended) post a reconcile, which compares what it should receive with what
// it does and fixes the difference, so events need no careful ordering.
type participant struct {
	s         *Server
	sessionID string
	joinedAt  time.Time

	// Guarded by s.mu.
	grants     Grants
	conn       *wsConn // nil while waiting for a resume
	connection int
	subs       map[string]bool // publisher identities subscribed to
	allowed    map[string]bool // permissions added through Server.Subscribe
	published  []*upTrack
	trackSeq   int
	expiry     *time.Timer
	removed    bool

	// The loop's queue.
	reconcileQueued atomic.Bool
	qmu             sync.Mutex
	queue           []func()
	stopped         bool
	wake            chan struct{}
	quit            chan struct{}

	// Owned by the loop.
	pub, sub      *webrtc.PeerConnection
	pubReaders    *readerGroup // the read loops of pub's tracks
	downs         map[*upTrack]*downTrack
	subOffering   bool // an offer on sub awaits the client's answer
	subDirty      bool // sub needs another offer
	subRestartICE bool
	pendingCands  map[string][]webrtc.ICECandidateInit
}

// maxPendingCandidates bounds candidates held until a remote description.
const maxPendingCandidates = 64

func newParticipant(s *Server, g Grants) *participant {
	return &participant{
		s:            s,
		sessionID:    newID("S"),
		joinedAt:     time.Now(),
		grants:       g,
		connection:   1,
		subs:         map[string]bool{},
		allowed:      map[string]bool{},
		wake:         make(chan struct{}, 1),
		quit:         make(chan struct{}),
		downs:        map[*upTrack]*downTrack{},
		pendingCands: map[string][]webrtc.ICECandidateInit{},
	}
}

// post runs f on the participant's loop; after stop it is dropped.
func (p *participant) post(f func()) {
	p.qmu.Lock()
	if p.stopped {
		p.qmu.Unlock()
		return
	}
	p.queue = append(p.queue, f)
	p.qmu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// call runs f on the loop and waits for it, so a client's messages are
// handled one at a time and a client that sends faster than the server
// handles is slowed by TCP rather than queued in memory. It returns false
// if the participant has stopped.
func (p *participant) call(f func()) bool {
	done := make(chan struct{})
	p.post(func() {
		defer close(done)
		f()
	})
	select {
	case <-done:
		return true
	case <-p.quit:
		return false
	}
}

// requestReconcile posts a reconcile unless one is already waiting: any
// number of changes before it runs need only one.
func (p *participant) requestReconcile() {
	if p.reconcileQueued.CompareAndSwap(false, true) {
		p.post(func() {
			p.reconcileQueued.Store(false)
			p.reconcile()
		})
	}
}

// stop ends the loop, which then closes the media connections.
func (p *participant) stop() {
	p.qmu.Lock()
	defer p.qmu.Unlock()
	if !p.stopped {
		p.stopped = true
		close(p.quit)
	}
}

func (p *participant) run() {
	defer p.s.wg.Done()
	defer p.resetMedia()
	for {
		select {
		case <-p.quit:
			return
		case <-p.wake:
		}
		for {
			p.qmu.Lock()
			if len(p.queue) == 0 || p.stopped {
				p.queue = nil
				p.qmu.Unlock()
				break
			}
			f := p.queue[0]
			p.queue = p.queue[1:]
			p.qmu.Unlock()
			p.protect(f)
		}
	}
}

// protect runs f, turning a panic (a library choking on some input no test
// foresaw) into a logged error for this participant instead of a crash of
// every session on the server.
func (p *participant) protect(f func()) {
	defer func() {
		if r := recover(); r != nil {
			p.s.log.Error("sfu: panic handling a participant event", "session", p.sessionID,
				"panic", r, "stack", string(debug.Stack()))
			p.send(protocol.NewError(protocol.CodeInternal, "the server could not handle the last message"))
		}
	}()
	f()
}

// sendLocked queues m on the current socket, if any. Caller holds s.mu.
func (p *participant) sendLocked(m protocol.Message) {
	if p.conn != nil {
		p.conn.send(m)
	}
}

func (p *participant) send(m protocol.Message) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.sendLocked(m)
}

// handle runs one client message on the loop. Messages from a socket that
// has since been replaced are ignored.
func (p *participant) handle(c *wsConn, m protocol.Message) {
	if !p.s.current(p, c) {
		return
	}
	switch m.Type {
	case protocol.TypeOffer:
		p.handleOffer(c, m.SDP)
	case protocol.TypeAnswer:
		p.handleAnswer(c, m.SDP)
	case protocol.TypeCandidate:
		p.handleCandidate(c, m.Target, *m.Candidate)
	case protocol.TypeSubscribe:
		p.handleSubscribe(c, m.Identity)
	case protocol.TypeUnsubscribe:
		p.s.mu.Lock()
		p.s.unsubscribeLocked(p, m.Identity)
		p.s.mu.Unlock()
	case protocol.TypeRestartICE:
		if p.sub != nil {
			p.subRestartICE = true
			p.subDirty = true
			p.s.m.reconnects.WithLabelValues("ice_restart").Inc()
			p.negotiateSub()
		}
	default:
		c.sendError(protocol.CodeUnknownType, fmt.Sprintf("a client does not send %q", m.Type))
	}
}

func (p *participant) handleSubscribe(c *wsConn, identity string) {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case identity == p.grants.Identity:
		c.sendError(protocol.CodeBadRequest, "a participant cannot subscribe to itself")
	case !p.grants.MaySubscribeTo(identity) && !(p.grants.CanSubscribe && p.allowed[identity]):
		c.sendError(protocol.CodeNotAllowed, fmt.Sprintf("not allowed to subscribe to %q", identity))
	default:
		if err := s.subscribeLocked(p, identity); err != nil {
			c.sendError(protocol.CodeLimit, err.Error())
		}
	}
}

// handleOffer answers an offer on the publisher connection, creating it
// on the first offer. An offer with new ICE credentials is an ICE restart;
// the subscriber connection restarts its ICE too, since the network that
// made the client restart is the one both connections use.
func (p *participant) handleOffer(c *wsConn, sdp string) {
	p.s.mu.Lock()
	canPublish := p.grants.CanPublish
	p.s.mu.Unlock()
	if !canPublish {
		c.sendError(protocol.CodeNotAllowed, "this token may not publish")
		return
	}
	if p.pub == nil {
		pc, err := p.newPeerConnection(protocol.TargetPublisher)
		if err != nil {
			c.sendError(protocol.CodeInternal, "cannot create a peer connection")
			return
		}
		p.pub = pc
		p.pubReaders = &readerGroup{}
		readers, connection := p.pubReaders, p.connectionNow()
		pc.OnTrack(func(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
			p.s.startUpTrack(p, pc, readers, connection, remote)
		})
	}
	var before string
	if rd := p.pub.RemoteDescription(); rd != nil {
		before = iceUfrag(rd.SDP)
	}
	answer, err := p.answer(sdp)
	if err != nil {
		c.sendError(protocol.CodeBadSDP, err.Error())
		p.recoverPub()
		return
	}
	c.send(protocol.Message{Type: protocol.TypeAnswer, SDP: answer})
	p.flushCandidates(c, protocol.TargetPublisher)
	if after := iceUfrag(sdp); before != "" && after != before {
		p.s.m.reconnects.WithLabelValues("ice_restart").Inc()
		if p.sub != nil {
			p.subRestartICE = true
			p.subDirty = true
			p.negotiateSub()
		}
	}
}

func (p *participant) answer(offer string) (string, error) {
	if err := p.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("offer: %w", err)
	}
	answer, err := p.pub.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("answer: %w", err)
	}
	if err := p.pub.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("answer: %w", err)
	}
	return answer.SDP, nil
}

// recoverPub returns the publisher connection to a state that accepts the
// next offer after a bad one: pion may have entered have-remote-offer
// before it found the fault. If even a rollback fails, the connection is
// dropped; the next offer makes a new one (what was published on it ends:
// only a client that sends broken SDP is hurt by its own input).
func (p *participant) recoverPub() {
	if p.pub.SignalingState() == webrtc.SignalingStateStable {
		return
	}
	if err := p.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback}); err == nil &&
		p.pub.SignalingState() == webrtc.SignalingStateStable {
		return
	}
	p.s.log.Warn("sfu: publisher connection unusable after a bad offer; replacing it", "session", p.sessionID)
	_ = p.pub.GracefulClose()
	p.pubReaders.closeAndWait()
	p.pub, p.pubReaders = nil, nil
	delete(p.pendingCands, protocol.TargetPublisher)
	// The next publisher connection is a new connection of the session
	// (a new recording segment), as after a resume.
	p.s.mu.Lock()
	p.connection++
	p.s.mu.Unlock()
}

func (p *participant) connectionNow() int {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return p.connection
}

// iceUfrag returns the first ice-ufrag attribute of an SDP.
func iceUfrag(sdp string) string {
	for line := range strings.SplitSeq(sdp, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "a=ice-ufrag:"); ok {
			return v
		}
	}
	return ""
}

func (p *participant) handleAnswer(c *wsConn, sdp string) {
	if p.sub == nil || !p.subOffering {
		c.sendError(protocol.CodeBadSDP, "no offer is waiting for an answer")
		return
	}
	if err := p.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		c.sendError(protocol.CodeBadSDP, fmt.Sprintf("answer: %v", err))
		// Withdraw the offer and make a fresh one: the server is the only
		// offerer on this connection, so its media sections stay as they
		// were and the next offer repeats them.
		if rerr := p.sub.SetLocalDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback}); rerr == nil {
			p.subOffering = false
			p.subDirty = true
			p.negotiateSub()
		}
		return
	}
	p.subOffering = false
	p.flushCandidates(c, protocol.TargetSubscriber)
	p.negotiateSub()
}

func (p *participant) handleCandidate(c *wsConn, target string, cand webrtc.ICECandidateInit) {
	pc := p.pub
	if target == protocol.TargetSubscriber {
		pc = p.sub
	}
	if pc == nil || pc.RemoteDescription() == nil {
		if len(p.pendingCands[target]) >= maxPendingCandidates {
			c.sendError(protocol.CodeLimit, "too many candidates before a description")
			return
		}
		p.pendingCands[target] = append(p.pendingCands[target], cand)
		return
	}
	if err := pc.AddICECandidate(cand); err != nil {
		c.sendError(protocol.CodeBadCandidate, err.Error())
	}
}

func (p *participant) flushCandidates(c *wsConn, target string) {
	pc := p.pub
	if target == protocol.TargetSubscriber {
		pc = p.sub
	}
	pending := p.pendingCands[target]
	delete(p.pendingCands, target)
	for _, cand := range pending {
		if err := pc.AddICECandidate(cand); err != nil {
			c.sendError(protocol.CodeBadCandidate, err.Error())
		}
	}
}

// newPeerConnection makes one of the participant's two connections; its
// ICE candidates go to the client tagged with target.
func (p *participant) newPeerConnection(target string) (*webrtc.PeerConnection, error) {
	pc, err := p.s.api.NewPeerConnection(webrtc.Configuration{ICEServers: p.s.cfg.ICE.Servers})
	if err != nil {
		p.s.log.Error("sfu: new peer connection", "err", err)
		return nil, err
	}
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand == nil {
			return
		}
		init := cand.ToJSON()
		p.send(protocol.Message{Type: protocol.TypeCandidate, Target: target, Candidate: &init})
	})
	session := p.sessionID
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		p.s.log.Debug("sfu: peer connection state", "session", session, "target", target, "state", st.String())
	})
	return pc, nil
}

// reconcile makes the subscriber connection carry exactly the tracks p
// should receive: every live track of every publisher it is subscribed to
// in its room.
func (p *participant) reconcile() {
	want := p.s.wantedTracks(p)
	changed := false
	for up, d := range p.downs {
		if !want[up] {
			p.removeDown(d)
			changed = true
		}
	}
	for up := range want {
		if p.downs[up] != nil {
			continue
		}
		if p.sub == nil {
			pc, err := p.newPeerConnection(protocol.TargetSubscriber)
			if err != nil {
				return
			}
			p.sub = pc
		}
		d, err := newDownTrack(p, up)
		if err != nil {
			p.s.log.Error("sfu: forward track", "session", p.sessionID, "track", up.info.TrackID, "err", err)
			continue
		}
		p.downs[up] = d
		changed = true
	}
	if changed {
		p.subDirty = true
		p.negotiateSub()
	}
}

func (p *participant) removeDown(d *downTrack) {
	delete(p.downs, d.up)
	d.close()
	if p.sub != nil {
		_ = p.sub.RemoveTrack(d.sender)
	}
	// Stopping the sender ends its RTCP reads even if the connection is
	// already closed and RemoveTrack refused.
	_ = d.sender.Stop()
	d.wait()
}

// negotiateSub offers on the subscriber connection when it needs it and
// no offer is outstanding; the answer calls it again.
func (p *participant) negotiateSub() {
	if p.sub == nil || p.subOffering || !p.subDirty {
		return
	}
	p.subDirty = false
	offer, err := p.sub.CreateOffer(&webrtc.OfferOptions{ICERestart: p.subRestartICE})
	if err == nil {
		err = p.sub.SetLocalDescription(offer)
	}
	if err != nil {
		p.s.log.Error("sfu: subscriber offer", "session", p.sessionID, "err", err)
		return
	}
	p.subRestartICE = false
	p.subOffering = true
	p.send(protocol.Message{Type: protocol.TypeOffer, SDP: p.sub.LocalDescription().SDP})
}

// resetMedia closes both connections and everything forwarded on them, and
// waits until the published tracks have ended (their taps closed), so a
// resume's new tracks always start after the old ones ended.
func (p *participant) resetMedia() {
	for _, d := range p.downs {
		p.removeDown(d)
	}
	if p.sub != nil {
		_ = p.sub.GracefulClose()
		p.sub = nil
	}
	if p.pub != nil {
		_ = p.pub.GracefulClose()
		p.pubReaders.closeAndWait()
		p.pub, p.pubReaders = nil, nil
	}
	p.subOffering, p.subDirty, p.subRestartICE = false, false, false
	clear(p.pendingCands)
}
