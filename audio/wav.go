// Package audio holds the sound processing the listening path needs besides
// the codec: reading and writing 16-bit PCM WAV files (test voices, simulated
// microphones, evidence clips) and down-sampling 48 kHz audio, as Opus
// decodes it, to the 16 kHz the speech detector takes.
package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"
)

// Limits of what ReadWAV accepts: a hostile or broken header must not make it
// allocate gigabytes or build a clip no caller could use.
const (
	MaxWAVChannels   = 8
	MinWAVSampleRate = 8000
	MaxWAVSampleRate = 192000
	// MaxWAVDataBytes is about 46 minutes of 48 kHz stereo, longer than any
	// test voice or simulated microphone loop.
	MaxWAVDataBytes = 512 << 20
)

// ErrNotWAV reports a file that is not a RIFF/WAVE file at all, as opposed to
// one in a format this reader does not take.
var ErrNotWAV = errors.New("audio: not a RIFF/WAVE file")

const (
	formatPCM        = 0x0001
	formatExtensible = 0xfffe
	// dataSizeUnknown is what writers that cannot seek back (ffmpeg to a pipe)
	// put in the data chunk's size: the samples run to the end of the file.
	dataSizeUnknown = 0xffffffff
)

// pcmSubformat is KSDATAFORMAT_SUBTYPE_PCM, the GUID that marks an
// extensible-format WAV as plain integer PCM.
var pcmSubformat = []byte{0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71}

// WAV is 16-bit PCM audio: Samples holds Frames()*Channels values,
// interleaved (left, right, left, … for stereo).
type WAV struct {
	SampleRate int
	Channels   int
	Samples    []int16
}

// Frames is the number of sample frames (one sample per channel each).
func (w *WAV) Frames() int {
	if w.Channels < 1 {
		return 0
	}
	return len(w.Samples) / w.Channels
}

// Duration is how long the audio plays.
func (w *WAV) Duration() time.Duration {
	if w.SampleRate < 1 {
		return 0
	}
	return time.Duration(w.Frames()) * time.Second / time.Duration(w.SampleRate)
}

// Mono returns the audio as float32 in [-1, 1), the channels averaged: the
// form Opus encodes and the speech detector reads.
func (w *WAV) Mono() []float32 {
	frames := w.Frames()
	out := make([]float32, frames)
	for i := range out {
		var sum int32
		for c := 0; c < w.Channels; c++ {
			sum += int32(w.Samples[i*w.Channels+c])
		}
		out[i] = float32(sum) / float32(w.Channels) / 32768
	}
	return out
}

// ReadWAVFile reads a 16-bit PCM WAV file.
func ReadWAVFile(path string) (*WAV, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audio: open WAV: %w", err)
	}
	defer f.Close()
	w, err := ReadWAV(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return w, nil
}

// ReadWAV reads a RIFF/WAVE stream of 16-bit integer PCM (plain or
// WAVE_FORMAT_EXTENSIBLE with the PCM subformat). Anything else (float,
// 8/24/32-bit, compressed, RIFX) is refused with an error that names it, so a
// user knows to convert the file (e.g. `sox in.wav -b 16 out.wav`).
func ReadWAV(r io.Reader) (*WAV, error) {
	var head [12]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, fmt.Errorf("%w: %d-byte header unreadable: %w", ErrNotWAV, len(head), err)
	}
	if string(head[0:4]) != "RIFF" || string(head[8:12]) != "WAVE" {
		if string(head[0:4]) == "RIFX" || string(head[0:4]) == "RF64" {
			return nil, fmt.Errorf("audio: %s WAV files are not supported; convert to a plain RIFF 16-bit PCM WAV", head[0:4])
		}
		return nil, fmt.Errorf("%w: starts with %q", ErrNotWAV, head[0:4])
	}
	var w *WAV
	for {
		var ch [8]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			if w == nil {
				return nil, errors.New("audio: WAV file has no fmt chunk")
			}
			return nil, errors.New("audio: WAV file has no data chunk")
		}
		id := string(ch[0:4])
		size := binary.LittleEndian.Uint32(ch[4:8])
		switch id {
		case "fmt ":
			if w != nil {
				return nil, errors.New("audio: WAV file has two fmt chunks")
			}
			if size < 16 || size > 1024 {
				return nil, fmt.Errorf("audio: WAV fmt chunk of %d bytes (want 16 to 1024)", size)
			}
			buf := make([]byte, size+size&1)
			if _, err := io.ReadFull(r, buf); err != nil {
				return nil, fmt.Errorf("audio: WAV fmt chunk truncated: %w", err)
			}
			parsed, err := parseFormat(buf[:size])
			if err != nil {
				return nil, err
			}
			w = parsed
		case "data":
			if w == nil {
				return nil, errors.New("audio: WAV data chunk comes before its fmt chunk")
			}
			if err := w.readSamples(r, size); err != nil {
				return nil, err
			}
			return w, nil
		default:
			// LIST, fact, cue … carry nothing a listener needs.
			if _, err := io.CopyN(io.Discard, r, int64(size)+int64(size&1)); err != nil {
				return nil, fmt.Errorf("audio: WAV %q chunk truncated: %w", id, err)
			}
		}
	}
}

