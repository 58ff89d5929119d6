package simulate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pion/webrtc/v4/pkg/media/oggreader"

	"invigil/audio"
	"invigil/opus"
)

// Opus packets of a synthetic microphone: 20 ms each at 48 kHz, as
// browsers send them.
const (
	opusFrame     = 20 * time.Millisecond
	opusClockRate = 48000
	opusFrameTS   = opusClockRate / 50
)

// Audio is a short sound encoded once to Opus, replayed in a loop.
type Audio struct {
	// Packets are the Opus packets, one per 20 ms.
	Packets [][]byte
}

// SineAudio encodes seconds of a sine tone to Opus with ffmpeg (libopus)
// and reads the packets back with pion's Ogg reader.
func SineAudio(ctx context.Context, hz float64, seconds int) (*Audio, error) {
	if hz <= 0 || hz > 20000 || seconds < 1 || seconds > 600 {
		return nil, fmt.Errorf("sine of %v Hz for %d s: want 1–20000 Hz and 1–600 s", hz, seconds)
	}
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return nil, errors.New("audio needs ffmpeg on PATH (apt-get install ffmpeg), or leave out --audio")
	}
	dir, err := os.MkdirTemp("", "invigil-audio-")
	if err != nil {
		return nil, fmt.Errorf("audio: %w", err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "sine.ogg")
	// One 20 ms packet per Ogg page, so that each page read is one packet.
	cmd := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=%g:sample_rate=48000:duration=%d", hz, seconds),
		"-ac", "1", "-c:a", "libopus", "-b:a", "32k", "-frame_duration", "20", "-page_duration", "20000",
		"-y", out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("encode Opus with ffmpeg: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	f, err := os.Open(out)
	if err != nil {
		return nil, fmt.Errorf("audio: %w", err)
	}
	defer f.Close()
	return readOpusPackets(f)
}

// readOpusPackets reads an Ogg Opus stream written with one packet per
// page, checking that each page advances by exactly one 20 ms packet.
func readOpusPackets(r io.Reader) (*Audio, error) {
	ogg, _, err := oggreader.NewWith(r)
	if err != nil {
		return nil, fmt.Errorf("read Ogg Opus: %w", err)
	}
	a := &Audio{}
	var last uint64
	for {
		payload, h, err := ogg.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read Ogg Opus page %d: %w", len(a.Packets)+1, err)
		}
		if t, ok := h.HeaderType(payload); ok && t == oggreader.HeaderOpusTags {
			continue
		}
		if len(payload) == 0 {
			continue
		}
		// The last page may hold a shorter, trimmed packet: keep it anyway,
		// its RTP duration is still one frame.
		if len(a.Packets) > 0 && h.GranulePosition-last != opusFrameTS && h.GranulePosition > last+opusFrameTS {
			return nil, fmt.Errorf("Ogg page %d spans %d samples: several Opus packets per page are not supported",
				len(a.Packets)+1, h.GranulePosition-last)
		}
		last = h.GranulePosition
		a.Packets = append(a.Packets, payload)
	}
	if len(a.Packets) == 0 {
		return nil, errors.New("read Ogg Opus: no audio packets")
	}
	return a, nil
}

// FileAudio reads a microphone to publish from a file: a 16-bit PCM WAV
// file (any rate and channel count: mixed to mono, resampled to 48 kHz and
// encoded with libopus in 20 ms packets, as a browser sends) or an Ogg Opus
// file with one packet per page (what ffmpeg's libopus writes with
// -page_duration 20000). The packets loop like the camera's clip.
func FileAudio(path string) (*Audio, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audio file: %w", err)
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		return nil, fmt.Errorf("audio file %s: too short to be WAV or Ogg: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("audio file %s: %w", path, err)
	}
	switch string(magic[:]) {
	case "RIFF":
		w, err := audio.ReadWAV(f)
		if err != nil {
			return nil, fmt.Errorf("audio file %s: %w", path, err)
		}
		a, err := encodeOpus(w)
		if err != nil {
			return nil, fmt.Errorf("audio file %s: %w", path, err)
		}
		return a, nil
	case "OggS":
		a, err := readOpusPackets(f)
		if err != nil {
			return nil, fmt.Errorf("audio file %s: %w", path, err)
		}
		return a, nil
	}
	return nil, fmt.Errorf("audio file %s: not a WAV (RIFF) or Ogg Opus file", path)
}

// maxAudioFile bounds what is encoded and held in memory: ten minutes.
const maxAudioFile = 10 * time.Minute

func encodeOpus(w *audio.WAV) (*Audio, error) {
	if w.Frames() == 0 {
		return nil, errors.New("no audio samples")
	}
	if w.Duration() > maxAudioFile {
		return nil, fmt.Errorf("%s of audio: at most %s is looped", w.Duration().Round(time.Second), maxAudioFile)
	}
	pcm := resampleLinear(w.Mono(), w.SampleRate, opusClockRate)
	enc, err := opus.NewEncoder(opus.EncoderOptions{})
	if err != nil {
		return nil, fmt.Errorf("Opus encoder: %w", err)
	}
	defer enc.Close()
	n := enc.FrameSamples()
	// The last frame is padded with silence, so the loop keeps its beat.
	if r := len(pcm) % n; r != 0 {
		pcm = append(pcm, make([]float32, n-r)...)
	}
	a := &Audio{}
	for i := 0; i+n <= len(pcm); i += n {
		p, err := enc.Encode(pcm[i : i+n])
		if err != nil {
			return nil, fmt.Errorf("encode Opus frame %d: %w", i/n, err)
		}
		a.Packets = append(a.Packets, append([]byte(nil), p...))
	}
	return a, nil
}

// resampleLinear converts rate by linear interpolation: a simulated
// microphone needs the speech intelligible to a speech detector, not
// studio quality (the detector itself hears 16 kHz).
func resampleLinear(x []float32, from, to int) []float32 {
	if from == to || len(x) == 0 {
		return x
	}
	n := int(int64(len(x)) * int64(to) / int64(from))
	out := make([]float32, n)
	step := float64(from) / float64(to)
	for i := range out {
		pos := float64(i) * step
		j := int(pos)
		if j >= len(x)-1 {
			out[i] = x[len(x)-1]
			continue
		}
		frac := float32(pos - float64(j))
		out[i] = x[j]*(1-frac) + x[j+1]*frac
	}
	return out
}
