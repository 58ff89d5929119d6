package eval

import (
	"context"
	"image"
	"io"
	"math"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
	"time"

	"gocv.io/x/gocv"
	"golang.org/x/sys/unix"

	"invigil/detectors"
	"invigil/detectors/rules"
	"invigil/internal/testassets"
	"invigil/models/runner"
)

// BenchmarkRestRoomFrame measures what one analyzed frame costs under the
// rest-room policy on one core (OpenCV limited to one thread): a real
// candidate at her desk with both hands in view, from the evaluation set,
// analyzed on the policy's schedule (faces and face landmarks every frame,
// hands every third). It reports the median and mean cost per frame, how
// many analyzed frames per second one core sustains, the share of a core
// one candidate takes at the policy's 5 frames per second (target < 10 %),
// and the ratio of the whole cost to the bare inference of the networks it
// ran, so that overhead is visible.
func BenchmarkRestRoomFrame(b *testing.B) {
	runner.SetNumThreads(1)
	defer runner.SetNumThreads(0)
	ctx := context.Background()
	set, err := Build(ctx, filepath.Join(testassets.RepoRoot(b), ".cache", "eval"), testassets.DataDir(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	frames := restRoomFrames(b, set, 30)
	defer func() {
		for _, f := range frames {
			f.Close()
		}
	}()
	policy, err := rules.DefaultPolicy(rules.PolicyRestRoom)
	if err != nil {
		b.Fatal(err)
	}
	a, err := detectors.NewAnalyzer(detectors.AnalyzerOptions{ModelsDir: testassets.ModelsDir(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	engine, err := rules.NewEngine(policy)
	if err != nil {
		b.Fatal(err)
	}
	stream := detectors.NewStream(policy, detectors.Camera{})
	step := int64(1000 / policy.AnalysisFPS)
	// Warm up so hand tracking is in its steady state.
	for i := 0; i < 2*policy.HandsEvery; i++ {
		if _, err := a.Observe(frames[i%len(frames)], int64(i)*step, stream); err != nil {
			b.Fatal(err)
		}
	}
	before := a.Inference()
	costs := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		o, err := a.Observe(frames[i%len(frames)], int64(i+2*policy.HandsEvery)*step, stream)
		if err != nil {
			b.Fatal(err)
		}
		engine.Observe(&o)
		costs = append(costs, time.Since(start))
	}
	b.StopTimer()
	inference := a.Inference().Time - before.Time
	var total time.Duration
	for _, c := range costs {
		total += c
	}
	sort.Slice(costs, func(i, j int) bool { return costs[i] < costs[j] })
	mean := total.Seconds() * 1000 / float64(len(costs))
	b.ReportMetric(float64(costs[len(costs)/2].Microseconds())/1000, "ms-median/frame")
	b.ReportMetric(mean, "ms-mean/frame")
	b.ReportMetric(1000/mean, "frames/s/core")
	b.ReportMetric(100*mean*policy.AnalysisFPS/1000, "%core/candidate@5fps")
	b.Logf("per network: %s", a.InferenceReport())
	if inference > 0 {
		b.ReportMetric(total.Seconds()/inference.Seconds(), "cost/inference")
	}
}

// restRoomFrames reads n frames of normal sitting (before the first event)
// from the rest-room hands scenario.
func restRoomFrames(b *testing.B, set *BuiltSet, n int) []gocv.Mat {
	for _, v := range set.Videos {
		if v.Scenario.Policy != rules.PolicyRestRoom || v.Scenario.Name != "hands_plant" {
			continue
		}
		capture, err := gocv.VideoCaptureFileWithAPI(v.Path, gocv.VideoCaptureFFmpeg)
		if err != nil {
			b.Fatal(err)
		}
		defer capture.Close()
		var frames []gocv.Mat
		for len(frames) < n {
			m := gocv.NewMat()
			if !capture.Read(&m) || m.Empty() {
				m.Close()
				break
			}
			frames = append(frames, m)
		}
		if len(frames) < n {
			b.Fatalf("%s: %d frames, want %d", v.Path, len(frames), n)
		}
		return frames
	}
	b.Fatal("no rest-room hands scenario in the evaluation set")
	return nil
}

// webcamAnalysisSeconds is how much of the webcam recording
// BenchmarkWebcamAnalysis analyses: long enough for the head to move and
// turn many times, short enough to hold the frames in memory.
const webcamAnalysisSeconds = 60

// BenchmarkWebcamAnalysis measures what an analysis costs on moving
// footage: the evaluation set's webcam recording of a man talking and
// moving his head (franck.mp4, no hands in view, as in mediatest's
// BenchmarkCandidates), scaled to cover 640×480 as the simulated cameras
// do, analyzed under the rest-room policy at its 5 frames per second (the
// pipeline's change detector would ask for nearly every one of them on this
// footage), with the policy's cascades and with them off (the face
// detector on every face analysis, the palm detector on every hand
// analysis while fewer than two hands are followed). One iteration is one
// pass over the first minute with a new stream. CPU is the thread's own
// (OpenCV on one thread, on this locked thread), so other load on the
// machine does not count. It reports the CPU per analysis and logs each
// network's runs per analysis.
func BenchmarkWebcamAnalysis(b *testing.B) {
	runner.SetNumThreads(1)
	defer runner.SetNumThreads(0)
	policy, err := rules.DefaultPolicy(rules.PolicyRestRoom)
	if err != nil {
		b.Fatal(err)
	}
	frames, a := webcamFrames(b, policy.AnalysisFPS)
	off := policy
	off.FaceDetectEvery, off.PalmStillEvery = 1, 1
	for _, run := range []struct {
		name   string
		policy rules.Policy
	}{{"cascades", policy}, {"no-cascades", off}} {
		b.Run(run.name, func(b *testing.B) { benchmarkWebcam(b, a, run.policy, frames) })
	}
}

// webcamFrames provisions the evaluation's sources and returns the first
// webcamAnalysisSeconds of the webcam recording (franck.mp4) sampled at
// fps, and an analyzer on the provisioned models; both are closed when the
// test ends.
func webcamFrames(t testing.TB, fps float64) ([]gocv.Mat, *detectors.Analyzer) {
	t.Helper()
	sources := filepath.Join(testassets.RepoRoot(t), ".cache", "eval", "sources")
	if err := ProvisionSources(t.Context(), sources, io.Discard); err != nil {
		t.Fatalf("the webcam recordings: %v", err)
	}
	frames := sampleFrames(t, SourcePath(sources, "franck.mp4"), fps, webcamAnalysisSeconds)
	t.Cleanup(func() {
		for _, f := range frames {
			f.Close()
		}
	})
	a, err := detectors.NewAnalyzer(detectors.AnalyzerOptions{ModelsDir: testassets.ModelsDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return frames, a
}

func benchmarkWebcam(b *testing.B, a *detectors.Analyzer, policy rules.Policy, frames []gocv.Mat) {
	// Each sub-benchmark runs on its own goroutine: the thread it measures
	// is locked here.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	frame := gocv.NewMat()
	defer frame.Close()
	step := int64(1000 / policy.AnalysisFPS)
	before := a.Networks()
	var cpu time.Duration
	analyses := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		stream := detectors.NewStream(policy, detectors.Camera{})
		for k, f := range frames {
			coverResizeInto(f, &frame, 640, 480)
			start := threadCPU(b)
			if _, err := a.Observe(frame, int64(k)*step, stream); err != nil {
				b.Fatal(err)
			}
			cpu += threadCPU(b) - start
			analyses++
		}
	}
	b.StopTimer()
	b.ReportMetric(cpu.Seconds()*1000/float64(analyses), "ms-cpu/analysis")
	b.Logf("%d analyses; per network: %s", analyses, detectors.FormatNetworkRuns(detectors.SubtractRuns(a.Networks(), before), analyses))
}

// sampleFrames reads the frames of a video that an analysis at fps would
// sample from its first seconds.
func sampleFrames(b testing.TB, path string, fps float64, seconds int) []gocv.Mat {
	capture, err := gocv.VideoCaptureFileWithAPI(path, gocv.VideoCaptureFFmpeg)
	if err != nil {
		b.Fatal(err)
	}
	defer capture.Close()
	videoFPS := capture.Get(gocv.VideoCaptureFPS)
	if !(videoFPS > 0) {
		b.Fatalf("%s: no frame rate", path)
	}
	var frames []gocv.Mat
	next := 0.0
	for n := 0; float64(n) < videoFPS*float64(seconds); n++ {
		m := gocv.NewMat()
		if !capture.Read(&m) || m.Empty() {
			m.Close()
			break
		}
		if t := float64(n) / videoFPS; t >= next {
			frames = append(frames, m)
			next += 1 / fps
			continue
		}
		m.Close()
	}
	if len(frames) < int(fps)*seconds*9/10 {
		b.Fatalf("%s: %d frames sampled, want about %d", path, len(frames), int(fps)*seconds)
	}
	return frames
}

// coverResizeInto scales src to cover w×h and keeps the center, as the
// simulated cameras show a recording.
func coverResizeInto(src gocv.Mat, dst *gocv.Mat, w, h int) {
	f := math.Max(float64(w)/float64(src.Cols()), float64(h)/float64(src.Rows()))
	scaled := gocv.NewMat()
	defer scaled.Close()
	gocv.Resize(src, &scaled, image.Pt(int(math.Ceil(float64(src.Cols())*f)), int(math.Ceil(float64(src.Rows())*f))), 0, 0, gocv.InterpolationLinear)
	x, y := (scaled.Cols()-w)/2, (scaled.Rows()-h)/2
	region := scaled.Region(image.Rect(x, y, x+w, y+h))
	defer region.Close()
	region.CopyTo(dst)
}

// threadCPU is the calling thread's CPU time.
func threadCPU(b *testing.B) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ts.Nano())
}
