package media

import (
	"time"

	"github.com/pion/rtp"
)

// Packet is one RTP packet of a track as the taps receive it: already
// normalised by the track's Clock, so that the recorder and the analysis
// pipeline place it on the same clock and neither sanitizes sequence
// numbers or timestamps of its own.
type Packet struct {
	// RTP is the tap's own copy. Its SequenceNumber is the low 16 bits of
	// ExtSeq and its Timestamp the normalised media time in clock-rate
	// units: both run on without a jump when the sender restarts its
	// numbering or its clock.
	RTP *rtp.Packet
	// Arrival is when the packet arrived.
	Arrival time.Time
	// Wall is the packet's media time on the wall clock: the track's first
	// arrival advanced by its normalised timestamp. Packets of one frame
	// share it; it is the time a violation seen in the frame is dated by,
	// and the time the recording places the frame at.
	Wall time.Time
	// ExtSeq is the extended sequence number: it never wraps, and a
	// renumbering sender continues from where it was, one packet counted
	// as lost across the restart.
	ExtSeq uint64
}

const (
	// A packet's RTP-derived time may trail its arrival by up to
	// maxTimestampSkew (a network stall delivers late) but may not lead it
	// by more than maxTimestampLead (nothing arrives before it is
	// captured; the anchor, the first packet, may itself have come a
	// little late). Outside that its timestamp is not believed: the packet
	// is dated by its arrival, and once framesToFollowClock frames in a
	// row agree on a new clock (the sender jumped, or the anchor came very
	// late) that clock is followed. So a packet's wall time is never more
	// than maxTimestampSkew before its arrival nor clockAgreement after.
	maxTimestampSkew    = 10 * time.Second
	maxTimestampLead    = 500 * time.Millisecond
	framesToFollowClock = 3
	// Frames that agree on a new clock disagree with each other by less
	// than this, comparing media time with arrival time.
	clockAgreement = time.Second

	// A packet more than maxSeqJump ahead of the highest sequence number
	// seen, or more than maxSeqReorder behind it, is taken only when the
	// one before it was its predecessor (after an outage, or a sender that
	// restarted its numbering); a lone wild number is stray. Without this,
	// one wild packet makes a depacketiser sweep tens of thousands of
	// slots, and a wild number that passed would push the real stream out
	// of every window.
	maxSeqJump    = 64
	maxSeqReorder = 512
	// A confirmed jump further ahead than maxSeqGap (or any way back) is a
	// new numbering rather than lost packets.
	maxSeqGap    = 3000
	seqProbation = 2
)

// ClockStats counts what a Clock did, for the SFU's metrics.
type ClockStats struct {
	// Stray packets had a sequence number far from the stream's and were
	// not handed on.
	Stray uint64
	// Renumbered counts sequence restarts followed; ClockJumps RTP clock
	// jumps followed; Misdated packets whose timestamp was not believed.
	Renumbered, ClockJumps, Misdated uint64
}

// Clock normalises one track's RTP sequence numbers and timestamps where
// the packets arrive, once for every tap. It is not safe for concurrent
// use: the track's reading goroutine owns it.
type Clock struct {
	rate  int64
	stats ClockStats

	started bool
	ssrc    uint32
	// a packet of another SSRC: the stream's replacement if the next
	// packet continues it
	newSSRC    uint32
	newSSRCSeq uint16
	newSSRCAt  bool

	// sequence numbers
	highestRaw uint16
	highestExt uint64
	probing    bool
	probeRaw   uint16

	// timestamps: prevRaw/ext unwrap the sender's timestamps; the
	// anchor maps them to the wall clock.
	prevRaw    uint32
	ext        int64
	start      time.Time // the first packet's arrival: normalised time 0
	startRaw   uint32    // normalised timestamps start at the first raw one
	anchorWall time.Time
	anchorExt  int64
	anchorNorm int64 // the anchor's normalised timestamp
	// a run of frames disagreeing with the anchor but agreeing with each
	// other: the sender's clock jumped
	skewFrames  int
	skewExt     int64
	skewArrival time.Time
	skewLastExt int64
}

// NewClock returns the clock of a track whose media clock runs at
// clockRate Hz (90000 for video, 48000 for Opus).
func NewClock(clockRate uint32) *Clock {
	if clockRate == 0 {
		clockRate = 90000
	}
	return &Clock{rate: int64(clockRate)}
}

// Stats returns the clock's counts so far.
func (c *Clock) Stats() ClockStats { return c.stats }

// Stamp normalises p, which arrived at arrival, in place (sequence number
// and timestamp) and returns what the taps are handed. ok is false for a
// stray packet, which the taps should not see (it may still be forwarded).
func (c *Clock) Stamp(p *rtp.Packet, arrival time.Time) (out Packet, ok bool) {
	if !c.started {
		c.started, c.ssrc = true, p.SSRC
		// One cycle up, so that a packet reordered before the first one
		// has a number too.
		c.highestRaw, c.highestExt = p.SequenceNumber, 1<<16+uint64(p.SequenceNumber)
		c.prevRaw, c.ext = p.Timestamp, 0
		c.start, c.startRaw = arrival, p.Timestamp
		c.anchorWall, c.anchorExt, c.anchorNorm = arrival, 0, 0
		return c.finish(p, arrival, c.highestExt, arrival, 0), true
	}
	if p.SSRC != c.ssrc {
		// A lone packet of another SSRC is stray; two in a row are a new
		// stream in the same track, whose numbering and clock have nothing
		// to do with the old one's.
		if !c.newSSRCAt || p.SSRC != c.newSSRC || p.SequenceNumber != c.newSSRCSeq+1 {
			c.newSSRCAt, c.newSSRC, c.newSSRCSeq = true, p.SSRC, p.SequenceNumber
			c.stats.Stray++
			return Packet{}, false
		}
		c.ssrc, c.newSSRCAt = p.SSRC, false
		c.renumber(p.SequenceNumber)
		c.reanchor(p.Timestamp, arrival)
	} else {
		c.newSSRCAt = false
	}
	seq, ok := c.sequence(p.SequenceNumber)
	if !ok {
		c.stats.Stray++
		return Packet{}, false
	}
	c.ext += int64(int32(p.Timestamp - c.prevRaw))
	c.prevRaw = p.Timestamp
	wall, norm := c.date(arrival)
	return c.finish(p, arrival, seq, wall, norm), true
}

