package pipeline

import (
	"sync"
	"time"

	"github.com/pion/rtp"

	"invigil/media"
)

type queuedPacket struct {
	p       *rtp.Packet
	arrival time.Time
	// wall is the packet's media time on the wall clock, from the SFU's
	// clock for the track (the recorder dates the frame by the same).
	wall time.Time
}

// track is one candidate video track: the PacketWriter the SFU writes to
// and the goroutine that assembles and decodes its frames.
type track struct {
	p    *Pipeline
	info media.Track
	c    *candidate
	gen  int
	// epoch is the candidate activation's stream time 0.
	epoch time.Time
	// The newest packet's normalised timestamp and wall time: a frame's
	// wall time follows from its timestamp's distance to them.
	lastTS   uint32
	lastWall time.Time

	packets   chan queuedPacket
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	pool      *matPool
	rcv       *receiver    // owned by run
	thumbs    *thumbnailer // owned by run
}

// WritePacket implements media.PacketWriter. It queues the packet (the
// pipeline's own copy) without waiting: when the queue is full the packet
// is dropped and counted, and the frame it belonged to will be skipped.
func (t *track) WritePacket(p media.Packet) {
	if p.RTP == nil {
		return
	}
	m := t.p.m
	m.packets.Inc()
	if t.p.closed.Load() {
		m.packetsDropped.WithLabelValues(dropClosed).Inc()
		return
	}
	if len(p.RTP.Payload) > maxPayload {
		m.packetsDropped.WithLabelValues(dropOversized).Inc()
		return
	}
	select {
	case t.packets <- queuedPacket{p.RTP, p.Arrival, p.Wall}:
	default:
		m.packetsDropped.WithLabelValues(dropQueueFull).Inc()
	}
}

// Close implements media.PacketWriter: the track ended.
func (t *track) Close() {
	t.closeOnce.Do(func() { close(t.done) })
}

func (t *track) requestKeyframe(reason string) {
	t.p.log.Debug("requesting keyframe", "identity", t.info.Identity, "track", t.info.TrackID, "reason", reason)
	if t.info.RequestKeyframe != nil {
		t.info.RequestKeyframe()
	}
}

func (t *track) run() {
	defer t.p.wg.Done()
	defer t.pool.close()
	defer t.rcv.close()
	defer t.thumbs.close()
	for {
		select {
		case <-t.p.ctx.Done():
			return // Close finishes the candidates
		case q := <-t.packets:
			t.handle(q)
		case <-t.done:
			for {
				select {
				case q := <-t.packets:
					t.handle(q)
					continue
				default:
				}
				break
			}
			t.ended()
			return
		}
	}
}

func (t *track) handle(q queuedPacket) {
	start := time.Now()
	t.lastTS, t.lastWall = q.p.Timestamp, q.wall
	frames := t.rcv.assemble(q.p, q.arrival)
	t.p.m.stage(stageDepacketize, time.Since(start))
	t.decode(frames, start)
}

func (t *track) decode(frames []assembledFrame, now time.Time) {
	for i := range frames {
		d, ok := t.rcv.decode(&frames[i], now)
		if !ok {
			continue
		}
		// The normalised timestamp runs with the wall clock, so the
		// frame's distance to the newest packet is its distance in time.
		wall := t.lastWall.Add(time.Duration(int64(int32(d.ts-t.lastTS)) * int64(time.Second) / int64(t.info.ClockRate)))
		tMS := wall.Sub(t.epoch).Milliseconds()
		f := &frame{
			i420: d.i420, pool: t.pool, gen: t.gen, epoch: t.epoch, tMS: tMS,
			arrival: d.arrival, track: &t.info,
		}
		// Here rather than in a worker: the scheduler needs to know whether
		// the picture changed before it decides when to analyze it.
		start := time.Now()
		if err := t.thumbs.make(d.i420, &f.thumb); err != nil {
			t.p.log.Debug("no thumbnail", "identity", t.info.Identity, "err", err) // analyzed as changing
		} else {
			f.hasThumb = true
		}
		t.p.m.stage(stageThumbnail, time.Since(start))
		t.p.sched.publish(t.c, f)
	}
}

// ended retires the track; the candidate's last track also closes its open
// violations.
func (t *track) ended() {
	p, s, c := t.p, t.p.sched, t.c
	p.m.tracksActive.Dec()
	p.log.Info("candidate track ended", "identity", t.info.Identity, "track", t.info.TrackID)
	s.mu.Lock()
	c.tracks--
	last := c.tracks == 0
	var leftover *frame
	if last {
		leftover, c.frame = c.frame, nil
		p.m.candidatesActive.Dec()
	}
	s.mu.Unlock()
	if leftover != nil {
		leftover.release()
		p.m.framesDropped.WithLabelValues(dropTrackEnded).Inc()
	}
	if !last || p.ctx.Err() != nil {
		return // Close finishes the candidates
	}
	c.analysisMu.Lock()
	if c.engine != nil && c.engineGen == t.gen {
		p.finishEngineLocked(p.ctx, c)
	} else {
		c.finishedGen = max(c.finishedGen, t.gen)
	}
	c.analysisMu.Unlock()
	s.mu.Lock()
	if c.tracks == 0 && c.audioTracks.Load() == 0 && !c.explicit && s.candidates[c.identity] == c {
		delete(s.candidates, c.identity)
	}
	s.mu.Unlock()
}
