package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// frontCenter is a real recorded voice from Debian's alsa-utils (the test
// group of scripts/install.sh): 48 kHz mono 16-bit, "front center".
const frontCenter = "/usr/share/sounds/alsa/Front_Center.wav"

func needFile(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%v: install the test packages with scripts/install.sh test", err)
	}
}

func TestReadRealWAV(t *testing.T) {
	needFile(t, frontCenter)
	w, err := ReadWAVFile(frontCenter)
	if err != nil {
		t.Fatal(err)
	}
	if w.SampleRate != 48000 || w.Channels != 1 {
		t.Fatalf("%d Hz × %d channels, want 48000 × 1", w.SampleRate, w.Channels)
	}
	// The data chunk is 137090 bytes: 68545 samples.
	if w.Frames() != 68545 {
		t.Errorf("%d frames, want 68545", w.Frames())
	}
	if d := w.Duration(); d < 1400*time.Millisecond || d > 1450*time.Millisecond {
		t.Errorf("duration %v, want about 1.43 s", d)
	}
	mono := w.Mono()
	if r := rms(mono); r < 0.01 {
		t.Errorf("voice RMS %.4f: samples read as near silence", r)
	}
	// Written out and read back, the clip is the same.
	var buf bytes.Buffer
	if err := WriteWAV(&buf, w); err != nil {
		t.Fatal(err)
	}
	again, err := ReadWAV(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if again.SampleRate != w.SampleRate || again.Channels != w.Channels || !slices.Equal(again.Samples, w.Samples) {
		t.Error("write → read changed the clip")
	}
}

// wavBytes builds a WAV file by hand so each test can break one field.
func wavBytes(format, channels uint16, rate uint32, blockAlign, bits uint16, extra []byte, data []byte) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	b.WriteString("RIFF")
	binary.Write(&b, le, uint32(0)) // readers ignore the RIFF size; so does ReadWAV
	b.WriteString("WAVE")
	b.Write(extra)
	b.WriteString("fmt ")
	binary.Write(&b, le, uint32(16))
	binary.Write(&b, le, format)
	binary.Write(&b, le, channels)
	binary.Write(&b, le, rate)
	binary.Write(&b, le, rate*uint32(blockAlign))
	binary.Write(&b, le, blockAlign)
	binary.Write(&b, le, bits)
	b.WriteString("data")
	binary.Write(&b, le, uint32(len(data)))
	b.Write(data)
	return b.Bytes()
}

func TestReadWAVStereoAndChunks(t *testing.T) {
	// A LIST chunk of odd size (padded) before fmt, stereo samples.
	list := append([]byte("LIST\x03\x00\x00\x00abc"), 0)
	data := []byte{0x00, 0x40, 0x00, 0xc0, 0xff, 0x7f, 0xff, 0x7f} // (16384, -16384), (32767, 32767)
	w, err := ReadWAV(bytes.NewReader(wavBytes(1, 2, 16000, 4, 16, list, data)))
	if err != nil {
		t.Fatal(err)
	}
	if w.Channels != 2 || w.SampleRate != 16000 || !slices.Equal(w.Samples, []int16{16384, -16384, 32767, 32767}) {
		t.Fatalf("read %+v", w)
	}
	if m := w.Mono(); m[0] != 0 || m[1] < 0.999 {
		t.Errorf("stereo downmix %v, want [0 ~1]", m)
	}
}

