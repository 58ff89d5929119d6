package recording

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/at-wat/ebml-go/webm"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	pmedia "github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"

	"invigil/media"
	"invigil/vpx"
)

const (
	// A video sequence gap still open this long after it appeared (by
	// arrival time; a retransmission would have filled it) gets a keyframe
	// asked for at once: the sample builder notices the loss only when it
	// gives up waiting, and every frame until a keyframe is lost anyway.
	gapGrace = 150 * time.Millisecond
	// Bounds on what a segment waiting to open may hold.
	maxPendingFrames = 4000
	maxPendingBytes  = 16 << 20
	// maxPaddingSeqs bounds the padding-only packets remembered between
	// two video frames (Chrome's bandwidth probes).
	maxPaddingSeqs = 256
)

type sessionKey struct{ room, identity, session string }

type connKey struct {
	sessionKey
	connection int
}

type packetItem struct {
	t   *trackState
	pkt media.Packet
}

// trackState is one track as the writer goroutine sees it; only that
// goroutine touches it after TrackStarted.
type trackState struct {
	info      media.Track
	kind      media.Kind
	clockRate uint32
	channels  int
	sb        *samplebuilder.SampleBuilder
	added     bool
	closed    bool

	// The SFU's clock normalised the packets: the newest one's timestamp
	// and wall time place every frame on the wall clock (the normalised
	// timestamp runs with it, across the sender's jumps).
	lastTS      uint32
	lastWall    time.Time
	lastArrival time.Time
	ssrc        uint32

	haveHighest  bool
	highestSeq   uint64 // extended
	lastPushedTS uint32
	missing      int       // packets of open sequence gaps not yet arrived
	gapAt        time.Time // arrival time of the oldest open gap

	// video only
	needKeyframe    bool
	lastKeyframeAsk time.Time
	haveSeq         bool
	lastSeq         uint16
	padding         []uint16
	width, height   int

	// place in the open segment
	segIndex  int
	segLastMS int64
}

func newTrackState(t media.Track, kind media.Kind) *trackState {
	ts := &trackState{info: t, kind: kind, clockRate: t.ClockRate, channels: int(t.Channels), segIndex: -1}
	if ts.clockRate == 0 {
		ts.clockRate = map[media.Kind]uint32{media.Video: 90000, media.Audio: 48000}[kind]
	}
	if ts.channels <= 0 {
		ts.channels = 2
	}
	ts.reset()
	return ts
}

// reset starts the track's depacketising over (after a panic).
func (t *trackState) reset() {
	if t.kind == media.Video {
		t.sb = samplebuilder.New(512, &codecs.VP8Packet{}, t.clockRate,
			samplebuilder.WithMaxTimeDelay(time.Second), samplebuilder.WithRTPHeaders(true))
		t.needKeyframe = true
	} else {
		t.sb = samplebuilder.New(128, &codecs.OpusPacket{}, t.clockRate,
			samplebuilder.WithMaxTimeDelay(time.Second))
	}
	t.haveHighest = false
	t.missing = 0
	t.haveSeq = false
	t.padding = t.padding[:0]
}

// connRecorder records one peer connection of one participant session: a
// bounded packet queue and the goroutine that owns the tracks, the sample
// builders and the open segment.
type connRecorder struct {
	r       *Recorder
	key     connKey
	sess    *sessionState
	log     *slog.Logger
	created time.Time

	packets chan packetItem
	wake    chan struct{}
	stopped atomic.Bool
	// packets put on and taken off the queue (tests wait for them to meet)
	queued  atomic.Uint64
	handled atomic.Uint64
	live    int // guarded by Recorder.mu

	opMu   sync.Mutex
	adds   []*trackState
	closes []*trackState

	// owned by run
	tracks  []*trackState
	seg     *segment
	pending *pendingSegment
	failed  bool
}

type segment struct {
	w         *webmWriter
	file      string
	path      string
	start     time.Time
	tracks    []*trackState
	lastFlush time.Time
}

type pendingFrame struct {
	t        *trackState
	wall     time.Time
	data     []byte
	keyframe bool
}

// pendingSegment holds frames until a segment can open: until its video
// has a keyframe (with the picture size the header needs) and its sibling
// tracks have started.
type pendingSegment struct {
	since  time.Time
	frames []pendingFrame
	bytes  int
	has    map[*trackState]bool
}

