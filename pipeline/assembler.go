package pipeline

import (
	"math"
	"time"

	"github.com/pion/rtp"

	"invigil/vp8rtp"
)

// Why not pion's samplebuilder: in pion/webrtc v4.2.26 its purge loop can
// step the buffer's head past its tail and then walk all 65536 sequence
// numbers, each step rescanning the window when WithMaxTimeDelay is set:
// two 2-packet frames and a Flush cost 1.8 s of CPU, which happens at every
// track's end. Without the time limit it holds every frame behind an
// unrecovered loss until maxLate more packets arrive (seconds of video),
// against the design's freshness. This assembler keeps the same model
// (a window of packets by sequence number, frames emitted in order, pion's
// VP8 depacketiser) with bounded work per packet, emits a frame as soon as
// its marker packet arrives, and gives up on a hole after maxLateTime (of
// RTP time, or of waiting). It does not let one stray packet define the
// newest sequence number: garbage ahead of the stream would otherwise make
// it skip the stream's own packets.

const (
	// assemblerWindow is how many sequence numbers ahead of the oldest
	// missing packet are kept; larger than any frame (a 1080p keyframe is
	// ~100 packets).
	assemblerWindow = 512
	// nearAhead is the largest gap ahead of the newest packet that is
	// believed at once: reordering, or the loss of a few packets.
	nearAhead = 32
)

// assembledFrame is one VP8 frame out of the assembler.
type assembledFrame struct {
	data              []byte
	timestamp         uint32
	firstSeq, lastSeq uint16
	arrival           time.Time // of its last packet
	pictureID         int       // VP8 picture ID, -1 when the sender sends none
	// lossBefore is set when packets were lost (or given up on) between the
	// previous frame out and this one.
	lossBefore bool
	// layered: the sender marks temporal layers (the descriptor's T bit),
	// and tid is this frame's. tl0PicIdx is its TL0PICIDX, -1 when absent.
	layered   bool
	tid       uint8
	tl0PicIdx int
	// skipped: a frame above the base layer, assembled for its
	// bookkeeping only (data is nil): the base layer decodes without it.
	skipped bool
}

type asmSlot struct {
	p       *rtp.Packet
	arrival time.Time
	// tentative: stored ahead of the newest packet, not yet confirmed.
	tentative bool
}

// assembler turns one track's RTP packets into VP8 frames (RFC 7741).
type assembler struct {
	slots     [assemblerWindow]asmSlot
	started   bool
	next      uint16 // oldest sequence number not yet emitted or given up
	highest   uint16 // newest sequence number stored and believed
	highestTS uint32 // its RTP timestamp
	// Probation of packets that arrive beyond a gap (see push).
	probing      bool
	probeSeq     uint16
	probeCount   int
	lastTS       uint32 // timestamp of the last frame out
	haveLastTS   bool
	firstTS      uint32 // timestamp of the first packet
	maxLateTicks int32
	maxLate      time.Duration
	// plausibleTicks bounds the RTP time the newest packet may be ahead
	// of a frame for that to count as the frame's packets being overdue.
	plausibleTicks int32
	lossPending    bool
	// lastArrival is the newest packet's arrival; blockedSince is when the
	// frame at blockedAt began to wait for a missing packet.
	lastArrival  time.Time
	blockedAt    uint16
	blockedSince time.Time
	// baseOnly skips the frames above the base temporal layer.
	baseOnly bool
	// The frame at scanFirst has its first scanned packets present in a row.
	scanFirst uint16
	scanValid bool
	scanned   int
}

// maxPlausibleLeadMS is the largest lead in RTP time of the newest packet
// over a frame still being assembled that is believed. The SFU's clock
// has normalised the timestamps by then; this only bounds what a stray
// one that passed can make the assembler give up on.
const maxPlausibleLeadMS = 5000

// probation is how many consecutive packets confirm a gap ahead of the
// newest packet (inside the window: the SFU's clock screens out the
// numbers far from the stream).
const probation = 3

func newAssembler(maxLate time.Duration, clockRate uint32) *assembler {
	return &assembler{
		baseOnly:       true,
		maxLateTicks:   int32(maxLate.Seconds() * float64(clockRate)),
		maxLate:        maxLate,
		plausibleTicks: int32(min(maxPlausibleLeadMS*int64(clockRate)/1000, math.MaxInt32)),
	}
}