func TestReadWAVStreamedSize(t *testing.T) {
	// ffmpeg writing to a pipe leaves the data size at 0xffffffff.
	b := wavBytes(1, 1, 48000, 2, 16, nil, []byte{1, 0, 2, 0, 3})
	binary.LittleEndian.PutUint32(b[40:], 0xffffffff)
	w, err := ReadWAV(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(w.Samples, []int16{1, 2}) {
		t.Errorf("samples %v, want [1 2] (the half frame at the end dropped)", w.Samples)
	}
}

func TestReadWAVRefusesOthers(t *testing.T) {
	pcm := []byte{0, 0, 0, 0}
	good := wavBytes(1, 1, 48000, 2, 16, nil, pcm)
	truncated := good[:len(good)-1]
	oddData := wavBytes(1, 2, 48000, 4, 16, nil, []byte{0, 0, 0})
	noData := good[:36]
	dataFirst := append([]byte("RIFF\x00\x00\x00\x00WAVE"), []byte("data\x00\x00\x00\x00")...)
	huge := wavBytes(1, 1, 48000, 2, 16, nil, nil)
	binary.LittleEndian.PutUint32(huge[40:], MaxWAVDataBytes+2)
	lying := wavBytes(1, 1, 48000, 2, 16, nil, nil) // claims 100 MB, holds none
	binary.LittleEndian.PutUint32(lying[40:], 100<<20)
	for _, c := range []struct {
		name, want string
		file       []byte
	}{
		{"empty", "not a RIFF/WAVE", nil},
		{"text", "not a RIFF/WAVE", []byte("hello, this is not audio")},
		{"RIFX", "RIFX", append([]byte("RIFX\x00\x00\x00\x00WAVE"), good[12:]...)},
		{"float", "float", wavBytes(3, 1, 48000, 4, 32, nil, pcm)},
		{"a-law", "0x0006", wavBytes(6, 1, 8000, 1, 8, nil, pcm)},
		{"8-bit", "8-bit", wavBytes(1, 1, 8000, 1, 8, nil, pcm)},
		{"24-bit", "24-bit", wavBytes(1, 1, 48000, 3, 24, nil, pcm)},
		{"no channels", "0 channels", wavBytes(1, 0, 48000, 0, 16, nil, pcm)},
		{"too many channels", "9 channels", wavBytes(1, 9, 48000, 18, 16, nil, pcm)},
		{"rate 0", "sample rate 0", wavBytes(1, 1, 0, 2, 16, nil, pcm)},
		{"rate 1 MHz", "sample rate 1000000", wavBytes(1, 1, 1000000, 2, 16, nil, pcm)},
		{"bad block align", "block align", wavBytes(1, 2, 48000, 2, 16, nil, pcm)},
		{"truncated data", "truncated", truncated},
		{"data not whole frames", "whole", oddData},
		{"no data chunk", "no data chunk", noData},
		{"data before fmt", "before its fmt", dataFirst},
		{"huge data chunk", "more than", huge},
		{"size that lies", "truncated", lying},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadWAV(bytes.NewReader(c.file))
			if err == nil {
				t.Fatal("read without error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
	if _, err := ReadWAV(bytes.NewReader([]byte("OggS\x00\x02\x00\x00\x00\x00\x00\x00"))); !errors.Is(err, ErrNotWAV) {
		t.Errorf("Ogg file: %v, want ErrNotWAV", err)
	}
	if _, err := ReadWAVFile("/nonexistent/voice.wav"); err == nil || !strings.Contains(err.Error(), "open WAV") {
		t.Errorf("missing file: %v", err)
	}
}

func TestWriteWAVRefusesBadClips(t *testing.T) {
	for _, w := range []*WAV{
		{SampleRate: 48000, Channels: 0},
		{SampleRate: 100, Channels: 1},
		{SampleRate: 48000, Channels: 2, Samples: []int16{1, 2, 3}},
	} {
		if err := WriteWAV(&bytes.Buffer{}, w); err == nil {
			t.Errorf("%+v written", w)
		}
	}
}

func TestFromFloat(t *testing.T) {
	got := FromFloat([]float32{0, 0.5, -0.5, 1, -1, 1.5, -2, float32(nan())})
	want := []int16{0, 16384, -16384, 32767, -32768, 32767, -32768, 0}
	if !slices.Equal(got, want) {
		t.Errorf("FromFloat = %v, want %v", got, want)
	}
}

func nan() float64 { var z float64; return z / z }

// FuzzReadWAV: any bytes give a clip or an error, never a panic or a huge
// allocation, and a clip that reads writes back to the same clip.
func FuzzReadWAV(f *testing.F) {
	f.Add(wavBytes(1, 1, 48000, 2, 16, nil, []byte{1, 2, 3, 4}))
	f.Add(wavBytes(1, 2, 44100, 4, 16, append([]byte("LIST\x01\x00\x00\x00x"), 0), []byte{1, 2, 3, 4}))
	f.Add(wavBytes(0xfffe, 1, 48000, 2, 16, nil, nil))
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVE"))
	if b, err := os.ReadFile(frontCenter); err == nil {
		f.Add(b[:4096])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := ReadWAV(bytes.NewReader(b))
		if err != nil {
			return
		}
		if len(w.Samples) > len(b)/2 {
			t.Fatalf("%d samples from %d bytes", len(w.Samples), len(b))
		}
		var out bytes.Buffer
		if err := WriteWAV(&out, w); err != nil {
			t.Fatalf("a clip that reads does not write: %v", err)
		}
		again, err := ReadWAV(&out)
		if err != nil {
			t.Fatalf("written clip does not read: %v", err)
		}
		if again.SampleRate != w.SampleRate || again.Channels != w.Channels || !slices.Equal(again.Samples, w.Samples) {
			t.Fatal("write → read changed the clip")
		}
	})
}

// TestReadWAVExtensible: sox and ffmpeg write WAVE_FORMAT_EXTENSIBLE for
// some layouts; with the PCM subformat it is the same 16-bit PCM.
func TestReadWAVExtensible(t *testing.T) {
	fmtChunk := func(sub []byte) []byte {
		var b bytes.Buffer
		le := binary.LittleEndian
		b.WriteString("RIFF\x00\x00\x00\x00WAVEfmt ")
		binary.Write(&b, le, uint32(40))
		for _, v := range []any{uint16(0xfffe), uint16(1), uint32(48000), uint32(96000), uint16(2), uint16(16),
			uint16(22), uint16(16), uint32(4)} { // cbSize, valid bits, channel mask
			binary.Write(&b, le, v)
		}
		b.Write(sub)
		b.WriteString("data\x02\x00\x00\x00\x34\x12")
		return b.Bytes()
	}
	w, err := ReadWAV(bytes.NewReader(fmtChunk(pcmSubformat)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(w.Samples, []int16{0x1234}) {
		t.Errorf("samples %v", w.Samples)
	}
	float := slices.Clone(pcmSubformat)
	float[0] = 3 // KSDATAFORMAT_SUBTYPE_IEEE_FLOAT
	if _, err := ReadWAV(bytes.NewReader(fmtChunk(float))); err == nil || !strings.Contains(err.Error(), "not integer PCM") {
		t.Errorf("extensible float: %v", err)
	}
}