// newConn must be called with r.mu held.
func (r *Recorder) newConn(key connKey, t media.Track) *connRecorder {
	c := &connRecorder{
		r:       r,
		key:     key,
		sess:    r.acquireSession(key.sessionKey, t.Role),
		created: time.Now(),
		packets: make(chan packetItem, r.cfg.QueueSize),
		wake:    make(chan struct{}, 1),
	}
	c.log = r.log.With("room", key.room, "identity", key.identity, "session", key.session,
		"connection", key.connection, "role", t.Role)
	r.wg.Add(1)
	go c.run()
	return c
}

func (c *connRecorder) queueAdd(t *trackState) {
	c.opMu.Lock()
	c.adds = append(c.adds, t)
	c.opMu.Unlock()
	c.signal()
}

func (c *connRecorder) queueClose(t *trackState) {
	c.opMu.Lock()
	c.closes = append(c.closes, t)
	c.opMu.Unlock()
	c.signal()
}

func (c *connRecorder) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *connRecorder) run() {
	defer c.r.wg.Done()
	defer c.r.releaseSession(c.sess)
	defer c.stopped.Store(true)
	tick := time.NewTicker(c.r.tick)
	defer tick.Stop()
	for !c.failed {
		select {
		case it := <-c.packets:
			c.handlePacket(it)
		case <-c.wake:
			// Every packet written before these Closes is queued by now:
			// take them all before closing, so no track loses its end.
			closes := c.takeCloses()
			c.drain()
			c.applyAdds()
			if c.applyCloses(closes) {
				c.finish()
				return
			}
		case now := <-tick.C:
			c.housekeeping(now)
		case <-c.r.ctx.Done():
			c.drain()
			c.applyAdds()
			c.finish()
			return
		}
	}
}

func (c *connRecorder) drain() {
	for n := len(c.packets); n > 0 && !c.failed; n-- {
		c.handlePacket(<-c.packets)
	}
}

func (c *connRecorder) applyAdds() {
	c.opMu.Lock()
	adds := c.adds
	c.adds = nil
	c.opMu.Unlock()
	for _, t := range adds {
		t.added = true
		c.tracks = append(c.tracks, t)
		if t.kind == media.Video {
			c.askKeyframe(t, time.Now())
		}
	}
}

func (c *connRecorder) takeCloses() []*trackState {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	closes := c.closes
	c.closes = nil
	return closes
}

// applyCloses ends closed tracks and reports whether the connection has
// no track left and may stop.
func (c *connRecorder) applyCloses(closes []*trackState) bool {
	for _, t := range closes {
		c.closeTrack(t)
	}
	if c.failed {
		return false
	}
	if len(c.tracks) == 0 && len(closes) > 0 {
		return c.r.connDone(c)
	}
	c.maybeOpen(time.Now(), false)
	return false
}

// closeTrack writes out what the track's sample builder still holds.
func (c *connRecorder) closeTrack(t *trackState) {
	if t.closed {
		return
	}
	if t.added && t.haveHighest {
		// The sample builder hands out a frame once the packet after it
		// arrives. Its Flush would do that for the last one, but spins
		// through all 65536 slots when the buffer ends in a padding packet;
		// a made-up next packet (a new frame's start) releases the last
		// frame without that, and is itself never handed out.
		next := &rtp.Packet{Header: rtp.Header{Version: 2, SSRC: t.ssrc,
			SequenceNumber: uint16(t.highestSeq + 1), Timestamp: t.lastPushedTS + t.clockRate/10}}
		if t.kind == media.Video {
			next.Payload = []byte{0x10, 0x00} // VP8 descriptor: start of partition 0
		} else {
			next.Payload = []byte{0xfc}
		}
		c.safely(t, func() {
			t.sb.Push(next)
			for s := t.sb.Pop(); s != nil && !c.failed; s = t.sb.Pop() {
				c.handleSample(t, s)
			}
		})
	}
	t.closed = true
	for i, x := range c.tracks {
		if x == t {
			c.tracks = append(c.tracks[:i], c.tracks[i+1:]...)
			break
		}
	}
}

