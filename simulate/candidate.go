package simulate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"gocv.io/x/gocv"

	"invigil/sfu/client"
	"invigil/sfu/protocol"
)

// Config says where a candidate joins and what its camera shows.
type Config struct {
	// URL is the SFU's signaling WebSocket (ws://host:port/sfu/ws).
	URL string
	// Locate, if set, asks where the media go now (the control plane's
	// media token: with several nodes, the exam's media node). A resume
	// that failed asks it before trying again, so a candidate whose media
	// node died moves to the node its exam is placed on next, as the
	// candidate page does.
	Locate func(ctx context.Context) (string, error)
	// Token is the candidate's join token.
	Token string

	// The camera: either Camera, encoded live (Join takes it over: the
	// candidate closes it, also when Join fails), or Stream, replayed
	// (shared, read-only).
	Camera *Camera
	// Encode sets up the live encoder.
	Encode EncodeOptions
	Stream *Stream
	// StartFrame is where in Stream the replay begins (rounded on to a
	// keyframe), so that many candidates do not show the same thing at once.
	StartFrame int

	// Audio, if set, is published as a microphone track, looping.
	Audio *Audio

	// LoopbackOnly gathers only 127.0.0.1 ICE candidates (tests, a server
	// on the same machine started with loopback candidates).
	LoopbackOnly bool
	// ResumeWindow is how long a dropped candidate keeps trying to resume
	// its session (default 30 s, the SFU's default window).
	ResumeWindow time.Duration
	// ConnectTimeout bounds joining and the media connection coming up
	// (default 20 s).
	ConnectTimeout time.Duration
	Logger         *slog.Logger
	// OnFrame, if set, is told about every video frame sent (on the
	// candidate's goroutine: it must be quick).
	OnFrame func(SentFrame)
}

// SentFrame describes one video frame a candidate sent.
type SentFrame struct {
	// Connection is the session's connection number (from 1; a resume
	// makes a new one).
	Connection int
	// Index counts the frames sent on this connection, from 0.
	Index int
	// StreamMS is the frame's RTP time since the connection's first frame,
	// in milliseconds: the stream time the pipeline and recorder see.
	StreamMS int64
	// At is when the frame was handed to the network.
	At       time.Time
	Clip     int
	Keyframe bool
	// TID is the frame's temporal layer (0 without layers).
	TID   uint8
	Bytes int
}

// Stats counts what a candidate did.
type Stats struct {
	Frames            int64 // video frames sent
	Keyframes         int64
	Bytes             int64 // video payload bytes sent
	AudioPackets      int64
	KeyframeRequests  int64 // PLI and FIR received
	Reconnects        int64 // sessions resumed (or rejoined) after a drop
	ICERestarts       int64
	FramesNotSent     int64 // camera frames made while disconnected
	ConnectionsFailed int64 // attempts to resume that failed
}

// ErrClosed is returned by Run once Leave or Close was called.
var ErrClosed = errors.New("simulate: candidate closed")

// Candidate is one synthetic candidate: joined, publishing, and resuming
// its session when its connection drops. Run sends its media.
type Candidate struct {
	cfg     Config
	log     *slog.Logger
	api     *webrtc.API
	video   videoSource
	wantKey atomic.Bool
	// clockJump (ns) moves every RTP timestamp sent from now on: see
	// JumpClock.
	clockJump atomic.Int64
	lost      chan lostEvent
	fps       float64
	stats     statsCounters

	mu       sync.Mutex
	conn     *connection
	session  string
	identity string
	closed   bool
	running  bool

	audioAt int // next audio packet
}

type statsCounters struct {
	frames, keyframes, bytes, audio, keyRequests, reconnects, iceRestarts, notSent, failed atomic.Int64
}

// connection is one joined signaling session with its publisher
// connection and tracks.
type connection struct {
	cl           *client.Client
	number       int
	video, audio *webrtc.TrackLocalStaticRTP
	vseq, aseq   uint16
	vts0, ats0   uint32
	vframes      int
	apackets     int
	stopWatch    context.CancelFunc
	watchDone    chan struct{}
	failedSince  time.Time
}

