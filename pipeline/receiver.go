package pipeline

import (
	"time"

	"github.com/pion/rtp"
	"gocv.io/x/gocv"

	"invigil/vpx"
)

const (
	// maxLateTime bounds how long a frame waits for a missing packet (a
	// NACK round trip) before it is given up on.
	maxLateTime = 300 * time.Millisecond
	// maxPayload is larger than any WebRTC packet (they fit a 1500-byte MTU).
	maxPayload = 16 << 10
	// seqJump is the largest believable gap in VP8 picture IDs; a larger
	// one is a sender that reset its numbering.
	seqJump = 2 * assemblerWindow
)

// decodedFrame is one picture out of the receiver.
type decodedFrame struct {
	i420 gocv.Mat // owned by the receiver's pool until released
	// ts is the frame's RTP timestamp (normalised by the SFU's clock).
	ts uint32
	// arrival is when the frame's last packet arrived.
	arrival time.Time
}

// receiver turns one track's RTP packets into decoded pictures: frame
// assembly, loss detection, keyframe requests and libvpx decoding. It is
// owned by one goroutine.
type receiver struct {
	m         *metrics
	asm       *assembler
	clockRate uint32
	dec       *vpx.Decoder
	pool      *matPool

	// requestKeyframe asks the publisher for a keyframe; the receiver rate
	// limits it to one per keyframeInterval until a keyframe arrives.
	requestKeyframe  func(reason string)
	keyframeInterval time.Duration
	gapKeyframe      time.Duration
	lastKeyRequest   time.Time

	lastPicID int // VP8 picture ID of the last frame out, -1 if none
	// lastTL0 is the TL0PICIDX of the last base-layer frame decoded, -1
	// if none (or the last frame had none).
	lastTL0 int
	// lossPending: frames were lost among the skipped frames since the
	// last frame decoded, judged as for a stream without TL0PICIDX.
	lossPending bool
	lastArrival time.Time // of the last frame out

	awaitingKeyframe bool
	decodedAny       bool
}

func newReceiver(m *metrics, pool *matPool, clockRate uint32, requestKeyframe func(reason string), keyframeInterval, gapKeyframe time.Duration) (*receiver, error) {
	dec, err := vpx.NewDecoder()
	if err != nil {
		return nil, err
	}
	return &receiver{
		m:                m,
		asm:              newAssembler(maxLateTime, clockRate),
		clockRate:        clockRate,
		dec:              dec,
		pool:             pool,
		requestKeyframe:  requestKeyframe,
		keyframeInterval: keyframeInterval,
		gapKeyframe:      gapKeyframe,
		lastPicID:        -1,
		lastTL0:          -1,
		awaitingKeyframe: true,
	}, nil
}

func (r *receiver) close() {
	r.dec.Close()
}

// keyframe asks for a keyframe unless one was asked for recently.
func (r *receiver) keyframe(reason string, now time.Time) {
	if !r.lastKeyRequest.IsZero() && now.Sub(r.lastKeyRequest) < r.keyframeInterval {
		return
	}
	r.lastKeyRequest = now
	r.m.keyframeRequests.WithLabelValues(reason).Inc()
	if r.requestKeyframe != nil {
		r.requestKeyframe(reason)
	}
}

// assemble pushes one packet into the frame assembler and returns the
// frames it completed.
func (r *receiver) assemble(p *rtp.Packet, arrival time.Time) []assembledFrame {
	if len(p.Payload) > maxPayload {
		r.m.packetsDropped.WithLabelValues(dropOversized).Inc()
		return nil
	}
	seq := p.SequenceNumber
	if r.asm.started {
		if d := int16(seq - r.asm.next); d >= assemblerWindow || d < -assemblerWindow {
			// Far from the frames being assembled: the SFU's clock let it
			// through only as the stream's own (after an outage: it drops
			// lone stray numbers and continues a new numbering without a
			// jump), so restart around it; what was lost is unknown, and
			// the next frame must be a keyframe.
			r.asm = newAssembler(maxLateTime, r.clockRate)
			r.asm.lossPending = true
			r.lastPicID, r.lastTL0 = -1, -1
		} else if r.asm.late(seq) {
			r.m.packetsDropped.WithLabelValues(dropLate).Inc()
			return nil
		}
	}
	return r.asm.push(p, arrival)
}

