package pipeline

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"

	"invigil/media"
	"invigil/vp8rtp"
)

// vp8Packet makes a packet with a VP8 payload descriptor carrying a 15-bit
// picture ID, then body.
func vp8Packet(seq uint16, ts uint32, start, marker bool, picID uint16, body ...byte) *rtp.Packet {
	d := []byte{0x80, 0x80, 0x80 | byte(picID>>8), byte(picID)}
	if start {
		d[0] |= 0x10
	}
	return &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts, Marker: marker}, Payload: append(d, body...)}
}

// testFrame is frame n (3000 ticks apart) split in k packets from seq.
func testFrame(seq uint16, n, k int) []*rtp.Packet {
	var out []*rtp.Packet
	for i := 0; i < k; i++ {
		out = append(out, vp8Packet(seq+uint16(i), uint32(n*3000), i == 0, i == k-1, uint16(n), byte(n), byte(i)))
	}
	return out
}

func pushAll(a *assembler, pkts []*rtp.Packet) []assembledFrame {
	var out []assembledFrame
	for _, p := range pkts {
		out = append(out, a.push(p, time.Now())...)
	}
	return out
}

func TestAssemblerInOrder(t *testing.T) {
	a := newAssembler(maxLateTime, 90000)
	var pkts []*rtp.Packet
	seq := uint16(65530) // wraps inside the second frame
	for n := 0; n < 4; n++ {
		pkts = append(pkts, testFrame(seq, n, 3)...)
		seq += 3
	}
	out := pushAll(a, pkts)
	if len(out) != 4 {
		t.Fatalf("%d frames, want 4", len(out))
	}
	for n, f := range out {
		want := []byte{byte(n), 0, byte(n), 1, byte(n), 2}
		if !bytes.Equal(f.data, want) || f.pictureID != n || f.lossBefore || f.timestamp != uint32(n*3000) {
			t.Errorf("frame %d: %+v", n, f)
		}
	}
}

func TestAssemblerReorderAndDuplicates(t *testing.T) {
	a := newAssembler(maxLateTime, 90000)
	f0, f1 := testFrame(100, 0, 3), testFrame(103, 1, 3)
	order := []*rtp.Packet{f0[0], f0[2], f0[1], f0[1], f1[1], f1[0], f1[2], f1[2]}
	out := pushAll(a, order)
	if len(out) != 2 || out[0].lossBefore || out[1].lossBefore {
		t.Fatalf("frames %+v", out)
	}
	if !a.late(101) || a.late(106) {
		t.Error("late() wrong after two frames")
	}
}

// TestAssemblerGivesUp: a missing packet is waited for up to maxLateTime of
// RTP time, then its frame is dropped and later frames flow, flagged.
func TestAssemblerGivesUp(t *testing.T) {
	a := newAssembler(maxLateTime, 90000)
	out := pushAll(a, testFrame(0, 0, 2))
	broken := testFrame(2, 1, 3)
	out = append(out, pushAll(a, []*rtp.Packet{broken[0], broken[2]})...)
	// Frames 2…5 are complete but wait behind the hole (up to 300 ms).
	seq := uint16(5)
	for n := 2; n <= 5; n++ {
		out = append(out, pushAll(a, testFrame(seq, n, 2))...)
		seq += 2
	}
	if len(out) != 1 {
		t.Fatalf("%d frames out while the hole is young, want 1", len(out))
	}
	// Frame 6 is 500 ms after frame 1: give up on it.
	out = append(out, pushAll(a, testFrame(seq, 16, 2))...)
	if len(out) != 6 {
		t.Fatalf("%d frames out after giving up, want 6", len(out))
	}
	if !out[1].lossBefore || out[1].pictureID != 2 || out[2].lossBefore {
		t.Errorf("loss flags: %+v %+v", out[1], out[2])
	}
	// The packet arriving now is late.
	if !a.late(3) {
		t.Error("the missing packet is not late after giving up")
	}
}

func TestAssemblerLostMarkerAndPadding(t *testing.T) {
	a := newAssembler(maxLateTime, 90000)
	f0 := testFrame(10, 0, 2)
	f0[1].Marker = false // the marker is lost, the next frame shows the end
	pad := &rtp.Packet{Header: rtp.Header{SequenceNumber: 12, Timestamp: 0}}
	f1 := testFrame(13, 1, 2)
	out := pushAll(a, append(append(f0, pad), f1...))
	if len(out) != 2 || out[1].lossBefore {
		t.Fatalf("frames %+v", out)
	}
}

