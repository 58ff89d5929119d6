// Package vad detects speech in 16 kHz mono audio with Silero VAD v5 (MIT,
// snakers4/silero-vad) on ONNX Runtime. OpenCV 4.6, which runs the vision
// models, cannot load this model (it aborts on the model's If node), hence a
// second runtime. The model file and the runtime library are provisioned by
// package models (`invigil models fetch`); ../shared/AUDIO.md holds the facts.
//
// One Detector serves one audio stream: the model is recurrent, so its state
// belongs to the stream; the detectors share the model's one session and
// run their chunks together in batches (batch.go). A chunk too quiet to hold
// speech skips the model (the energy gate), so a silent room costs a few
// hundred nanoseconds per 32 ms.
package vad

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"invigil/models"
)

const (
	// SampleRate is the only rate the model takes.
	SampleRate = 16000
	// ChunkSamples is the model's window: 32 ms at 16 kHz.
	ChunkSamples = 512
	// ChunkDuration is the audio time one chunk covers.
	ChunkDuration = ChunkSamples * time.Second / SampleRate
)

// DefaultGateRMS is the energy gate: once chunks have stayed below it (RMS
// in full-scale units, samples in [-1, 1]) for longer than the hangover, they
// count as silence without running the model. 0.001 is -60 dBFS. Measured on
// the test sounds (resampled to 16 kHz by sox): voiced chunks of the voices
// are 0.002–0.25 (Front_Center.wav peaks at 0.19, espeak-ng at 0.25), the
// quiet before and after them 0.0000–0.0005, Debian's Noise.wav 0.022–0.039
// (so noise is never gated: the model must say it is not speech). A quiet
// room through a browser's noise suppression is near digital silence, well
// under the gate. TestGateKeepsSpeech bounds what the gate changes.
const DefaultGateRMS = 0.001

// gateHangover is how many quiet chunks the model still runs on after the
// last loud one (512 ms). Silero holds speech through the pauses between
// words and for up to 9 chunks after an utterance (on the espeak-ng
// sentences); gating those chunks at once changed 11–20 speech decisions per
// test sound, with the hangover at most 4, all at onsets. A stream starts
// with the gate closed, so leading silence never runs the model.
const gateHangover = 16

// The model's input passes a slow automatic gain control. Silero was trained
// on speech at conversational levels and misses a voice that reaches the
// microphone at -30 dBFS or from across the room (the evaluation's quiet and
// far clips, recall 0.62 without it). The gain follows the loudest recent
// chunk, not each chunk, so a pause between words is not pumped up into
// noise: the tracked level decays by gainDecayDB per chunk (3 dB a second)
// and jumps up at once when a louder chunk comes, and the gain brings that
// level to gainTargetRMS, never attenuating and never more than gainMax
// (30 dB, so the room's hiss below the energy gate stays hiss). Only the
// model's copy is scaled: Chunk.RMS, the gate, the clip and the
// microphone_off rule still see the real level.
const (
	gainTargetRMS = 0.15
	gainMax       = 30
	gainDecayDB   = 0.1
)

var gainDecay = math.Pow(10, -gainDecayDB/20)

// ErrClosed is returned by a Detector used after Close.
var ErrClosed = errors.New("vad: detector closed")

// Config configures a Detector.
type Config struct {
	// ModelPath is silero_vad_v5.onnx (models.SileroVADPath).
	ModelPath string
	// LibraryPath is libonnxruntime.so.1 (models.ONNXRuntimePath).
	LibraryPath string
	// GateRMS is the energy gate; 0 means DefaultGateRMS and a negative value
	// runs the model on every chunk.
	GateRMS float64
}

// DefaultConfig is the configuration for the models directory dir, as
// provisioned by `invigil models fetch`.
func DefaultConfig(dir string) Config {
	return Config{ModelPath: models.SileroVADPath(dir), LibraryPath: models.ONNXRuntimePath(dir)}
}

// Chunk is the verdict on one 32 ms chunk.
type Chunk struct {
	// Start is the chunk's offset from the start of the stream (or the last
	// Reset), counted in samples given, so it is exact.
	Start time.Duration
	// Probability is the model's speech probability in [0, 1]; 0 for gated
	// chunks.
	Probability float32
	// RMS is the chunk's root mean square level in full-scale units.
	RMS float32
	// Gated marks a chunk too quiet for the model to run on.
	Gated bool
}

// Speech reports whether the model judged the chunk speech, at Silero's usual
// threshold of 0.5.
func (c Chunk) Speech() bool { return c.Probability > 0.5 }

// Stats counts a Detector's work since it was made (Reset does not clear
// them: they measure cost, not one utterance).
type Stats struct {
	Chunks    uint64 // chunks completed
	ModelRuns uint64 // chunks the model ran on
	Gated     uint64 // chunks the energy gate skipped
	Clipped   uint64 // samples outside [-1, 1] clipped to it
	// Waited is the time chunks spent waiting for other streams' chunks
	// to share a model run (batch.go), not working.
	Waited time.Duration
}

