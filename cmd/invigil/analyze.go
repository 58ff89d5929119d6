package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"invigil/config"
	"invigil/detectors"
	"invigil/detectors/rules"
)

const analyzeUsage = "[--policy rest_room|interview|waiting] [--frames] [--annotate OUT] [--evidence DIR] FILE"

// runAnalyze analyses a video or image file and prints JSON Lines
// (DESIGN.md): a "violation" line per violation and, with --frames, a
// "frame" line per analysed frame.
func runAnalyze(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "analyze", analyzeUsage)
	flags := config.Register(fs, "models")
	policyName := fs.String("policy", rules.PolicyRestRoom, "detection `policy`: "+strings.Join(rules.PolicyNames, ", "))
	policyFile := fs.String("policy-file", "", "JSON `FILE` overriding the policy's thresholds (fields as in the config's policies)")
	frames := fs.Bool("frames", false, "also print a line per analysed frame")
	annotate := fs.String("annotate", "", "write the input with detections drawn on it to `OUT` (.avi/.mp4/.webm for videos, .jpg/.png for images)")
	evidence := fs.String("evidence", "", "save an evidence JPEG per violation into `DIR`")
	calibrate := fs.Int64("calibrate-ms", 0, "treat the first `MS` milliseconds as the device check at 50 cm (distance calibration)")
	hfov := fs.Float64("hfov", detectors.DefaultHFOVDeg, "assumed horizontal field of view of the camera in `degrees` (without calibration)")
	fullHands := fs.Bool("full-hands", false, "use the full (slower) palm and hand landmark models")
	progress := fs.String("progress", "auto", "progress bar on stderr: auto (when a terminal), always, never")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"want exactly one FILE; usage: invigil analyze " + analyzeUsage}
	}
	cfg, err := flags.Resolve(e.getenv)
	if err != nil {
		return err
	}
	var override []byte
	if *policyFile != "" {
		if override, err = os.ReadFile(*policyFile); err != nil {
			return fmt.Errorf("policy file: %w", err)
		}
	}
	policy, err := rules.ParsePolicyOverride(*policyName, override)
	if err != nil {
		return usageError{err.Error()}
	}
	if *hfov <= 0 || *hfov >= 180 {
		return usageError{fmt.Sprintf("--hfov %g must be between 0 and 180 degrees", *hfov)}
	}
	if *calibrate < 0 {
		return usageError{"--calibrate-ms must be ≥ 0"}
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := bufio.NewWriter(e.stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	opts := detectors.AnalyzeOptions{
		ModelsDir:    cfg.ModelsDir,
		FullHands:    *fullHands,
		Policy:       policy,
		Camera:       detectors.Camera{HFOVDeg: *hfov},
		CalibrateMS:  *calibrate,
		Frames:       *frames,
		AnnotatePath: *annotate,
		EvidenceDir:  *evidence,
	}
	if showProgress(*progress, e.stderr) {
		bar := &progressBar{w: e.stderr, start: time.Now()}
		opts.Progress = bar.update
		defer bar.finish()
	}
	err = detectors.AnalyzeFile(ctx, fs.Arg(0), opts, func(rec any) error {
		if err := enc.Encode(rec); err != nil {
			return err
		}
		// Violations matter as they happen: do not hold them in the buffer.
		if _, ok := rec.(detectors.ViolationRecord); ok {
			return out.Flush()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	return out.Flush()
}

func showProgress(mode string, w io.Writer) bool {
	switch mode {
	case "always":
		return true
	case "never":
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressBar redraws one line on a terminal at most ten times a second.
type progressBar struct {
	w     io.Writer
	start time.Time
	last  time.Time
	done  int
	drawn bool
}

func (p *progressBar) update(done, total int) {
	p.done = done
	if time.Since(p.last) < 100*time.Millisecond && done != total {
		return
	}
	p.last = time.Now()
	p.drawn = true
	elapsed := time.Since(p.start).Seconds()
	rate := float64(done) / max(elapsed, 1e-3)
	if total <= 0 {
		fmt.Fprintf(p.w, "\ranalysing: %d frames, %.0f frames/s ", done, rate)
		return
	}
	const width = 30
	filled := min(width, done*width/total)
	eta := float64(total-done) / max(rate, 1e-3)
	fmt.Fprintf(p.w, "\r[%s%s] %3d%% %d/%d frames, %.0f/s, %.0fs left ",
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), done*100/total, done, total, rate, eta)
}

func (p *progressBar) finish() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