func parseFormat(b []byte) (*WAV, error) {
	le := binary.LittleEndian
	format := le.Uint16(b[0:2])
	channels := int(le.Uint16(b[2:4]))
	rate := le.Uint32(b[4:8])
	blockAlign := int(le.Uint16(b[12:14]))
	bits := int(le.Uint16(b[14:16]))
	switch format {
	case formatPCM:
	case formatExtensible:
		if len(b) < 40 || !bytes.Equal(b[24:40], pcmSubformat) {
			return nil, errors.New("audio: extensible WAV that is not integer PCM (float or compressed); convert to 16-bit PCM")
		}
	case 0x0003:
		return nil, errors.New("audio: float WAV; convert to 16-bit PCM")
	default:
		return nil, fmt.Errorf("audio: WAV format tag 0x%04x is compressed or unknown; only 16-bit PCM is read", format)
	}
	if bits != 16 {
		return nil, fmt.Errorf("audio: %d-bit WAV; only 16-bit PCM is read", bits)
	}
	if channels < 1 || channels > MaxWAVChannels {
		return nil, fmt.Errorf("audio: WAV with %d channels (want 1 to %d)", channels, MaxWAVChannels)
	}
	if rate < MinWAVSampleRate || rate > MaxWAVSampleRate {
		return nil, fmt.Errorf("audio: WAV sample rate %d Hz (want %d to %d)", rate, MinWAVSampleRate, MaxWAVSampleRate)
	}
	if blockAlign != channels*2 {
		return nil, fmt.Errorf("audio: WAV block align %d for %d 16-bit channels (want %d)", blockAlign, channels, channels*2)
	}
	return &WAV{SampleRate: int(rate), Channels: channels}, nil
}

func (w *WAV) readSamples(r io.Reader, size uint32) error {
	frameBytes := w.Channels * 2
	var data []byte
	if size == dataSizeUnknown {
		var err error
		data, err = io.ReadAll(io.LimitReader(r, MaxWAVDataBytes+1))
		if err != nil {
			return fmt.Errorf("audio: WAV data: %w", err)
		}
		if len(data) > MaxWAVDataBytes {
			return fmt.Errorf("audio: WAV data longer than %d bytes", MaxWAVDataBytes)
		}
		data = data[:len(data)/frameBytes*frameBytes] // a writer cut off mid-frame
	} else {
		if size > MaxWAVDataBytes {
			return fmt.Errorf("audio: WAV data chunk of %d bytes, more than %d", size, MaxWAVDataBytes)
		}
		if int(size)%frameBytes != 0 {
			return fmt.Errorf("audio: WAV data chunk of %d bytes is not whole %d-byte frames", size, frameBytes)
		}
		// ReadAll grows as bytes arrive, so a header that lies about the
		// size costs what the file holds, not what it claims.
		var err error
		data, err = io.ReadAll(io.LimitReader(r, int64(size)))
		if err != nil {
			return fmt.Errorf("audio: WAV data: %w", err)
		}
		if len(data) != int(size) {
			return fmt.Errorf("audio: WAV data truncated: %d of %d bytes", len(data), size)
		}
	}
	w.Samples = make([]int16, len(data)/2)
	for i := range w.Samples {
		w.Samples[i] = int16(binary.LittleEndian.Uint16(data[2*i:]))
	}
	return nil
}

// WriteWAV writes w as a plain RIFF 16-bit PCM WAV file.
func WriteWAV(out io.Writer, w *WAV) error {
	if w.Channels < 1 || w.Channels > MaxWAVChannels {
		return fmt.Errorf("audio: write WAV with %d channels (want 1 to %d)", w.Channels, MaxWAVChannels)
	}
	if w.SampleRate < MinWAVSampleRate || w.SampleRate > MaxWAVSampleRate {
		return fmt.Errorf("audio: write WAV at %d Hz (want %d to %d)", w.SampleRate, MinWAVSampleRate, MaxWAVSampleRate)
	}
	if len(w.Samples)%w.Channels != 0 {
		return fmt.Errorf("audio: write WAV: %d samples are not whole frames of %d channels", len(w.Samples), w.Channels)
	}
	dataBytes := 2 * len(w.Samples)
	if dataBytes > MaxWAVDataBytes {
		return fmt.Errorf("audio: write WAV of %d bytes, more than %d", dataBytes, MaxWAVDataBytes)
	}
	buf := make([]byte, 44+dataBytes)
	le := binary.LittleEndian
	copy(buf[0:], "RIFF")
	le.PutUint32(buf[4:], uint32(36+dataBytes))
	copy(buf[8:], "WAVEfmt ")
	le.PutUint32(buf[16:], 16)
	le.PutUint16(buf[20:], formatPCM)
	le.PutUint16(buf[22:], uint16(w.Channels))
	le.PutUint32(buf[24:], uint32(w.SampleRate))
	le.PutUint32(buf[28:], uint32(w.SampleRate*w.Channels*2))
	le.PutUint16(buf[32:], uint16(w.Channels*2))
	le.PutUint16(buf[34:], 16)
	copy(buf[36:], "data")
	le.PutUint32(buf[40:], uint32(dataBytes))
	for i, s := range w.Samples {
		le.PutUint16(buf[44+2*i:], uint16(s))
	}
	if _, err := out.Write(buf); err != nil {
		return fmt.Errorf("audio: write WAV: %w", err)
	}
	return nil
}

// FromFloat converts samples in [-1, 1] to 16-bit PCM, clipping what lies
// outside (codecs overshoot a little on loud passages) and mapping NaN to 0.
func FromFloat(samples []float32) []int16 {
	out := make([]int16, len(samples))
	for i, s := range samples {
		out[i] = floatToPCM(s)
	}
	return out
}

func floatToPCM(s float32) int16 {
	v := math.Round(float64(s) * 32768)
	switch {
	case v != v: // NaN
		return 0
	case v > math.MaxInt16:
		return math.MaxInt16
	case v < math.MinInt16:
		return math.MinInt16
	}
	return int16(v)
}