// Detector finds speech in one audio stream. Its methods may be called from
// any goroutine, one call at a time being served; a stream's samples must
// arrive in order.
type Detector struct {
	mu      sync.Mutex
	closed  bool
	gateRMS float64

	model *model
	input [ChunkSamples]float32 // the model's copy of a chunk (gain applied)
	state [stateSize]float32    // the model's recurrent state, [2, 1, 128]

	pending  [ChunkSamples]float32
	npending int
	chunks   int64   // chunks since the start or the last Reset
	quietRun int     // consecutive chunks below the gate
	level    float64 // the gain control's tracked level (RMS, full scale)
	stats    Stats
}

// New loads the ONNX Runtime environment and the model's session (once per
// process each, batch.go) and makes a Detector, which holds its stream's
// state in Go memory.
func New(cfg Config) (*Detector, error) {
	if err := InitRuntime(cfg.LibraryPath); err != nil {
		return nil, fmt.Errorf("speech detector: %w", err)
	}
	if cfg.ModelPath == "" {
		return nil, errors.New("speech detector: model path is empty; " + fetchHint)
	}
	if _, err := os.Stat(cfg.ModelPath); err != nil {
		return nil, fmt.Errorf("speech detector: model %s: %w; %s", cfg.ModelPath, err, fetchHint)
	}
	d := &Detector{gateRMS: cfg.GateRMS, quietRun: gateHangover}
	if d.gateRMS == 0 {
		d.gateRMS = DefaultGateRMS
	}
	m, err := sharedModel(cfg.ModelPath)
	if err != nil {
		return nil, fmt.Errorf("speech detector %s: %w", cfg.ModelPath, err)
	}
	d.model = m
	m.open()
	return d, nil
}

// Process takes the stream's next samples (16 kHz mono, any count, nominally
// in [-1, 1]) and returns a verdict for every 32 ms chunk they complete;
// samples left over wait for the next call. Samples slightly outside [-1, 1]
// (decoders overshoot on loud input) are clipped and counted in Stats.
// A NaN or infinite sample means the caller's audio path is broken, not that
// the room is loud: the call is refused whole, nothing of it is buffered, and
// the stream continues as if it had not been made.
func (d *Detector) Process(samples []float32) ([]Chunk, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	for i, s := range samples {
		if math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) {
			return nil, fmt.Errorf("vad: sample %d of %d is %v; refusing the whole call", i, len(samples), s)
		}
	}
	var out []Chunk
	if n := (d.npending + len(samples)) / ChunkSamples; n > 0 {
		out = make([]Chunk, 0, n)
	}
	for _, s := range samples {
		if s > 1 {
			s = 1
			d.stats.Clipped++
		} else if s < -1 {
			s = -1
			d.stats.Clipped++
		}
		d.pending[d.npending] = s
		d.npending++
		if d.npending < ChunkSamples {
			continue
		}
		c, err := d.chunk()
		d.npending = 0
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
	return out, nil
}

// chunk judges the full pending chunk.
func (d *Detector) chunk() (Chunk, error) {
	var sum float64
	for _, s := range d.pending {
		sum += float64(s) * float64(s)
	}
	rms := math.Sqrt(sum / ChunkSamples)
	c := Chunk{Start: time.Duration(d.chunks) * ChunkDuration, RMS: float32(rms)}
	d.chunks++
	d.stats.Chunks++
	if rms < d.gateRMS {
		d.quietRun++
	} else {
		d.quietRun = 0
	}
	d.level = max(rms, d.level*gainDecay)
	if d.gateRMS > 0 && d.quietRun > gateHangover {
		// The state is kept: after the hangover it is the model's own memory
		// of the quiet, the nearest to what running on the quiet would give.
		c.Gated = true
		d.stats.Gated++
		return c, nil
	}
	gain := float32(1)
	if d.level > 0 {
		gain = float32(min(max(gainTargetRMS/d.level, 1), gainMax))
	}
	for i, s := range d.pending {
		d.input[i] = min(max(s*gain, -1), 1)
	}
	req := &request{input: &d.input, state: &d.state}
	d.model.run(req)
	d.stats.Waited += req.waited
	if req.err != nil {
		return c, fmt.Errorf("vad: run model on chunk at %v: %w", c.Start, req.err)
	}
	d.stats.ModelRuns++
	p := req.prob
	// A probability outside [0, 1] would mean a different model than pinned.
	if math.IsNaN(float64(p)) || p < 0 || p > 1 {
		return c, fmt.Errorf("vad: model gave probability %v at %v", p, c.Start)
	}
	c.Probability = p
	return c, nil
}

// Reset starts a new stream: the model's state, buffered samples and chunk
// times go back to zero. Stats keep counting.
func (d *Detector) Reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	clear(d.state[:])
	d.npending = 0
	d.chunks = 0
	d.quietRun = gateHangover
	d.level = 0
}

// Stats returns the detector's counts.
func (d *Detector) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Close releases the session and tensors. It is safe to call more than once.
func (d *Detector) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.model.close()
	return nil
}
