// Package client is a Go participant of the Invigil SFU: it speaks the
// signaling protocol (package sfu/protocol) over a WebSocket and runs the
// two pion peer connections, publisher and subscriber, the way the web
// pages do. The SFU's tests, `invigil simulate` and the end-to-end tests
// use it.
//
//	c, err := client.Dial(ctx, client.Config{URL: "ws://127.0.0.1:8080/sfu/ws", Token: tok})
//	video, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "camera", "cam")
//	_, err = c.Publish(ctx, video)          // offer/answer on the publisher connection
//	... video.WriteSample(media.Sample{Data: frame, Duration: time.Second / 15})
//	c.Leave()
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"

	"invigil/sfu/internal/pionslog"
	"invigil/sfu/protocol"
)

// Config says where and as whom to join.
type Config struct {
	// URL is the signaling endpoint, ws:// or wss://.
	URL   string
	Token string
	// ResumeSession is the session ID of a dropped session to take over.
	ResumeSession string
	// API builds the peer connections; nil means NewAPI with Logger.
	API *webrtc.API
	// OnTrack is called (on a goroutine of its own) for every track the
	// SFU forwards; identity is the publisher's (the track's stream ID).
	OnTrack func(identity string, track *webrtc.TrackRemote, recv *webrtc.RTPReceiver)
	Logger  *slog.Logger
}

// APIOptions adjust NewAPI.
type APIOptions struct {
	// LoopbackOnly gathers only 127.0.0.1 candidates (tests).
	LoopbackOnly bool
	// Logger receives pion's logs; nil means slog.Default().
	Logger *slog.Logger
	// NetworkTypes, if set, limits the candidates gathered (e.g. only
	// webrtc.NetworkTypeTCP4 to act as a client behind a UDP-blocking
	// firewall).
	NetworkTypes []webrtc.NetworkType
	// Interceptors are registered ahead of pion's defaults (NACK, RTCP
	// reports, TWCC), so they see each packet the way the transport
	// delivers it: a load generator watching for the SFU's keyframe
	// requests, say, which Publish otherwise reads and discards.
	Interceptors []interceptor.Factory
	// LoggerFactory, if set, receives pion's logs instead of Logger (a
	// simulated candidate logs its pion warnings at debug level).
	LoggerFactory logging.LoggerFactory
}

// NewAPI returns a pion API with the default codecs and interceptors.
func NewAPI(opts APIOptions) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("register codecs: %w", err)
	}
	ir := &interceptor.Registry{}
	for _, f := range opts.Interceptors {
		ir.Add(f)
	}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		return nil, fmt.Errorf("register interceptors: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	se := webrtc.SettingEngine{LoggerFactory: opts.LoggerFactory}
	if se.LoggerFactory == nil {
		se.LoggerFactory = pionslog.New(log.With("component", "sfu-client"))
	}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if opts.LoopbackOnly {
		se.SetIncludeLoopbackCandidate(true)
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil })
	}
	if len(opts.NetworkTypes) > 0 {
		se.SetNetworkTypes(opts.NetworkTypes)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// Client is one joined participant.
type Client struct {
	cfg    Config
	api    *webrtc.API
	ws     *websocket.Conn
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the reader has finished

	joined protocol.Message

	pubMu    sync.Mutex // serializes negotiations on the publisher connection
	answers  chan string
	pcMu     sync.Mutex // guards the fields below
	pub, sub *webrtc.PeerConnection
	haveDesc map[string]bool
	pending  map[string][]webrtc.ICECandidateInit

	evMu     sync.Mutex
	events   []protocol.Message
	consumed []bool
	changed  chan struct{}
}

// maxEvents bounds the remembered notifications.
const maxEvents = 4096

// Dial connects, joins and waits for the joined message.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	api := cfg.API
	if api == nil {
		var err error
		if api, err = NewAPI(APIOptions{Logger: cfg.Logger}); err != nil {
			return nil, err
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	ws, _, err := websocket.Dial(ctx, cfg.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cfg.URL, err)
	}
	ws.SetReadLimit(1 << 20)
	cctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		cfg: cfg, api: api, ws: ws, log: log, ctx: cctx, cancel: cancel,
		done:     make(chan struct{}),
		answers:  make(chan string, 1),
		haveDesc: map[string]bool{},
		pending:  map[string][]webrtc.ICECandidateInit{},
		changed:  make(chan struct{}),
	}
	go c.readLoop()
	if err := c.Send(protocol.Message{Type: protocol.TypeJoin, Token: cfg.Token, ResumeSession: cfg.ResumeSession}); err != nil {
		c.Close()
		return nil, err
	}
	m, err := c.WaitFor(ctx, func(m protocol.Message) bool {
		return m.Type == protocol.TypeJoined || m.Type == protocol.TypeError
	})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("join: %w", err)
	}
	if m.Type == protocol.TypeError {
		c.Close()
		return nil, fmt.Errorf("join: %w", &protocol.Error{Code: m.Code, Reason: m.Reason})
	}
	c.joined = m
	return c, nil
}

