package mediatest_test

import (
	"context"
	"encoding/binary"
	"math/rand"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"gocv.io/x/gocv"

	"invigil/detectors/rules"
	"invigil/recording"
	"invigil/sfu"
	"invigil/sfu/client"
	"invigil/simulate"
	"invigil/vpx"
)

// rawPublisher publishes whatever RTP the test makes, through a real pion
// peer connection: good VP8 from libvpx, then garbage.
type rawPublisher struct {
	t     testing.TB
	cl    *client.Client
	track *webrtc.TrackLocalStaticRTP
	enc   *vpx.Encoder
	pkt   rtp.Packetizer
	seq   rtp.Sequencer // the packetizer's, for packets made by hand
	rng   *rand.Rand
	ts    uint32 // RTP time of the next good frame
	sent  int    // good frames sent
}

func (s *stack) joinRawPublisher(ctx context.Context, identity string) *rawPublisher {
	s.t.Helper()
	api, err := client.NewAPI(client.APIOptions{LoopbackOnly: true, Logger: testLogger()})
	if err != nil {
		s.t.Fatal(err)
	}
	cl, err := client.Dial(ctx, client.Config{URL: s.url, API: api, Logger: testLogger(),
		Token: s.token(sfu.Grants{Identity: identity, Role: "candidate", CanPublish: true})})
	if err != nil {
		s.t.Fatal(err)
	}
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "camera", "camera")
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := cl.Publish(ctx, track); err != nil {
		s.t.Fatal(err)
	}
	waitFor(ctx, s.t, "the publisher connection", func() bool {
		return cl.Publisher().ConnectionState() == webrtc.PeerConnectionStateConnected
	})
	enc, err := vpx.NewEncoder(vpx.EncoderOptions{Width: frameW, Height: frameH, FPS: 15, BitrateKbps: 1200, KeyframeInterval: 3000})
	if err != nil {
		s.t.Fatal(err)
	}
	// A fixed start and a seeded generator make the garbage the same on
	// every run.
	seq := rtp.NewFixedSequencer(1000)
	p := &rawPublisher{t: s.t, cl: cl, track: track, enc: enc, rng: rand.New(rand.NewSource(4)), seq: seq,
		pkt: rtp.NewPacketizer(1200, 96, 0, &codecs.VP8Payloader{EnablePictureID: true}, seq, 90000)}
	s.t.Cleanup(func() {
		cl.Leave()
		enc.Close()
	})
	return p
}