func TestAssemblerStartsMidFrame(t *testing.T) {
	a := newAssembler(maxLateTime, 90000)
	f0 := testFrame(0, 0, 3)
	out := pushAll(a, append(f0[1:], testFrame(3, 1, 2)...))
	if len(out) != 1 || out[0].pictureID != 1 || !out[0].lossBefore {
		t.Fatalf("frames %+v", out)
	}
}

// TestAssemblerWindow: a frame larger than the window, or a hole far
// behind the newest packet, is given up on; the frames after it flow.
func TestAssemblerWindow(t *testing.T) {
	a := newAssembler(time.Hour, 90000)
	pushAll(a, testFrame(0, 0, 1))
	var giant []*rtp.Packet
	for i := 0; i < assemblerWindow+100; i++ {
		giant = append(giant, vp8Packet(uint16(1+i), 3000, i == 0, false, 1, 1))
	}
	if out := pushAll(a, giant); len(out) != 0 {
		t.Fatalf("frames out of an endless frame: %+v", out)
	}
	out := pushAll(a, testFrame(uint16(1+len(giant)), 2, 2))
	if len(out) != 1 || !out[0].lossBefore || out[0].pictureID != 2 {
		t.Fatalf("frames %+v", out)
	}

	b := newAssembler(maxLateTime, 90000)
	pushAll(b, testFrame(0, 0, 1))
	pushAll(b, []*rtp.Packet{testFrame(1, 1, 2)[0]})
	out = pushAll(b, testFrame(1+assemblerWindow+10, 20, 1))
	if len(out) != 1 || !out[0].lossBefore || out[0].pictureID != 20 {
		t.Fatalf("frames %+v", out)
	}
}

// FuzzReceiver feeds arbitrary RTP packets (length-prefixed) through frame
// assembly and libvpx decoding: nothing may crash or hang, whatever the
// sequence numbers, timestamps and payloads.
func FuzzReceiver(f *testing.F) {
	pub := newPublisher(f, "fuzz")
	pic := picture(f, "messi5.jpg")
	var stream []byte
	add := func(b *[]byte, p *rtp.Packet) {
		raw, err := p.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		*b = binary.BigEndian.AppendUint16(*b, uint16(len(raw)))
		*b = append(*b, raw...)
	}
	for i := 0; i < 3; i++ {
		for _, p := range pub.encode(pic) {
			add(&stream, p)
		}
	}
	f.Add(stream)
	// Frames marked L1T3, whose upper-layer frames are skipped: small
	// made-up bodies (inter frames, bit 0 of the tag set), since a seed of
	// real frames, tens of kB, leaves the fuzzer minimizing for minutes.
	pay := vp8rtp.NewPacketizer(1200, true, 100, 7)
	var layered []byte
	for n, tid := range []uint8{0, 2, 1, 2, 0, 2} {
		payloads, err := pay.Packetize([]byte{0x01 | byte(n)<<1, 0x02, 0x03}, vp8rtp.Layer{TID: tid, Sync: n == 1})
		if err != nil {
			f.Fatal(err)
		}
		add(&layered, &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(10 + n), Timestamp: uint32(n * 6000),
			Marker: true}, Payload: payloads[0]})
	}
	f.Add(layered)
	var small []byte
	for _, p := range testFrame(65534, 0, 3) {
		add(&small, p)
	}
	f.Add(small)
	f.Add([]byte{0, 12, 0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1})

	m, err := newMetrics(prometheus.NewRegistry(), 1, func() float64 { return 0 })
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pool := newMatPool(2)
		defer pool.close()
		r, err := newReceiver(m, pool, 90000, func(string) {}, 0, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer r.close()
		now := time.Unix(0, 0)
		for len(data) >= 2 {
			n := int(binary.BigEndian.Uint16(data))
			data = data[2:]
			if n > len(data) {
				n = len(data)
			}
			var p rtp.Packet
			if err := p.Unmarshal(data[:n]); err == nil {
				now = now.Add(time.Millisecond)
				frames := r.assemble(&p, now)
				for i := range frames {
					if d, ok := r.decode(&frames[i], now); ok {
						pool.put(d.i420)
					}
				}
			}
			data = data[n:]
		}
	})
}

