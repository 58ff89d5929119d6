package eval

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"invigil/detectors/rules"
	"invigil/internal/testassets"
)

// testLog forwards progress lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestEvaluationMeetsThresholds builds the labeled set (or reuses the
// one `make eval` built, when its content hash is the same), runs the
// detectors on it and holds every violation type to precision and recall
// ≥ Threshold. When a type falls short it prints what the detectors saw in
// each frame of every miss and false alarm, so the cause is visible.
func TestEvaluationMeetsThresholds(t *testing.T) {
	if testing.Short() {
		t.Skip("analyses about 9 minutes of video (about a minute of CPU)")
	}
	testassets.Model(t, "face_detection_full_range.onnx")
	cache := filepath.Join(testassets.RepoRoot(t), ".cache", "eval")
	ctx := context.Background()
	set, err := Build(ctx, cache, testassets.DataDir(t), testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	results, err := Analyze(ctx, set, testassets.ModelsDir(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	scores := Score(results, PolicyMinMS)
	t.Logf("evaluation set %s:\n%s", set.Dir, Table(scores))
	short := map[rules.Type]bool{}
	for _, s := range scores {
		if s.Precision < Threshold || s.Recall < Threshold {
			short[s.Type] = true
			t.Errorf("%s: precision %.2f (%d of %d detections true), recall %.2f (%d of %d true events found); want both ≥ %.1f",
				s.Type, s.Precision, s.TP, s.Detected, s.Recall, s.TP, s.Truth, Threshold)
		}
	}
	if len(short) == 0 {
		return
	}
	for _, r := range results {
		for _, line := range errorsOf(r) {
			t.Logf("%s (%s): %s", r.Scenario, r.Policy, line)
		}
		for _, iv := range errorIntervals(r, short) {
			t.Logf("%s frames %s:\n%s", r.Scenario, span(iv), frameLines(r.Frames, iv.StartMS-1000, iv.EndMS+1000))
		}
	}
}

// errorIntervals are the missed truths and false detections of the given
// types in one video.
func errorIntervals(r VideoResult, types map[rules.Type]bool) []Interval {
	var out []Interval
	for typ := range types {
		var truth, det []Interval
		for _, iv := range r.Truth {
			if iv.Type == typ {
				truth = append(truth, iv)
			}
		}
		for _, d := range r.Detected {
			if d.Type == typ {
				det = append(det, d.Interval)
			}
		}
		used := map[int]bool{}
		for i, j := range Match(truth, det) {
			if j < 0 {
				out = append(out, truth[i])
			} else {
				used[j] = true
			}
		}
		for j, d := range det {
			if !used[j] {
				out = append(out, d)
			}
		}
	}
	return out
}

// frameLines prints the frame records between two times, one a line.
func frameLines(frames []FrameSummary, from, to int64) string {
	var b strings.Builder
	for _, f := range frames {
		if f.TMS < from || f.TMS > to {
			continue
		}
		fmt.Fprintf(&b, "  t=%5d ms hands=%d faces:", f.TMS, f.Hands)
		if len(f.Faces) == 0 {
			b.WriteString(" none")
		}
		for _, fc := range f.Faces {
			fmt.Fprintf(&b, " [box %v score %.2f yaw %.0f pitch %.0f dist %.0f]", fc.Box, fc.Score, fc.Yaw, fc.Pitch, fc.Distance)
		}
		b.WriteString("\n")
	}
	return b.String()
}