type lostEvent struct {
	conn   *connection
	code   string
	reason string
}

// Join validates cfg, joins the SFU and publishes the candidate's tracks.
// The candidate sends nothing until Run.
func Join(ctx context.Context, cfg Config) (*Candidate, error) {
	if (cfg.Camera == nil) == (cfg.Stream == nil) {
		if cfg.Camera != nil {
			cfg.Camera.Close()
		}
		return nil, errors.New("simulate: give a camera to encode live or a stream to replay, not both")
	}
	if cfg.URL == "" || cfg.Token == "" {
		if cfg.Camera != nil {
			cfg.Camera.Close()
		}
		return nil, errors.New("simulate: a signaling URL and a token are needed")
	}
	if cfg.ResumeWindow <= 0 {
		cfg.ResumeWindow = 30 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 20 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Candidate{cfg: cfg, log: cfg.Logger, lost: make(chan lostEvent, 1)}
	if cfg.Camera != nil {
		err := cfg.Encode.setDefaults()
		if cfg.Encode.KeyframeEvery == 0 {
			// As browsers do: keyframes when asked (PLI), hardly otherwise.
			cfg.Encode.KeyframeEvery = 3000
		}
		var enc *encoder
		if err == nil {
			enc, err = newEncoder(cfg.Camera.Options(), cfg.Encode)
		}
		if err != nil {
			cfg.Camera.Close()
			return nil, err
		}
		c.video = &liveVideo{cam: cfg.Camera, enc: enc, pic: gocv.NewMat()}
		c.fps = cfg.Camera.Options().FPS
	} else {
		if len(cfg.Stream.Frames) == 0 || cfg.Stream.FPS <= 0 {
			return nil, errors.New("simulate: empty stream")
		}
		start := cfg.Stream.nextKeyframe(((cfg.StartFrame % len(cfg.Stream.Frames)) + len(cfg.Stream.Frames)) % len(cfg.Stream.Frames))
		c.video = &replayVideo{s: cfg.Stream, i: start}
		c.fps = cfg.Stream.FPS
	}
	api, err := newAPI(cfg.LoopbackOnly, c.log, func() {
		c.stats.keyRequests.Add(1)
		c.wantKey.Store(true)
	})
	if err != nil {
		c.video.close()
		return nil, err
	}
	c.api = api
	conn, err := c.connect(ctx, "")
	if err != nil {
		c.video.close()
		return nil, err
	}
	c.conn = conn
	return c, nil
}

// Identity is the candidate's identity, as the SFU's joined message said.
func (c *Candidate) Identity() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.identity
}

// SessionID is the candidate's SFU session (kept across resumes).
func (c *Candidate) SessionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

// Stats returns the candidate's counters.
func (c *Candidate) Stats() Stats {
	s := &c.stats
	return Stats{Frames: s.frames.Load(), Keyframes: s.keyframes.Load(), Bytes: s.bytes.Load(), AudioPackets: s.audio.Load(),
		KeyframeRequests: s.keyRequests.Load(), Reconnects: s.reconnects.Load(), ICERestarts: s.iceRestarts.Load(),
		FramesNotSent: s.notSent.Load(), ConnectionsFailed: s.failed.Load()}
}

