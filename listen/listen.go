// Package listen judges recorded audio offline the way the live pipeline
// judges a candidate's microphone (pipeline/audio.go): 48 kHz mono →
// optionally an Opus encoder at a browser's settings and a decoder straight
// to 16 kHz, as the pipeline decodes (so the codec's effect on speech is
// part of the result; without the codec, audio.Downsampler3 makes the
// 16 kHz) → vad.Detector (energy-gated Silero VAD) → rules.Engine's
// ObserveAudio. `invigil analyze --audio` and the audio evaluation set use
// it.
package listen

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"

	"invigil/audio"
	"invigil/detectors/rules"
	"invigil/opus"
	"invigil/vad"
)

// Rate is the rate Listen takes: Opus's, and a browser microphone's.
const Rate = opus.SampleRate

// Options configures Listen.
type Options struct {
	VAD    vad.Config
	Policy rules.Policy
	// Opus sends the audio through an Opus encoder and decoder first, as a
	// browser microphone track arrives (20 ms frames, 32 kbit/s, VOIP).
	Opus bool
	// Bitrate of the Opus encoder; 0 means the encoder's default.
	Bitrate int
}

// Result is what Listen heard.
type Result struct {
	DurationMS int64
	Chunks     []Chunk
	// Violations of the policy's audio rules, all closed at the end.
	Violations []rules.Violation
	Stats      Stats
}

// Chunk is the verdict on one 32 ms chunk, on the input's clock.
type Chunk struct {
	TMS         int64   `json:"t_ms"`
	DurationMS  int64   `json:"duration_ms"`
	Speech      bool    `json:"speech"`
	Probability float64 `json:"probability"`
	RMS         float64 `json:"rms"`
	Gated       bool    `json:"gated"`
}

// Stats sums the chunks.
type Stats struct {
	Chunks       int     `json:"chunks"`
	SpeechChunks int     `json:"speech_chunks"`
	GatedChunks  int     `json:"gated_chunks"`
	SpeechMS     int64   `json:"speech_ms"`
	MaxRMS       float64 `json:"max_rms"`
	// LongestSpeechInWindowMS is the most speech heard within any one
	// talking window of the policy (what the talking rule compares with
	// its min_ms).
	LongestSpeechInWindowMS int64 `json:"max_speech_in_window_ms"`
}

// Listen judges pcm (48 kHz mono samples in [-1, 1]).
func Listen(pcm []float32, opts Options) (*Result, error) {
	engine, err := rules.NewEngine(opts.Policy)
	if err != nil {
		return nil, err
	}
	det, err := vad.New(opts.VAD)
	if err != nil {
		return nil, err
	}
	defer det.Close()
	res := &Result{DurationMS: int64(len(pcm)) * 1000 / Rate}
	var heard []float32 // at the detector's rate
	if opts.Opus {
		if heard, err = codecRoundTrip(pcm, opts.Bitrate, vad.SampleRate); err != nil {
			return nil, err
		}
	} else {
		heard = audio.Resample48to16(pcm)
	}
	var pending []rules.AudioChunk
	// 20 ms at a time, as decoded packets arrive in the pipeline.
	const step = vad.SampleRate / 50
	for pos := 0; pos < len(heard); pos += step {
		chunks, err := det.Process(heard[pos:min(pos+step, len(heard))])
		if err != nil {
			return nil, err
		}
		for _, c := range chunks {
			rc := rules.AudioChunk{TMS: c.Start.Milliseconds(), DurationMS: vad.ChunkDuration.Milliseconds(),
				Speech: c.Speech(), RMS: float64(c.RMS)}
			pending = append(pending, rc)
			res.Chunks = append(res.Chunks, Chunk{TMS: rc.TMS, DurationMS: rc.DurationMS, Speech: rc.Speech,
				Probability: math.Round(float64(c.Probability)*1000) / 1000, RMS: float64(c.RMS), Gated: c.Gated})
		}
		if len(pending) >= 32 {
			res.collect(engine.ObserveAudio(pending))
			pending = pending[:0]
		}
	}
	res.collect(engine.ObserveAudio(pending))
	res.collect(engine.Finish(res.DurationMS))
	res.summarize(opts.Policy.TalkWindowMS)
	return res, nil
}

func (r *Result) collect(events []rules.Event) {
	for _, ev := range events {
		if ev.Kind == rules.Closed && rules.IsAudio(ev.Violation.Type) {
			r.Violations = append(r.Violations, ev.Violation)
		}
	}
}