// lost reports whether frames the decoder needs were lost between the
// last frame decoded and f, and counts them.
//
// A base-layer frame of a layered stream needs only the base-layer frames
// before it, which TL0PICIDX numbers: a gap there is a loss, while lost
// frames above the base (which it does not reference) are none. Without
// TL0PICIDX, any frame missing by VP8 picture ID counts, skipped frames'
// included; without picture IDs, the assembler's gaps.
func (r *receiver) lost(f *assembledFrame) bool {
	missing := 0
	if f.layered && f.tid == 0 && f.tl0PicIdx >= 0 && r.lastTL0 >= 0 {
		// An index not one on is frames lost, or a sender that renumbered:
		// either way the references are in doubt. (Lost frames above the
		// base are not counted: they were never going to be decoded.)
		if d := uint8(f.tl0PicIdx - r.lastTL0); d != 1 {
			missing = max(int(d)-1, 1)
		}
	} else {
		missing = r.missingPictures(f)
		if missing == 0 && r.lossPending {
			missing = 1
		}
	}
	r.lossPending = false
	r.lastPicID = f.pictureID
	r.lastTL0 = -1
	if f.layered && f.tid == 0 {
		r.lastTL0 = f.tl0PicIdx
	}
	if missing > 0 {
		r.m.framesDropped.WithLabelValues(dropIncomplete).Add(float64(missing))
	}
	return missing > 0
}

// missingPictures is how many frames are missing between the last frame
// out (decoded or skipped) and f, by VP8 picture ID when the sender
// numbers its pictures, by the assembler's gaps otherwise.
func (r *receiver) missingPictures(f *assembledFrame) int {
	if f.pictureID >= 0 && r.lastPicID >= 0 {
		prev, cur := uint16(r.lastPicID), uint16(f.pictureID)
		if d15, d7 := (cur-prev)&0x7fff, (cur-prev)&0x7f; d15 != 1 && d7 != 1 {
			missing := int(min(d15, d7)) - 1
			if missing < 1 || missing > seqJump {
				missing = 1 // a reset picture ID: at least one frame is gone
			}
			return missing
		}
		return 0
	}
	if f.lossBefore {
		return 1 // packets are gone; how many frames they held is unknown
	}
	return 0
}

// skip accounts for a frame above the base layer that is not decoded: it
// is counted, and a loss before it that the next base-layer frame cannot
// see (a stream without TL0PICIDX) is remembered for that frame.
func (r *receiver) skip(f *assembledFrame) {
	r.m.framesSkipped.Inc()
	if f.tl0PicIdx < 0 && r.missingPictures(f) > 0 {
		r.lossPending = true
	}
	r.lastPicID = f.pictureID
}

// decode turns one assembled frame into a picture: ok is false when the
// frame is dropped (lost references, decode error, no picture), each
// counted by reason.
func (r *receiver) decode(f *assembledFrame, now time.Time) (decodedFrame, bool) {
	if f.skipped {
		r.skip(f)
		return decodedFrame{}, false
	}
	arrival := f.arrival
	lost := r.lost(f)
	gap := !r.lastArrival.IsZero() && arrival.Sub(r.lastArrival) > r.gapKeyframe
	r.lastArrival = arrival

	hdr, err := vpx.ParseHeader(f.data)
	if err != nil {
		r.decodeFailed(now)
		return decodedFrame{}, false
	}
	switch {
	case lost && !hdr.Keyframe:
		r.awaitingKeyframe = true
		r.keyframe(keyLoss, now)
	case r.awaitingKeyframe && !hdr.Keyframe:
		if r.decodedAny {
			r.keyframe(keyLoss, now)
		} else {
			r.keyframe(keyStart, now)
		}
	case gap && !hdr.Keyframe:
		r.keyframe(keyGap, now) // references are intact; a fresh keyframe is cheap insurance
	}
	if r.awaitingKeyframe && !hdr.Keyframe {
		r.m.framesDropped.WithLabelValues(dropAwaitingKeyframe).Inc()
		return decodedFrame{}, false
	}

	start := time.Now()
	m := r.pool.get()
	shown, err := r.dec.DecodeI420(f.data, &m)
	r.m.stage(stageDecode, time.Since(start))
	if err != nil || !shown {
		r.pool.put(m)
		if err != nil {
			r.decodeFailed(now)
		}
		return decodedFrame{}, false
	}
	r.awaitingKeyframe = false
	r.decodedAny = true
	if hdr.Keyframe {
		// The last request was answered: the next loss asks again at once.
		r.lastKeyRequest = time.Time{}
	}
	r.m.framesDecoded.Inc()
	return decodedFrame{i420: m, ts: f.timestamp, arrival: arrival}, true
}

func (r *receiver) decodeFailed(now time.Time) {
	r.m.decodeErrors.Inc()
	r.m.framesDropped.WithLabelValues(dropDecodeError).Inc()
	r.awaitingKeyframe = true
	r.keyframe(keyDecodeError, now)
}