func (c *Clock) finish(p *rtp.Packet, arrival time.Time, seq uint64, wall time.Time, norm int64) Packet {
	p.SequenceNumber = uint16(seq)
	p.Timestamp = c.startRaw + uint32(norm)
	return Packet{RTP: p, Arrival: arrival, Wall: wall, ExtSeq: seq}
}

// sequence extends a sequence number, filtering those that cannot belong
// to the stream and following a sender that really restarted its
// numbering.
func (c *Clock) sequence(raw uint16) (uint64, bool) {
	d := int16(raw - c.highestRaw)
	if d > 0 && d <= maxSeqJump || d <= 0 && d > -maxSeqReorder {
		c.probing = false
		ext := uint64(int64(c.highestExt) + int64(d))
		if d > 0 {
			c.highestRaw, c.highestExt = raw, ext
		}
		return ext, true
	}
	if !c.probing || raw != c.probeRaw+1 {
		c.probing, c.probeRaw = true, raw
		return 0, false
	}
	c.probing = false
	if d > 0 && d <= maxSeqGap {
		// An outage: the packets in between are lost, not renumbered.
		c.highestRaw, c.highestExt = raw, uint64(int64(c.highestExt)+int64(d))
		return c.highestExt, true
	}
	c.renumber(raw)
	return c.highestExt, true
}

// renumber continues the extended numbering after a restart at raw,
// leaving one number out: what was lost across the restart is unknown,
// and the taps must see a loss (a video decoder then waits for a
// keyframe).
func (c *Clock) renumber(raw uint16) {
	c.stats.Renumbered++
	c.highestRaw, c.highestExt = raw, c.highestExt+2
	c.probing = false
}

// reanchor makes the packet with raw timestamp raw, arriving now, the new
// anchor: its media time is its arrival.
func (c *Clock) reanchor(raw uint32, arrival time.Time) {
	c.stats.ClockJumps++
	c.prevRaw = raw
	c.anchorWall, c.anchorExt, c.anchorNorm = arrival, c.ext, c.normOf(arrival)
	c.skewFrames = 0
}

// date returns the wall time and normalised timestamp (clock-rate units
// since the first packet) of the packet at c.ext that arrived at arrival.
func (c *Clock) date(arrival time.Time) (time.Time, int64) {
	wall := c.wallOf(c.anchorWall, c.anchorExt, c.ext)
	delay := arrival.Sub(wall)
	if delay <= maxTimestampSkew && delay >= -maxTimestampLead {
		c.skewFrames = 0
		return wall, c.anchorNorm + c.ext - c.anchorExt
	}
	// Not believed. Packets of one frame share a timestamp; frames agree
	// on a new clock when their media times step as their arrivals do.
	c.stats.Misdated++
	switch {
	case c.skewFrames > 0 && (c.mediaSince(c.skewExt)-arrival.Sub(c.skewArrival)).Abs() < clockAgreement:
		if c.ext != c.skewLastExt { // not just another packet of the last frame
			c.skewFrames++
			c.skewLastExt = c.ext
		}
	default:
		c.skewFrames, c.skewExt, c.skewArrival, c.skewLastExt = 1, c.ext, arrival, c.ext
	}
	wall = c.wallOf(c.skewArrival, c.skewExt, c.ext)
	norm := c.normOf(c.skewArrival) + c.ext - c.skewExt
	if c.skewFrames >= framesToFollowClock {
		// The earlier frames of the run were dated the same way, so the
		// new anchor continues them without a step.
		c.stats.ClockJumps++
		c.anchorWall, c.anchorExt, c.anchorNorm = c.skewArrival, c.skewExt, c.normOf(c.skewArrival)
		c.skewFrames = 0
	}
	return wall, norm
}

func (c *Clock) wallOf(anchorWall time.Time, anchorExt, ext int64) time.Time {
	return anchorWall.Add(time.Duration((ext - anchorExt) * int64(time.Second) / c.rate))
}

func (c *Clock) mediaSince(ext int64) time.Duration {
	return time.Duration((c.ext - ext) * int64(time.Second) / c.rate)
}

// normOf is the normalised timestamp of an anchor at wall: its time since
// the first packet in clock-rate units, rounded, so that the normalised
// timestamp alone gives the wall time (Track.Started plus
// timestamp/rate) across every jump. Between anchors it advances by the
// sender's own timestamps, exactly.
func (c *Clock) normOf(wall time.Time) int64 {
	return (int64(wall.Sub(c.start))*c.rate + int64(time.Second)/2) / int64(time.Second)
}
