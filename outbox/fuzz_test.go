package outbox

import (
	"bytes"
	"testing"
)

// The decoder reads files a crash or a stranger may have left: on any
// input it returns an entry or errCorrupt, never panics, and an entry it
// accepts encodes back to exactly the same bytes.
func FuzzDecodeEntry(f *testing.F) {
	good, _ := encodeEntry(Entry{Kind: "opened", Key: "k1", Data: []byte(`{"a":1}`), Attachment: []byte{0xff, 0xd8, 0xff}})
	bare, _ := encodeEntry(Entry{Kind: "closed", Key: "k2"})
	f.Add(good)
	f.Add(bare)
	f.Add(good[:len(good)-1])
	f.Add(good[:len(magic)+3])
	f.Add([]byte{})
	f.Add([]byte("IVGOBX1\n\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b)
		if err != nil {
			return
		}
		again, err := encodeEntry(e)
		if err != nil {
			t.Fatalf("a decoded entry does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decode/encode changed the entry")
		}
	})
}
