package audio

import (
	"math"
	"testing"
)

// A 1 kHz tone at each common rate comes out at 48 kHz with its amplitude,
// its frequency and the right length; nothing is left at the images a
// linear interpolation would leave (the tone mirrored about the old rate).
func TestResampleTo48kKeepsATone(t *testing.T) {
	for _, from := range []int{8000, 11025, 16000, 22050, 32000, 44100, 47999, 96000} {
		x := sine(1000, 0.5, from, from) // one second
		y, err := Resample(x, from, 48000)
		if err != nil {
			t.Fatal(err)
		}
		if want := 48000; len(y) != want {
			t.Errorf("%d Hz: %d samples out, want %d", from, len(y), want)
		}
		mid := y[4800 : len(y)-4800] // away from the padded ends
		if a := toneAmplitude(mid, 1000, 48000); math.Abs(a-0.5) > 0.01 {
			t.Errorf("%d Hz: 1 kHz amplitude %.4f after resampling, want 0.5", from, a)
		}
		if from-1000 < 24000 {
			image := float64(from - 1000)
			if a := toneAmplitude(mid, image, 48000); a > 0.5e-3 {
				t.Errorf("%d Hz: image at %.0f Hz of amplitude %.2g (more than -60 dB)", from, image, a)
			}
		}
	}
}

// Going down, what lies above the new Nyquist frequency is removed, not
// folded into the speech band.
func TestResampleStopsAliases(t *testing.T) {
	x := sine(30000, 0.5, 96000, 96000)
	y, err := Resample(x, 96000, 48000)
	if err != nil {
		t.Fatal(err)
	}
	if a := toneAmplitude(y[4800:len(y)-4800], 18000, 48000); a > 0.5e-3 {
		t.Errorf("30 kHz at 96 kHz folded to 18 kHz with amplitude %.2g", a)
	}
	if r := rms(y[4800 : len(y)-4800]); r > 0.5e-3 {
		t.Errorf("RMS %.2g left of a tone above the new Nyquist frequency", r)
	}
}

func TestResampleEdges(t *testing.T) {
	if y, err := Resample(nil, 16000, 48000); err != nil || len(y) != 0 {
		t.Errorf("empty: %v, %v", y, err)
	}
	if y, err := Resample([]float32{0.25}, 16000, 48000); err != nil || len(y) != 3 {
		t.Errorf("one sample: %d samples, %v; want 3", len(y), err)
	}
	same := []float32{0.1, 0.2, 0.3}
	y, err := Resample(same, 48000, 48000)
	if err != nil || len(y) != 3 || y[1] != 0.2 {
		t.Errorf("same rate: %v, %v", y, err)
	}
	y[0] = 9
	if same[0] != 0.1 {
		t.Error("same rate: the output shares the input's memory")
	}
	// DC stays DC: every phase has unity gain.
	dc := make([]float32, 22050)
	for i := range dc {
		dc[i] = 0.5
	}
	y, _ = Resample(dc, 22050, 48000)
	for i := 1000; i < len(y)-1000; i++ {
		if math.Abs(float64(y[i])-0.5) > 1e-4 {
			t.Fatalf("DC 0.5 became %v at %d", y[i], i)
		}
	}
	for _, r := range [][2]int{{0, 48000}, {48000, 0}, {-1, 48000}, {48000, 1 << 30}} {
		if _, err := Resample(dc, r[0], r[1]); err == nil {
			t.Errorf("Resample %d → %d Hz: no error", r[0], r[1])
		}
	}
}

func BenchmarkResample22050to48k(b *testing.B) {
	x := sine(440, 0.5, 22050, 22050)
	b.ResetTimer()
	for range b.N {
		if _, err := Resample(x, 22050, 48000); err != nil {
			b.Fatal(err)
		}
	}
}