// Joined is the server's joined message (session ID, connection number,
// the participants visible at the time).
func (c *Client) Joined() protocol.Message { return c.joined }

// SessionID is the session to name in Config.ResumeSession after a drop.
func (c *Client) SessionID() string { return c.joined.SessionID }

// Send writes one message.
func (c *Client) Send(m protocol.Message) error {
	b, err := protocol.Encode(m)
	if err != nil {
		return err
	}
	return c.ws.Write(c.ctx, websocket.MessageText, b)
}

// SendRaw writes arbitrary bytes as one text message (tests of bad input).
func (c *Client) SendRaw(b []byte) error {
	return c.ws.Write(c.ctx, websocket.MessageText, b)
}

// Subscribe asks for identity's tracks; the answer is a subscribed or an
// error notification.
func (c *Client) Subscribe(identity string) error {
	return c.Send(protocol.Message{Type: protocol.TypeSubscribe, Identity: identity})
}

// Unsubscribe stops receiving identity's tracks.
func (c *Client) Unsubscribe(identity string) error {
	return c.Send(protocol.Message{Type: protocol.TypeUnsubscribe, Identity: identity})
}

// Publisher is the publisher connection, nil before Publish.
func (c *Client) Publisher() *webrtc.PeerConnection {
	c.pcMu.Lock()
	defer c.pcMu.Unlock()
	return c.pub
}

// Subscriber is the subscriber connection, nil before the server's first
// offer.
func (c *Client) Subscriber() *webrtc.PeerConnection {
	c.pcMu.Lock()
	defer c.pcMu.Unlock()
	return c.sub
}

// Publish adds tracks to the publisher connection and negotiates them.
func (c *Client) Publish(ctx context.Context, tracks ...webrtc.TrackLocal) ([]*webrtc.RTPSender, error) {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	pc, err := c.publisher()
	if err != nil {
		return nil, err
	}
	var senders []*webrtc.RTPSender
	for _, t := range tracks {
		tr, err := pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return nil, fmt.Errorf("add track %s: %w", t.ID(), err)
		}
		s := tr.Sender()
		senders = append(senders, s)
		go drainRTCP(s)
	}
	return senders, c.negotiateLocked(ctx, pc, false)
}

// RestartICE restarts ICE on both connections: an offer with new
// credentials on the publisher connection (the server restarts the
// subscriber connection in turn), or a restart_ice request when nothing is
// published.
func (c *Client) RestartICE(ctx context.Context) error {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	c.pcMu.Lock()
	pc := c.pub
	c.pcMu.Unlock()
	if pc == nil {
		return c.Send(protocol.Message{Type: protocol.TypeRestartICE})
	}
	return c.negotiateLocked(ctx, pc, true)
}

func (c *Client) publisher() (*webrtc.PeerConnection, error) {
	c.pcMu.Lock()
	defer c.pcMu.Unlock()
	if c.pub != nil {
		return c.pub, nil
	}
	pc, err := c.newPC(protocol.TargetPublisher)
	if err != nil {
		return nil, err
	}
	c.pub = pc
	return pc, nil
}

func (c *Client) negotiateLocked(ctx context.Context, pc *webrtc.PeerConnection, restart bool) error {
	offer, err := pc.CreateOffer(&webrtc.OfferOptions{ICERestart: restart})
	if err != nil {
		return fmt.Errorf("create offer: %w", err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("set offer: %w", err)
	}
	select {
	case <-c.answers: // a stale answer from an abandoned negotiation
	default:
	}
	// The server's candidates for this negotiation (after an ICE restart:
	// of a new ICE generation) must wait for its answer, or pion drops them
	// as not matching the credentials it knows.
	c.pcMu.Lock()
	c.haveDesc[protocol.TargetPublisher] = false
	c.pcMu.Unlock()
	if err := c.Send(protocol.Message{Type: protocol.TypeOffer, SDP: offer.SDP}); err != nil {
		return err
	}
	var answer string
	select {
	case answer = <-c.answers:
	case <-ctx.Done():
		return fmt.Errorf("wait for answer: %w", ctx.Err())
	case <-c.done:
		return errors.New("wait for answer: connection closed")
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fmt.Errorf("set answer: %w", err)
	}
	c.flushCandidates(protocol.TargetPublisher, pc)
	return nil
}

func drainRTCP(s *webrtc.RTPSender) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := s.Read(buf); err != nil {
			return
		}
	}
}

func (c *Client) newPC(target string) (*webrtc.PeerConnection, error) {
	pc, err := c.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand == nil {
			return
		}
		init := cand.ToJSON()
		_ = c.Send(protocol.Message{Type: protocol.TypeCandidate, Target: target, Candidate: &init})
	})
	return pc, nil
}