// finish ends the connection's recording: remaining frames, the segment
// and the manifest.
func (c *connRecorder) finish() {
	for len(c.tracks) > 0 && !c.failed {
		c.closeTrack(c.tracks[0])
	}
	if c.failed {
		return
	}
	c.maybeOpen(time.Now(), true)
	if c.seg != nil {
		c.closeSegment()
	}
}

func (c *connRecorder) housekeeping(now time.Time) {
	for _, t := range c.tracks {
		if t.kind == media.Video && t.needKeyframe {
			c.askKeyframe(t, now)
		}
	}
	c.maybeOpen(now, false)
	if c.seg != nil && now.Sub(c.seg.lastFlush) >= c.r.cfg.FlushInterval {
		c.flushSegment(now)
	}
}

func (c *connRecorder) askKeyframe(t *trackState, now time.Time) {
	if t.info.RequestKeyframe == nil || now.Sub(t.lastKeyframeAsk) < c.r.cfg.KeyframeRetry {
		return
	}
	t.lastKeyframeAsk = now
	t.info.RequestKeyframe()
}

// safely runs pion's depacketiser on untrusted input: should it panic on
// some packet, the track starts over instead of the server going down.
func (c *connRecorder) safely(t *trackState, fn func()) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("recording: depacketiser panicked; track restarted", "track", t.info.TrackID, "panic", fmt.Sprint(p))
			c.r.m.droppedFrames.WithLabelValues(string(t.kind), dropInvalid).Inc()
			t.reset()
		}
	}()
	fn()
}

func (c *connRecorder) handlePacket(it packetItem) {
	defer c.handled.Add(1)
	t := it.t
	if !t.added {
		c.applyAdds()
	}
	if t.closed || c.failed {
		return
	}
	p := it.pkt.RTP
	t.lastArrival = it.pkt.Arrival
	t.lastTS, t.lastWall, t.ssrc = p.Timestamp, it.pkt.Wall, p.SSRC
	c.noteSequence(t, it.pkt.ExtSeq)
	if t.kind == media.Video && len(p.Payload) == 0 {
		if len(t.padding) < maxPaddingSeqs {
			t.padding = append(t.padding, p.SequenceNumber)
		}
		// pion's sample builder folds a run of padding-only packets
		// (libwebrtc's bandwidth probes) into the next frame when that
		// frame is a single packet, and then drops frame and padding
		// together. A marker makes each padding packet a "frame" of its
		// own, which it discards cleanly. The SFU's packet is not ours to
		// change: copy the header.
		pad := *p
		pad.Marker = true
		p = &pad
	}
	t.lastPushedTS = p.Timestamp
	c.safely(t, func() {
		t.sb.Push(p)
		for s := t.sb.Pop(); s != nil && !c.failed; s = t.sb.Pop() {
			c.handleSample(t, s)
		}
	})
}

// noteSequence follows the highest extended sequence number, counting
// the packets of the gaps that open and those that arrive late to fill
// them.
func (c *connRecorder) noteSequence(t *trackState, seq uint64) {
	switch {
	case !t.haveHighest:
		t.haveHighest, t.highestSeq = true, seq
	case seq > t.highestSeq:
		gap := seq - t.highestSeq - 1
		t.highestSeq = seq
		c.noteGap(t, int(min(gap, 1<<16)))
	case seq < t.highestSeq && t.missing > 0:
		t.missing-- // a late or retransmitted packet fills a gap
	}
}

// noteGap keeps count of missing video packets and asks for a keyframe
// when a gap stays open past gapGrace.
func (c *connRecorder) noteGap(t *trackState, n int) {
	if t.kind != media.Video {
		return
	}
	if n > 0 {
		if t.missing == 0 {
			t.gapAt = t.lastArrival
		}
		t.missing += n
	}
	if t.missing > 0 && t.lastArrival.Sub(t.gapAt) >= gapGrace {
		t.missing = 0
		c.askKeyframe(t, time.Now())
	}
}

