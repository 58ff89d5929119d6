package simulate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// An Ogg Opus reader (RFC 3533 pages, RFC 7845 Opus mapping) that splits
// pages into packets by their lacing values, so files with many packets per
// page (what opusenc and ffmpeg write by default: about a second per page)
// read as well as one-packet-per-page ones, and packets that span pages are
// joined. pion's oggreader returns a page's segments joined, which only
// works with one packet per page.

// Bounds on what a hostile or broken file can make the reader hold.
const (
	maxOggBytes  = 64 << 20 // about 17 minutes at Opus's highest bitrate
	maxOggPacket = 64 << 10 // an Opus packet is at most 6 × 1275 bytes + framing
)

// oggOpus is what an Ogg Opus stream holds.
type oggOpus struct {
	channels int
	preSkip  int      // samples at 48 kHz to drop from the decoded start
	packets  [][]byte // the audio packets, in order
}

var errNotOgg = errors.New("not an Ogg file")

// readOggOpus reads one logical Ogg Opus stream: an OpusHead packet, an
// OpusTags packet, then audio packets. Pages' CRCs are checked; chained or
// multiplexed streams (a second serial number) are refused.
func readOggOpus(r io.Reader) (*oggOpus, error) {
	r = io.LimitReader(r, maxOggBytes+1)
	var (
		total   int64
		serial  uint32
		seq     uint32
		pages   int
		pending []byte // a packet continued on the next page
		packets [][]byte
		ended   bool
	)
	var hdr [27]byte
	for {
		n, err := io.ReadFull(r, hdr[:])
		if err == io.EOF && pages > 0 {
			break
		}
		if err != nil {
			if pages == 0 {
				return nil, fmt.Errorf("%w: %d-byte page header unreadable", errNotOgg, n)
			}
			return nil, fmt.Errorf("Ogg page %d: truncated header", pages+1)
		}
		if string(hdr[0:4]) != "OggS" {
			if pages == 0 {
				return nil, errNotOgg
			}
			return nil, fmt.Errorf("Ogg page %d: no capture pattern (corrupt or not Ogg)", pages+1)
		}
		if hdr[4] != 0 {
			return nil, fmt.Errorf("Ogg page %d: stream structure version %d (want 0)", pages+1, hdr[4])
		}
		flags := hdr[5]
		pageSerial := binary.LittleEndian.Uint32(hdr[14:18])
		pageSeq := binary.LittleEndian.Uint32(hdr[18:22])
		crc := binary.LittleEndian.Uint32(hdr[22:26])
		segs := int(hdr[26])
		lacing := make([]byte, segs)
		if _, err := io.ReadFull(r, lacing); err != nil {
			return nil, fmt.Errorf("Ogg page %d: truncated segment table", pages+1)
		}
		size := 0
		for _, l := range lacing {
			size += int(l)
		}
		body := make([]byte, size)
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, fmt.Errorf("Ogg page %d: truncated: %d bytes of data announced", pages+1, size)
		}
		total += int64(27 + segs + size)
		if total > maxOggBytes {
			return nil, fmt.Errorf("Ogg file longer than %d bytes", maxOggBytes)
		}
		binary.LittleEndian.PutUint32(hdr[22:26], 0)
		if got := oggCRC(oggCRC(oggCRC(0, hdr[:]), lacing), body); got != crc {
			return nil, fmt.Errorf("Ogg page %d: CRC mismatch (corrupt file)", pages+1)
		}
		switch {
		case pages == 0:
			if flags&0x02 == 0 {
				return nil, errors.New("Ogg page 1 does not begin a stream")
			}
			serial = pageSerial
		case pageSerial != serial:
			return nil, errors.New("Ogg file holds more than one stream (chained or multiplexed); give a single Opus stream")
		case ended:
			return nil, fmt.Errorf("Ogg page %d comes after the end of the stream", pages+1)
		case pageSeq != seq+1:
			return nil, fmt.Errorf("Ogg page %d: sequence number %d after %d (pages missing)", pages+1, pageSeq, seq)
		}
		seq = pageSeq
		pages++
		if flags&0x01 == 0 && pending != nil {
			return nil, fmt.Errorf("Ogg page %d: a packet left unfinished on the page before", pages)
		}
		if flags&0x01 != 0 && pending == nil {
			// A continuation of a packet we never saw the start of.
			return nil, fmt.Errorf("Ogg page %d continues a packet that did not begin", pages)
		}
		off := 0
		for _, l := range lacing {
			pending = append(pending, body[off:off+int(l)]...)
			off += int(l)
			if len(pending) > maxOggPacket {
				return nil, fmt.Errorf("Ogg page %d: packet of more than %d bytes", pages, maxOggPacket)
			}
			if l < 255 {
				if pending == nil {
					pending = []byte{}
				}
				packets = append(packets, pending)
				pending = nil
			}
		}
		if flags&0x04 != 0 {
			ended = true
		}
	}
	if pending != nil {
		return nil, errors.New("Ogg file ends inside a packet (truncated)")
	}
	return parseOpusStream(packets)
}

// parseOpusStream reads the identification and comment headers (RFC 7845
// section 5) and keeps the audio packets.
func parseOpusStream(packets [][]byte) (*oggOpus, error) {
	if len(packets) == 0 || len(packets[0]) < 19 || string(packets[0][:8]) != "OpusHead" {
		return nil, errors.New("Ogg file is not Opus (no OpusHead header; Vorbis, FLAC and others are not read)")
	}
	head := packets[0]
	if head[8]>>4 != 0 {
		return nil, fmt.Errorf("Ogg Opus version %d is not supported", head[8])
	}
	o := &oggOpus{channels: int(head[9]), preSkip: int(binary.LittleEndian.Uint16(head[10:12]))}
	if o.channels < 1 {
		return nil, errors.New("Ogg Opus header with 0 channels")
	}
	if mapping := head[18]; mapping != 0 || o.channels > 2 {
		return nil, fmt.Errorf("Ogg Opus with %d channels (mapping family %d): only mono and stereo are read", o.channels, mapping)
	}
	if len(packets) < 2 || len(packets[1]) < 8 || string(packets[1][:8]) != "OpusTags" {
		return nil, errors.New("Ogg Opus file without its OpusTags header")
	}
	o.packets = packets[2:]
	if len(o.packets) == 0 {
		return nil, errors.New("Ogg Opus file with no audio packets")
	}
	return o, nil
}

// oggCRCTable is Ogg's CRC-32: polynomial 0x04c11db7, not reflected,
// initial value 0, no final XOR.
var oggCRCTable = func() (t [256]uint32) {
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return t
}()

func oggCRC(crc uint32, b []byte) uint32 {
	for _, c := range b {
		crc = crc<<8 ^ oggCRCTable[byte(crc>>24)^c]
	}
	return crc
}
