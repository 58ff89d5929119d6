package vpx

/*
#include "codec.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"unsafe"

	"gocv.io/x/gocv"
)

// EncoderOptions configures a realtime VP8 encoder the way WebRTC runs one:
// one-pass CBR, no lookahead, error resilient, fast.
type EncoderOptions struct {
	// Width and Height are the picture size: even, at most MaxWidth×MaxHeight.
	Width, Height int
	// FPS is the frame rate the rate control plans for (default 30).
	FPS float64
	// BitrateKbps is the target bitrate (default 1000).
	BitrateKbps int
	// KeyframeInterval is the most frames between keyframes (0: libvpx's
	// default); Encode can force one at any time, as after a PLI.
	KeyframeInterval int
	// Threads is the number of encoder threads (default 1).
	Threads int
	// CPUUsed is libvpx's speed setting, -16…16; higher is faster (default
	// 8: simulated cameras must be cheap).
	CPUUsed int
	// TemporalLayers is 1 (or 0) for a plain stream, or 3 for L1T3, what
	// Chrome sends for scalabilityMode 'L1T3': layers 0, 2, 1, 2 repeating,
	// the base layer a quarter of the frames and decodable on its own.
	TemporalLayers int
}

// Frame is one compressed frame and where it sits among the temporal
// layers.
type Frame struct {
	Data     []byte
	Keyframe bool
	// TID is the temporal layer (always 0 without layers; a keyframe is
	// always on layer 0).
	TID uint8
	// Sync: the frame references only base-layer frames, so a receiver
	// may start decoding its layer here (RFC 7741's Y bit).
	Sync bool
	// Droppable: no later frame references it (RFC 7741's N bit).
	Droppable bool
}

// timebase is the encoder's clock: RTP's video clock, so frame rates that
// are not whole numbers still get exact-enough durations.
const timebase = 90000

// Encoder encodes pictures of one size to VP8.
type Encoder struct {
	e        *C.inv_encoder
	opts     EncoderOptions
	pts      int64
	duration int64
	i420     gocv.Mat // BGR conversion scratch
	errbuf   [C.INV_ERRBUF]C.char
}

// NewEncoder checks the options and starts an encoder.
func NewEncoder(opts EncoderOptions) (*Encoder, error) {
	if opts.FPS == 0 {
		opts.FPS = 30
	}
	if opts.BitrateKbps == 0 {
		opts.BitrateKbps = 1000
	}
	if opts.Threads == 0 {
		opts.Threads = 1
	}
	if opts.CPUUsed == 0 {
		opts.CPUUsed = 8
	}
	if opts.TemporalLayers == 0 {
		opts.TemporalLayers = 1
	}
	switch {
	case opts.Width < 2 || opts.Height < 2 || opts.Width%2 != 0 || opts.Height%2 != 0 ||
		opts.Width > MaxWidth || opts.Height > MaxHeight:
		return nil, fmt.Errorf("vpx: encoder size %d×%d: sides must be even, from 2 to %d×%d", opts.Width, opts.Height, MaxWidth, MaxHeight)
	case math.IsNaN(opts.FPS) || opts.FPS < 1 || opts.FPS > 240:
		return nil, fmt.Errorf("vpx: encoder frame rate %g must be in [1, 240]", opts.FPS)
	case opts.BitrateKbps < 1 || opts.BitrateKbps > 100_000:
		return nil, fmt.Errorf("vpx: encoder bitrate %d kbps must be in [1, 100000]", opts.BitrateKbps)
	case opts.KeyframeInterval < 0:
		return nil, fmt.Errorf("vpx: keyframe interval %d must be ≥ 0", opts.KeyframeInterval)
	case opts.Threads < 1 || opts.Threads > 64:
		return nil, fmt.Errorf("vpx: encoder threads %d must be in [1, 64]", opts.Threads)
	case opts.CPUUsed < -16 || opts.CPUUsed > 16:
		return nil, fmt.Errorf("vpx: cpu-used %d must be in [-16, 16]", opts.CPUUsed)
	case opts.TemporalLayers != 1 && opts.TemporalLayers != 3:
		return nil, fmt.Errorf("vpx: %d temporal layers: want 1 or 3 (L1T3)", opts.TemporalLayers)
	}
	cfg := C.inv_enc_config{
		width:             C.int(opts.Width),
		height:            C.int(opts.Height),
		timebase_den:      timebase,
		bitrate_kbps:      C.int(opts.BitrateKbps),
		keyframe_interval: C.int(opts.KeyframeInterval),
		threads:           C.int(opts.Threads),
		cpu_used:          C.int(opts.CPUUsed),
		temporal_layers:   C.int(opts.TemporalLayers),
	}
	enc := &Encoder{opts: opts, duration: int64(math.Round(timebase / opts.FPS))}
	enc.e = C.inv_enc_new(&cfg, &enc.errbuf[0])
	if enc.e == nil {
		return nil, fmt.Errorf("vpx: %s", C.GoString(&enc.errbuf[0]))
	}
	enc.i420 = gocv.NewMat()
	return enc, nil
}

// Options returns the encoder's options with defaults filled in.
func (e *Encoder) Options() EncoderOptions { return e.opts }

// Close frees the encoder; it is safe to call more than once.
func (e *Encoder) Close() error {
	if e.e != nil {
		C.inv_enc_free(e.e)
		e.e = nil
		e.i420.Close()
	}
	return nil
}

// Encode encodes one 8UC3 BGR picture of the encoder's size and returns
// the compressed frames that came out (one, in realtime mode).
func (e *Encoder) Encode(bgr gocv.Mat, forceKeyframe bool) ([][]byte, error) {
	frames, err := e.EncodeFrames(bgr, forceKeyframe)
	return frameData(frames), err
}

func frameData(frames []Frame) [][]byte {
	if frames == nil {
		return nil
	}
	out := make([][]byte, len(frames))
	for i := range frames {
		out[i] = frames[i].Data
	}
	return out
}

// EncodeFrames is Encode with each frame's layer.
func (e *Encoder) EncodeFrames(bgr gocv.Mat, forceKeyframe bool) ([]Frame, error) {
	if e.e == nil {
		return nil, ErrClosed
	}
	if err := checkBGR(bgr); err != nil {
		return nil, err
	}
	if bgr.Cols() != e.opts.Width || bgr.Rows() != e.opts.Height {
		return nil, fmt.Errorf("vpx: %d×%d picture for a %d×%d encoder", bgr.Cols(), bgr.Rows(), e.opts.Width, e.opts.Height)
	}
	gocv.CvtColor(bgr, &e.i420, gocv.ColorBGRToYUVI420)
	data, err := e.i420.DataPtrUint8()
	if err != nil {
		return nil, fmt.Errorf("vpx: I420 Mat: %w", err)
	}
	w, h := e.opts.Width, e.opts.Height
	if len(data) < w*h*3/2 {
		return nil, fmt.Errorf("vpx: I420 conversion gave %d bytes, want %d", len(data), w*h*3/2)
	}
	// data is the Mat's C memory.
	y := unsafe.Pointer(&data[0])
	u := unsafe.Pointer(&data[w*h])
	v := unsafe.Pointer(&data[w*h+w*h/4])
	return e.encode(y, u, v, forceKeyframe)
}

// EncodeImage encodes one I420 picture of the encoder's size.
func (e *Encoder) EncodeImage(img *Image, forceKeyframe bool) ([][]byte, error) {
	frames, err := e.EncodeImageFrames(img, forceKeyframe)
	return frameData(frames), err
}

// EncodeImageFrames is EncodeImage with each frame's layer.
func (e *Encoder) EncodeImageFrames(img *Image, forceKeyframe bool) ([]Frame, error) {
	if e.e == nil {
		return nil, ErrClosed
	}
	if err := img.validate(); err != nil {
		return nil, err
	}
	if img.Width != e.opts.Width || img.Height != e.opts.Height {
		return nil, fmt.Errorf("vpx: %d×%d picture for a %d×%d encoder", img.Width, img.Height, e.opts.Width, e.opts.Height)
	}
	return e.encode(unsafe.Pointer(&img.Y[0]), unsafe.Pointer(&img.U[0]), unsafe.Pointer(&img.V[0]), forceKeyframe)
}

func (e *Encoder) encode(y, u, v unsafe.Pointer, forceKeyframe bool) ([]Frame, error) {
	force := C.int(0)
	if forceKeyframe {
		force = 1
	}
	if C.inv_enc_encode(e.e, (*C.uint8_t)(y), (*C.uint8_t)(u), (*C.uint8_t)(v),
		C.int64_t(e.pts), C.ulong(e.duration), force, &e.errbuf[0]) != 0 {
		return nil, fmt.Errorf("vpx: %s", C.GoString(&e.errbuf[0]))
	}
	e.pts += e.duration
	var frames []Frame
	for {
		var data *C.uint8_t
		var size C.size_t
		var key, tid, sync, droppable C.int
		if C.inv_enc_next(e.e, &data, &size, &key, &tid, &sync, &droppable) == 0 {
			break
		}
		if size > C.size_t(MaxFrameBytes) {
			return nil, errors.New("vpx: encoder produced an oversized frame")
		}
		frames = append(frames, Frame{Data: C.GoBytes(unsafe.Pointer(data), C.int(size)), Keyframe: key != 0,
			TID: uint8(tid), Sync: sync != 0, Droppable: droppable != 0})
	}
	return frames, nil
}
