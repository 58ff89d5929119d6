package pipeline

import (
	"math/rand"
	"runtime"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"gocv.io/x/gocv"
	"golang.org/x/sys/unix"

	"invigil/detectors"
	"invigil/detectors/rules"
	"invigil/internal/testassets"
	"invigil/models/runner"
	"invigil/vpx"
)

// BenchmarkPipeline measures one candidate's per-frame costs, stage by
// stage, on one core: a 640×480 VP8 stream at 15 fps (a face, an empty
// room, three people) as the SFU hands it over, depacketised and decoded
// frame by frame, and each frame analyzed under the rest-room policy
// (faces every second frame, hands every fifth) as a worker would. It
// reports the cost of each stage and, from them, the CPU one candidate
// needs per second (15 frames received, decoded and thumbnailed,
// AnalysisFPS analyzed: the full rate) and the
// candidates one core sustains. Stages are timed in CPU time of the
// benchmark's thread (every stage runs on it: one decoder thread, one
// OpenCV thread), so other load on a shared machine does not count.
func BenchmarkPipeline(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	runner.SetNumThreads(1)
	defer runner.SetNumThreads(0)
	policy := mustPolicy(b, rules.PolicyRestRoom)

	// The stream, encoded once: 4 s that loop, each loop opening with a
	// keyframe as after a PLI.
	enc, err := vpx.NewEncoder(vpx.EncoderOptions{Width: testWidth, Height: testHeight, FPS: testFPS, BitrateKbps: 1200})
	if err != nil {
		b.Fatal(err)
	}
	var stream [][]byte
	for _, sc := range []struct {
		name   string
		frames int
	}{{"messi5.jpg", 15}, {"building.jpg", 15}, {"sample3.jpg", 15}, {"sample1.jpg", 15}} {
		pic := picture(b, sc.name)
		for i := 0; i < sc.frames; i++ {
			frames, err := enc.Encode(pic, len(stream) == 0)
			if err != nil {
				b.Fatal(err)
			}
			stream = append(stream, frames...)
		}
	}
	enc.Close()
	packetizer := rtp.NewPacketizer(1200, 96, rand.Uint32(), &codecs.VP8Payloader{EnablePictureID: true}, rtp.NewRandomSequencer(), 90000)

	rcv, pool, _, done := testReceiver(b, nil, time.Second, time.Hour)
	defer done()
	a, err := detectors.NewAnalyzer(detectors.AnalyzerOptions{ModelsDir: testassets.ModelsDir(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	s := detectors.NewStream(policy, detectors.Camera{})
	engine, err := rules.NewEngine(policy)
	if err != nil {
		b.Fatal(err)
	}
	bgr := gocv.NewMat()
	defer bgr.Close()
	thumbs := newThumbnailer()
	defer thumbs.close()
	var thumb thumbnail

	var depacketize, decode, thumbnailing, convert, inference, ruling time.Duration
	var packets, frames, events int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		frame := stream[i%len(stream)]
		if i > 0 && i%len(stream) == 0 {
			frame = stream[0] // the keyframe opening the loop
		}
		pkts := packetizer.Packetize(frame, rtpPerFrame)
		packets += len(pkts)
		now := time.Now()
		t0 := threadCPU(b)
		var out []assembledFrame
		for _, p := range pkts {
			out = append(out, rcv.assemble(p, now)...)
		}
		t1 := threadCPU(b)
		depacketize += t1 - t0
		for k := range out {
			t1 = threadCPU(b)
			d, ok := rcv.decode(&out[k], now)
			t2 := threadCPU(b)
			decode += t2 - t1
			if !ok {
				b.Fatalf("frame %d did not decode", i)
			}
			frames++
			if err := thumbs.make(d.i420, &thumb); err != nil {
				b.Fatal(err)
			}
			t2b := threadCPU(b)
			thumbnailing += t2b - t2
			if err := vpx.I420ToBGR(d.i420, &bgr); err != nil {
				b.Fatal(err)
			}
			t3 := threadCPU(b)
			convert += t3 - t2b
			obs, err := a.Observe(bgr, int64(i)*1000/testFPS, s)
			if err != nil {
				b.Fatal(err)
			}
			t4 := threadCPU(b)
			inference += t4 - t3
			events += len(engine.Observe(&obs))
			ruling += threadCPU(b) - t4
			pool.put(d.i420)
		}
	}
	b.StopTimer()
	if frames != b.N {
		b.Fatalf("%d frames out of %d", frames, b.N)
	}
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(frames) / 1e3 }
	b.ReportMetric(per(depacketize), "depacketize-µs/frame")
	b.ReportMetric(per(decode), "decode-µs/frame")
	b.ReportMetric(per(thumbnailing), "thumbnail-µs/frame")
	b.ReportMetric(per(convert), "convert-µs/frame")
	b.ReportMetric(per(inference), "inference-µs/frame")
	b.ReportMetric(per(ruling), "rules-µs/frame")
	b.ReportMetric(float64(packets)/float64(frames), "packets/frame")
	// One candidate for one second: every frame received, decoded and
	// thumbnailed, the policy's full rate analyzed (the adaptive rate
	// analyses a still picture less: see mediatest's BenchmarkCandidates).
	costMS := (testFPS*(per(depacketize)+per(decode)+per(thumbnailing)) +
		policy.AnalysisFPS*(per(convert)+per(inference)+per(ruling))) / 1e3
	b.ReportMetric(costMS, "cpu-ms/candidate-s")
	b.ReportMetric(1000/costMS, "candidates/core")
}

// threadCPU is the CPU time of the calling OS thread.
func threadCPU(b *testing.B) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ts.Nano())
}
