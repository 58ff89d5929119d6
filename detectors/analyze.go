package detectors

import (
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // DecodeConfig of the formats a user may hand us
	_ "image/jpeg"
	_ "image/png"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gocv.io/x/gocv"

	"invigil/detectors/rules"
)

// FaceRecord is one face in a frame record (DESIGN.md's JSON Lines).
type FaceRecord struct {
	Box        [4]int  `json:"box"`
	Score      float64 `json:"score"`
	YawDeg     float64 `json:"yaw_deg"`
	PitchDeg   float64 `json:"pitch_deg"`
	DistanceCM float64 `json:"distance_cm"`
}

// HandRecord is one hand in a frame record.
type HandRecord struct {
	Box   [4]int  `json:"box"`
	Score float64 `json:"score"`
}

// FrameRecord is printed for each analyzed frame with --frames.
type FrameRecord struct {
	Kind  string       `json:"kind"` // "frame"
	TMS   int64        `json:"t_ms"`
	Faces []FaceRecord `json:"faces"`
	Hands []HandRecord `json:"hands"`
}

// ViolationRecord is printed for each violation, when it closes.
type ViolationRecord struct {
	Kind       string  `json:"kind"` // "violation"
	Type       string  `json:"type"`
	StartMS    int64   `json:"start_ms"`
	EndMS      int64   `json:"end_ms"`
	Confidence float64 `json:"confidence"`
}

// AnalyzeOptions configures AnalyzeFile.
type AnalyzeOptions struct {
	ModelsDir string
	FullHands bool
	// Analyzer, when set, is used instead of loading the networks again
	// (ModelsDir and FullHands are then ignored): a caller analyzing many
	// files saves the loads and can read the networks' runs over all of
	// them (Analyzer.InferenceReport). AnalyzeFile does not close it.
	Analyzer *Analyzer
	// Policy defaults to rest_room when its Name is empty.
	Policy rules.Policy
	Camera Camera
	// CalibrateMS > 0 treats the first CalibrateMS of a video as the device
	// check at 50 cm (see Stream.CalibrateUntilMS).
	CalibrateMS int64
	// Frames also emits a FrameRecord per analyzed frame.
	Frames bool
	// AnnotatePath, when set, receives the input with the observations and
	// open violations drawn on every frame (a video for a video, an image
	// for an image).
	AnnotatePath string
	// EvidenceDir, when set, receives one JPEG per violation at its onset.
	EvidenceDir string
	// Progress is called after each decoded frame; total is 0 when unknown.
	Progress func(done, total int)
	// Audio, when set, is the microphone heard beside the pictures: its
	// chunks in stream time (the listening path's verdicts, package listen).
	// They reach the same rule engine as the frames, in time order, as the
	// server's do, so talking, microphone_off and phone_call's "while speech
	// is heard" are judged together; an image is shown for as long as the
	// sound lasts.
	Audio []rules.AudioChunk
}

// MaxImagePixels refuses images whose header promises more pixels than
// this, before OpenCV would allocate them.
const MaxImagePixels = 100_000_000

var imageExts = map[string]bool{".jpg": true, ".jpeg": true, ".png": true, ".bmp": true, ".webp": true, ".tif": true, ".tiff": true, ".gif": true}

// ErrUnreadable reports a file that is not a readable image or video.
var ErrUnreadable = errors.New("unreadable input")

// AnalyzeFile analyses a video or an image and hands each record to emit,
// in order. Violations are emitted when they close (all are closed at the
// end of the input).
//
// An image is analyzed as a camera showing it steadily for as long as the
// slowest active rule needs, so a photo of two people reports an
// extra_person violation just as a video of it would.
func AnalyzeFile(ctx context.Context, path string, opts AnalyzeOptions, emit func(rec any) error) error {
	if opts.Policy.Name == "" {
		p, err := rules.DefaultPolicy(rules.PolicyRestRoom)
		if err != nil {
			return err
		}
		opts.Policy = p
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("analyze %s: %w", path, err)
	}
	engine, err := rules.NewEngine(opts.Policy)
	if err != nil {
		return err
	}
	a := opts.Analyzer
	if a == nil {
		if a, err = NewAnalyzer(AnalyzerOptions{ModelsDir: opts.ModelsDir, FullHands: opts.FullHands}); err != nil {
			return err
		}
		defer a.Close()
	}
	if opts.EvidenceDir != "" {
		if err := os.MkdirAll(opts.EvidenceDir, 0o755); err != nil {
			return fmt.Errorf("evidence directory: %w", err)
		}
	}
	run := &fileRun{opts: opts, engine: engine, analyzer: a, emit: emit, path: path,
		stream: &Stream{Policy: opts.Policy, Camera: opts.Camera, CalibrateUntilMS: opts.CalibrateMS}}
	if imageExts[strings.ToLower(filepath.Ext(path))] {
		return run.image(ctx)
	}
	return run.video(ctx)
}

