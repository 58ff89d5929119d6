package audio

import "math"

// The anti-aliasing filter of Downsampler3: a linear-phase low-pass FIR
// (Kaiser-windowed sinc) at 48 kHz. After decimation by 3 the new Nyquist
// frequency is 8 kHz, and anything above it would fold back into the speech
// band, so the filter passes up to about 6.5 kHz (speech energy the detector
// uses lies well below) and stops from about 8.5 kHz with ≥ 60 dB. A
// 97-tap filter keeps the 2 kHz transition and costs ~32 multiply-adds per
// input sample.
const (
	downsampleTaps   = 97
	downsampleCutoff = 7500.0 // Hz, the middle of the transition band
	downsampleBeta   = 5.65   // Kaiser β for about 60 dB of stopband
)

// DownsampleDelay is the filter's group delay in 16 kHz output samples
// ((taps-1)/2 input samples, 1 ms): output sample m reflects the input around
// 48 kHz sample 3m-48.
const DownsampleDelay = (downsampleTaps - 1) / 2 / 3

var downsampleFilter = makeLowPass(downsampleTaps, downsampleCutoff/48000, downsampleBeta)

// makeLowPass designs a Kaiser-windowed sinc low-pass of n taps (odd) with
// the cutoff as a fraction of the sample rate, normalised to unity gain at
// DC so a tone in the passband keeps its amplitude.
func makeLowPass(n int, cutoff, beta float64) []float32 {
	mid := float64(n-1) / 2
	h := make([]float64, n)
	var sum float64
	for i := range h {
		x := float64(i) - mid
		sinc := 2 * cutoff
		if x != 0 {
			sinc = math.Sin(2*math.Pi*cutoff*x) / (math.Pi * x)
		}
		r := x / mid
		h[i] = sinc * besselI0(beta*math.Sqrt(1-r*r)) / besselI0(beta)
		sum += h[i]
	}
	out := make([]float32, n)
	for i := range h {
		out[i] = float32(h[i] / sum)
	}
	return out
}

// besselI0 is the modified Bessel function of the first kind, order 0, by
// its power series (converges fast for the β of a window).
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 50; k++ {
		term *= (x / 2) / float64(k)
		sum += term * term
		if term*term < sum*1e-17 {
			break
		}
	}
	return sum
}

// Downsampler3 turns a 48 kHz mono stream into 16 kHz: low-pass, then keep
// every third sample. It is a streaming filter: the last input samples and
// the decimation phase carry over between calls, so feeding a stream in
// chunks of any length (one Opus packet, one sample, none) gives exactly the
// output of feeding it at once, without clicks at chunk boundaries. The
// stream starts from silence. Not safe for concurrent use; one per stream.
type Downsampler3 struct {
	// hist is the last len(filter)-1 input samples, oldest first.
	hist []float32
	// skip is how many input samples come before the next one that lines
	// up with an output sample (0, 1 or 2).
	skip int
	work []float32
}

// NewDownsampler3 makes a 48 kHz → 16 kHz down-sampler at the start of a
// stream.
func NewDownsampler3() *Downsampler3 {
	return &Downsampler3{hist: make([]float32, downsampleTaps-1)}
}

// Reset starts a new stream (as after a gap the caller does not conceal).
func (d *Downsampler3) Reset() {
	clear(d.hist)
	d.skip = 0
}

// Process appends to dst the 16 kHz samples that src (48 kHz) completes and
// returns it: about len(src)/3 of them, exactly one for every third input
// sample of the stream.
func (d *Downsampler3) Process(dst, src []float32) []float32 {
	n := len(d.hist)
	d.work = append(append(d.work[:0], d.hist...), src...)
	// src[i] is work[n+i]; the output at src[i] weighs work[i … n+i]. The
	// filter is symmetric, so which end of the window meets which tap does
	// not matter, and each pair of samples that share a tap is added first:
	// half the multiplications. Four sums break the chain of dependent
	// additions (BenchmarkDownsample20ms: 0.66 → 0.36 ms per audio-second).
	h := downsampleFilter[:downsampleTaps/2+1]
	for i := d.skip; i < len(src); i += 3 {
		w := d.work[i : i+downsampleTaps]
		var a0, a1, a2, a3 float32
		for k := 0; k+3 < downsampleTaps/2; k += 4 {
			a0 += h[k] * (w[k] + w[downsampleTaps-1-k])
			a1 += h[k+1] * (w[k+1] + w[downsampleTaps-2-k])
			a2 += h[k+2] * (w[k+2] + w[downsampleTaps-3-k])
			a3 += h[k+3] * (w[k+3] + w[downsampleTaps-4-k])
		}
		dst = append(dst, (a0+a1)+(a2+a3)+h[downsampleTaps/2]*w[downsampleTaps/2])
	}
	d.skip = ((d.skip-len(src))%3 + 3) % 3
	copy(d.hist, d.work[len(d.work)-n:])
	return dst
}

// Resample48to16 down-samples a whole 48 kHz clip to 16 kHz, as a fresh
// Downsampler3 would.
func Resample48to16(src []float32) []float32 {
	return NewDownsampler3().Process(make([]float32, 0, (len(src)+2)/3), src)
}
