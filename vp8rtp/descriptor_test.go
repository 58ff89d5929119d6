package vp8rtp

import (
	"bytes"
	"errors"
	"testing"

	"github.com/pion/rtp/codecs"
)

// A descriptor as Chrome sends it for an L1T3 stream: X and S set; I, L
// and T; a 15-bit picture ID 0x1234; TL0PICIDX 7; TID 2 with Y.
var chromeL1T3 = []byte{0x90, 0xe0, 0x80 | 0x12, 0x34, 7, 2<<6 | 0x20, 0xaa}

func TestParseChromeDescriptor(t *testing.T) {
	d, data, err := Parse(chromeL1T3)
	if err != nil {
		t.Fatal(err)
	}
	want := Descriptor{Start: true, Extended: true, HasPictureID: true, LongPictureID: true, PictureID: 0x1234,
		HasTL0PicIdx: true, TL0PicIdx: 7, HasTID: true, TID: 2, LayerSync: true}
	if d != want {
		t.Fatalf("got %+v, want %+v", d, want)
	}
	if !bytes.Equal(data, []byte{0xaa}) {
		t.Fatalf("data %x, want aa", data)
	}
	if !d.FrameStart() {
		t.Fatal("S with PID 0 is a frame start")
	}
}

func TestParseRejectsMalformed(t *testing.T) {
	for name, p := range map[string][]byte{
		"empty":                {},
		"descriptor only":      {0x10},
		"X without ext byte":   {0x90},
		"I without picture ID": {0x90, 0x80},
		"15-bit ID truncated":  {0x90, 0x80, 0x81},
		"L without TL0PICIDX":  {0x90, 0xc0, 0x01},
		"T without TID byte":   {0x90, 0xe0, 0x81, 0x02, 0x03},
		"K without KEYIDX":     {0x90, 0x10},
		"no data after":        {0x90, 0xe0, 0x81, 0x02, 0x03, 0x40},
	} {
		if _, _, err := Parse(p); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", name, err)
		}
	}
}

func TestDescriptorRoundTrip(t *testing.T) {
	for _, d := range []Descriptor{
		{Start: true},
		{Start: true, Extended: true},
		{PartitionID: 5, NonReference: true},
		{Start: true, Extended: true, HasPictureID: true, PictureID: 0x7f},
		{Start: true, Extended: true, HasPictureID: true, LongPictureID: true, PictureID: MaxPictureID},
		{Extended: true, HasTL0PicIdx: true, TL0PicIdx: 255, HasTID: true, TID: 3, LayerSync: true},
		{Extended: true, HasKeyIdx: true, KeyIdx: 31},
		{Start: true, Extended: true, HasPictureID: true, LongPictureID: true, PictureID: 300, HasTL0PicIdx: true, TL0PicIdx: 1,
			HasTID: true, TID: 1, HasKeyIdx: true, KeyIdx: 9, NonReference: true},
	} {
		b, err := d.Append(nil)
		if err != nil {
			t.Fatalf("%+v: %v", d, err)
		}
		if len(b) != d.Len() {
			t.Fatalf("%+v: wrote %d bytes, Len says %d", d, len(b), d.Len())
		}
		got, data, err := Parse(append(b, 0x42))
		if err != nil {
			t.Fatalf("%+v: %v", d, err)
		}
		if got != d || !bytes.Equal(data, []byte{0x42}) {
			t.Fatalf("round trip of %+v gave %+v, data %x", d, got, data)
		}
	}
}

func TestAppendRefusesFieldsThatDoNotFit(t *testing.T) {
	for _, d := range []Descriptor{
		{PartitionID: 8},
		{HasPictureID: true, PictureID: 0x80},
		{HasPictureID: true, LongPictureID: true, PictureID: 0x8000},
		{HasTID: true, TID: 4},
		{HasKeyIdx: true, KeyIdx: 32},
		{TID: 1}, // set but absent
	} {
		if _, err := d.Append(nil); err == nil {
			t.Errorf("%+v: no error", d)
		}
	}
}

