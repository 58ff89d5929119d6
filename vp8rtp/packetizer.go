package vp8rtp

import (
	"errors"
	"fmt"
)

// Layer says where an encoded frame sits among the temporal layers.
type Layer struct {
	// TID is the frame's temporal layer (0 is the base).
	TID uint8
	// Sync: the frame depends only on base-layer frames (Y).
	Sync bool
	// Droppable: no later frame references it (N).
	Droppable bool
}

// Packetizer splits encoded VP8 frames into RTP payloads with the
// descriptor Chrome writes: a 15-bit picture ID on every packet, and for a
// layered stream TL0PICIDX, TID and Y as well. One Packetizer numbers one
// stream's pictures; it is not safe for concurrent use.
type Packetizer struct {
	// MTU is the most bytes of one payload, descriptor included.
	MTU int
	// Layered writes the temporal-layer fields (L and T). Without it the
	// descriptor has the picture ID only, as Chrome sends a stream without
	// layers.
	Layered   bool
	pictureID uint16
	tl0PicIdx uint8
}

// NewPacketizer starts a packetizer whose picture IDs and TL0PICIDX
// begin at the given values, as a browser picks them at random.
func NewPacketizer(mtu int, layered bool, firstPictureID uint16, firstTL0PicIdx uint8) *Packetizer {
	return &Packetizer{MTU: mtu, Layered: layered, pictureID: firstPictureID & MaxPictureID, tl0PicIdx: firstTL0PicIdx - 1}
}

// Packetize splits one frame into payloads, each at most MTU bytes.
// The layer is ignored when the packetizer is not Layered.
func (p *Packetizer) Packetize(frame []byte, layer Layer) ([][]byte, error) {
	if len(frame) == 0 {
		return nil, errors.New("vp8rtp: empty frame")
	}
	d := Descriptor{Start: true, Extended: true, HasPictureID: true, LongPictureID: true, PictureID: p.pictureID}
	if p.Layered {
		if layer.TID == 0 {
			// Each base-layer frame takes the next index; the frames above
			// it carry the index of the base frame they build on.
			p.tl0PicIdx++
		}
		d.HasTL0PicIdx, d.TL0PicIdx = true, p.tl0PicIdx
		d.HasTID, d.TID, d.LayerSync = true, layer.TID, layer.Sync
		d.NonReference = layer.Droppable
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	room := p.MTU - d.Len()
	if room < 1 {
		return nil, fmt.Errorf("vp8rtp: MTU %d leaves no room after a %d-byte descriptor", p.MTU, d.Len())
	}
	out := make([][]byte, 0, (len(frame)+room-1)/room)
	for off := 0; off < len(frame); off += room {
		end := min(off+room, len(frame))
		pkt := make([]byte, 0, d.Len()+end-off)
		pkt, err := d.Append(pkt)
		if err != nil {
			return nil, err
		}
		out = append(out, append(pkt, frame[off:end]...))
		d.Start = false
	}
	p.pictureID = (p.pictureID + 1) & MaxPictureID
	return out, nil
}