// good sends frames of pic in real time, the first a keyframe if asked,
// and one every second: this publisher cannot hear keyframe requests
// (client.Publish reads its RTCP), so it heals losses the way a browser
// answering a PLI would, only later.
func (p *rawPublisher) good(ctx context.Context, pic gocv.Mat, frames int, keyframe bool) {
	tick := time.NewTicker(time.Second / 15)
	defer tick.Stop()
	for i := 0; i < frames; i++ {
		out, err := p.enc.Encode(pic, (keyframe && i == 0) || (p.sent+1)%15 == 0)
		if err != nil {
			p.t.Fatal(err)
		}
		for _, f := range out {
			for _, pk := range p.pkt.Packetize(f, 0) {
				pk.Timestamp = p.ts
				_ = p.track.WriteRTP(pk)
			}
		}
		p.ts += 6000
		p.sent++
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// garbage sends, for the given number of frame times, every kind of bad
// packet a broken or hostile sender can put through a valid SRTP session:
// corrupt, truncated and absurdly sized VP8, empty payloads, packets with
// bytes flipped, and random payloads at random sequence numbers (far from
// the stream's) and random timestamps.
func (p *rawPublisher) garbage(ctx context.Context, pic gocv.Mat, frames int) {
	tick := time.NewTicker(time.Second / 15)
	defer tick.Stop()
	r := p.rng
	for i := 0; i < frames; i++ {
		var pkts []*rtp.Packet
		out, err := p.enc.Encode(pic, i%5 == 0)
		if err != nil {
			p.t.Fatal(err)
		}
		frame := out[0]
		switch i % 6 {
		case 0: // a keyframe with its middle scrambled
			bad := append([]byte(nil), frame...)
			for k := len(bad) / 3; k < len(bad)*2/3; k++ {
				bad[k] = byte(r.Intn(256))
			}
			pkts = p.pkt.Packetize(bad, 0)
		case 1: // a truncated frame
			pkts = p.pkt.Packetize(frame[:len(frame)/4+1], 0)
		case 2: // a keyframe header that claims 16383×16383
			bad := append([]byte(nil), frame...)
			if len(bad) >= 10 {
				bad[0] &^= 1 // keyframe bit
				copy(bad[3:6], []byte{0x9d, 0x01, 0x2a})
				binary.LittleEndian.PutUint16(bad[6:], 0x3fff)
				binary.LittleEndian.PutUint16(bad[8:], 0x3fff)
			}
			pkts = p.pkt.Packetize(bad, 0)
		case 3: // random payloads far from the stream's sequence numbers
			pkts = p.pkt.Packetize(frame, 0)
			next := p.seq.NextSequenceNumber()
			pkts = append(pkts, &rtp.Packet{Header: rtp.Header{Version: 2, Marker: true, SequenceNumber: next}, Payload: []byte{0x10}})
			for k := 0; k < 8; k++ {
				b := make([]byte, 1+r.Intn(1200))
				r.Read(b)
				pkts = append(pkts, &rtp.Packet{Header: rtp.Header{Version: 2, Marker: r.Intn(2) == 0,
					SequenceNumber: next + uint16(4096+r.Intn(57000)), Timestamp: r.Uint32()}, Payload: b})
			}
		case 4: // empty and descriptor-only payloads
			for _, b := range [][]byte{{}, {0x90}, {0x10, 0xff, 0xff, 0xff}, {0x10}} {
				pkts = append(pkts, &rtp.Packet{Header: rtp.Header{Version: 2, Marker: len(b) < 2,
					SequenceNumber: p.seq.NextSequenceNumber()}, Payload: b})
			}
		case 5: // a good frame with bytes flipped in some packets
			pkts = p.pkt.Packetize(frame, 0)
			for _, pk := range pkts {
				if r.Intn(2) == 0 {
					pk.Payload = append([]byte(nil), pk.Payload...)
					pk.Payload[r.Intn(len(pk.Payload))] ^= 0xff
				}
			}
		}
		for _, pk := range pkts {
			if int(uint16(pk.SequenceNumber-pkts[0].SequenceNumber)) < 1000 { // the stream's own numbers
				pk.Timestamp = p.ts
			}
			_ = p.track.WriteRTP(pk)
		}
		p.ts += 6000
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// A candidate's camera sends garbage RTP and corrupt VP8 for two seconds
// between good stretches. The SFU keeps forwarding it and another
// candidate, the pipeline keeps analyzing both (a violation after the
// garbage is found in time, none is made up from it), the recorder's file
// still decodes and shows the picture after the garbage, and the server
// still takes new participants.
func TestBadMediaSurvives(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	st := newStack(t, stackOptions{workers: 2})
	dir := t.TempDir()
	facePath, emptyPath := scene(t, dir, "a", []person{personA}), scene(t, dir, "empty", nil)
	face, empty := gocv.IMRead(facePath, gocv.IMReadColor), gocv.IMRead(emptyPath, gocv.IMReadColor)
	defer face.Close()
	defer empty.Close()

	proctor := st.joinStaff(ctx, "proctor-1", true)
	good := st.joinCandidate(ctx, "cand-good", []simulate.Clip{{File: scene(t, dir, "b", []person{personB}), Seconds: 600}})
	bad := st.joinRawPublisher(ctx, "cand-bad")
	for _, id := range []string{"cand-good", "cand-bad"} {
		if err := proctor.cl.Subscribe(id); err != nil {
			t.Fatal(err)
		}
	}
	bad.good(ctx, face, 30, true)
	_, goodBefore := proctor.picture("cand-good")
	badBefore := proctor.packetCount("cand-bad")
	garbageMS := int64(bad.ts / 90)
	bad.garbage(ctx, face, 30)
	changeMS := int64(bad.ts / 90) // stream time (the first good frame had RTP time 0)
	bad.good(ctx, empty, 75, true)

	// The pipeline found the empty room after the garbage (all of it has
	// been sent by now: the wait is for the analysis to catch up).
	waitCtx, waitCancel := context.WithTimeout(ctx, 30*time.Second)
	defer waitCancel()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pipeline metrics: %s", st.pipelineMetrics())
		}
	})
	v := st.sink.wait(waitCtx, t, "face_off_screen after the garbage", isEvent(rules.Opened, "cand-bad", rules.FaceOffScreen))
	policy, _ := rules.DefaultPolicy(rules.PolicyRestRoom)
	t.Logf("cand-bad: garbage from %d ms, empty room from %d ms; face_off_screen from %d ms, opened at %d ms (%d ms after; limit %d)",
		garbageMS, changeMS, v.v.StartMS, v.v.OpenedMS, v.v.OpenedMS-changeMS, policy.Rules[rules.FaceOffScreen].MinMS+1500)
	// A corrupt frame may decode into a picture with no face in it, so the
	// condition may begin during the garbage; never while the face was
	// cleanly in view.
	if v.v.StartMS < garbageMS {
		t.Errorf("face_off_screen from %d ms, while the candidate was in view (garbage from %d ms)", v.v.StartMS, garbageMS)
	}
	if d := v.v.OpenedMS - changeMS; d > policy.Rules[rules.FaceOffScreen].MinMS+1500 {
		t.Errorf("face_off_screen opened %d ms after the garbage ended", d)
	}
	for _, e := range st.sink.all() {
		if e.v.Identity == "cand-good" && (e.v.Type == rules.FaceOffScreen || e.v.Type == rules.ExtraPerson || e.v.Type == rules.CameraBlocked) {
			t.Errorf("cand-good, steady in view, got %s", e.v.Type)
		}
	}
	// Forwarding went on for both.
	if _, n := proctor.picture("cand-good"); n < goodBefore+60 {
		proctor.mu.Lock()
		t.Errorf("the proctor decoded %d frames of cand-good during and after the garbage (%d packets, %d decode errors in all)",
			n-goodBefore, proctor.packets["cand-good"], proctor.decodeErrors["cand-good"])
		proctor.mu.Unlock()
	}
	if n := proctor.packetCount("cand-bad"); n < badBefore+100 {
		t.Errorf("the proctor received %d packets of cand-bad after the garbage began", n-badBefore)
	}
	t.Logf("pipeline: %v decode errors, %v frames decoded; packets dropped: %v out of sequence, %v oversized, %v late; frames dropped: %v awaiting keyframe, %v decode error, %v incomplete; keyframe requests %v",
		st.metric("invigil_pipeline_decode_errors_total"), st.metric("invigil_pipeline_frames_decoded_total"),
		st.metric("invigil_pipeline_packets_dropped_total", "reason", "out_of_sequence"),
		st.metric("invigil_pipeline_packets_dropped_total", "reason", "oversized"),
		st.metric("invigil_pipeline_packets_dropped_total", "reason", "late"),
		st.metric("invigil_pipeline_frames_dropped_total", "reason", "awaiting_keyframe"),
		st.metric("invigil_pipeline_frames_dropped_total", "reason", "decode_error"),
		st.metric("invigil_pipeline_frames_dropped_total", "reason", "incomplete"),
		st.metric("invigil_pipeline_keyframe_requests_total"))
	if st.metric("invigil_pipeline_decode_errors_total")+st.metric("invigil_pipeline_packets_dropped_total")+
		st.metric("invigil_pipeline_frames_dropped_total", "reason", "awaiting_keyframe")+
		st.metric("invigil_pipeline_frames_dropped_total", "reason", "incomplete") == 0 {
		t.Error("the pipeline counted nothing wrong in the garbage")
	}

	// The server still takes a new candidate, and analyses it.
	late := st.joinCandidate(ctx, "cand-late", []simulate.Clip{{File: emptyPath, Seconds: 600}})
	st.sink.wait(ctx, t, "a violation of a candidate who joined after the garbage", isEvent(rules.Opened, "cand-late", rules.FaceOffScreen))
	late.leave(t)
	good.leave(t)
	bad.cl.Leave()
	st.stopMedia()

	sessions, err := recording.Sessions(st.dataDir, room, "cand-bad")
	if err != nil || len(sessions) != 1 || len(sessions[0].Segments) == 0 {
		t.Fatalf("cand-bad recordings: %+v, %v", sessions, err)
	}
	segs := sessions[0].Segments
	last := segs[len(segs)-1]
	p := ffprobe(t, last.Path)
	errs := decodeErrors(t, last.Path)
	t.Logf("cand-bad: %d segment(s); last %.2f s, %d frames, %dx%d; ffmpeg says: %q", len(segs), p.Duration, p.Frames, p.Width, p.Height, errs)
	if p.Width != frameW || p.Height != frameH || p.Frames < 60 {
		t.Errorf("cand-bad's recording: %+v", p)
	}
	end := frameAt(t, last.Path, time.Duration((p.Duration-0.5)*float64(time.Second)))
	if q := psnr(end, readBGR(t, emptyPath)); q < 28 {
		t.Errorf("the end of cand-bad's recording does not show the empty room (%.1f dB)", q)
	}
}

// A burst of decodable frames whose RTP timestamps jump an hour ahead and
// back. Taken at face value, one analyzed frame an hour ahead would make
// every later frame "stale" for an hour (and open violations an hour in
// the future); the SFU's clock for the track (media.Clock) dates such
// frames by their arrival and follows the jump once frames agree on it,
// for the pipeline and the recorder alike.
//
// (A bogus sequence number far ahead is not here: SRTP's replay window in
// the SFU then drops the sender's own later packets before any tap sees
// them, so a sender can only stall its own stream.)
func TestWildRTPTimestamps(t *testing.T) {
	for _, c := range []struct {
		name string
		bad  func(ctx context.Context, p *rawPublisher, face gocv.Mat)
	}{
		{"wild timestamps", func(ctx context.Context, p *rawPublisher, face gocv.Mat) {
			normal := p.ts
			p.ts += 3600 * 90000
			p.good(ctx, face, 8, true)
			p.ts = normal + 8*6000
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			st := newStack(t, stackOptions{workers: 2, noRecorder: true})
			dir := t.TempDir()
			face, empty := gocv.IMRead(scene(t, dir, "a", []person{personA}), gocv.IMReadColor), gocv.IMRead(scene(t, dir, "empty", nil), gocv.IMReadColor)
			defer face.Close()
			defer empty.Close()
			bad := st.joinRawPublisher(ctx, "cand-bad")
			bad.good(ctx, face, 30, true)
			c.bad(ctx, bad, face)
			changeMS := int64(bad.ts / 90)
			bad.good(ctx, empty, 90, true)
			waitCtx, waitCancel := context.WithTimeout(ctx, 20*time.Second)
			defer waitCancel()
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("pipeline metrics: %s", st.pipelineMetrics())
				}
			})
			ev := st.sink.wait(waitCtx, t, "face_off_screen after the bad input", isEvent(rules.Opened, "cand-bad", rules.FaceOffScreen))
			policy, _ := rules.DefaultPolicy(rules.PolicyRestRoom)
			if d := ev.v.OpenedMS - changeMS; d > policy.Rules[rules.FaceOffScreen].MinMS+1500 || ev.v.StartMS < changeMS {
				t.Errorf("empty room from %d ms; face_off_screen from %d ms, opened at %d ms", changeMS, ev.v.StartMS, ev.v.OpenedMS)
			}
		})
	}
}
