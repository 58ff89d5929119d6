// Package vpx is a small cgo wrapper of libvpx's VP8 decoder and encoder:
// the pipeline decodes candidates' camera frames with it, and synthetic
// candidates encode their pictures with it the way a browser would.
//
// Inputs are checked in Go before libvpx sees them (a corrupt or hostile
// frame gives an error, never a crash or a giant allocation), libvpx state
// lives in C memory, and pictures cross into GoCV by copying into memory the
// Mat owns. Decoders and encoders are not safe for concurrent use; Close
// frees them.
package vpx

import (
	"errors"
	"fmt"

	"gocv.io/x/gocv"
)

// Limits of what a Decoder accepts. A VP8 keyframe can declare up to
// 16383×16383 pixels (400 MB of picture); no webcam sends more than 4K.
const (
	MaxWidth      = 4096
	MaxHeight     = 4096
	MaxFrameBytes = 16 << 20
)

var (
	// ErrClosed is returned by a Decoder or Encoder used after Close.
	ErrClosed = errors.New("vpx: closed")
	// ErrInvalidFrame reports compressed data that is not a usable VP8 frame.
	ErrInvalidFrame = errors.New("vpx: invalid VP8 frame")
)

// Header is what the first bytes of a VP8 frame say (RFC 6386 §9.1).
type Header struct {
	Keyframe bool
	// Show is false for frames decoded only as references (no picture).
	Show bool
	// Width and Height are set for keyframes only (a frame's size is the
	// size of the last keyframe).
	Width, Height int
	// FirstPartitionSize is the size of the first partition in bytes.
	FirstPartitionSize int
}

// ParseHeader reads a VP8 frame's tag (and, for a keyframe, its start code
// and size) without decoding it.
func ParseHeader(frame []byte) (Header, error) {
	if len(frame) < 3 {
		return Header{}, fmt.Errorf("%w: %d bytes, shorter than a frame tag", ErrInvalidFrame, len(frame))
	}
	tag := uint32(frame[0]) | uint32(frame[1])<<8 | uint32(frame[2])<<16
	h := Header{
		Keyframe:           tag&1 == 0,
		Show:               (tag>>4)&1 == 1,
		FirstPartitionSize: int(tag >> 5),
	}
	if version := (tag >> 1) & 7; version > 3 {
		return Header{}, fmt.Errorf("%w: unknown version %d", ErrInvalidFrame, version)
	}
	headerLen := 3
	if h.Keyframe {
		if len(frame) < 10 {
			return Header{}, fmt.Errorf("%w: keyframe of %d bytes, shorter than its header", ErrInvalidFrame, len(frame))
		}
		if frame[3] != 0x9d || frame[4] != 0x01 || frame[5] != 0x2a {
			return Header{}, fmt.Errorf("%w: keyframe without the start code", ErrInvalidFrame)
		}
		h.Width = int(uint16(frame[6])|uint16(frame[7])<<8) & 0x3fff
		h.Height = int(uint16(frame[8])|uint16(frame[9])<<8) & 0x3fff
		if h.Width == 0 || h.Height == 0 {
			return Header{}, fmt.Errorf("%w: keyframe of %d×%d pixels", ErrInvalidFrame, h.Width, h.Height)
		}
		headerLen = 10
	}
	if h.FirstPartitionSize == 0 || h.FirstPartitionSize > len(frame)-headerLen {
		return Header{}, fmt.Errorf("%w: first partition of %d bytes in a %d-byte frame", ErrInvalidFrame, h.FirstPartitionSize, len(frame))
	}
	return h, nil
}

// IsKeyframe reports whether frame is a well-formed VP8 keyframe header.
func IsKeyframe(frame []byte) bool {
	h, err := ParseHeader(frame)
	return err == nil && h.Keyframe
}

// Image is a decoded picture in I420 with tightly packed planes in Go
// memory: Y is Width×Height bytes, U and V are ChromaWidth()×ChromaHeight().
type Image struct {
	Width, Height int
	Y, U, V       []byte
}

// ChromaWidth is the width of the U and V planes.
func (img *Image) ChromaWidth() int { return (img.Width + 1) / 2 }

// ChromaHeight is the height of the U and V planes.
func (img *Image) ChromaHeight() int { return (img.Height + 1) / 2 }

// NewImage allocates a black I420 picture.
func NewImage(width, height int) (*Image, error) {
	if width < 1 || height < 1 || width > MaxWidth || height > MaxHeight {
		return nil, fmt.Errorf("vpx: picture size %d×%d out of range", width, height)
	}
	img := &Image{Width: width, Height: height}
	cw, ch := img.ChromaWidth(), img.ChromaHeight()
	img.Y = make([]byte, width*height)
	img.U = make([]byte, cw*ch)
	img.V = make([]byte, cw*ch)
	for i := range img.U {
		img.U[i], img.V[i] = 128, 128
	}
	return img, nil
}

func (img *Image) validate() error {
	if img == nil {
		return errors.New("vpx: nil image")
	}
	if img.Width < 1 || img.Height < 1 || img.Width > MaxWidth || img.Height > MaxHeight {
		return fmt.Errorf("vpx: picture size %d×%d out of range", img.Width, img.Height)
	}
	cw, ch := img.ChromaWidth(), img.ChromaHeight()
	if len(img.Y) != img.Width*img.Height || len(img.U) != cw*ch || len(img.V) != cw*ch {
		return fmt.Errorf("vpx: %d×%d picture with planes of %d, %d, %d bytes (want %d, %d, %d)",
			img.Width, img.Height, len(img.Y), len(img.U), len(img.V), img.Width*img.Height, cw*ch, cw*ch)
	}
	return nil
}

