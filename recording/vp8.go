package recording

import "encoding/binary"

// vp8Frame reads the uncompressed chunk at the start of a VP8 frame
// (RFC 6386 §9.1): whether it is a keyframe and, for keyframes, the
// picture size. ok is false for data that cannot be a VP8 frame, which the
// recorder drops rather than let it corrupt the file's decoding state.
func vp8Frame(b []byte) (keyframe bool, width, height int, ok bool) {
	if len(b) < 3 {
		return false, 0, 0, false
	}
	tag := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
	keyframe = tag&1 == 0
	version := (tag >> 1) & 7
	firstPartition := int(tag >> 5)
	if version > 3 {
		return false, 0, 0, false
	}
	if !keyframe {
		return false, 0, 0, firstPartition <= len(b)-3
	}
	if len(b) < 10 || b[3] != 0x9d || b[4] != 0x01 || b[5] != 0x2a {
		return false, 0, 0, false
	}
	width = int(binary.LittleEndian.Uint16(b[6:8]) & 0x3fff)
	height = int(binary.LittleEndian.Uint16(b[8:10]) & 0x3fff)
	if width == 0 || height == 0 || firstPartition > len(b)-10 {
		return false, 0, 0, false
	}
	return true, width, height, true
}