type fileRun struct {
	opts     AnalyzeOptions
	engine   *rules.Engine
	analyzer *Analyzer
	stream   *Stream
	emit     func(any) error
	path     string
	last     rules.Observation
	heard    int // Audio chunks already fed to the engine
}

// hear feeds the engine the audio chunks that end by tMS.
func (r *fileRun) hear(frame gocv.Mat, tMS int64) error {
	start := r.heard
	for r.heard < len(r.opts.Audio) && r.opts.Audio[r.heard].TMS+r.opts.Audio[r.heard].DurationMS <= tMS {
		r.heard++
	}
	if r.heard == start {
		return nil
	}
	return r.handle(frame, &r.last, r.engine.ObserveAudio(r.opts.Audio[start:r.heard]))
}

// audioEnd is where the sound ends, 0 without one.
func (r *fileRun) audioEnd() int64 {
	if n := len(r.opts.Audio); n > 0 {
		return r.opts.Audio[n-1].TMS + r.opts.Audio[n-1].DurationMS
	}
	return 0
}

// analyze observes one frame and emits what follows from it.
func (r *fileRun) analyze(frame gocv.Mat, tMS int64, emitFrame bool) error {
	if err := r.hear(frame, tMS); err != nil {
		return err
	}
	o, err := r.analyzer.Observe(frame, tMS, r.stream)
	if err != nil {
		return fmt.Errorf("analyze %s at %d ms: %w", r.path, tMS, err)
	}
	r.last = o
	if emitFrame && r.opts.Frames {
		if err := r.emit(frameRecord(&o)); err != nil {
			return err
		}
	}
	return r.handle(frame, &o, r.engine.Observe(&o))
}

