package sfu

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"invigil/media"
	"invigil/sfu/protocol"
)

// readerGroup counts the read loops of one publisher connection. Unlike a
// WaitGroup it may be added to concurrently with the wait (pion calls
// OnTrack on goroutines of its own, which may run late): once closed, add
// refuses.
type readerGroup struct {
	mu     sync.Mutex
	n      int
	closed bool
	zero   chan struct{}
}

func (g *readerGroup) add() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.n++
	return true
}

func (g *readerGroup) done() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
	if g.n == 0 && g.zero != nil {
		close(g.zero)
		g.zero = nil
	}
}

func (g *readerGroup) closeAndWait() {
	g.mu.Lock()
	g.closed = true
	if g.n == 0 {
		g.mu.Unlock()
		return
	}
	zero := make(chan struct{})
	g.zero = zero
	g.mu.Unlock()
	<-zero
}

// upTrack is one published track: its read loop hands every packet to the
// taps and to the queue of each subscriber's downTrack.
type upTrack struct {
	s      *Server
	owner  *participant
	pc     *webrtc.PeerConnection
	remote *webrtc.TrackRemote
	info   media.Track

	mu    sync.Mutex // serializes changes to downs
	downs atomic.Pointer[[]*downTrack]

	pliMu   sync.Mutex
	lastPLI time.Time

	packetsIn, bytesIn prometheus.Counter
	malformed          prometheus.Counter

	// clock normalises the packets handed to the taps, once for all of
	// them (owned by the read loop).
	clock      *media.Clock
	clockStats media.ClockStats
}

// startUpTrack runs on the goroutine pion started for OnTrack: it becomes
// the track's read loop, counted by the connection's readerGroup, which the
// owner's loop waits for when it closes the connection.
func (s *Server) startUpTrack(p *participant, pc *webrtc.PeerConnection, readers *readerGroup, connection int, remote *webrtc.TrackRemote) {
	if !readers.add() {
		return
	}
	defer readers.done()
	kind := media.Video
	if remote.Kind() == webrtc.RTPCodecTypeAudio {
		kind = media.Audio
	}
	codec := remote.Codec()
	t := &upTrack{
		s: s, owner: p, pc: pc, remote: remote,
		packetsIn: s.m.packetsIn.WithLabelValues(string(kind)),
		bytesIn:   s.m.bytesIn.WithLabelValues(string(kind)),
		malformed: s.m.packetsDropped.WithLabelValues("malformed"),
	}
	t.downs.Store(&[]*downTrack{})

	// media.Track.Started is the first packet's arrival, so the track is
	// announced only once one has come.
	buf := make([]byte, 1500)
	var first *rtp.Packet
	var arrival time.Time
	for first == nil {
		n, _, err := remote.Read(buf)
		if err != nil {
			return
		}
		arrival = time.Now()
		first = t.parse(buf[:n])
	}

	s.mu.Lock()
	ok := !p.removed && p.connection == connection && len(p.published) < s.cfg.MaxPublishedTracks
	if ok {
		p.trackSeq++
		t.info = media.Track{
			SessionID: p.sessionID, Identity: p.grants.Identity, Role: p.grants.Role, Room: p.grants.Room,
			TrackID:  fmt.Sprintf("%s-%d-%d", kind, connection, p.trackSeq),
			Kind:     kind,
			MimeType: codec.MimeType, ClockRate: codec.ClockRate, Channels: codec.Channels,
			PayloadType: uint8(codec.PayloadType), Connection: connection, Started: arrival,
			RequestKeyframe: t.requestKeyframe,
		}
		p.published = append(p.published, t)
		s.m.tracks.WithLabelValues(string(kind)).Inc()
		s.announceLocked(t, protocol.TypeTrackPublished)
		s.emitLocked(EventTrackPublished, p, "", t)
	} else if !p.removed && p.connection == connection {
		p.sendLocked(protocol.NewError(protocol.CodeLimit,
			fmt.Sprintf("at most %d published tracks; track %s is not forwarded", s.cfg.MaxPublishedTracks, remote.ID())))
	}
	s.mu.Unlock()
	if !ok {
		return
	}
	s.log.Info("sfu: track published", "session", t.info.SessionID, "identity", t.info.Identity,
		"track", t.info.TrackID, "kind", kind, "codec", codec.MimeType, "connection", connection)

	var writers []media.PacketWriter
	for _, tap := range s.cfg.Taps {
		if w := tap.TrackStarted(t.info); w != nil {
			writers = append(writers, w)
		}
	}
	defer func() {
		for _, w := range writers {
			w.Close()
		}
	}()
	defer s.unpublish(t)

	t.clock = media.NewClock(codec.ClockRate)
	t.forward(first, arrival, writers)
	for {
		n, _, err := remote.Read(buf)
		if err != nil {
			return
		}
		arrival := time.Now()
		if pkt := t.parse(buf[:n]); pkt != nil {
			t.forward(pkt, arrival, writers)
		}
	}
}

