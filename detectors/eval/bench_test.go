package eval

import (
	"context"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"invigil/detectors"
	"invigil/detectors/rules"
	"invigil/internal/testassets"
	"invigil/models/runner"
)

// BenchmarkRestRoomFrame measures what one analysed frame costs under the
// rest-room policy on one core (OpenCV limited to one thread): a real
// candidate at her desk with both hands in view, from the evaluation set,
// analysed on the policy's schedule (faces and face landmarks every frame,
// hands every third). It reports the median and mean cost per frame, how
// many analysed frames per second one core sustains, the share of a core
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