// EvenSize is the part of a picture that OpenCV's I420 layout can hold:
// odd widths and heights lose their last column or row.
func EvenSize(width, height int) (int, int) { return width &^ 1, height &^ 1 }

// ensureMat makes m a continuous Mat of rows×cols×typ, reusing it when it
// already is one.
func ensureMat(m *gocv.Mat, rows, cols int, typ gocv.MatType) {
	if !m.Empty() && m.Rows() == rows && m.Cols() == cols && m.Type() == typ && m.IsContinuous() {
		return
	}
	if m.Ptr() != nil {
		m.Close()
	}
	*m = gocv.NewMatWithSize(rows, cols, typ)
}

// ToI420Mat writes the picture into dst as OpenCV's I420 layout: one
// 8UC1 Mat of (h*3/2)×w holding Y, then U, then V (w, h = EvenSize).
// dst is (re)allocated as needed; the caller closes it.
func (img *Image) ToI420Mat(dst *gocv.Mat) error {
	if err := img.validate(); err != nil {
		return err
	}
	w, h := EvenSize(img.Width, img.Height)
	if w < 2 || h < 2 {
		return fmt.Errorf("vpx: %d×%d picture too small to convert", img.Width, img.Height)
	}
	ensureMat(dst, h*3/2, w, gocv.MatTypeCV8UC1)
	data, err := dst.DataPtrUint8()
	if err != nil {
		return fmt.Errorf("vpx: I420 Mat: %w", err)
	}
	if len(data) < w*h*3/2 {
		return fmt.Errorf("vpx: I420 Mat of %d bytes, want %d", len(data), w*h*3/2)
	}
	for r := 0; r < h; r++ {
		copy(data[r*w:r*w+w], img.Y[r*img.Width:])
	}
	cw := img.ChromaWidth()
	u := data[w*h:]
	v := u[(w/2)*(h/2):]
	for r := 0; r < h/2; r++ {
		copy(u[r*w/2:r*w/2+w/2], img.U[r*cw:])
		copy(v[r*w/2:r*w/2+w/2], img.V[r*cw:])
	}
	return nil
}

// ToBGR converts the picture to an 8UC3 BGR Mat of EvenSize, through an
// I420 Mat that owns a copy of the planes. dst is (re)allocated as needed.
func (img *Image) ToBGR(dst *gocv.Mat) error {
	i420 := gocv.NewMat()
	defer i420.Close()
	if err := img.ToI420Mat(&i420); err != nil {
		return err
	}
	return I420ToBGR(i420, dst)
}

// I420ToBGR converts an I420 Mat ((h*3/2)×w, 8UC1, w and h even) to BGR.
func I420ToBGR(i420 gocv.Mat, dst *gocv.Mat) error {
	// rows = h*3/2 with h even is exactly a multiple of 3.
	if i420.Empty() || i420.Type() != gocv.MatTypeCV8UC1 || i420.Rows()%3 != 0 || i420.Cols()%2 != 0 ||
		i420.Cols() < 2 || i420.Rows() < 3 {
		return fmt.Errorf("vpx: %d×%d Mat of type %v is not an I420 picture", i420.Cols(), i420.Rows(), i420.Type())
	}
	gocv.CvtColor(i420, dst, gocv.ColorYUVToBGRIYUV) // OpenCV's YUV2BGR_I420 is YUV2BGR_IYUV
	return nil
}

// BGRToImage converts an 8UC3 BGR Mat with even sides to an Image.
func BGRToImage(bgr gocv.Mat) (*Image, error) {
	if err := checkBGR(bgr); err != nil {
		return nil, err
	}
	w, h := bgr.Cols(), bgr.Rows()
	i420 := gocv.NewMat()
	defer i420.Close()
	gocv.CvtColor(bgr, &i420, gocv.ColorBGRToYUVI420)
	data, err := i420.DataPtrUint8()
	if err != nil {
		return nil, fmt.Errorf("vpx: I420 Mat: %w", err)
	}
	if len(data) < w*h*3/2 {
		return nil, fmt.Errorf("vpx: I420 conversion gave %d bytes, want %d", len(data), w*h*3/2)
	}
	img := &Image{Width: w, Height: h}
	img.Y = append([]byte(nil), data[:w*h]...)
	img.U = append([]byte(nil), data[w*h:w*h+w*h/4]...)
	img.V = append([]byte(nil), data[w*h+w*h/4:w*h*3/2]...)
	return img, nil
}

func checkBGR(bgr gocv.Mat) error {
	if bgr.Empty() || bgr.Type() != gocv.MatTypeCV8UC3 {
		return fmt.Errorf("vpx: want a non-empty 8-bit BGR Mat, got %d×%d of type %v", bgr.Cols(), bgr.Rows(), bgr.Type())
	}
	if bgr.Cols()%2 != 0 || bgr.Rows()%2 != 0 || bgr.Cols() > MaxWidth || bgr.Rows() > MaxHeight {
		return fmt.Errorf("vpx: BGR picture of %d×%d: sides must be even and at most %d×%d", bgr.Cols(), bgr.Rows(), MaxWidth, MaxHeight)
	}
	return nil
}
