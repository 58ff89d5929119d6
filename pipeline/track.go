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
}

// track is one candidate video track: the PacketWriter the SFU writes to
// and the goroutine that assembles and decodes its frames.
type track struct {
	p    *Pipeline
	info media.Track
	c    *candidate
	gen  int
	// epoch is the candidate activation's stream time 0; offsetMS is this
	// track's start on that clock.
	epoch    time.Time
	offsetMS int64
	// The last decoded frame's stream time and arrival, to catch jumps.
	haveLast    bool
	lastTMS     int64
	lastArrival time.Time

	packets   chan queuedPacket
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	pool      *matPool
	rcv       *receiver    // owned by run
	thumbs    *thumbnailer // owned by run
}

// WriteRTP implements media.PacketWriter. It copies the packet and queues
// it without waiting: when the queue is full the packet is dropped and
// counted, and the frame it belonged to will be skipped.
func (t *track) WriteRTP(p *rtp.Packet, arrival time.Time) {
	if p == nil {
		return
	}
	m := t.p.m
	m.packets.Inc()
	if t.p.closed.Load() {
		m.packetsDropped.WithLabelValues(dropClosed).Inc()
		return
	}
	if len(p.Payload) > maxPayload {
		m.packetsDropped.WithLabelValues(dropOversized).Inc()
		return
	}
	// The SFU may reuse its buffers once WriteRTP returns.
	cp := &rtp.Packet{Header: rtp.Header{
		Version:        p.Version,
		Marker:         p.Marker,
		PayloadType:    p.PayloadType,
		SequenceNumber: p.SequenceNumber,
		Timestamp:      p.Timestamp,
		SSRC:           p.SSRC,
	}, Payload: append([]byte(nil), p.Payload...)}
	select {
	case t.packets <- queuedPacket{cp, arrival}:
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
	frames := t.rcv.assemble(q.p, q.arrival)
	t.p.m.stage(stageDepacketize, time.Since(start))
	t.decode(frames, start)
}

// maxClockJumpMS is the largest step in RTP time between consecutive
// frames that is believed.
const maxClockJumpMS = 5000

func (t *track) decode(frames []assembledFrame, now time.Time) {
	for i := range frames {
		d, ok := t.rcv.decode(&frames[i], now)
		if !ok {
			continue
		}
		tMS := t.offsetMS + d.ts*1000/int64(t.info.ClockRate)
		// RTP time is the publisher's word. A jump of more than
		// maxClockJumpMS between consecutive frames (a broken or hostile
		// sender leaping an hour ahead and back) re-anchors this track's
		// clock so the frame follows the last one by the time that passed
		// between their arrivals; otherwise one wild frame would make every
		// later frame "stale" and date violations an hour away.
		if t.haveLast {
			if jump := tMS - t.lastTMS; jump > maxClockJumpMS || jump < -maxClockJumpMS {
				step := min(max(d.arrival.Sub(t.lastArrival).Milliseconds(), 0), maxClockJumpMS)
				t.offsetMS += t.lastTMS + step - tMS
				tMS = t.lastTMS + step
				t.p.m.clockResets.Inc()
			}
		}
		t.haveLast, t.lastTMS, t.lastArrival = true, tMS, d.arrival
		f := &frame{
			i420: d.i420, pool: t.pool, gen: t.gen, epoch: t.epoch, tMS: tMS,
			arrival: d.arrival, track: &t.info,
		}
		// Here rather than in a worker: the scheduler needs to know whether
		// the picture changed before it decides when to analyse it.
		start := time.Now()
		if err := t.thumbs.make(d.i420, &f.thumb); err != nil {
			t.p.log.Debug("no thumbnail", "identity", t.info.Identity, "err", err) // analysed as changing
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
