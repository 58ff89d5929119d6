package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Entry is one message waiting for delivery. Kind and Key together name it:
// appending an entry whose kind and key are still queued is a no-op, so a
// producer that repeats itself queues one delivery.
type Entry struct {
	Kind string
	Key  string
	// Data is the consumer's encoding of the message.
	Data []byte
	// Attachment travels with the entry (e.g. an evidence image), so that
	// the entry on disk holds everything its delivery needs.
	Attachment []byte
}

// An entry file is
//
//	magic | u32 len + kind | u32 len + key | u32 len + data | u32 len + attachment | u32 CRC-32C
//
// in big-endian order, the checksum covering every byte before it. A rename
// puts a whole file in place; the checksum catches what a rename cannot (a
// file damaged later, or one not written by us).
var magic = []byte("IVGOBX1\n")

// Limits keep a damaged length field from making the decoder allocate
// gigabytes.
const (
	maxKind       = 64
	maxKey        = 1024
	maxData       = 16 << 20
	maxAttachment = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt marks an entry file that cannot be decoded.
var errCorrupt = errors.New("corrupt outbox entry")

func (e Entry) validate() error {
	switch {
	case e.Kind == "" || len(e.Kind) > maxKind:
		return fmt.Errorf("outbox entry kind %q: want 1 to %d bytes", e.Kind, maxKind)
	case e.Key == "" || len(e.Key) > maxKey:
		return fmt.Errorf("outbox entry key of %d bytes: want 1 to %d", len(e.Key), maxKey)
	case len(e.Data) > maxData:
		return fmt.Errorf("outbox entry %s: data of %d bytes exceeds %d", e.Key, len(e.Data), maxData)
	case len(e.Attachment) > maxAttachment:
		return fmt.Errorf("outbox entry %s: attachment of %d bytes exceeds %d", e.Key, len(e.Attachment), maxAttachment)
	}
	return nil
}

func encodeEntry(e Entry) ([]byte, error) {
	if err := e.validate(); err != nil {
		return nil, err
	}
	n := len(magic) + 4*5 + len(e.Kind) + len(e.Key) + len(e.Data) + len(e.Attachment)
	b := make([]byte, 0, n)
	b = append(b, magic...)
	for _, field := range [][]byte{[]byte(e.Kind), []byte(e.Key), e.Data, e.Attachment} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(field)))
		b = append(b, field...)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// decodeEntry reads an entry file's bytes. Anything but a whole, intact
// entry is errCorrupt, never a panic.
func decodeEntry(b []byte) (Entry, error) {
	if len(b) < len(magic)+4 || string(b[:len(magic)]) != string(magic) {
		return Entry{}, fmt.Errorf("%w: not an outbox entry (bad header)", errCorrupt)
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return Entry{}, fmt.Errorf("%w: checksum mismatch (truncated or damaged)", errCorrupt)
	}
	rest := body[len(magic):]
	var fields [4][]byte
	limits := [4]int{maxKind, maxKey, maxData, maxAttachment}
	for i := range fields {
		if len(rest) < 4 {
			return Entry{}, fmt.Errorf("%w: field %d: truncated length", errCorrupt, i)
		}
		n := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if uint64(n) > uint64(limits[i]) || uint64(n) > uint64(len(rest)) {
			return Entry{}, fmt.Errorf("%w: field %d: length %d out of range", errCorrupt, i, n)
		}
		fields[i], rest = rest[:n], rest[n:]
	}
	if len(rest) != 0 {
		return Entry{}, fmt.Errorf("%w: %d bytes after the last field", errCorrupt, len(rest))
	}
	e := Entry{Kind: string(fields[0]), Key: string(fields[1])}
	if len(fields[2]) > 0 {
		e.Data = append([]byte(nil), fields[2]...)
	}
	if len(fields[3]) > 0 {
		e.Attachment = append([]byte(nil), fields[3]...)
	}
	if e.Kind == "" || e.Key == "" {
		return Entry{}, fmt.Errorf("%w: empty kind or key", errCorrupt)
	}
	return e, nil
}

// MarshalBinary encodes the entry as its file on disk holds it (with the
// checksum), so the entry can travel elsewhere, e.g. as a message, and be
// checked on arrival.
func (e Entry) MarshalBinary() ([]byte, error) { return encodeEntry(e) }

// UnmarshalBinary decodes what MarshalBinary made; anything else (a
// truncated or foreign message) is an error, never a panic.
func (e *Entry) UnmarshalBinary(b []byte) error {
	d, err := decodeEntry(b)
	if err != nil {
		return err
	}
	*e = d
	return nil
}