// connect joins (or resumes session) and publishes fresh tracks on a new
// publisher connection, returning once media can flow.
func (c *Candidate) connect(ctx context.Context, resume string) (*connection, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	cl, err := client.Dial(ctx, client.Config{URL: c.cfg.URL, Token: c.cfg.Token, ResumeSession: resume, API: c.api, Logger: c.log})
	if err != nil {
		return nil, err
	}
	j := cl.Joined()
	conn := &connection{cl: cl, number: j.Connection, vseq: uint16(rand.Uint32()), aseq: uint16(rand.Uint32()),
		vts0: rand.Uint32(), ats0: rand.Uint32()}
	conn.video, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "camera", "camera")
	if err == nil && c.cfg.Audio != nil {
		conn.audio, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: opusClockRate, Channels: 2}, "microphone", "camera")
	}
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("make tracks: %w", err)
	}
	tracks := []webrtc.TrackLocal{conn.video}
	if conn.audio != nil {
		tracks = append(tracks, conn.audio)
	}
	if _, err := cl.Publish(ctx, tracks...); err != nil {
		cl.Close()
		return nil, fmt.Errorf("publish: %w", err)
	}
	if err := waitConnected(ctx, cl.Publisher()); err != nil {
		cl.Close()
		return nil, err
	}
	c.mu.Lock()
	c.session, c.identity = j.SessionID, j.Identity
	c.mu.Unlock()
	if resume != "" && !j.Resumed {
		c.log.Warn("simulate: the session could not be resumed; joined as a new one", "identity", j.Identity,
			"old_session", resume, "session", j.SessionID, "code", j.Code)
	}
	// Whoever receives the new connection first needs a keyframe.
	c.wantKey.Store(true)
	// The watch lives as long as the connection (stopWatch ends it), not
	// as long as the attempt to connect.
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	conn.stopWatch, conn.watchDone = stop, make(chan struct{})
	go c.watch(wctx, conn)
	c.log.Info("simulate: candidate publishing", "identity", j.Identity, "session", j.SessionID, "connection", j.Connection,
		"resumed", j.Resumed)
	return conn, nil
}

// waitConnected waits for the publisher connection's ICE and DTLS to come
// up, so that the first frame (a keyframe) is not sent into the void.
func waitConnected(ctx context.Context, pc *webrtc.PeerConnection) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		switch s := pc.ConnectionState(); s {
		case webrtc.PeerConnectionStateConnected:
			return nil
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			return fmt.Errorf("media connection %s", s)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("media connection not up (%s): %w", pc.ConnectionState(), ctx.Err())
		case <-t.C:
		}
	}
}

// terminal reports whether an error from the server ends the socket.
func terminal(code string) bool {
	switch code {
	case "closed", protocol.CodeUnauthorized, protocol.CodeKicked, protocol.CodeReplaced, protocol.CodeSlowClient, protocol.CodeShutdown:
		return true
	}
	return false
}

// watch reports the end of conn's signaling socket to Run.
func (c *Candidate) watch(ctx context.Context, conn *connection) {
	defer close(conn.watchDone)
	m, err := conn.cl.WaitFor(ctx, func(m protocol.Message) bool { return m.Type == protocol.TypeError && terminal(m.Code) })
	if err != nil {
		return
	}
	select {
	case c.lost <- lostEvent{conn: conn, code: m.Code, reason: m.Reason}:
	case <-ctx.Done():
	}
}

// Run sends the candidate's media in real time until ctx ends (it returns
// nil) or the candidate cannot go on: kicked, replaced, its token refused,
// its session not resumable within the window, or its camera failing. A
// dropped connection is resumed.
func (c *Candidate) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.closed || c.running {
		c.mu.Unlock()
		return ErrClosed
	}
	c.running = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
	}()
	video := time.NewTicker(time.Duration(float64(time.Second) / c.fps))
	defer video.Stop()
	var audio <-chan time.Time
	if c.cfg.Audio != nil {
		t := time.NewTicker(opusFrame)
		defer t.Stop()
		audio = t.C
	}
	health := time.NewTicker(time.Second)
	defer health.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-video.C:
			if err := c.sendVideo(); err != nil {
				return err
			}
		case <-audio:
			c.sendAudio()
		case ev := <-c.lost:
			if err := c.recover(ctx, ev); err != nil {
				return err
			}
		case <-health.C:
			c.checkICE(ctx)
		}
	}
}

func (c *Candidate) current() *connection {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn
}