// TestAssemblerGivesUpAfterWaiting: a garbage packet ahead in sequence
// with a timestamp from nowhere becomes the newest packet; a hole behind it
// is neither given up on at once (as its timestamp, far ahead, would say)
// nor kept until the stream catches up with it, but given up on after
// maxLateTime of waiting, and the frames after it flow.
func TestAssemblerGivesUpAfterWaiting(t *testing.T) {
	a := newAssembler(maxLateTime, 90000)
	at := time.Unix(1000, 0)
	push := func(pkts ...*rtp.Packet) []assembledFrame {
		var out []assembledFrame
		for _, p := range pkts {
			out = append(out, a.push(p, at)...)
		}
		return out
	}
	out := push(testFrame(0, 0, 2)...)
	broken := testFrame(2, 1, 3)
	out = append(out, push(broken[0], broken[2])...) // broken[1] is lost
	junk := vp8Packet(400, 0x80000000, false, false, 0, 0xff)
	out = append(out, push(junk)...)
	seq := uint16(5)
	for n := 2; n <= 4; n++ { // 100 ms of frames: the hole is still young
		at = at.Add(50 * time.Millisecond)
		out = append(out, push(testFrame(seq, n, 2)...)...)
		seq += 2
	}
	if len(out) != 1 {
		t.Fatalf("%d frames out while the hole is young, want 1", len(out))
	}
	at = at.Add(maxLateTime)
	out = append(out, push(testFrame(seq, 5, 2)...)...)
	if len(out) != 5 || !out[1].lossBefore || out[1].pictureID != 2 || out[2].lossBefore || out[4].pictureID != 5 {
		t.Fatalf("after waiting %v: %d frames out, want the 4 after the hole flagged as after a loss: %+v", maxLateTime, len(out), out)
	}
}

// TestReceiverIgnoresStrayPackets: stray packets ahead of a real VP8
// stream, inside the assembler's window and beyond it, with timestamps
// from nowhere, do not make the stream's own packets late, even when a
// lost packet makes the assembler give up on a frame while they sit there;
// the stream's packet with a stray's sequence number takes its place.
// Packets pass the SFU's clock first, as in the server: it screens out
// the numbers far from the stream, the assembler the near ones.
func TestReceiverIgnoresStrayPackets(t *testing.T) {
	pub := newPublisher(t, "cand-1")
	r, pool, reg, done := testReceiver(t, func(string) { pub.wantKey.Store(true) }, 0, 2*time.Second)
	defer done()
	pic := picture(t, "messi5.jpg")
	at := time.Unix(1000, 0)
	const frames = 60
	decoded := make([]bool, frames)
	var strays []uint16
	var lastSeq uint16
	clock := media.NewClock(90000)
	firstTS, haveFirst := uint32(0), false
	for i := 0; i < frames; i++ {
		pkts := pub.encode(pic)
		last := pkts[len(pkts)-1]
		lastSeq = last.SequenceNumber
		switch i {
		case 5:
			for _, ahead := range []uint16{nearAhead + 8, 300, assemblerWindow + 100, 2*assemblerWindow - 10} {
				stray := &rtp.Packet{Header: rtp.Header{Version: 2, SSRC: last.SSRC, SequenceNumber: last.SequenceNumber + ahead,
					Timestamp: last.Timestamp + 0x7fff0000, Marker: true, PayloadType: 96}, Payload: []byte{0x10, 0x00, 0x9d, 0x01}}
				pkts = append(pkts, stray)
				strays = append(strays, stray.SequenceNumber)
			}
		case 8:
			pkts = pkts[1:] // lost: the assembler gives up on this frame while the strays wait ahead
		}
		for _, raw := range pkts {
			stamped, ok := clock.Stamp(raw.Clone(), at)
			if !ok {
				continue
			}
			p := stamped.RTP
			if !haveFirst {
				firstTS, haveFirst = p.Timestamp, true
			}
			for _, f := range r.assemble(p, at) {
				if d, ok := r.decode(&f, at); ok {
					if k := int((d.ts - firstTS) / rtpPerFrame); k < frames {
						decoded[k] = true
					}
					pool.put(d.i420)
				}
			}
		}
		at = at.Add(time.Second / testFPS)
	}
	late := metricValue(t, reg, "invigil_pipeline_packets_dropped_total", "reason", dropLate)
	far := clock.Stats().Stray
	n, missing := 0, []int{}
	for k, ok := range decoded {
		if ok {
			n++
		} else {
			missing = append(missing, k)
		}
	}
	t.Logf("%d of %d frames decoded (missing %v); packets dropped: %v late, %v stray (by the clock); last sequence number %d, strays at %v",
		n, frames, missing, late, far, lastSeq, strays)
	if int16(lastSeq-strays[0]) <= 0 {
		t.Fatalf("the stream never reached the nearest stray's sequence number %d (last %d): make it longer", strays[0], lastSeq)
	}
	if late != 0 || far != 3 {
		t.Errorf("%v packets late, %v stray: want none late and the 3 strays far ahead screened out by the clock", late, far)
	}
	for k := 0; k < frames; k++ {
		// The lost frame and those after it until a keyframe answers the
		// request are gone; everything else decodes.
		if !decoded[k] && (k < 8 || k > 16) {
			t.Errorf("frame %d not decoded", k)
		}
	}
}
