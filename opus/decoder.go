package opus

/*
#cgo pkg-config: opus
#include "codec.h"
*/
import "C"

import (
	"fmt"
	"slices"
	"time"
	"unsafe"
)

// Decoder decodes one Opus stream (one RTP track) to mono float32 samples
// in [-1, 1] at its rate (48 kHz unless made by NewDecoderAt); stereo
// packets are mixed down by libopus. Packets must come in order; report
// each lost one with DecodeLost so the output keeps time. A Decoder is not
// safe for concurrent use.
type Decoder struct {
	d    *C.OpusDecoder
	rate int
}

// NewDecoder makes a 48 kHz decoder at the start of a stream.
func NewDecoder() (*Decoder, error) { return NewDecoderAt(SampleRate) }

// DecoderRates are the output rates libopus decodes to.
var DecoderRates = []int{8000, 12000, 16000, 24000, 48000}

// NewDecoderAt makes a decoder whose output is at rate, one of
// DecoderRates. Below 48 kHz libopus decodes only the bands under half the
// rate and, for speech coded at that bandwidth (SILK's wideband is 16 kHz),
// skips its own resampling: a listener that wants 16 kHz gets it for less
// than decoding at 48 kHz and filtering down.
func NewDecoderAt(rate int) (*Decoder, error) {
	if !slices.Contains(DecoderRates, rate) {
		return nil, fmt.Errorf("opus: create decoder: rate %d Hz, want one of %v", rate, DecoderRates)
	}
	var cerr C.int
	d := C.inv_opus_dec_new(C.int(rate), &cerr)
	if d == nil {
		return nil, fmt.Errorf("opus: create decoder: %s", C.GoString(C.opus_strerror(cerr)))
	}
	return &Decoder{d: d, rate: rate}, nil
}

// Rate is the decoder's output rate in Hz.
func (d *Decoder) Rate() int { return d.rate }

// samples is how many output samples n samples at 48 kHz make (n is a
// multiple of 2.5 ms, so the division is exact at every DecoderRates).
func (d *Decoder) samples(n int) int { return n * d.rate / SampleRate }

// Close frees the decoder; it is safe to call more than once.
func (d *Decoder) Close() error {
	if d.d != nil {
		C.inv_opus_dec_free(d.d)
		d.d = nil
	}
	return nil
}

// Reset forgets the stream so far, as when a track restarts with a new
// SSRC: concealment then has nothing to continue from.
func (d *Decoder) Reset() error {
	if d.d == nil {
		return ErrClosed
	}
	if r := C.inv_opus_dec_reset(d.d); r != C.OPUS_OK {
		return fmt.Errorf("opus: reset decoder: %s", C.GoString(C.opus_strerror(r)))
	}
	return nil
}

// Decode decodes one packet (one RTP payload) into new samples:
// PacketInfo.Samples() of them (120 to 5760) at 48 kHz, proportionally
// fewer at a lower rate.
func (d *Decoder) Decode(packet []byte) ([]float32, error) {
	return d.AppendDecode(nil, packet)
}

// AppendDecode decodes one packet and appends its samples to dst, so a
// caller that reuses dst decodes without allocating. On error dst comes
// back unchanged.
func (d *Decoder) AppendDecode(dst []float32, packet []byte) ([]float32, error) {
	if d.d == nil {
		return dst, ErrClosed
	}
	info, err := ParsePacket(packet)
	if err != nil {
		return dst, err
	}
	return d.decode(dst, packet, d.samples(info.Samples()), false)
}

// DecodeLost conceals lost audio (packet-loss concealment): it returns
// lost's worth of samples that continue the stream smoothly and fade to
// silence. lost must be a positive multiple of 2.5 ms up to MaxConcealment;
// the gap between RTP timestamps gives it (960 samples of Opus's 48 kHz RTP
// clock per 20 ms packet).
func (d *Decoder) DecodeLost(lost time.Duration) ([]float32, error) {
	return d.AppendDecodeLost(nil, lost)
}

