package pipeline

import (
	"image"
	"testing"
	"time"

	"github.com/pion/rtp"
	"gocv.io/x/gocv"

	"invigil/vp8rtp"
	"invigil/vpx"
)

// layeredFrame is one encoded frame of an L1T3 stream as RTP packets.
type layeredFrame struct {
	tid      uint8
	keyframe bool
	pkts     []*rtp.Packet
}

// layeredPublisher encodes a moving picture (a window panning across a
// photo) as Chrome sends L1T3: libvpx's temporal layers, packetized with
// TL0PICIDX and TID. It answers keyframe requests.
type layeredPublisher struct {
	t       testing.TB
	enc     *vpx.Encoder
	pay     *vp8rtp.Packetizer
	src     gocv.Mat
	seq     uint16
	n       int
	wantKey bool
}

func newLayeredPublisher(t testing.TB, layers int) *layeredPublisher {
	t.Helper()
	enc, err := vpx.NewEncoder(vpx.EncoderOptions{Width: testWidth, Height: testHeight, FPS: testFPS, BitrateKbps: 800,
		KeyframeInterval: 3000, TemporalLayers: layers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { enc.Close() })
	big := picture(t, "messi5.jpg")
	src := gocv.NewMat()
	gocv.Resize(big, &src, image.Pt(testWidth*3/2, testHeight*3/2), 0, 0, gocv.InterpolationLinear)
	t.Cleanup(func() { src.Close() })
	return &layeredPublisher{t: t, enc: enc, pay: vp8rtp.NewPacketizer(1200, layers > 1, 32760, 250), src: src, seq: 65000}
}

func (p *layeredPublisher) next() layeredFrame {
	p.t.Helper()
	x, y := (p.n*6)%(testWidth/2), (p.n*3)%(testHeight/2)
	roi := p.src.Region(image.Rect(x, y, x+testWidth, y+testHeight))
	pic := roi.Clone()
	roi.Close()
	defer pic.Close()
	out, err := p.enc.EncodeFrames(pic, p.n == 0 || p.wantKey)
	if err != nil {
		p.t.Fatal(err)
	}
	p.wantKey = false
	f := layeredFrame{tid: out[0].TID, keyframe: out[0].Keyframe}
	payloads, err := p.pay.Packetize(out[0].Data, vp8rtp.Layer{TID: out[0].TID, Sync: out[0].Sync, Droppable: out[0].Droppable})
	if err != nil {
		p.t.Fatal(err)
	}
	for i, pl := range payloads {
		f.pkts = append(f.pkts, &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: p.seq,
			Timestamp: uint32(p.n * rtpPerFrame), Marker: i == len(payloads)-1}, Payload: pl})
		p.seq++
	}
	p.n++
	return f
}

// layerRun is what a receiver made of a stream.
type layerRun struct {
	decoded, skipped, incomplete, awaiting, requests float64
	decodedTIDs                                      map[uint8]int
	decodedAt                                        []int // frame numbers
}

// receiveLayered plays frames through a receiver; alter may drop packets
// or rewrite them (nil keeps the frame as it is).
func receiveLayered(t *testing.T, pub *layeredPublisher, frames int, alter func(i int, f layeredFrame) []*rtp.Packet) layerRun {
	t.Helper()
	r, pool, reg, done := testReceiver(t, func(string) { pub.wantKey = true }, 0, time.Hour)
	defer done()
	run := layerRun{decodedTIDs: map[uint8]int{}}
	at := time.Unix(1000, 0)
	tidOf := map[int]uint8{}
	for i := 0; i < frames; i++ {
		f := pub.next()
		tidOf[i] = f.tid
		pkts := f.pkts
		if alter != nil {
			pkts = alter(i, f)
		}
		for _, p := range pkts {
			for _, af := range r.assemble(p, at) {
				if d, ok := r.decode(&af, at); ok {
					k := int(d.ts / rtpPerFrame)
					run.decodedAt = append(run.decodedAt, k)
					run.decodedTIDs[tidOf[k]]++
					pool.put(d.i420)
				}
			}
		}
		at = at.Add(time.Second / testFPS)
	}
	run.decoded = metricValue(t, reg, "invigil_pipeline_frames_decoded_total")
	run.skipped = metricValue(t, reg, "invigil_pipeline_frames_skipped_total")
	run.incomplete = metricValue(t, reg, "invigil_pipeline_frames_dropped_total", "reason", dropIncomplete)
	run.awaiting = metricValue(t, reg, "invigil_pipeline_frames_dropped_total", "reason", dropAwaitingKeyframe)
	for _, reason := range []string{keyStart, keyLoss, keyDecodeError, keyGap} {
		run.requests += metricValue(t, reg, "invigil_pipeline_keyframe_requests_total", "reason", reason)
	}
	return run
}