func TestPacketizerNumbersLayers(t *testing.T) {
	p := NewPacketizer(20, true, MaxPictureID, 255)
	frame := bytes.Repeat([]byte{0x5a}, 30)
	// L1T3: TID 0, 2, 1, 2, 0.
	tids := []uint8{0, 2, 1, 2, 0}
	wantTL0 := []uint8{255, 255, 255, 255, 0}
	wantPic := []uint16{MaxPictureID, 0, 1, 2, 3}
	for i, tid := range tids {
		pkts, err := p.Packetize(frame, Layer{TID: tid, Sync: tid == 2 && i == 1, Droppable: tid == 2})
		if err != nil {
			t.Fatal(err)
		}
		var data []byte
		for k, pkt := range pkts {
			if len(pkt) > 20 {
				t.Fatalf("packet of %d bytes over the MTU", len(pkt))
			}
			d, payload, err := Parse(pkt)
			if err != nil {
				t.Fatal(err)
			}
			if d.Start != (k == 0) || d.PictureID != wantPic[i] || d.TL0PicIdx != wantTL0[i] || d.TID != tid ||
				!d.HasTID || !d.HasTL0PicIdx || !d.LongPictureID || d.NonReference != (tid == 2) || d.LayerSync != (i == 1) {
				t.Fatalf("frame %d packet %d: %+v", i, k, d)
			}
			data = append(data, payload...)
		}
		if !bytes.Equal(data, frame) {
			t.Fatalf("frame %d does not reassemble", i)
		}
	}
	plain := NewPacketizer(1200, false, 5, 0)
	pkts, err := plain.Packetize(frame, Layer{TID: 2})
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := Parse(pkts[0])
	if err != nil {
		t.Fatal(err)
	}
	if d.HasTID || d.HasTL0PicIdx || !d.HasPictureID || d.PictureID != 5 {
		t.Fatalf("a stream without layers got %+v", d)
	}
	if _, err := plain.Packetize(nil, Layer{}); err == nil {
		t.Fatal("an empty frame packetized")
	}
	if _, err := NewPacketizer(4, true, 0, 0).Packetize(frame, Layer{}); err == nil {
		t.Fatal("an MTU smaller than the descriptor packetized")
	}
}

// FuzzParse: garbage is an error, never a crash; whatever parses writes
// back to the same fields and agrees with pion's depacketizer (which the
// recorder uses on the same packets).
func FuzzParse(f *testing.F) {
	f.Add(chromeL1T3)
	f.Add([]byte{0x10, 0x9d})
	f.Add([]byte{0x90, 0x80, 0x05, 0x01})
	f.Add([]byte{0x90, 0x10, 0x1f, 0x00})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, payload []byte) {
		d, data, err := Parse(payload)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if len(data) == 0 || len(data) > len(payload) || d.Len() != len(payload)-len(data) {
			t.Fatalf("%d bytes of data from a %d-byte payload, descriptor %d", len(data), len(payload), d.Len())
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("parsed %+v does not validate: %v", d, err)
		}
		b, err := d.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		again, _, err := Parse(append(b, data...))
		if err != nil || again != d {
			t.Fatalf("rewritten %x parses to %+v, %v; want %+v", b, again, err, d)
		}
		var p codecs.VP8Packet
		pdata, err := p.Unmarshal(payload)
		if err != nil {
			t.Fatalf("pion refuses what we accept: %v", err)
		}
		if !bytes.Equal(pdata, data) || (p.S == 1) != d.Start || p.PID != d.PartitionID ||
			(p.I == 1) != d.HasPictureID || p.PictureID != d.PictureID || p.TL0PICIDX != d.TL0PicIdx ||
			(p.T == 1) != d.HasTID || p.TID != d.TID || (p.Y == 1) != d.LayerSync || p.KEYIDX != d.KeyIdx {
			t.Fatalf("pion reads %+v, we read %+v", p, d)
		}
	})
}
