package opus

/*
#include "codec.h"
*/
import "C"

import (
	"bytes"
	"fmt"
	"math"
	"time"
	"unsafe"
)

// EncoderOptions configures an encoder the way a browser's microphone
// track runs one: 48 kHz, VOIP application, 20 ms frames.
type EncoderOptions struct {
	// Channels is 1 (default) or 2; stereo input is interleaved.
	Channels int
	// Bitrate in bits per second, 6000–510000 (default 32000, what
	// Chromium sends for a mono microphone).
	Bitrate int
	// Frame is the duration of each packet: 2.5, 5, 10, 20 (default), 40
	// or 60 ms.
	Frame time.Duration
	// Complexity is 1–10 (higher: better sound, more CPU); 0 keeps
	// libopus's default.
	Complexity int
	// InbandFEC adds forward error correction for the previous packet to
	// each packet, planned for PacketLossPercent (0–100) loss.
	InbandFEC         bool
	PacketLossPercent int
}

// maxEncodedBytes is libopus's recommended output buffer: no packet it
// makes is larger.
const maxEncodedBytes = 4000

// encoderFrames are the frame sizes libopus encodes, in samples at 48 kHz
// (2.5, 5, 10, 20, 40, 60 ms).
var encoderFrames = map[int]bool{120: true, 240: true, 480: true, 960: true, 1920: true, 2880: true}

// Encoder encodes PCM to Opus packets, one frame per call.
type Encoder struct {
	e     *C.OpusEncoder
	opts  EncoderOptions
	frame int // samples per channel per packet
	buf   [maxEncodedBytes]byte
}

// NewEncoder checks the options and starts an encoder.
func NewEncoder(opts EncoderOptions) (*Encoder, error) {
	if opts.Channels == 0 {
		opts.Channels = 1
	}
	if opts.Bitrate == 0 {
		opts.Bitrate = 32000
	}
	if opts.Frame == 0 {
		opts.Frame = 20 * time.Millisecond
	}
	frame := int(opts.Frame * SampleRate / time.Second)
	switch {
	case opts.Channels != 1 && opts.Channels != 2:
		return nil, fmt.Errorf("opus: encoder channels %d must be 1 or 2", opts.Channels)
	case opts.Bitrate < 6000 || opts.Bitrate > 510000:
		return nil, fmt.Errorf("opus: encoder bitrate %d b/s must be in [6000, 510000]", opts.Bitrate)
	case !encoderFrames[frame] || time.Duration(frame)*time.Second/SampleRate != opts.Frame:
		return nil, fmt.Errorf("opus: encoder frame %v must be 2.5, 5, 10, 20, 40 or 60 ms", opts.Frame)
	case opts.Complexity < 0 || opts.Complexity > 10:
		return nil, fmt.Errorf("opus: encoder complexity %d must be in [0, 10]", opts.Complexity)
	case opts.PacketLossPercent < 0 || opts.PacketLossPercent > 100:
		return nil, fmt.Errorf("opus: encoder packet loss %d%% must be in [0, 100]", opts.PacketLossPercent)
	}
	cfg := C.inv_opus_enc_config{
		channels:     C.int(opts.Channels),
		bitrate:      C.int(opts.Bitrate),
		complexity:   C.int(opts.Complexity),
		loss_percent: C.int(opts.PacketLossPercent),
	}
	if opts.InbandFEC {
		cfg.inband_fec = 1
	}
	var cerr C.int
	e := C.inv_opus_enc_new(&cfg, &cerr)
	if e == nil {
		return nil, fmt.Errorf("opus: create encoder: %s", C.GoString(C.opus_strerror(cerr)))
	}
	return &Encoder{e: e, opts: opts, frame: frame}, nil
}

// Options returns the encoder's options with defaults filled in.
func (e *Encoder) Options() EncoderOptions { return e.opts }

// FrameSamples is how many samples per channel each Encode takes.
func (e *Encoder) FrameSamples() int { return e.frame }

// Lookahead is the codec's delay in samples: decoded audio lags the input
// by this much, which a comparison of the two must align.
func (e *Encoder) Lookahead() (int, error) {
	if e.e == nil {
		return 0, ErrClosed
	}
	n := C.inv_opus_enc_lookahead(e.e)
	if n < 0 {
		return 0, fmt.Errorf("opus: encoder lookahead: %s", C.GoString(C.opus_strerror(n)))
	}
	return int(n), nil
}

// Close frees the encoder; it is safe to call more than once.
func (e *Encoder) Close() error {
	if e.e != nil {
		C.inv_opus_enc_free(e.e)
		e.e = nil
	}
	return nil
}

// Encode encodes one frame, FrameSamples()×Channels interleaved samples in
// [-1, 1], into one packet.
func (e *Encoder) Encode(pcm []float32) ([]byte, error) {
	if e.e == nil {
		return nil, ErrClosed
	}
	if want := e.frame * e.opts.Channels; len(pcm) != want {
		return nil, fmt.Errorf("opus: encode %d samples, want exactly one frame of %d", len(pcm), want)
	}
	for i, s := range pcm {
		// libopus does not define what NaN or infinity turns into.
		if math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) {
			return nil, fmt.Errorf("opus: encode: sample %d is %v", i, s)
		}
	}
	n := C.opus_encode_float(e.e, (*C.float)(unsafe.Pointer(&pcm[0])), C.int(e.frame),
		(*C.uchar)(unsafe.Pointer(&e.buf[0])), C.opus_int32(len(e.buf)))
	if n < 0 {
		return nil, fmt.Errorf("opus: encode: %s", C.GoString(C.opus_strerror(n)))
	}
	return bytes.Clone(e.buf[:n]), nil
}