func (c *Candidate) sendVideo() error {
	f, err := c.video.next(c.wantKey.Swap(false))
	if err != nil {
		return fmt.Errorf("camera: %w", err)
	}
	conn := c.current()
	if conn == nil {
		c.stats.notSent.Add(1)
		return nil
	}
	rtpTime := int64(math.Round(float64(conn.vframes) * 90000 / c.fps))
	ts := conn.vts0 + uint32(rtpTime) + uint32(c.clockJump.Load()*90000/int64(time.Second))
	for i, payload := range f.Payloads {
		p := &rtp.Packet{Header: rtp.Header{Version: 2, Marker: i == len(f.Payloads)-1, SequenceNumber: conn.vseq,
			Timestamp: ts}, Payload: payload}
		conn.vseq++
		// A closed connection fails the write; the watcher reports it.
		_ = conn.video.WriteRTP(p)
	}
	index := conn.vframes
	conn.vframes++
	c.stats.frames.Add(1)
	c.stats.bytes.Add(int64(f.Bytes))
	if f.Keyframe {
		c.stats.keyframes.Add(1)
	}
	if c.cfg.OnFrame != nil {
		c.cfg.OnFrame(SentFrame{Connection: conn.number, Index: index, StreamMS: rtpTime / 90, At: time.Now(),
			Clip: f.Clip, Keyframe: f.Keyframe, TID: f.TID, Bytes: f.Bytes})
	}
	return nil
}

func (c *Candidate) sendAudio() {
	conn := c.current()
	if conn == nil || conn.audio == nil {
		return
	}
	a := c.cfg.Audio
	p := &rtp.Packet{Header: rtp.Header{Version: 2, Marker: conn.apackets == 0, SequenceNumber: conn.aseq,
		Timestamp: conn.ats0 + uint32(conn.apackets*opusFrameTS) + uint32(c.clockJump.Load()*48000/int64(time.Second))},
		Payload: a.Packets[c.audioAt]}
	conn.aseq++
	conn.apackets++
	c.audioAt = (c.audioAt + 1) % len(a.Packets)
	_ = conn.audio.WriteRTP(p)
	c.stats.audio.Add(1)
}

// checkICE restarts ICE when the publisher connection has failed while
// the socket is up (the network changed under it); if that does not help
// within the resume window, the connection is given up and resumed anew.
func (c *Candidate) checkICE(ctx context.Context) {
	conn := c.current()
	if conn == nil {
		return
	}
	pc := conn.cl.Publisher()
	if pc == nil {
		return
	}
	switch pc.ConnectionState() {
	case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateDisconnected:
	default:
		conn.failedSince = time.Time{}
		return
	}
	now := time.Now()
	if conn.failedSince.IsZero() {
		conn.failedSince = now
		return // give ICE's own consent checks a moment
	}
	if now.Sub(conn.failedSince) > c.cfg.ResumeWindow/2 {
		c.log.Warn("simulate: media connection still down after ICE restarts; reconnecting", "identity", c.Identity())
		conn.cl.Close() // the watcher reports the drop and Run resumes
		return
	}
	c.stats.iceRestarts.Add(1)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := conn.cl.RestartICE(rctx); err != nil {
		c.log.Warn("simulate: ICE restart failed", "identity", c.Identity(), "err", err)
	}
	c.wantKey.Store(true)
}

// recover resumes the session after its socket dropped.
func (c *Candidate) recover(ctx context.Context, ev lostEvent) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if ev.conn != c.conn {
		c.mu.Unlock()
		return nil // an older connection's news
	}
	c.conn = nil
	session, identity := c.session, c.identity
	c.mu.Unlock()
	ev.conn.close()
	switch ev.code {
	case protocol.CodeKicked, protocol.CodeReplaced, protocol.CodeUnauthorized:
		return fmt.Errorf("candidate %s: the server ended the session (%s: %s)", identity, ev.code, ev.reason)
	}
	c.log.Warn("simulate: connection lost; resuming", "identity", identity, "session", session, "code", ev.code, "reason", ev.reason)
	deadline := time.Now().Add(c.cfg.ResumeWindow)
	backoff := 100 * time.Millisecond
	for {
		conn, err := c.connect(ctx, session)
		if err == nil {
			c.mu.Lock()
			if c.closed {
				c.mu.Unlock()
				conn.close()
				return ErrClosed
			}
			c.conn = conn
			c.mu.Unlock()
			c.stats.reconnects.Add(1)
			return nil
		}
		c.stats.failed.Add(1)
		var perr *protocol.Error
		if errors.As(err, &perr) && perr.Code == protocol.CodeUnauthorized {
			return fmt.Errorf("candidate %s: resume refused: %w", identity, err)
		}
		if ctx.Err() != nil {
			return nil //nolint:nilerr // asked to stop: the failed resume no longer matters
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("candidate %s: could not resume session %s within %v: %w", identity, session, c.cfg.ResumeWindow, err)
		}
		c.log.Warn("simulate: resume failed; retrying", "identity", identity, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
		c.relocate(ctx, identity)
	}
}

