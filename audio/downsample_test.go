package audio

import (
	"math"
	"math/rand"
	"slices"
	"testing"
)

func sine(freq, amplitude float64, rate, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(amplitude * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)))
	}
	return out
}

// toneAmplitude is the amplitude of the component at freq, by correlating
// with a sine and a cosine over the whole slice (a single DFT bin; the
// slices here hold whole periods, so there is no leakage).
func toneAmplitude(x []float32, freq float64, rate int) float64 {
	var re, im float64
	for i, v := range x {
		ph := 2 * math.Pi * freq * float64(i) / float64(rate)
		re += float64(v) * math.Cos(ph)
		im += float64(v) * math.Sin(ph)
	}
	return 2 * math.Hypot(re, im) / float64(len(x))
}

func rms(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(len(x)))
}

// settled drops the output the filter makes while its history still holds
// the silence before the stream.
func settled(out []float32) []float32 { return out[2*DownsampleDelay:] }

func TestDownsampleKeepsA1kHzTone(t *testing.T) {
	in := sine(1000, 0.5, 48000, 48000+3*2*DownsampleDelay)
	out := Resample48to16(in)
	if want := len(in) / 3; len(out) != want {
		t.Fatalf("%d samples in, %d out, want %d", len(in), len(out), want)
	}
	tone := settled(out)[:16000] // exactly one second, 1000 whole periods
	crossings := 0
	for i := 1; i < len(tone); i++ {
		if (tone[i-1] < 0) != (tone[i] < 0) {
			crossings++
		}
	}
	if freq := float64(crossings) / 2; math.Abs(freq-1000) > 2 {
		t.Errorf("output tone at %.1f Hz by zero crossings, want 1000", freq)
	}
	amp := toneAmplitude(tone, 1000, 16000)
	t.Logf("1 kHz at 0.5 in: amplitude %.4f out", amp)
	if math.Abs(amp-0.5)/0.5 > 0.02 {
		t.Errorf("1 kHz amplitude %.4f, want 0.5 within 2%%", amp)
	}
	// A 1 kHz sine's peak is its amplitude; the filter must not ring above it.
	peak := 0.0
	for _, v := range tone {
		peak = math.Max(peak, math.Abs(float64(v)))
	}
	if peak > 0.51 {
		t.Errorf("peak %.4f above the tone's 0.5", peak)
	}
}

// TestDownsamplePassband: the speech band comes through flat (within 0.5 dB),
// so the detector hears voices as the microphone did.
func TestDownsamplePassband(t *testing.T) {
	for _, f := range []float64{100, 300, 1000, 2000, 3400, 5000, 6000} {
		in := sine(f, 0.5, 48000, 48000+3*2*DownsampleDelay)
		out := settled(Resample48to16(in))[:16000]
		gain := 20 * math.Log10(toneAmplitude(out, f, 16000)/0.5)
		if math.Abs(gain) > 0.5 {
			t.Errorf("%.0f Hz: gain %.2f dB, want within ±0.5 dB", f, gain)
		}
	}
}

// TestDownsampleStopsAliases: tones above the new Nyquist frequency would
// fold back into the speech band (10 kHz → 6 kHz); the filter removes them
// first.
func TestDownsampleStopsAliases(t *testing.T) {
	worst := -math.MaxFloat64
	for f := 8500.0; f <= 23500; f += 500 {
		in := sine(f, 0.5, 48000, 48000+3*2*DownsampleDelay)
		out := settled(Resample48to16(in))[:16000]
		atten := 20 * math.Log10(rms(out)/(0.5/math.Sqrt2))
		worst = math.Max(worst, atten)
		limit := -55.0
		if f == 10000 {
			limit = -40 // what the brief asks of the 10 kHz tone
			t.Logf("10 kHz: %.1f dB", atten)
		}
		if atten > limit {
			t.Errorf("%.0f Hz comes through at %.1f dB, want ≤ %.0f dB", f, atten, limit)
		}
	}
	t.Logf("worst stopband leak 8.5–23.5 kHz: %.1f dB", worst)
}

// TestDownsampleChunkedMatchesOneShot: a stream fed in pieces of any length,
// empty ones included, gives bit for bit the output of feeding it at once.
func TestDownsampleChunkedMatchesOneShot(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	in := make([]float32, 20000)
	for i := range in {
		in[i] = float32(rng.NormFloat64() * 0.2)
	}
	whole := Resample48to16(in)
	for _, sizes := range [][]int{{1}, {2}, {3}, {960}, {7, 0, 1, 1000, 2}, nil} {
		d := NewDownsampler3()
		var out []float32
		for pos, k := 0, 0; pos < len(in); k++ {
			n := 1 + rng.Intn(700) // random chunks when no sizes are given
			if sizes != nil {
				n = sizes[k%len(sizes)]
			}
			n = min(n, len(in)-pos)
			out = d.Process(out, in[pos:pos+n])
			pos += n
		}
		if !slices.Equal(out, whole) {
			t.Errorf("chunks %v: output differs from one-shot (%d vs %d samples)", sizes, len(out), len(whole))
		}
	}
	// Reset starts over as a fresh stream does.
	d := NewDownsampler3()
	d.Process(nil, in[:1001])
	d.Reset()
	if again := d.Process(nil, in); !slices.Equal(again, whole) {
		t.Error("after Reset the output differs from a fresh down-sampler's")
	}
}

func TestDownsampleEmptyAndShortInput(t *testing.T) {
	if out := Resample48to16(nil); len(out) != 0 {
		t.Errorf("nil input gave %d samples", len(out))
	}
	d := NewDownsampler3()
	if out := d.Process(nil, []float32{}); len(out) != 0 {
		t.Errorf("empty input gave %d samples", len(out))
	}
	// Samples 0, 3, 6 … of the stream each make one output sample, however
	// the stream is cut: 1+1+1+1 input samples → outputs at 0 and 3.
	total := 0
	for i := 0; i < 4; i++ {
		total += len(d.Process(nil, []float32{0.5}))
	}
	if total != 2 {
		t.Errorf("four single samples gave %d outputs, want 2", total)
	}
	dst := []float32{42}
	if out := d.Process(dst, make([]float32, 6)); len(out) != 3 || out[0] != 42 {
		t.Errorf("Process does not append to dst: %v", out)
	}
}

func BenchmarkDownsample20ms(b *testing.B) {
	in := sine(440, 0.5, 48000, 960)
	d := NewDownsampler3()
	out := make([]float32, 0, 320)
	b.SetBytes(int64(4 * len(in)))
	for b.Loop() {
		out = d.Process(out[:0], in)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)*50/1e3, "µs/audio-s")
}

// TestFilterSymmetric: Process adds the samples that share a tap before
// multiplying, which is right only for a filter that is exactly symmetric.
func TestFilterSymmetric(t *testing.T) {
	for k := range downsampleFilter {
		if a, b := downsampleFilter[k], downsampleFilter[len(downsampleFilter)-1-k]; a != b {
			t.Fatalf("tap %d is %v, its mirror %v", k, a, b)
		}
	}
}