func (a *assembler) slot(seq uint16) *asmSlot { return &a.slots[seq%assemblerWindow] }

// get returns the packet stored for seq, or nil.
func (a *assembler) get(seq uint16) *asmSlot {
	s := a.slot(seq)
	if s.p == nil || s.p.SequenceNumber != seq {
		return nil
	}
	return s
}

func (a *assembler) release(seq uint16) {
	if s := a.get(seq); s != nil {
		*s = asmSlot{}
	}
}

// skip gives up on sequence numbers [next, to).
func (a *assembler) skip(to uint16) {
	for ; a.next != to; a.next++ {
		a.release(a.next)
	}
	a.lossPending = true
}

// skipHole gives up on the missing packets at next, up to the next packet
// present. Giving up on them one at a time would make each wait anew.
func (a *assembler) skipHole() {
	for int16(a.highest-a.next) > 0 && a.get(a.next) == nil {
		a.next++
	}
	a.lossPending = true
}

// skipFrame gives up on the frame of timestamp ts at next: its packets and
// the holes among them, up to the first packet of another frame.
func (a *assembler) skipFrame(ts uint32) {
	for int16(a.highest-a.next) >= 0 {
		if s := a.get(a.next); s != nil && s.p.Timestamp != ts {
			break
		}
		a.release(a.next)
		a.next++
	}
	a.lossPending = true
}

// late reports whether seq was already emitted or given up on.
func (a *assembler) late(seq uint16) bool {
	return a.started && int16(seq-a.next) < 0
}

// push stores one packet and returns the frames it completed. The caller
// screens out packets far outside the window (see receiver.assemble).
func (a *assembler) push(p *rtp.Packet, arrival time.Time) []assembledFrame {
	seq := p.SequenceNumber
	if arrival.After(a.lastArrival) {
		a.lastArrival = arrival
	}
	if !a.started {
		a.started = true
		a.next, a.highest, a.highestTS, a.firstTS = seq, seq, p.Timestamp, p.Timestamp
	}
	if int16(seq-a.next) < 0 {
		return nil // late: the caller counts it
	}
	ahead := int16(seq - a.highest)
	tentative := false
	if d := int(uint16(seq - a.next)); d >= assemblerWindow {
		// Too far ahead for the window (the SFU's clock let it through as
		// the stream's own): what is missing before it will not be waited
		// for any longer.
		a.skip(seq - assemblerWindow + 1)
	} else if ahead > nearAhead {
		// A gap ahead of the newest packet: the stream after a burst of
		// loss, or one stray packet. It moves the newest packet on (and
		// with it what the assembler may give up on) only once probation
		// packets in a row confirm it; a stray packet would otherwise make
		// the stream's own packets before it late.
		if a.probing && seq == a.probeSeq+1 {
			a.probeCount++
		} else {
			a.probing, a.probeCount = true, 1
		}
		a.probeSeq = seq
		tentative = a.probeCount < probation
	}
	if s := a.get(seq); s != nil && !(s.tentative && int16(seq-a.highest) > 0) {
		return nil // duplicate (a retransmission that arrived twice)
	}
	// (A packet still ahead of the stream and unconfirmed is replaced:
	// the stream has caught up with a stray packet's sequence number.)
	*a.slot(seq) = asmSlot{p: p, arrival: arrival, tentative: tentative}
	if ahead > 0 && !tentative {
		a.highest, a.highestTS = seq, p.Timestamp
	}
	return a.emit()
}

// giveUp reports whether a hole in a frame of timestamp ts is hopeless:
// the newest packet is maxLateTime newer in RTP time, the frame has waited
// maxLateTime since it got stuck, or the window is full.
//
// RTP time is the sender's word, and one garbage packet ahead in sequence
// becomes the newest with a timestamp from anywhere: one from the far
// future would give up on every frame at once (and the assembler would
// then drop the stream's own packets as late until it caught up with the
// garbage), one from the past would stop giving up until then. So the
// newest packet's lead counts only within a plausible range, and the wait
// itself, on the receiver's clock, counts too.
func (a *assembler) giveUp(ts uint32) bool {
	if a.blockedAt != a.next || a.blockedSince.IsZero() {
		a.blockedAt, a.blockedSince = a.next, a.lastArrival
	}
	lead := int32(a.highestTS - ts)
	return int(uint16(a.highest-a.next)) >= assemblerWindow-1 ||
		(lead > a.maxLateTicks && lead <= a.plausibleTicks) ||
		a.lastArrival.Sub(a.blockedSince) > a.maxLate
}

