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