// handleSample places one depacketised frame on the wall clock and routes
// it to the open segment (or the one waiting to open).
func (c *connRecorder) handleSample(t *trackState, s *pmedia.Sample) {
	if len(s.Data) == 0 || c.failed {
		return
	}
	wall := t.lastWall.Add(time.Duration(int64(int32(s.PacketTimestamp-t.lastTS)) * int64(time.Second) / int64(t.clockRate)))

	keyframe := true
	if t.kind == media.Video {
		lost := c.frameLost(t, s)
		// The same header check as the pipeline's decoder makes: a frame
		// that fails it would make players stop or smear at this point of
		// the file, and one claiming to be a keyframe would also set the
		// picture size the segment's header takes.
		hdr, err := vpx.ParseHeader(s.Data)
		switch {
		case err != nil:
			reason := dropInvalid
			if s.Data[0]&1 == 0 { // the frame tag claims a keyframe
				reason = dropBadKeyframe
			}
			c.dropFrame(t, reason)
			// What follows refers to the frame that was lost.
			t.needKeyframe = true
			c.askKeyframe(t, time.Now())
			return
		case hdr.Keyframe:
			t.width, t.height = hdr.Width, hdr.Height
			t.needKeyframe = false
		case lost || t.needKeyframe:
			// A frame after a loss decodes to smeared garbage until the
			// next keyframe: a short freeze is the better evidence.
			c.dropFrame(t, dropBeforeKeyframe)
			t.needKeyframe = true
			c.askKeyframe(t, time.Now())
			return
		}
		keyframe = hdr.Keyframe
	}
	c.route(t, wall, s.Data, keyframe)
}

// frameLost reports whether packets were lost between the previous
// video frame and this one; padding-only packets in the gap are not loss.
func (c *connRecorder) frameLost(t *trackState, s *pmedia.Sample) (lost bool) {
	if len(s.RTPHeaders) == 0 {
		return s.PrevDroppedPackets > 0
	}
	first := s.RTPHeaders[0].SequenceNumber
	last := s.RTPHeaders[len(s.RTPHeaders)-1].SequenceNumber
	if t.haveSeq {
		if gap := first - t.lastSeq - 1; gap != 0 && gap < 0x8000 {
			padded := 0
			for _, q := range t.padding {
				if d := q - t.lastSeq; d != 0 && d <= gap {
					padded++
				}
			}
			lost = padded < int(gap)
		}
	}
	t.haveSeq, t.lastSeq = true, last
	kept := t.padding[:0]
	for _, q := range t.padding {
		if d := q - last; d != 0 && d < 0x8000 {
			kept = append(kept, q)
		}
	}
	t.padding = kept
	return lost
}

func (c *connRecorder) dropFrame(t *trackState, reason string) {
	c.r.m.droppedFrames.WithLabelValues(string(t.kind), reason).Inc()
}

func (c *connRecorder) route(t *trackState, wall time.Time, data []byte, keyframe bool) {
	if c.seg != nil {
		if t.segIndex >= 0 {
			c.writeFrame(t, wall, data, keyframe)
			return
		}
		// A track the open file does not have (added later, or left out
		// while it had no keyframe): a file's tracks are fixed by its
		// header, so continue in a new segment that has them all.
		c.log.Info("recording: new track; starting a new segment", "track", t.info.TrackID, "kind", t.kind)
		c.closeSegment()
		if c.failed {
			return
		}
		c.startPending(t)
	}
	if c.pending == nil {
		c.startPending(t)
	}
	p := c.pending
	if len(p.frames) >= maxPendingFrames || p.bytes+len(data) > maxPendingBytes {
		c.dropFrame(t, dropPendingFull)
		return
	}
	p.frames = append(p.frames, pendingFrame{t: t, wall: wall, data: data, keyframe: keyframe})
	p.bytes += len(data)
	p.has[t] = true
	c.maybeOpen(time.Now(), false)
}

// startPending begins a segment that waits for keyframes; video tracks
// other than `first` need a new one for the new file.
func (c *connRecorder) startPending(first *trackState) {
	now := time.Now()
	c.pending = &pendingSegment{since: now, has: make(map[*trackState]bool)}
	for _, t := range c.tracks {
		if t.kind == media.Video && t != first {
			t.needKeyframe = true
			c.askKeyframe(t, now)
		}
	}
}