func (r *Result) summarize(window int64) {
	s := &r.Stats
	for i, c := range r.Chunks {
		s.Chunks++
		s.MaxRMS = math.Max(s.MaxRMS, c.RMS)
		if c.Gated {
			s.GatedChunks++
		}
		if !c.Speech {
			continue
		}
		s.SpeechChunks++
		s.SpeechMS += c.DurationMS
		var sum int64
		for _, d := range r.Chunks[i:] {
			if d.TMS >= c.TMS+window {
				break
			}
			if d.Speech {
				sum += d.DurationMS
			}
		}
		s.LongestSpeechInWindowMS = max(s.LongestSpeechInWindowMS, sum)
	}
}

// codecRoundTrip encodes pcm (at Rate) to Opus and decodes it again at
// rate, dropping the encoder's lookahead so the output keeps the input's
// clock.
func codecRoundTrip(pcm []float32, bitrate, rate int) ([]float32, error) {
	enc, err := opus.NewEncoder(opus.EncoderOptions{Bitrate: bitrate})
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	dec, err := opus.NewDecoderAt(rate)
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	look, err := enc.Lookahead()
	if err != nil {
		return nil, err
	}
	frame := enc.FrameSamples()
	in := make([]float32, len(pcm)+look+frame)
	copy(in, pcm)
	out := make([]float32, 0, len(in))
	for pos := 0; pos+frame <= len(in); pos += frame {
		pkt, err := enc.Encode(in[pos : pos+frame])
		if err != nil {
			return nil, fmt.Errorf("opus encode at sample %d: %w", pos, err)
		}
		if out, err = dec.AppendDecode(out, pkt); err != nil {
			return nil, fmt.Errorf("opus decode at sample %d: %w", pos, err)
		}
	}
	look, want := look*rate/Rate, len(pcm)*rate/Rate
	if len(out) < look {
		return nil, nil
	}
	out = out[look:]
	return out[:min(len(out), want)], nil
}

// ErrNoAudio reports a media file without an audio stream.
var ErrNoAudio = errors.New("no audio stream")

// LoadWAV reads a WAV file as 48 kHz mono: channels are mixed down and
// other rates resampled (audio.Resample), so no outside tool is needed.
func LoadWAV(path string) ([]float32, error) {
	w, err := audio.ReadWAVFile(path)
	if err != nil {
		return nil, err
	}
	if w.SampleRate == Rate {
		return w.Mono(), nil
	}
	pcm, err := audio.Resample(w.Mono(), w.SampleRate, Rate)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pcm, nil
}

// LoadMedia decodes the first audio stream of any file ffmpeg reads (a
// video's sound track, Ogg, WebM, MP3 …) as 48 kHz mono. ErrNoAudio means
// the file has no audio stream.
func LoadMedia(ctx context.Context, path string) ([]float32, error) {
	ffprobe, err := exec.LookPath("ffprobe")
	if err != nil {
		return nil, errors.New("reading audio from media files needs ffprobe and ffmpeg on PATH (apt-get install ffmpeg)")
	}
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, ffprobe, "-v", "error", "-select_streams", "a", "-show_entries", "stream=index", "-of", "csv=p=0", path)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: not a readable media file: %s", path, firstLine(stderr.String(), err))
	}
	if strings.TrimSpace(out.String()) == "" {
		return nil, fmt.Errorf("%s: %w", path, ErrNoAudio)
	}
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return nil, errors.New("reading audio from media files needs ffmpeg on PATH (apt-get install ffmpeg)")
	}
	return runRaw(ctx, ffmpeg, "-nostdin", "-v", "error", "-i", path, "-map", "0:a:0", "-vn",
		"-ac", "1", "-ar", fmt.Sprint(Rate), "-f", "f32le", "-")
}

// LoadAudio reads a WAV file, or failing that whatever ffmpeg can decode,
// as 48 kHz mono.
func LoadAudio(ctx context.Context, path string) ([]float32, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	pcm, werr := LoadWAV(path)
	if werr == nil {
		return pcm, nil
	}
	pcm, merr := LoadMedia(ctx, path)
	if merr == nil {
		return pcm, nil
	}
	if errors.Is(merr, ErrNoAudio) {
		return nil, merr
	}
	strip := func(err error) string { return strings.ReplaceAll(err.Error(), path+": ", "") }
	return nil, fmt.Errorf("%s is neither a WAV file (%s) nor a media file with sound (%s)", path, strip(werr), strip(merr))
}

func runRaw(ctx context.Context, name string, args ...string) ([]float32, error) {
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %s", name, firstLine(stderr.String(), err))
	}
	b := out.Bytes()
	pcm := make([]float32, len(b)/4)
	for i := range pcm {
		pcm[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return pcm, nil
}

func firstLine(s string, err error) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		return err.Error()
	}
	return s
}