// TestReceiverDecodesBaseLayerOnly: of an L1T3 stream only the base
// layer (every 4th frame) is decoded, the rest skipped and counted; a
// stream without layers is decoded frame by frame.
func TestReceiverDecodesBaseLayerOnly(t *testing.T) {
	const frames = 60
	run := receiveLayered(t, newLayeredPublisher(t, 3), frames, nil)
	t.Logf("L1T3: %+v", run)
	if run.decoded != frames/4 || run.skipped != frames*3/4 || run.decodedTIDs[0] != frames/4 {
		t.Errorf("decoded %v (TIDs %v), skipped %v: want the %d base-layer frames decoded and %d skipped",
			run.decoded, run.decodedTIDs, run.skipped, frames/4, frames*3/4)
	}
	if run.incomplete != 0 || run.awaiting != 0 || run.requests != 0 {
		t.Errorf("skipping layers made %v frames incomplete, %v wait for a keyframe, %v keyframe requests: want none",
			run.incomplete, run.awaiting, run.requests)
	}
	plain := receiveLayered(t, newLayeredPublisher(t, 1), frames, nil)
	if plain.decoded != frames || plain.skipped != 0 {
		t.Errorf("a stream without layers: %v decoded, %v skipped; want all %d decoded", plain.decoded, plain.skipped, frames)
	}
}

// TestReceiverLayerLoss: losing frames above the base layer (a packet of
// one, all of another) costs nothing: every base-layer frame decodes, no
// keyframe is asked for. Losing a base-layer frame is a loss (TL0PICIDX
// skips one): a keyframe is asked for and the base frames until it are
// dropped, then decoding resumes.
func TestReceiverLayerLoss(t *testing.T) {
	const frames = 60
	pub := newLayeredPublisher(t, 3)
	upper := receiveLayered(t, pub, frames, func(i int, f layeredFrame) []*rtp.Packet {
		switch {
		case i == 9 && f.tid == 2 && len(f.pkts) > 1:
			return f.pkts[1:] // its first packet lost
		case i == 9 && f.tid == 2:
			return nil
		case i == 14 && f.tid == 1:
			return nil // all of it
		}
		return f.pkts
	})
	t.Logf("upper layers lost: %+v", upper)
	if upper.decoded != frames/4 || upper.requests != 0 || upper.incomplete != 0 {
		t.Errorf("upper-layer loss: %v decoded, %v keyframe requests, %v incomplete; want %d, 0, 0",
			upper.decoded, upper.requests, upper.incomplete, frames/4)
	}

	pub = newLayeredPublisher(t, 3)
	base := receiveLayered(t, pub, frames, func(i int, f layeredFrame) []*rtp.Packet {
		if i == 20 {
			if f.tid != 0 {
				t.Fatalf("frame 20 has TID %d, want 0", f.tid)
			}
			return nil
		}
		return f.pkts
	})
	t.Logf("base frame lost: %+v", base)
	if base.requests < 1 || base.incomplete != 1 {
		t.Errorf("base-layer loss: %v keyframe requests, %v incomplete; want a request and 1", base.requests, base.incomplete)
	}
	// Frame 24, the next base-layer frame, shows the gap: it is dropped
	// and asks for a keyframe, which the publisher makes of frame 25.
	resumed := false
	for _, k := range base.decodedAt {
		if k >= 20 && k < 25 {
			t.Errorf("frame %d decoded, though frame 20 it references was lost", k)
		}
		if k >= 25 {
			resumed = true
		}
	}
	if !resumed {
		t.Errorf("decoding did not resume after the keyframe: decoded %v", base.decodedAt)
	}
}

// TestReceiverLayersWithoutTL0PicIdx: a sender that marks layers (T) but
// does not number its base-layer frames (no L) still has its base layer
// decoded alone, and a lost base-layer frame is still noticed, by the
// picture IDs of the frames skipped after it.
func TestReceiverLayersWithoutTL0PicIdx(t *testing.T) {
	const frames = 40
	pub := newLayeredPublisher(t, 3)
	strip := func(f layeredFrame) []*rtp.Packet {
		for _, p := range f.pkts {
			d, data, err := vp8rtp.Parse(p.Payload)
			if err != nil {
				t.Fatal(err)
			}
			d.HasTL0PicIdx, d.TL0PicIdx = false, 0
			b, err := d.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			p.Payload = append(b, data...)
		}
		return f.pkts
	}
	run := receiveLayered(t, pub, frames, func(i int, f layeredFrame) []*rtp.Packet {
		if i == 8 {
			return nil // a base-layer frame
		}
		return strip(f)
	})
	t.Logf("no TL0PICIDX, base frame 8 lost: %+v", run)
	if run.skipped == 0 || run.requests < 1 || run.incomplete < 1 {
		t.Errorf("skipped %v, %v keyframe requests, %v incomplete: want frames skipped and the loss noticed", run.skipped,
			run.requests, run.incomplete)
	}
	for _, k := range run.decodedAt {
		if k == 12 {
			t.Error("frame 12 decoded though its reference, frame 8, was lost")
		}
	}
}
