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

// readOpusPackets reads an Ogg Opus stream (any number of packets per
// page) into 20 ms packets: a stream of 20 ms packets is kept as it is, as a
// browser would have sent it; any other framing (10, 40, 60 ms, mixed) is
// decoded and encoded again in 20 ms frames, since the microphone's RTP
// clock advances one 20 ms frame per packet.
func readOpusPackets(r io.Reader) (*Audio, error) {
	o, err := readOggOpus(r)
	if errors.Is(err, errNotOgg) {
		return nil, fmt.Errorf("read Ogg Opus: %w", err)
	}
	if err != nil {
		return nil, err
	}
	all20 := true
	for i, p := range o.packets {
		info, err := opus.ParsePacket(p)
		if err != nil {
			return nil, fmt.Errorf("Ogg Opus packet %d: %w", i+1, err)
		}
		if info.Samples() != opusFrameTS {
			all20 = false
		}
	}
	if all20 {
		return &Audio{Packets: o.packets}, nil
	}
	dec, err := opus.NewDecoder()
	if err != nil {
		return nil, fmt.Errorf("Opus decoder: %w", err)
	}
	defer dec.Close()
	var pcm []float32
	for i, p := range o.packets {
		if pcm, err = dec.AppendDecode(pcm, p); err != nil {
			return nil, fmt.Errorf("Ogg Opus packet %d: %w", i+1, err)
		}
		if time.Duration(len(pcm))*time.Second/opusClockRate > maxAudioFile {
			return nil, fmt.Errorf("Ogg Opus file longer than %s", maxAudioFile)
		}
	}
	pcm = pcm[min(o.preSkip, len(pcm)):]
	return encodePCM(pcm)
}

// FileAudio reads a microphone to publish from a file: a 16-bit PCM WAV
// file (any rate and channel count: mixed to mono, resampled to 48 kHz and
// encoded with libopus in 20 ms packets, as a browser sends) or an Ogg Opus
// file (any paging; packets of other durations than 20 ms are re-encoded in
// 20 ms frames). The packets loop like the camera's clip. Anything else, an
// empty, truncated or corrupt file, is an error that says so.
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
	pcm, err := audio.Resample(w.Mono(), w.SampleRate, opusClockRate)
	if err != nil {
		return nil, err
	}
	return encodePCM(pcm)
}

// encodePCM encodes 48 kHz mono audio to 20 ms Opus packets with the
// project's libopus encoder, at the bitrate and frame a browser uses.
func encodePCM(pcm []float32) (*Audio, error) {
	if len(pcm) == 0 {
		return nil, errors.New("no audio samples")
	}
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
