package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"invigil/config"
	"invigil/detectors"
	"invigil/detectors/rules"
	"invigil/listen"
	"invigil/models"
	"invigil/vad"
)

const analyzeUsage = "[--policy rest_room|interview|waiting] [--frames] [--annotate OUT] [--evidence DIR] [--audio SOUND] [FILE]"

// runAnalyze analyses a video or image file and prints JSON Lines
// (DESIGN.md): a "violation" line per violation and, with --frames, a
// "frame" line per analyzed frame. The sound (--audio, or else a video's
// own audio track) is judged by the audio rules (talking, microphone_off)
// through the live pipeline's listening path; see analyzeAudio.
func runAnalyze(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "analyze", analyzeUsage)
	flags := config.Register(fs, "models")
	policyName := fs.String("policy", rules.PolicyRestRoom, "detection `policy`: "+strings.Join(rules.PolicyNames, ", "))
	policyFile := fs.String("policy-file", "", "JSON `FILE` overriding the policy's thresholds (fields as in the config's policies)")
	frames := fs.Bool("frames", false, "also print a line per analyzed frame")
	annotate := fs.String("annotate", "", "write the input with detections drawn on it to `OUT` (.avi/.mp4/.webm for videos, .jpg/.png for images)")
	evidence := fs.String("evidence", "", "save an evidence JPEG per violation into `DIR`")
	calibrate := fs.Int64("calibrate-ms", 0, "treat the first `MS` milliseconds as the device check at 50 cm (distance calibration)")
	hfov := fs.Float64("hfov", detectors.DefaultHFOVDeg, "assumed horizontal field of view of the camera in `degrees` (without calibration)")
	fullHands := fs.Bool("full-hands", false, "use the full (slower) palm and hand landmark models")
	progress := fs.String("progress", "auto", "progress bar on stderr: auto (when a terminal), always, never")
	audioFile := fs.String("audio", "", "judge the sound of `SOUND` (WAV of any rate and channels, or any file ffmpeg reads) for talking; without it a video's own audio track is judged")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 || (fs.NArg() == 0 && *audioFile == "") {
		return usageError{"want one FILE, or --audio SOUND, or both; usage: invigil analyze " + analyzeUsage}
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
	if *audioFile != "" && !policy.Rules[rules.Talking].Enabled {
		return usageError{fmt.Sprintf("policy %s does not judge talking; use --policy %s or %s with --audio", policy.Name, rules.PolicyRestRoom, rules.PolicyWaiting)}
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
	// The sound is read before the pictures are analyzed, so a bad sound
	// file fails at once rather than after a long video.
	var sound []float32
	if sound, err = readSound(ctx, e, *audioFile, fs.Arg(0), policy); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	var heard *listen.Result
	if sound != nil {
		if heard, err = listenTo(sound, cfg.ModelsDir, policy); err != nil {
			return fmt.Errorf("analyze: %w", err)
		}
	}
	if fs.NArg() == 0 {
		if err := printAudio(heard, *frames, true, enc); err != nil {
			return fmt.Errorf("analyze: %w", err)
		}
		return out.Flush()
	}
	if heard != nil {
		// The pictures' engine hears the sound too, so its violations
		// (talking, and phone_call while speech is heard) come with the
		// video's, as the server judges a candidate.
		opts.Audio = ruleChunks(heard.Chunks)
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
	if heard != nil {
		if err := printAudio(heard, *frames, false, enc); err != nil {
			return fmt.Errorf("analyze: %w", err)
		}
	}
	return out.Flush()
}

// AudioChunkRecord is printed, with --frames, for every 32 ms chunk the
// speech detector judged.
type AudioChunkRecord struct {
	Kind string `json:"kind"` // "audio"
	listen.Chunk
}

// AudioSummaryRecord is printed once for the analyzed sound.
type AudioSummaryRecord struct {
	Kind       string `json:"kind"` // "audio_summary"
	DurationMS int64  `json:"duration_ms"`
	listen.Stats
}

// readSound loads what analyzeAudio judges: the --audio file, or else the
// sound track of a video FILE when the policy judges talking. nil means
// there is no sound to judge.
func readSound(ctx context.Context, e env, audioFile, file string, policy rules.Policy) ([]float32, error) {
	if audioFile != "" {
		pcm, err := listen.LoadAudio(ctx, audioFile)
		if err != nil {
			return nil, fmt.Errorf("--audio: %w", err)
		}
		if len(pcm) == 0 {
			return nil, fmt.Errorf("audio %s: holds no samples", audioFile)
		}
		return pcm, nil
	}
	if file == "" || !policy.Rules[rules.Talking].Enabled {
		return nil, nil
	}
	if _, err := os.Stat(file); err != nil {
		return nil, nil //nolint:nilerr // AnalyzeFile reports a missing or unreadable FILE, with the pictures' error
	}
	pcm, err := listen.LoadMedia(ctx, file)
	switch {
	case errors.Is(err, listen.ErrNoAudio):
		return nil, nil
	case err != nil:
		// The pictures can still be analyzed: say why the sound is not.
		fmt.Fprintf(e.stderr, "invigil analyze: sound of %s not analyzed: %v\n", file, err)
		return nil, nil
	}
	if len(pcm) == 0 {
		return nil, nil
	}
	return pcm, nil
}

// listenTo judges 48 kHz mono sound the way the server judges a
// candidate's microphone: Opus round trip, 16 kHz, Silero VAD, the
// policy's audio rules.
func listenTo(pcm []float32, modelsDir string, policy rules.Policy) (*listen.Result, error) {
	if modelsDir == "" {
		d, err := models.DefaultDir()
		if err != nil {
			return nil, err
		}
		modelsDir = d
	}
	res, err := listen.Listen(pcm, listen.Options{VAD: vad.DefaultConfig(modelsDir), Policy: policy, Opus: true})
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	return res, nil
}

// ruleChunks turns the listening path's verdicts back into what the rule
// engine takes.
func ruleChunks(chunks []listen.Chunk) []rules.AudioChunk {
	out := make([]rules.AudioChunk, len(chunks))
	for i, c := range chunks {
		out[i] = rules.AudioChunk{TMS: c.TMS, DurationMS: c.DurationMS, Speech: c.Speech, RMS: c.RMS}
	}
	return out
}

// printAudio prints, with frames, every chunk; the sound's violations when
// it was judged alone (beside a video they come with the video's); and a
// summary.
func printAudio(res *listen.Result, frames, violations bool, enc *json.Encoder) error {
	if frames {
		for _, c := range res.Chunks {
			if err := enc.Encode(AudioChunkRecord{Kind: "audio", Chunk: c}); err != nil {
				return err
			}
		}
	}
	if violations {
		for _, v := range res.Violations {
			rec := detectors.ViolationRecord{Kind: "violation", Type: string(v.Type), StartMS: v.StartMS, EndMS: v.EndMS,
				Confidence: math.Round(v.Confidence*1000) / 1000}
			if err := enc.Encode(rec); err != nil {
				return err
			}
		}
	}
	return enc.Encode(AudioSummaryRecord{Kind: "audio_summary", DurationMS: res.DurationMS, Stats: res.Stats})
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
		fmt.Fprintf(p.w, "\ranalyzing: %d frames, %.0f frames/s ", done, rate)
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