// emit takes every complete frame from the front of the window.
func (a *assembler) emit() []assembledFrame {
	var out []assembledFrame
	for int16(a.highest-a.next) >= 0 {
		head := a.get(a.next)
		if head == nil {
			// The next packet is missing: wait for it (a NACK may bring it)
			// unless it is hopeless.
			ref := a.lastTS
			if !a.haveLastTS {
				ref = a.firstTS
			}
			if !a.giveUp(ref) {
				return out
			}
			a.skipHole()
			continue
		}
		if len(head.p.Payload) == 0 { // padding
			a.release(a.next)
			a.next++
			continue
		}
		d, data, err := vp8rtp.Parse(head.p.Payload)
		if err != nil || !d.FrameStart() {
			// Garbage, or the rest of a frame whose start was lost.
			a.skip(a.next + 1)
			continue
		}
		// A frame above the base layer is not decoded: only the base layer
		// is analyzed, and it references nothing above it. A keyframe is
		// always decoded, whatever layer a sender gives it (bit 0 of the
		// VP8 frame tag is 0 for a keyframe, RFC 6386 §9.1).
		skip := a.baseOnly && d.HasTID && d.TID > 0 && data[0]&1 != 0
		f, complete := a.collect(a.next, head.p.Timestamp, skip)
		if !complete {
			if !a.giveUp(head.p.Timestamp) {
				return out
			}
			a.skipFrame(head.p.Timestamp)
			continue
		}
		f.lossBefore = a.lossPending
		a.lossPending = false
		f.layered, f.tid, f.tl0PicIdx, f.skipped = d.HasTID, d.TID, -1, skip
		if d.HasTL0PicIdx {
			f.tl0PicIdx = int(d.TL0PicIdx)
		}
		if d.HasPictureID {
			f.pictureID = int(d.PictureID)
		}
		a.lastTS, a.haveLastTS = f.timestamp, true
		for seq := f.firstSeq; seq != f.lastSeq+1; seq++ {
			a.release(seq)
		}
		a.next = f.lastSeq + 1
		out = append(out, f)
	}
	return out
}

// collect reads the frame starting at first: complete when every packet up
// to the marker (or up to the next frame's start, if the marker was lost)
// is present. The packets already found in a row are remembered, so a
// frame of k packets costs O(k) over its pushes, and its payload is copied
// once, or not at all when skip is set.
func (a *assembler) collect(first uint16, ts uint32, skip bool) (f assembledFrame, complete bool) {
	if a.scanFirst != first || !a.scanValid {
		a.scanFirst, a.scanValid, a.scanned = first, true, 0
	}
	end := -1 // index of the frame's last packet
	for i := a.scanned; i < assemblerWindow; i++ {
		seq := first + uint16(i)
		s := a.get(seq)
		if s == nil {
			a.scanned = i
			return f, false
		}
		if s.p.Timestamp != ts {
			// A new frame began without this one's marker: complete if that
			// packet starts a frame.
			if i > 0 && len(s.p.Payload) > 0 && s.p.Payload[0]&0x10 != 0 {
				end = i - 1
				break
			}
			a.scanned = i
			return f, false
		}
		if s.p.Marker {
			end = i
			break
		}
	}
	if end < 0 {
		a.scanned = assemblerWindow
		return f, false
	}
	a.scanValid = false
	f = assembledFrame{timestamp: ts, firstSeq: first, lastSeq: first + uint16(end), pictureID: -1}
	if !skip {
		size := 0
		for i := 0; i <= end; i++ {
			size += len(a.get(first + uint16(i)).p.Payload)
		}
		f.data = make([]byte, 0, size)
	}
	for i := 0; i <= end; i++ {
		s := a.get(first + uint16(i))
		if s.arrival.After(f.arrival) {
			f.arrival = s.arrival
		}
		if skip || len(s.p.Payload) == 0 {
			continue // not decoded, or padding that kept the frame's timestamp
		}
		_, payload, err := vp8rtp.Parse(s.p.Payload)
		if err != nil {
			// A broken packet: the frame is lost. (A frame that is skipped
			// is not read, so one broken packet in it costs nothing.)
			return f, false
		}
		f.data = append(f.data, payload...)
	}
	return f, true
}