// AppendDecodeLost is DecodeLost appending to dst.
func (d *Decoder) AppendDecodeLost(dst []float32, lost time.Duration) ([]float32, error) {
	if d.d == nil {
		return dst, ErrClosed
	}
	n, err := concealSamples(lost)
	if err != nil {
		return dst, err
	}
	return d.decode(dst, nil, d.samples(n), false)
}

// AppendDecodeFEC recovers a lost packet from the forward error correction
// that the packet after it carries (browsers send it: useinbandfec=1) and
// appends lost's worth of samples; call AppendDecode with next afterwards
// as usual. Where next carries no FEC, libopus conceals the gap instead.
func (d *Decoder) AppendDecodeFEC(dst []float32, next []byte, lost time.Duration) ([]float32, error) {
	if d.d == nil {
		return dst, ErrClosed
	}
	n, err := concealSamples(lost)
	if err != nil {
		return dst, err
	}
	if n > MaxPacketSamples {
		return dst, fmt.Errorf("opus: FEC recovers at most one packet (120 ms), not %v", lost)
	}
	if _, err := ParsePacket(next); err != nil {
		return dst, fmt.Errorf("opus: FEC from the next packet: %w", err)
	}
	return d.decode(dst, next, d.samples(n), true)
}

// concealSamples is lost at 48 kHz, checked.
func concealSamples(lost time.Duration) (int, error) {
	if lost <= 0 || lost > MaxConcealment {
		return 0, fmt.Errorf("opus: conceal %v of lost audio: want more than 0 and at most %v", lost, MaxConcealment)
	}
	n := int(lost * SampleRate / time.Second)
	if n%concealStep != 0 || time.Duration(n)*time.Second/SampleRate != lost {
		return 0, fmt.Errorf("opus: conceal %v of lost audio: not a multiple of 2.5 ms", lost)
	}
	return n, nil
}

// decode runs libopus for exactly samples output samples.
func (d *Decoder) decode(dst []float32, packet []byte, samples int, fec bool) ([]float32, error) {
	out, got, err := d.decodeRaw(dst, packet, samples, fec)
	if err != nil {
		return dst, err
	}
	if got != samples {
		return dst, fmt.Errorf("opus: decode %d-byte packet: %d samples, expected %d", len(packet), got, samples)
	}
	return out, nil
}

// decodeRaw lets libopus decode into room for up to room samples, written
// straight into dst's backing array (libopus keeps no pointer after the
// call), and says how many it wrote. Only decode and the fuzz test, which
// compares libopus's verdict on a packet with ParsePacket's, call it.
func (d *Decoder) decodeRaw(dst []float32, packet []byte, room int, fec bool) ([]float32, int, error) {
	start := len(dst)
	dst = grow(dst, room)
	var data *C.uchar
	if len(packet) > 0 {
		data = (*C.uchar)(unsafe.Pointer(&packet[0]))
	}
	cfec := C.int(0)
	if fec {
		cfec = 1
	}
	got := C.opus_decode_float(d.d, data, C.opus_int32(len(packet)), (*C.float)(unsafe.Pointer(&dst[start])), C.int(room), cfec)
	if got < 0 {
		return dst[:start], 0, fmt.Errorf("opus: decode %d-byte packet: %s", len(packet), C.GoString(C.opus_strerror(got)))
	}
	return dst[:start+int(got)], int(got), nil
}

// grow extends dst by n samples, reallocating only when its capacity is short.
func grow(dst []float32, n int) []float32 {
	if cap(dst)-len(dst) >= n {
		return dst[:len(dst)+n]
	}
	out := make([]float32, len(dst)+n, 2*len(dst)+n)
	copy(out, dst)
	return out
}

// liveCodecs counts decoders and encoders not yet closed, for the leak test.
func liveCodecs() int { return int(C.inv_opus_live()) }