// relocate asks Locate where the media go now and follows a move. A
// failure to ask is only logged: the next attempt asks again.
func (c *Candidate) relocate(ctx context.Context, identity string) {
	if c.cfg.Locate == nil {
		return
	}
	u, err := c.cfg.Locate(ctx)
	if err != nil {
		c.log.Warn("simulate: cannot ask where the media go", "identity", identity, "err", err)
		return
	}
	if u != c.cfg.URL {
		c.log.Info("simulate: the media moved to another node", "identity", identity, "from", c.cfg.URL, "to", u)
		c.cfg.URL = u
	}
}

// JumpClock moves the RTP timestamps of everything sent from now on by d,
// as a sender whose capture clock jumps does (a laptop waking from sleep,
// a broken camera driver); SentFrame.StreamMS goes on as before. It tests
// how the server dates media across such a jump.
func (c *Candidate) JumpClock(d time.Duration) { c.clockJump.Add(int64(d)) }

// Drop cuts the candidate's connection the way a network failure does:
// the socket and peer connection close without a leave. Run notices and
// resumes the session, as the web page does.

func (c *Candidate) Drop() {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		conn.cl.Close()
	}
}

// Leave ends the session for good (the candidate left) and frees the
// candidate. Call it after Run has returned.
func (c *Candidate) Leave() { c.shutdown(true) }

// Close drops the connection without leaving (the server keeps the session
// for its resume window) and frees the candidate. Call it after Run has
// returned.
func (c *Candidate) Close() { c.shutdown(false) }

func (c *Candidate) shutdown(leave bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	conn := c.conn
	c.conn = nil
	c.mu.Unlock()
	if conn != nil {
		conn.stopWatch()
		<-conn.watchDone
		if leave {
			conn.cl.Leave()
		} else {
			conn.cl.Close()
		}
	}
	c.video.close()
}

// close ends a connection that is no longer the candidate's.
func (conn *connection) close() {
	conn.stopWatch()
	<-conn.watchDone
	conn.cl.Close()
}

// videoSource is what a candidate's camera sends.
type videoSource interface {
	next(keyframe bool) (Frame, error)
	close()
}

// liveVideo encodes the camera's frames as they are made.
type liveVideo struct {
	cam *Camera
	enc *encoder
	pic gocv.Mat
}

func (l *liveVideo) next(keyframe bool) (Frame, error) {
	clip, err := l.cam.Next(&l.pic)
	if err != nil {
		return Frame{}, err
	}
	f, err := l.enc.encode(l.pic, keyframe)
	if err != nil {
		return Frame{}, fmt.Errorf("encode: %w", err)
	}
	f.Clip = clip
	return f, nil
}

func (l *liveVideo) close() {
	l.enc.close()
	l.pic.Close()
	l.cam.Close()
}

// replayVideo plays a pre-encoded stream in a loop; asked for a keyframe,
// it skips on to the stream's next one.
type replayVideo struct {
	s *Stream
	i int
}

func (r *replayVideo) next(keyframe bool) (Frame, error) {
	if keyframe && !r.s.Frames[r.i].Keyframe {
		r.i = r.s.nextKeyframe(r.i)
	}
	f := r.s.Frames[r.i]
	r.i = (r.i + 1) % len(r.s.Frames)
	return f, nil
}

func (r *replayVideo) close() {}
