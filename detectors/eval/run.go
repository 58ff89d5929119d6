package eval

import (
	"context"
	"fmt"
	"io"
	"time"

	"invigil/detectors"
	"invigil/detectors/rules"
)

// Analyze runs the detectors on every video of the set with its policy and
// device-check calibration, exactly as `invigil analyze --policy P
// --calibrate-ms N --frames` does, and collects what they report.
func Analyze(ctx context.Context, set *BuiltSet, modelsDir string, log io.Writer) ([]VideoResult, error) {
	var results []VideoResult
	for _, v := range set.Videos {
		start := time.Now()
		p, err := rules.DefaultPolicy(v.Truth.Policy)
		if err != nil {
			return nil, err
		}
		res := VideoResult{Scenario: v.Scenario.Name, Policy: p.Name, Truth: v.Truth.Truth}
		err = detectors.AnalyzeFile(ctx, v.Path, detectors.AnalyzeOptions{
			ModelsDir:   modelsDir,
			Policy:      p,
			CalibrateMS: v.Truth.CalibrateMS,
			Frames:      true,
		}, func(rec any) error {
			switch r := rec.(type) {
			case detectors.ViolationRecord:
				res.Detected = append(res.Detected, Detection{
					Interval:   Interval{Type: rules.Type(r.Type), StartMS: r.StartMS, EndMS: r.EndMS},
					Confidence: r.Confidence,
				})
			case detectors.FrameRecord:
				fs := FrameSummary{TMS: r.TMS, Hands: len(r.Hands)}
				for _, f := range r.Faces {
					fs.Faces = append(fs.Faces, FaceSummary{Box: f.Box, Score: f.Score, Yaw: f.YawDeg, Pitch: f.PitchDeg, Distance: f.DistanceCM})
				}
				res.Frames = append(res.Frames, fs)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("analyze %s: %w", v.Path, err)
		}
		if log != nil {
			fmt.Fprintf(log, "eval: analysed %s in %.1f s: %d true, %d detected\n",
				v.Scenario.Name, time.Since(start).Seconds(), len(res.Truth), len(res.Detected))
		}
		results = append(results, res)
	}
	return results, nil
}