func (r *fileRun) handle(frame gocv.Mat, o *rules.Observation, events []rules.Event) error {
	for _, ev := range events {
		v := ev.Violation
		switch ev.Kind {
		case rules.Opened:
			// No picture when a sound outlasting the video opens a
			// violation after the last frame was read.
			if r.opts.EvidenceDir == "" || frame.Empty() {
				continue
			}
			jpeg, err := Evidence(frame, o, v)
			if err != nil {
				return err
			}
			name := filepath.Join(r.opts.EvidenceDir, fmt.Sprintf("%03d_%s_%dms.jpg", v.ID, v.Type, v.StartMS))
			if err := os.WriteFile(name, jpeg, 0o644); err != nil {
				return fmt.Errorf("write evidence: %w", err)
			}
		case rules.Closed:
			if err := r.emit(violationRecord(v)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *fileRun) image(ctx context.Context) error {
	if err := checkImageHeader(r.path); err != nil {
		return err
	}
	img := gocv.IMRead(r.path, gocv.IMReadColor)
	defer img.Close()
	if img.Empty() {
		return fmt.Errorf("%w: %s is not an image OpenCV can decode (corrupt or unsupported)", ErrUnreadable, r.path)
	}
	// A steady camera for as long as the slowest rule needs to open.
	var longest int64
	for _, t := range r.opts.Policy.EnabledTypes() {
		longest = max(longest, r.opts.Policy.Rules[t].MinMS)
	}
	step := int64(math.Round(1000 / r.opts.Policy.AnalysisFPS))
	end := longest + step
	if r.opts.Policy.HandsEvery > 0 {
		end += step * int64(r.opts.Policy.HandsEvery)
	}
	end = max(end, r.audioEnd())
	var t int64
	for ; t <= end; t += step {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.analyze(img, t, t == 0); err != nil {
			return err
		}
	}
	if err := r.hear(img, t); err != nil {
		return err
	}
	if err := r.handle(img, &r.last, r.engine.Finish(t)); err != nil {
		return err
	}
	if r.opts.Progress != nil {
		r.opts.Progress(1, 1)
	}
	if r.opts.AnnotatePath != "" {
		out := img.Clone()
		defer out.Close()
		Annotate(&out, &r.last, r.engine.OpenViolations())
		if !gocv.IMWrite(r.opts.AnnotatePath, out) {
			return fmt.Errorf("write annotated image %s: unsupported extension or unwritable", r.opts.AnnotatePath)
		}
	}
	return nil
}

// checkImageHeader refuses images too large to decode safely, reading only
// the header, for the formats Go can read headers of.
func checkImageHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("analyze %s: %w", path, err)
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return nil // not a format Go knows: OpenCV decides
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return fmt.Errorf("%w: %s has an empty %d×%d picture", ErrUnreadable, path, cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > MaxImagePixels {
		return fmt.Errorf("%w: %s is %d×%d, more than %d pixels", ErrUnreadable, path, cfg.Width, cfg.Height, MaxImagePixels)
	}
	return nil
}

func (r *fileRun) video(ctx context.Context) error {
	// FFmpeg alone: the other backends (GStreamer, image sequences) only
	// add noise and surprises for a plain file.
	capture, err := gocv.VideoCaptureFileWithAPI(r.path, gocv.VideoCaptureFFmpeg)
	if err != nil {
		return fmt.Errorf("%w: %s cannot be opened as a video (%w)", ErrUnreadable, r.path, err)
	}
	defer capture.Close()
	fps := capture.Get(gocv.VideoCaptureFPS)
	if !(fps > 0 && fps <= 240) {
		fps = 25 // containers without a rate: assume a webcam's
	}
	total := int(capture.Get(gocv.VideoCaptureFrameCount))
	if total < 0 || total > 1<<30 {
		total = 0
	}
	frame := gocv.NewMat()
	defer frame.Close()
	var writer *gocv.VideoWriter
	defer func() {
		if writer != nil {
			writer.Close()
		}
	}()
	interval := 1000 / r.opts.Policy.AnalysisFPS
	next := 0.0
	frames := 0
	var tMS int64
	for ; ; frames++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !capture.Read(&frame) || frame.Empty() {
			break
		}
		if frame.Type() != gocv.MatTypeCV8UC3 {
			return fmt.Errorf("%w: %s frame %d has type %v, want 8-bit color", ErrUnreadable, r.path, frames, frame.Type())
		}
		tMS = int64(math.Round(float64(frames) * 1000 / fps))
		if float64(tMS) >= next {
			// Sample on a fixed grid; after a gap, restart it rather than
			// analyzing a burst of frames.
			next = math.Max(next+interval, float64(tMS)+interval/2)
			if err := r.analyze(frame, tMS, true); err != nil {
				return err
			}
		}
		if r.opts.AnnotatePath != "" {
			if writer == nil {
				if writer, err = openWriter(r.opts.AnnotatePath, fps, frame.Cols(), frame.Rows()); err != nil {
					return err
				}
			}
			out := frame.Clone()
			Annotate(&out, &r.last, r.engine.OpenViolations())
			err := writer.Write(out)
			out.Close()
			if err != nil {
				return fmt.Errorf("write annotated video: %w", err)
			}
		}
		if r.opts.Progress != nil {
			r.opts.Progress(frames+1, total)
		}
	}
	if frames == 0 {
		return fmt.Errorf("%w: no frames could be read from %s (empty, corrupt or an unsupported codec)", ErrUnreadable, r.path)
	}
	// A sound longer than the pictures is heard to its end; the last
	// picture stands for the rest.
	end := max(int64(math.Round(float64(frames)*1000/fps)), r.audioEnd())
	if err := r.hear(frame, end); err != nil {
		return err
	}
	return r.handle(frame, &r.last, r.engine.Finish(end))
}

func openWriter(path string, fps float64, w, h int) (*gocv.VideoWriter, error) {
	codec := "MJPG"
	switch strings.ToLower(filepath.Ext(path)) {
	case ".mp4", ".m4v":
		codec = "mp4v"
	case ".webm":
		codec = "VP80"
	case ".avi", ".mkv":
	default:
		return nil, fmt.Errorf("annotate: %s: use .avi, .mkv, .mp4 or .webm", path)
	}
	vw, err := gocv.VideoWriterFile(path, codec, fps, w, h, true)
	if err != nil {
		return nil, fmt.Errorf("annotate: open %s: %w", path, err)
	}
	if !vw.IsOpened() {
		vw.Close()
		return nil, fmt.Errorf("annotate: cannot write %s with codec %s", path, codec)
	}
	return vw, nil
}

func rectInts(r rules.Rect) [4]int {
	return [4]int{int(math.Round(r.X)), int(math.Round(r.Y)), int(math.Round(r.W)), int(math.Round(r.H))}
}

func round(x float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(x*p) / p
}

func frameRecord(o *rules.Observation) FrameRecord {
	rec := FrameRecord{Kind: "frame", TMS: o.TMS, Faces: []FaceRecord{}, Hands: []HandRecord{}}
	for _, f := range o.Faces {
		rec.Faces = append(rec.Faces, FaceRecord{Box: rectInts(f.Box), Score: round(f.Score, 3),
			YawDeg: round(f.YawDeg, 1), PitchDeg: round(f.PitchDeg, 1), DistanceCM: round(f.DistanceCM, 1)})
	}
	for _, h := range o.Hands {
		rec.Hands = append(rec.Hands, HandRecord{Box: rectInts(h.Box), Score: round(h.Score, 3)})
	}
	return rec
}

func violationRecord(v rules.Violation) ViolationRecord {
	return ViolationRecord{Kind: "violation", Type: string(v.Type), StartMS: v.StartMS, EndMS: v.EndMS,
		Confidence: round(v.Confidence, 3)}
}