// parse copies one packet out of the read buffer: the copy is shared,
// read-only, by every subscriber's queue.
func (t *upTrack) parse(b []byte) *rtp.Packet {
	data := make([]byte, len(b))
	copy(data, b)
	pkt := &rtp.Packet{}
	if err := pkt.Unmarshal(data); err != nil {
		t.malformed.Inc()
		return nil
	}
	return pkt
}

func (t *upTrack) forward(pkt *rtp.Packet, arrival time.Time, writers []media.PacketWriter) {
	t.packetsIn.Inc()
	t.bytesIn.Add(float64(len(pkt.Payload)))
	if len(writers) > 0 {
		t.tap(pkt, arrival, writers)
	}
	for _, d := range *t.downs.Load() {
		d.enqueue(pkt)
	}
}

// tap hands every tap its own copy of the packet, normalised by the
// track's clock: subscribers get the packet as it came, the recorder and
// the pipeline one clock for both.
func (t *upTrack) tap(pkt *rtp.Packet, arrival time.Time, writers []media.PacketWriter) {
	stamped, ok := t.clock.Stamp(pkt.Clone(), arrival)
	if st := t.clock.Stats(); st != t.clockStats {
		t.countClockFixes(st)
	}
	if !ok {
		return
	}
	for i, w := range writers {
		p := stamped
		if i > 0 {
			p.RTP = stamped.RTP.Clone()
		}
		w.WritePacket(p)
	}
}

func (t *upTrack) countClockFixes(st media.ClockStats) {
	kind := string(t.info.Kind)
	for _, c := range []struct {
		what     string
		now, was uint64
	}{
		{"stray", st.Stray, t.clockStats.Stray},
		{"renumbered", st.Renumbered, t.clockStats.Renumbered},
		{"clock_jump", st.ClockJumps, t.clockStats.ClockJumps},
		{"misdated", st.Misdated, t.clockStats.Misdated},
	} {
		if c.now > c.was {
			t.s.m.clockFixes.WithLabelValues(kind, c.what).Add(float64(c.now - c.was))
		}
	}
	t.clockStats = st
}

// unpublish removes an ended track and tells its subscribers.
func (s *Server) unpublish(t *upTrack) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := t.owner
	for i, x := range p.published {
		if x == t {
			p.published = append(p.published[:i], p.published[i+1:]...)
			break
		}
	}
	s.m.tracks.WithLabelValues(string(t.info.Kind)).Dec()
	s.announceLocked(t, protocol.TypeTrackUnpublished)
	s.emitLocked(EventTrackUnpublished, p, "", t)
	s.log.Info("sfu: track ended", "session", t.info.SessionID, "track", t.info.TrackID)
}

// announceLocked tells everyone who may see the owner about t, and has its
// subscribers reconcile.
func (s *Server) announceLocked(t *upTrack, typ string) {
	p := t.owner
	desc := t.describe()
	for q := range s.rooms[p.grants.Room] {
		if s.canSeeLocked(q, p) {
			q.sendLocked(protocol.Message{Type: typ, Track: &desc})
		}
		if q != p && q.subs[p.grants.Identity] {
			q.requestReconcile()
		}
	}
}

func (t *upTrack) describe() protocol.Track {
	return protocol.Track{
		Identity: t.info.Identity, ID: t.info.TrackID, StreamID: t.info.Identity,
		Kind: string(t.info.Kind), MimeType: t.info.MimeType,
	}
}

// wantedTracks is what p should receive now.
func (s *Server) wantedTracks(p *participant) map[*upTrack]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[*upTrack]bool{}
	if p.removed || !p.grants.CanSubscribe {
		return want
	}
	for id := range p.subs {
		pub := s.byIdentity[id]
		if pub == nil || pub == p || pub.removed || pub.grants.Room != p.grants.Room {
			continue
		}
		for _, t := range pub.published {
			want[t] = true
		}
	}
	return want
}

func (t *upTrack) addDown(d *downTrack) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.downs.Load()
	next := append(append(make([]*downTrack, 0, len(old)+1), old...), d)
	t.downs.Store(&next)
}

