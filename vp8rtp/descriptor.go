// Package vp8rtp is VP8 over RTP (RFC 7741): the payload descriptor that
// opens every packet, read and written with its temporal-layer fields
// (TID, layer sync, TL0PICIDX), and a packetizer that numbers pictures the
// way Chrome does. The pipeline reads the descriptor to decode only the
// base temporal layer of a layered camera; synthetic candidates write it so
// that they publish like a browser.
//
// pion's codecs.VP8Packet reads the same fields, but its payloader writes
// no layer fields at all, and the pipeline needs a parser that tells a
// malformed descriptor from a well-formed one (pion accepts a descriptor
// with no VP8 data after it): one small parser, fuzzed, serves both sides.
package vp8rtp

import (
	"errors"
	"fmt"
)

// The descriptor's layout (RFC 7741 §4.2):
//
//	      0 1 2 3 4 5 6 7
//	     +-+-+-+-+-+-+-+-+
//	     |X|R|N|S|R| PID | (REQUIRED)
//	     +-+-+-+-+-+-+-+-+
//	X:   |I|L|T|K| RSV   | (OPTIONAL)
//	     +-+-+-+-+-+-+-+-+
//	I:   |M| PictureID   | (OPTIONAL, 7 or 15 bits)
//	     +-+-+-+-+-+-+-+-+
//	L:   |   TL0PICIDX   | (OPTIONAL)
//	     +-+-+-+-+-+-+-+-+
//	T/K: |TID|Y| KEYIDX  | (OPTIONAL)
//	     +-+-+-+-+-+-+-+-+
const (
	bitX = 0x80
	bitN = 0x20
	bitS = 0x10
	bitI = 0x80
	bitL = 0x40
	bitT = 0x20
	bitK = 0x10
	bitM = 0x80
	bitY = 0x20

	// MaxPictureID is the largest 15-bit picture ID.
	MaxPictureID = 0x7fff
	// MaxDescriptorLen is the longest descriptor: every optional field,
	// a 15-bit picture ID.
	MaxDescriptorLen = 6
)

// ErrMalformed reports a payload that is not a VP8 RTP payload.
var ErrMalformed = errors.New("vp8rtp: malformed payload descriptor")

// Descriptor is a VP8 payload descriptor. The Has fields say which
// optional fields are present; a field that is absent is zero.
type Descriptor struct {
	// NonReference (N): no other frame references this one; a receiver
	// may drop it.
	NonReference bool
	// Start (S): the packet begins a VP8 partition; with PartitionID 0,
	// it begins a frame.
	Start       bool
	PartitionID uint8 // PID, 0-7

	// Extended (X): the byte of I, L, T, K flags follows. Append writes
	// it whenever an optional field is present; a sender may also send it
	// with no flag set.
	Extended bool

	HasPictureID bool
	// LongPictureID (M): the picture ID is 15 bits (Chrome's choice, so
	// an SFU can rewrite it in place), not 7.
	LongPictureID bool
	PictureID     uint16

	HasTL0PicIdx bool
	// TL0PicIdx counts base-layer (TID 0) frames: each one carries the
	// next value and the frames above it repeat it, so a gap between two
	// base-layer frames is a lost base-layer frame.
	TL0PicIdx uint8

	// HasTID (T): the stream has temporal layers and TID says which one
	// this frame is on (0 is the base).
	HasTID bool
	TID    uint8 // 0-3
	// LayerSync (Y): the frame depends only on base-layer frames, so a
	// receiver can start decoding its layer here.
	LayerSync bool

	HasKeyIdx bool
	KeyIdx    uint8 // 0-31
}

// FrameStart reports whether the packet begins a frame (S set, PID 0).
func (d *Descriptor) FrameStart() bool { return d.Start && d.PartitionID == 0 }

// Len is the descriptor's size in bytes as Append writes it.
func (d *Descriptor) Len() int {
	n := 1
	if d.extended() {
		n++
	}
	if d.HasPictureID {
		n++
		if d.LongPictureID {
			n++
		}
	}
	if d.HasTL0PicIdx {
		n++
	}
	if d.HasTID || d.HasKeyIdx {
		n++
	}
	return n
}

func (d *Descriptor) extended() bool {
	return d.Extended || d.HasPictureID || d.HasTL0PicIdx || d.HasTID || d.HasKeyIdx
}

