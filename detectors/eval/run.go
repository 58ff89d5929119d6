package eval

import (
	"context"
	"fmt"
	"io"
	"syscall"
	"time"

	"invigil/detectors"
	"invigil/detectors/rules"
)

// Analyze runs the detectors on every video of the set with its policy and
// device-check calibration, exactly as `invigil analyze --policy P
// --calibrate-ms N --frames` does, and collects what they report.
//
// One analyzer serves every video, so log also receives what the whole
// set cost: CPU per analyzed frame and each network's runs.
func Analyze(ctx context.Context, set *BuiltSet, modelsDir string, log io.Writer) ([]VideoResult, error) {
	analyzer, err := detectors.NewAnalyzer(detectors.AnalyzerOptions{ModelsDir: modelsDir})
	if err != nil {
		return nil, err
	}
	defer analyzer.Close()
	networksBefore := analyzer.Networks()
	cpuBefore := processCPU()
	analyses := 0
	var results []VideoResult
	for _, v := range set.Videos {
		start := time.Now()
		p, err := rules.DefaultPolicy(v.Truth.Policy)
		if err != nil {
			return nil, err
		}
		res := VideoResult{Scenario: v.Scenario.Name, Policy: p.Name, Truth: v.Truth.Truth}
		err = detectors.AnalyzeFile(ctx, v.Path, detectors.AnalyzeOptions{
			Analyzer:    analyzer,
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
			fmt.Fprintf(log, "eval: analyzed %s in %.1f s: %d true, %d detected\n",
				v.Scenario.Name, time.Since(start).Seconds(), len(res.Truth), len(res.Detected))
		}
		analyses += len(res.Frames)
		results = append(results, res)
	}
	if log != nil && analyses > 0 {
		cpu := processCPU() - cpuBefore
		fmt.Fprintf(log, "eval: %d analyzed frames, %.1f ms of CPU each (decoding included); %s\n", analyses,
			cpu.Seconds()*1000/float64(analyses),
			detectors.FormatNetworkRuns(detectors.SubtractRuns(analyzer.Networks(), networksBefore), analyses))
	}
	return results, nil
}

// processCPU is the CPU time this process has used, all threads (OpenCV's
// too), or 0 where the system does not say.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