// maybeOpen opens the pending segment once every track has its first
// frame (video: a keyframe) and the connection has both kinds or has
// waited TrackWait for the second; or when waiting longer would lose more
// than it gains (KeyframeWait, or the tracks are ending).
func (c *connRecorder) maybeOpen(now time.Time, ending bool) {
	p := c.pending
	if p == nil || len(p.frames) == 0 || c.failed {
		return
	}
	allStarted, hasVideo, hasAudio := true, false, false
	for _, t := range c.tracks {
		allStarted = allStarted && p.has[t]
		hasVideo = hasVideo || t.kind == media.Video
		hasAudio = hasAudio || t.kind == media.Audio
	}
	ready := allStarted && ((hasVideo && hasAudio) || now.Sub(c.created) >= c.r.cfg.TrackWait)
	if !ready && !ending && now.Sub(p.since) < c.r.cfg.KeyframeWait {
		return
	}
	c.openSegment(p)
}

func (c *connRecorder) openSegment(p *pendingSegment) {
	c.pending = nil
	// Tracks in file order: video first, as players expect.
	var tracks []*trackState
	for _, kind := range []media.Kind{media.Video, media.Audio} {
		seen := map[*trackState]bool{}
		for _, f := range p.frames {
			if f.t.kind == kind && !seen[f.t] {
				seen[f.t] = true
				tracks = append(tracks, f.t)
			}
		}
	}
	sort.SliceStable(p.frames, func(i, j int) bool { return p.frames[i].wall.Before(p.frames[j].wall) })
	start := p.frames[0].wall

	if err := os.MkdirAll(c.sess.dir, 0o755); err != nil {
		c.fail(fmt.Errorf("create recording directory %s: %w", c.sess.dir, err))
		return
	}
	name, path, sink, err := c.createFile(start)
	if err != nil {
		c.fail(err)
		return
	}
	entries := make([]webm.TrackEntry, len(tracks))
	manifestTracks := make([]SegmentTrack, len(tracks))
	var videoTrack uint64
	for i, t := range tracks {
		num := uint64(i + 1)
		e := webm.TrackEntry{Name: t.info.TrackID, TrackNumber: num, TrackUID: randomUID()}
		mt := SegmentTrack{Number: num, Kind: string(t.kind), TrackID: t.info.TrackID}
		if t.kind == media.Video {
			e.CodecID, e.TrackType = "V_VP8", 1
			e.Video = &webm.Video{PixelWidth: uint64(t.width), PixelHeight: uint64(t.height)}
			mt.Codec, mt.Width, mt.Height = "V_VP8", t.width, t.height
			if videoTrack == 0 {
				videoTrack = num
			}
		} else {
			e.CodecID, e.TrackType = "A_OPUS", 2
			e.CodecPrivate = opusHead(t.channels)
			e.Audio = &webm.Audio{SamplingFrequency: float64(t.clockRate), Channels: uint64(t.channels)}
			mt.Codec, mt.Channels, mt.SampleRate = "A_OPUS", t.channels, int(t.clockRate)
		}
		entries[i], manifestTracks[i] = e, mt
	}
	w, err := openWebM(sink, entries, videoTrack, start, func(n int) { c.r.m.bytesWritten.Add(float64(n)) })
	if err != nil {
		_ = sink.Close()
		c.fail(fmt.Errorf("write %s: %w", path, err))
		return
	}
	c.seg = &segment{w: w, file: name, path: path, start: start, tracks: tracks, lastFlush: time.Now()}
	for i, t := range tracks {
		t.segIndex, t.segLastMS = i, -1
	}
	c.r.m.segments.Inc()
	c.r.m.active.Inc()
	c.log.Info("recording segment started", "file", path, "start", start.UTC().Format(time.RFC3339Nano), "tracks", len(tracks))
	err = c.sess.update(func(m *Session) {
		m.Segments = append(m.Segments, Segment{
			File: name, Connection: c.key.connection, Start: start.UTC(), Tracks: manifestTracks,
		})
		// Connections of a reconnect can open out of order.
		sort.SliceStable(m.Segments, func(i, j int) bool { return m.Segments[i].Start.Before(m.Segments[j].Start) })
	})
	if err != nil {
		c.fail(fmt.Errorf("write manifest: %w", err))
		return
	}
	for _, f := range p.frames {
		if c.failed {
			return
		}
		c.writeFrame(f.t, f.wall, f.data, f.keyframe)
	}
}