// Parse reads the descriptor at the start of an RTP payload and returns it
// with the VP8 data that follows. A truncated descriptor, or one with no
// data after it, is an error: no sender makes either.
//
// Receivers are lenient where RFC 7741 lets them be: the reserved bits are
// ignored, and TL0PICIDX without T (which the RFC forbids) is read but
// does not make the stream layered.
func Parse(payload []byte) (Descriptor, []byte, error) {
	var d Descriptor
	if len(payload) == 0 {
		return d, nil, fmt.Errorf("%w: empty payload", ErrMalformed)
	}
	b := payload[0]
	d.NonReference = b&bitN != 0
	d.Start = b&bitS != 0
	d.PartitionID = b & 0x07
	i := 1
	if b&bitX != 0 {
		if i >= len(payload) {
			return Descriptor{}, nil, fmt.Errorf("%w: X set but the payload ends after 1 byte", ErrMalformed)
		}
		x := payload[i]
		i++
		d.Extended = true
		d.HasPictureID = x&bitI != 0
		d.HasTL0PicIdx = x&bitL != 0
		d.HasTID = x&bitT != 0
		d.HasKeyIdx = x&bitK != 0
	}
	if d.HasPictureID {
		if i >= len(payload) {
			return Descriptor{}, nil, fmt.Errorf("%w: picture ID missing", ErrMalformed)
		}
		if payload[i]&bitM != 0 {
			if i+1 >= len(payload) {
				return Descriptor{}, nil, fmt.Errorf("%w: 15-bit picture ID truncated", ErrMalformed)
			}
			d.LongPictureID = true
			d.PictureID = uint16(payload[i]&0x7f)<<8 | uint16(payload[i+1])
			i += 2
		} else {
			d.PictureID = uint16(payload[i])
			i++
		}
	}
	if d.HasTL0PicIdx {
		if i >= len(payload) {
			return Descriptor{}, nil, fmt.Errorf("%w: TL0PICIDX missing", ErrMalformed)
		}
		d.TL0PicIdx = payload[i]
		i++
	}
	if d.HasTID || d.HasKeyIdx {
		if i >= len(payload) {
			return Descriptor{}, nil, fmt.Errorf("%w: TID/KEYIDX byte missing", ErrMalformed)
		}
		t := payload[i]
		i++
		// The RFC has receivers ignore the half of this byte whose flag is
		// clear, so those bits stay zero here.
		if d.HasTID {
			d.TID = t >> 6
			d.LayerSync = t&bitY != 0
		}
		if d.HasKeyIdx {
			d.KeyIdx = t & 0x1f
		}
	}
	if i >= len(payload) {
		return Descriptor{}, nil, fmt.Errorf("%w: no VP8 data after a %d-byte descriptor", ErrMalformed, i)
	}
	return d, payload[i:], nil
}

// Validate checks that every field fits its bits.
func (d *Descriptor) Validate() error {
	switch {
	case d.PartitionID > 7:
		return fmt.Errorf("vp8rtp: partition index %d does not fit 3 bits", d.PartitionID)
	case d.HasPictureID && d.LongPictureID && d.PictureID > MaxPictureID:
		return fmt.Errorf("vp8rtp: picture ID %d does not fit 15 bits", d.PictureID)
	case d.HasPictureID && !d.LongPictureID && d.PictureID > 0x7f:
		return fmt.Errorf("vp8rtp: picture ID %d does not fit 7 bits", d.PictureID)
	case d.TID > 3:
		return fmt.Errorf("vp8rtp: TID %d does not fit 2 bits", d.TID)
	case d.KeyIdx > 31:
		return fmt.Errorf("vp8rtp: KEYIDX %d does not fit 5 bits", d.KeyIdx)
	case !d.HasPictureID && d.PictureID != 0, !d.HasTL0PicIdx && d.TL0PicIdx != 0,
		!d.HasTID && (d.TID != 0 || d.LayerSync), !d.HasKeyIdx && d.KeyIdx != 0:
		return errors.New("vp8rtp: a field is set but marked absent")
	}
	return nil
}

// Append writes the descriptor to b and returns the extended slice.
func (d *Descriptor) Append(b []byte) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return b, err
	}
	first := d.PartitionID
	if d.NonReference {
		first |= bitN
	}
	if d.Start {
		first |= bitS
	}
	if !d.extended() {
		return append(b, first), nil
	}
	var x byte
	if d.HasPictureID {
		x |= bitI
	}
	if d.HasTL0PicIdx {
		x |= bitL
	}
	if d.HasTID {
		x |= bitT
	}
	if d.HasKeyIdx {
		x |= bitK
	}
	b = append(b, first|bitX, x)
	if d.HasPictureID {
		if d.LongPictureID {
			b = append(b, bitM|byte(d.PictureID>>8), byte(d.PictureID))
		} else {
			b = append(b, byte(d.PictureID))
		}
	}
	if d.HasTL0PicIdx {
		b = append(b, d.TL0PicIdx)
	}
	if d.HasTID || d.HasKeyIdx {
		t := d.TID<<6 | d.KeyIdx
		if d.LayerSync {
			t |= bitY
		}
		b = append(b, t)
	}
	return b, nil
}