func (c *Client) flushCandidates(target string, pc *webrtc.PeerConnection) {
	c.pcMu.Lock()
	defer c.pcMu.Unlock()
	c.haveDesc[target] = true
	for _, cand := range c.pending[target] {
		_ = pc.AddICECandidate(cand)
	}
	delete(c.pending, target)
}

func (c *Client) addCandidate(target string, cand webrtc.ICECandidateInit) {
	c.pcMu.Lock()
	defer c.pcMu.Unlock()
	pc := c.pub
	if target == protocol.TargetSubscriber {
		pc = c.sub
	}
	if pc == nil || !c.haveDesc[target] {
		c.pending[target] = append(c.pending[target], cand)
		return
	}
	_ = pc.AddICECandidate(cand)
}

// answerOffer applies a server offer on the subscriber connection.
func (c *Client) answerOffer(sdp string) {
	c.pcMu.Lock()
	pc := c.sub
	if pc == nil {
		var err error
		pc, err = c.newPC(protocol.TargetSubscriber)
		if err != nil {
			c.pcMu.Unlock()
			c.log.Error("sfu client: subscriber connection", "err", err)
			return
		}
		pc.OnTrack(func(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
			if c.cfg.OnTrack != nil {
				c.cfg.OnTrack(t.StreamID(), t, r)
			} else {
				drainTrack(t)
			}
		})
		c.sub = pc
	}
	c.pcMu.Unlock()
	err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp})
	if err == nil {
		var answer webrtc.SessionDescription
		if answer, err = pc.CreateAnswer(nil); err == nil {
			if err = pc.SetLocalDescription(answer); err == nil {
				err = c.Send(protocol.Message{Type: protocol.TypeAnswer, SDP: answer.SDP})
			}
		}
	}
	if err != nil {
		c.log.Error("sfu client: answer the server's offer", "err", err)
		return
	}
	c.flushCandidates(protocol.TargetSubscriber, pc)
}

func drainTrack(t *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := t.Read(buf); err != nil {
			return
		}
	}
}

func (c *Client) readLoop() {
	defer close(c.done)
	for {
		_, data, err := c.ws.Read(c.ctx)
		if err != nil {
			c.record(protocol.Message{Type: protocol.TypeError, Code: "closed", Reason: err.Error()})
			return
		}
		m, err := protocol.Parse(data)
		if err != nil {
			c.log.Warn("sfu client: bad message from server", "err", err)
			continue
		}
		switch m.Type {
		case protocol.TypeAnswer:
			select {
			case c.answers <- m.SDP:
			default:
			}
		case protocol.TypeOffer:
			c.answerOffer(m.SDP)
		case protocol.TypeCandidate:
			c.addCandidate(m.Target, *m.Candidate)
		default:
			c.record(m)
		}
	}
}

func (c *Client) record(m protocol.Message) {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	if len(c.events) >= maxEvents {
		c.events, c.consumed = c.events[1:], c.consumed[1:]
	}
	c.events = append(c.events, m)
	c.consumed = append(c.consumed, false)
	close(c.changed)
	c.changed = make(chan struct{})
}

// Events returns the notifications received so far (everything but the
// offer/answer/candidate exchange), oldest first.
func (c *Client) Events() []protocol.Message {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	return append([]protocol.Message(nil), c.events...)
}

// WaitFor returns the oldest notification not yet returned by WaitFor that
// satisfies match, waiting for one until ctx ends. A closed socket shows up
// as an error message with code "closed".
func (c *Client) WaitFor(ctx context.Context, match func(protocol.Message) bool) (protocol.Message, error) {
	for {
		c.evMu.Lock()
		for i, m := range c.events {
			if !c.consumed[i] && match(m) {
				c.consumed[i] = true
				c.evMu.Unlock()
				return m, nil
			}
		}
		changed := c.changed
		c.evMu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return protocol.Message{}, ctx.Err()
		}
	}
}

// Leave ends the session for good and closes everything.
func (c *Client) Leave() {
	_ = c.Send(protocol.Message{Type: protocol.TypeLeave})
	c.shutdown(websocket.StatusNormalClosure)
}

// Close drops the socket and the connections without leaving: the server
// keeps the session for its resume window (what a network failure does).
func (c *Client) Close() {
	c.shutdown(-1)
}

func (c *Client) shutdown(status websocket.StatusCode) {
	if status >= 0 {
		_ = c.ws.Close(status, "")
	} else {
		_ = c.ws.CloseNow()
	}
	c.cancel()
	<-c.done
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	c.pcMu.Lock()
	pub, sub := c.pub, c.sub
	c.pub, c.sub = nil, nil
	c.pcMu.Unlock()
	if pub != nil {
		_ = pub.GracefulClose()
	}
	if sub != nil {
		_ = sub.GracefulClose()
	}
}
