package vpx

/*
#cgo pkg-config: vpx
#include "codec.h"
*/
import "C"

import (
	"fmt"
	"unsafe"

	"gocv.io/x/gocv"
)

// Decoder decodes one VP8 stream. Frames must come in order; after an
// error, decode resumes cleanly at the next keyframe.
type Decoder struct {
	d *C.inv_decoder
	// width and height of the stream so far (from the last keyframe), so an
	// inter frame before any keyframe is refused in Go.
	width, height int
	errbuf        [C.INV_ERRBUF]C.char
}

// NewDecoder makes a single-threaded VP8 decoder (the pipeline runs one per
// track, so threads come from the number of tracks).
func NewDecoder() (*Decoder, error) {
	d := &Decoder{}
	d.d = C.inv_dec_new(1, &d.errbuf[0])
	if d.d == nil {
		return nil, fmt.Errorf("vpx: %s", C.GoString(&d.errbuf[0]))
	}
	return d, nil
}

// Close frees the decoder; it is safe to call more than once.
func (d *Decoder) Close() error {
	if d.d != nil {
		C.inv_dec_free(d.d)
		d.d = nil
	}
	return nil
}

// Size is the size of the stream's pictures (0×0 before the first keyframe).
func (d *Decoder) Size() (width, height int) { return d.width, d.height }

// decode checks the frame and runs libvpx; shown reports a picture.
func (d *Decoder) decode(frame []byte) (shown bool, err error) {
	if d.d == nil {
		return false, ErrClosed
	}
	if len(frame) > MaxFrameBytes {
		return false, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidFrame, len(frame), MaxFrameBytes)
	}
	h, err := ParseHeader(frame)
	if err != nil {
		return false, err
	}
	if h.Keyframe {
		if h.Width > MaxWidth || h.Height > MaxHeight {
			return false, fmt.Errorf("%w: keyframe of %d×%d pixels, more than %d×%d", ErrInvalidFrame, h.Width, h.Height, MaxWidth, MaxHeight)
		}
	} else if d.width == 0 {
		return false, fmt.Errorf("%w: inter frame before the first keyframe", ErrInvalidFrame)
	}
	var cshown C.int
	if C.inv_dec_decode(d.d, (*C.uint8_t)(unsafe.Pointer(&frame[0])), C.size_t(len(frame)), &cshown, &d.errbuf[0]) != 0 {
		if h.Keyframe {
			d.width, d.height = 0, 0 // the stream has no usable reference now
		}
		return false, fmt.Errorf("vpx: %s", C.GoString(&d.errbuf[0]))
	}
	if h.Keyframe {
		d.width, d.height = h.Width, h.Height
	}
	if cshown == 0 {
		return false, nil
	}
	var w, hh C.int
	C.inv_dec_size(d.d, &w, &hh)
	if int(w) > MaxWidth || int(hh) > MaxHeight || w < 1 || hh < 1 {
		return false, fmt.Errorf("%w: decoded picture of %d×%d", ErrInvalidFrame, w, hh)
	}
	return true, nil
}

// Decode decodes one compressed frame and returns its picture as a Go copy,
// or nil when the frame carries no picture (a hidden reference frame).
func (d *Decoder) Decode(frame []byte) (*Image, error) {
	shown, err := d.decode(frame)
	if err != nil || !shown {
		return nil, err
	}
	var w, h C.int
	C.inv_dec_size(d.d, &w, &h)
	img := &Image{Width: int(w), Height: int(h)}
	cw, ch := img.ChromaWidth(), img.ChromaHeight()
	img.Y = make([]byte, img.Width*img.Height)
	img.U = make([]byte, cw*ch)
	img.V = make([]byte, cw*ch)
	// libvpx's picture is copied into the Go planes during this call; C
	// keeps no pointer to them.
	if C.inv_dec_copy_planes(d.d, (*C.uint8_t)(unsafe.Pointer(&img.Y[0])), (*C.uint8_t)(unsafe.Pointer(&img.U[0])),
		(*C.uint8_t)(unsafe.Pointer(&img.V[0]))) != 0 {
		return nil, fmt.Errorf("vpx: no picture to copy")
	}
	return img, nil
}

// DecodeI420 decodes one compressed frame straight into dst as OpenCV's
// I420 layout ((h*3/2)×w 8UC1, w and h = EvenSize of the picture), copying
// from libvpx's buffer into dst's own memory without a Go copy. It reports
// whether a picture came out; dst is (re)allocated as needed.
func (d *Decoder) DecodeI420(frame []byte, dst *gocv.Mat) (shown bool, err error) {
	shown, err = d.decode(frame)
	if err != nil || !shown {
		return false, err
	}
	var cw, ch C.int
	C.inv_dec_size(d.d, &cw, &ch)
	w, h := EvenSize(int(cw), int(ch))
	if w < 2 || h < 2 {
		return false, fmt.Errorf("%w: picture of %d×%d is too small", ErrInvalidFrame, cw, ch)
	}
	ensureMat(dst, h*3/2, w, gocv.MatTypeCV8UC1)
	data, err := dst.DataPtrUint8()
	if err != nil {
		return false, fmt.Errorf("vpx: I420 Mat: %w", err)
	}
	if len(data) < w*h*3/2 {
		return false, fmt.Errorf("vpx: I420 Mat of %d bytes, want %d", len(data), w*h*3/2)
	}
	// data is the Mat's C allocation, not Go memory.
	if C.inv_dec_copy_i420(d.d, (*C.uint8_t)(unsafe.Pointer(&data[0])), C.int(w), C.int(h)) != 0 {
		return false, fmt.Errorf("vpx: no picture to copy")
	}
	return true, nil
}

// DecodeBGR decodes one compressed frame into dst as an 8UC3 BGR Mat of
// EvenSize, reusing i420 as scratch. Both are (re)allocated as needed.
func (d *Decoder) DecodeBGR(frame []byte, i420, dst *gocv.Mat) (shown bool, err error) {
	shown, err = d.DecodeI420(frame, i420)
	if err != nil || !shown {
		return false, err
	}
	return true, I420ToBGR(*i420, dst)
}
