// Package opus is a small cgo wrapper of libopus (Debian's libopus 1.3.1):
// the pipeline decodes candidates' Opus microphone tracks with it, and
// tests and simulated candidates encode audio with it the way a browser does.
//
// Everything runs at 48 kHz, Opus's native rate and the one WebRTC uses,
// but for a decoder made to output at a lower rate (NewDecoderAt: the
// pipeline's speech detector takes 16 kHz).
// Packets are checked in Go against RFC 6716's framing rules before libopus
// sees them, so a corrupt or hostile RTP payload gives an error, never a
// crash; codec state lives in C memory that libopus allocates. Decoders and
// encoders are not safe for concurrent use (the pipeline runs one decoder
// per track, on the track's goroutine); Close frees them.
package opus

import (
	"errors"
	"fmt"
	"time"
)

// SampleRate is Opus's RTP clock, every encoder's input rate and a
// decoder's output rate unless made with NewDecoderAt.
const SampleRate = 48000

// Limits of what a Decoder accepts.
const (
	// MaxFrameBytes is the largest Opus frame RFC 6716 allows (R2).
	MaxFrameBytes = 1275
	// MaxPacketBytes is three maximum-size frames: far more than an RTP
	// packet carries on any real path (about 1200 bytes of MTU), so a larger
	// payload is not from a browser and is refused before any work.
	MaxPacketBytes = 3 * MaxFrameBytes
	// MaxPacketSamples is 120 ms, the longest packet Opus can express.
	MaxPacketSamples = SampleRate * 120 / 1000
	// MaxConcealment is the longest gap DecodeLost fills in one call; by then
	// concealment has long faded to silence, and a caller with a longer gap
	// should Reset instead.
	MaxConcealment = time.Second
)

// concealStep is the granularity of packet-loss concealment: libopus fills
// gaps in multiples of 2.5 ms, its shortest frame.
const concealStep = SampleRate / 400

var (
	// ErrClosed is returned by a Decoder or Encoder used after Close.
	ErrClosed = errors.New("opus: closed")
	// ErrInvalidPacket reports bytes that are not a well-formed Opus packet.
	ErrInvalidPacket = errors.New("opus: invalid packet")
)

// PacketInfo is what a packet's TOC byte and framing say (RFC 6716 §3.1).
type PacketInfo struct {
	// Config is the TOC's configuration number, 0–31: mode (SILK, hybrid,
	// CELT), bandwidth and frame duration.
	Config int
	// Stereo is set when the packet codes two channels.
	Stereo bool
	// Frames is the number of frames in the packet (1–48).
	Frames int
	// FrameSamples is the duration of each frame in samples at 48 kHz.
	FrameSamples int
}

// Samples is the packet's duration in samples at 48 kHz.
func (p PacketInfo) Samples() int { return p.Frames * p.FrameSamples }

// Duration is how much audio the packet holds.
func (p PacketInfo) Duration() time.Duration {
	return time.Duration(p.Samples()) * time.Second / SampleRate
}

// frameSamples is the duration of one frame of config toc>>3, as Table 2 of
// RFC 6716 gives it: SILK 10/20/40/60 ms, hybrid 10/20 ms, CELT
// 2.5/5/10/20 ms.
func frameSamples(toc byte) int {
	switch {
	case toc&0x80 != 0: // CELT-only
		return (SampleRate << ((toc >> 3) & 3)) / 400
	case toc&0x60 == 0x60: // hybrid
		if toc&0x08 != 0 {
			return SampleRate / 50
		}
		return SampleRate / 100
	default: // SILK-only
		if d := (toc >> 3) & 3; d < 3 {
			return (SampleRate << d) / 100
		}
		return SampleRate * 60 / 1000
	}
}