// createFile creates the segment file, named after the connection and the
// start; a name already taken (two segments in one millisecond) gets a
// suffix.
func (c *connRecorder) createFile(start time.Time) (name, path string, sink fileSink, err error) {
	base := segmentFileName(c.key.connection, start)
	for i := 1; i <= 100; i++ {
		name = base
		if i > 1 {
			name = fmt.Sprintf("%s-%d.webm", base[:len(base)-len(".webm")], i)
		}
		path = filepath.Join(c.sess.dir, name)
		sink, err = c.r.createSink(path)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", "", nil, fmt.Errorf("create recording %s: %w", path, err)
		}
		return name, path, sink, nil
	}
	return "", "", nil, fmt.Errorf("create recording in %s: %w", c.sess.dir, err)
}

func (c *connRecorder) writeFrame(t *trackState, wall time.Time, data []byte, keyframe bool) {
	seg := c.seg
	d := wall.Sub(seg.start)
	if d < 0 {
		c.dropFrame(t, dropLate)
		return
	}
	ms := int64((d + time.Millisecond/2) / time.Millisecond)
	if ms < t.segLastMS {
		c.dropFrame(t, dropLate)
		return
	}
	seg.w.write(t.segIndex, keyframe, ms, data)
	t.segLastMS = ms
	c.r.m.framesWritten.WithLabelValues(string(t.kind)).Inc()
	if err := seg.w.err(); err != nil {
		c.fail(fmt.Errorf("write %s: %w", seg.path, err))
	}
}

func (c *connRecorder) flushSegment(now time.Time) {
	seg := c.seg
	t0 := time.Now()
	err := seg.w.flush()
	c.r.m.flushSeconds.Observe(time.Since(t0).Seconds())
	seg.lastFlush = now
	if err != nil {
		c.fail(fmt.Errorf("flush %s: %w", seg.path, err))
		return
	}
	dur, size := seg.w.durationMS(), seg.w.file.Written()
	if err := c.sess.updateSegment(seg.file, func(s *Segment) { s.DurationMS, s.Bytes = dur, size }); err != nil {
		c.fail(fmt.Errorf("write manifest: %w", err))
	}
}

// closeSegment finalizes the open segment (Cues, Duration) and marks it
// complete in the manifest.
func (c *connRecorder) closeSegment() {
	seg := c.seg
	c.seg = nil
	err := seg.w.close()
	for _, t := range seg.tracks {
		t.segIndex = -1
	}
	c.r.m.active.Dec()
	if err != nil {
		c.failWithSegment(fmt.Errorf("finish %s: %w", seg.path, err), seg)
		return
	}
	dur, size := seg.w.durationMS(), seg.w.file.Written()
	c.log.Info("recording segment finished", "file", seg.path, "duration", time.Duration(dur)*time.Millisecond, "bytes", size)
	err = c.sess.updateSegment(seg.file, func(s *Segment) { s.DurationMS, s.Bytes, s.Complete = dur, size, true })
	if err != nil {
		c.fail(fmt.Errorf("write manifest: %w", err))
	}
}

// fail stops this connection's recording for good: the error is logged
// once with what to do about it and counted; WriteRTP returns at once from
// now on. The segment written so far stays playable up to its last flush.
func (c *connRecorder) fail(err error) {
	seg := c.seg
	c.seg = nil
	if seg != nil {
		seg.w.file.abort()
		c.r.m.active.Dec()
	}
	c.failWithSegment(err, seg)
}

func (c *connRecorder) failWithSegment(err error, seg *segment) {
	if c.failed {
		return
	}
	c.failed = true
	c.stopped.Store(true)
	c.pending = nil
	reason := classify(err)
	c.r.m.errors.WithLabelValues(reason).Inc()
	c.log.Error("recording stopped for this connection", "reason", reason, "err", err, "hint", hint(reason, c.sess.dir))
	if seg == nil {
		return
	}
	// Close the muxer's goroutines; the file is already closed or failed,
	// so this writes nothing more.
	if !seg.w.closed {
		seg.w.file.abort()
		_ = seg.w.close()
	}
	dur, size := seg.w.durationMS(), seg.w.file.Written()
	if uerr := c.sess.updateSegment(seg.file, func(s *Segment) {
		s.DurationMS, s.Bytes, s.Error = dur, size, err.Error()
	}); uerr != nil {
		c.log.Warn("recording manifest not updated after failure", "err", uerr)
	}
}