func (t *upTrack) removeDown(d *downTrack) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.downs.Load()
	next := make([]*downTrack, 0, len(old))
	for _, x := range old {
		if x != d {
			next = append(next, x)
		}
	}
	t.downs.Store(&next)
}

func (t *upTrack) subscriberCount() int { return len(*t.downs.Load()) }

// requestKeyframe sends a PLI to the publisher, at most one per
// KeyframeInterval: every new subscriber, every subscriber's own PLI and
// every decoder asks, and the publisher must not be flooded.
func (t *upTrack) requestKeyframe() {
	if t.info.Kind != media.Video {
		return
	}
	t.pliMu.Lock()
	now := time.Now()
	if !t.lastPLI.IsZero() && now.Sub(t.lastPLI) < t.s.cfg.KeyframeInterval {
		t.pliMu.Unlock()
		t.s.m.pliRateLimited.Inc()
		return
	}
	t.lastPLI = now
	t.pliMu.Unlock()
	_ = t.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(t.remote.SSRC())}})
}

// downTrack forwards one published track to one subscriber. Its queue is
// bounded and its writer is its own goroutine, so however slowly this
// subscriber's connection drains, the publisher's read loop only ever does
// a non-blocking send (dropping and counting when the queue is full).
type downTrack struct {
	up     *upTrack
	sub    *participant
	local  *webrtc.TrackLocalStaticRTP
	sender *webrtc.RTPSender
	queue  chan *rtp.Packet
	quit   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	packetsOut, bytesOut, dropped, writeErrors prometheus.Counter
	gauge                                      prometheus.Gauge
}

// newDownTrack adds a sending track for up to sub's subscriber connection
// and starts forwarding. Called on sub's loop.
func newDownTrack(sub *participant, up *upTrack) (*downTrack, error) {
	local, err := webrtc.NewTrackLocalStaticRTP(up.remote.Codec().RTPCodecCapability, up.info.TrackID, up.info.Identity)
	if err != nil {
		return nil, err
	}
	sender, err := sub.sub.AddTrack(local)
	if err != nil {
		return nil, err
	}
	m := up.s.m
	kind := string(up.info.Kind)
	d := &downTrack{
		up: up, sub: sub, local: local, sender: sender,
		queue:       make(chan *rtp.Packet, up.s.cfg.ForwardQueue),
		quit:        make(chan struct{}),
		packetsOut:  m.packetsOut.WithLabelValues(kind),
		bytesOut:    m.bytesOut.WithLabelValues(kind),
		dropped:     m.packetsDropped.WithLabelValues("queue_full"),
		writeErrors: m.packetsDropped.WithLabelValues("write_error"),
		gauge:       m.subscribers.WithLabelValues(kind),
	}
	d.gauge.Inc()
	d.wg.Add(2)
	go d.writeLoop()
	go d.rtcpLoop()
	up.addDown(d)
	up.requestKeyframe()
	return d, nil
}

func (d *downTrack) enqueue(pkt *rtp.Packet) {
	select {
	case d.queue <- pkt:
	default:
		d.dropped.Inc()
	}
}

func (d *downTrack) writeLoop() {
	defer d.wg.Done()
	for {
		select {
		case <-d.quit:
			return
		case pkt := <-d.queue:
			// The publisher's header extensions carry IDs negotiated with
			// the publisher, meaningless to this subscriber; the copy also
			// keeps the interceptors from touching the shared packet.
			out := rtp.Packet{Header: pkt.Header, Payload: pkt.Payload, PaddingSize: pkt.PaddingSize}
			out.Header.Extension = false
			out.Header.Extensions = nil
			out.Header.ExtensionProfile = 0
			if err := d.local.WriteRTP(&out); err != nil {
				d.writeErrors.Inc()
				continue
			}
			d.packetsOut.Inc()
			d.bytesOut.Add(float64(len(pkt.Payload)))
		}
	}
}

// rtcpLoop reads the subscriber's RTCP for this track (which also drives
// the NACK responder) and passes keyframe requests on to the publisher.
func (d *downTrack) rtcpLoop() {
	defer d.wg.Done()
	for {
		pkts, _, err := d.sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				d.up.requestKeyframe()
			}
		}
	}
}

// close stops forwarding; the caller removes the sender from the
// connection, which ends rtcpLoop.
func (d *downTrack) close() {
	d.once.Do(func() {
		d.up.removeDown(d)
		close(d.quit)
		d.gauge.Dec()
	})
}

// wait returns once both goroutines have ended.
func (d *downTrack) wait() { d.wg.Wait() }