// frameLength reads a one- or two-byte frame length (RFC 6716 §3.2.1) and
// reports how many bytes it took.
func frameLength(b []byte) (size, n int, ok bool) {
	switch {
	case len(b) < 1:
		return 0, 0, false
	case b[0] < 252:
		return int(b[0]), 1, true
	case len(b) < 2:
		return 0, 0, false
	default:
		return 4*int(b[1]) + int(b[0]), 2, true
	}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidPacket, fmt.Sprintf(format, args...))
}

// ParsePacket checks a packet against RFC 6716's framing requirements
// (§3.4, R1–R7) without decoding it and says what it holds. Frames of 0 or
// 1 byte are legal (discontinuous transmission); their audio is concealed.
func ParsePacket(packet []byte) (PacketInfo, error) {
	if len(packet) == 0 {
		return PacketInfo{}, invalid("empty packet")
	}
	if len(packet) > MaxPacketBytes {
		return PacketInfo{}, invalid("%d bytes, more than %d", len(packet), MaxPacketBytes)
	}
	toc := packet[0]
	info := PacketInfo{Config: int(toc >> 3), Stereo: toc&0x04 != 0, FrameSamples: frameSamples(toc)}
	rest := len(packet) - 1 // payload bytes not yet accounted for
	var last int            // size of the last frame, which no length field gives
	switch toc & 3 {
	case 0: // one frame
		info.Frames = 1
		last = rest
	case 1: // two frames of equal size
		info.Frames = 2
		if rest%2 != 0 {
			return PacketInfo{}, invalid("two equal frames in an odd %d bytes", rest)
		}
		last = rest / 2
	case 2: // two frames, the first one's size given
		info.Frames = 2
		size, n, ok := frameLength(packet[1:])
		if !ok {
			return PacketInfo{}, invalid("two-frame packet cut off in its first frame's length")
		}
		rest -= n
		if size > rest {
			return PacketInfo{}, invalid("first frame of %d bytes in %d remaining", size, rest)
		}
		last = rest - size
	default: // any number of frames
		if rest < 1 {
			return PacketInfo{}, invalid("multi-frame packet without its frame count")
		}
		fc := packet[1]
		info.Frames = int(fc & 0x3f)
		rest--
		if info.Frames == 0 {
			return PacketInfo{}, invalid("multi-frame packet of 0 frames")
		}
		if info.Samples() > MaxPacketSamples {
			return PacketInfo{}, invalid("%d frames of %v, more than 120 ms", info.Frames,
				time.Duration(info.FrameSamples)*time.Second/SampleRate)
		}
		pos := 2
		if fc&0x40 != 0 { // padding: each 255 adds 254 bytes and another length byte
			for {
				if rest <= 0 {
					return PacketInfo{}, invalid("padding length cut off")
				}
				p := int(packet[pos])
				pos++
				rest--
				if p == 255 {
					rest -= 254
				} else {
					rest -= p
					break
				}
			}
			if rest < 0 {
				return PacketInfo{}, invalid("padding longer than the packet")
			}
		}
		if fc&0x80 != 0 { // VBR: every frame's size but the last is given
			last = rest
			for i := 0; i < info.Frames-1; i++ {
				size, n, ok := frameLength(packet[pos : pos+rest])
				if !ok {
					return PacketInfo{}, invalid("frame %d's length cut off", i+1)
				}
				rest -= n
				if size > rest {
					return PacketInfo{}, invalid("frame %d of %d bytes in %d remaining", i+1, size, rest)
				}
				pos += n
				last -= n + size
			}
			if last < 0 {
				return PacketInfo{}, invalid("frames longer than the packet")
			}
		} else { // CBR: equal frames
			if rest%info.Frames != 0 {
				return PacketInfo{}, invalid("%d equal frames in %d bytes", info.Frames, rest)
			}
			last = rest / info.Frames
		}
	}
	if last > MaxFrameBytes {
		return PacketInfo{}, invalid("frame of %d bytes, more than %d", last, MaxFrameBytes)
	}
	return info, nil
}
