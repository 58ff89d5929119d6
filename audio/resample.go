package audio

import (
	"fmt"
	"math"
)

// Resample converts a whole mono clip from one sample rate to another with a
// band-limited (Kaiser-windowed sinc) interpolator, as a browser's audio
// stack does before Opus: a 16 or 22.05 kHz test voice becomes 48 kHz
// without the images a linear interpolation leaves above the old Nyquist
// frequency, and a 96 kHz file loses what lies above 24 kHz instead of
// folding it into the speech band. The filter passes up to 92% of the lower
// of the two Nyquist frequencies, has unity gain at DC (each phase
// normalised) and about 80 dB of stopband. The output has
// ceil(len(src)·to/from) samples, sample n at input time n·from/to, the
// clip's ends padded with silence.
func Resample(src []float32, from, to int) ([]float32, error) {
	if from < MinWAVSampleRate || from > MaxWAVSampleRate || to < MinWAVSampleRate || to > MaxWAVSampleRate {
		return nil, fmt.Errorf("audio: resample %d Hz to %d Hz: rates must be %d to %d Hz", from, to, MinWAVSampleRate, MaxWAVSampleRate)
	}
	if from == to {
		return append([]float32(nil), src...), nil
	}
	g := gcd(from, to)
	up, down := to/g, from/g // output n sits at input position n·down/up
	n := int((int64(len(src))*int64(up) + int64(down) - 1) / int64(down))
	out := make([]float32, n)
	if n == 0 {
		return out, nil
	}

	// Cutoff in cycles per input sample and the half-width in input samples
	// that gives resampleZeros zero crossings on each side.
	fc := 0.5 * resampleRolloff * math.Min(1, float64(to)/float64(from))
	half := int(math.Ceil(resampleZeros / (2 * fc)))
	taps := 2 * half
	// One filter per fractional position: exact for ratios of small
	// integers (every rate pair of 8, 11.025, 16, 22.05, 44.1, 48, 96 kHz),
	// the nearest of resampleMaxPhases otherwise.
	phases := min(up, resampleMaxPhases)
	bank := make([]float32, phases*taps)
	i0 := besselI0(resampleBeta)
	for p := 0; p < phases; p++ {
		frac := float64(p) / float64(phases) // output time minus the tap's base sample
		row := bank[p*taps : (p+1)*taps]
		var sum float64
		h := make([]float64, taps)
		for k := range h {
			x := float64(k-half+1) - frac // input sample base-half+1+k, relative to the output time
			s := 2 * fc
			if x != 0 {
				s = math.Sin(2*math.Pi*fc*x) / (math.Pi * x)
			}
			r := x / float64(half)
			w := 0.0
			if r > -1 && r < 1 {
				w = besselI0(resampleBeta*math.Sqrt(1-r*r)) / i0
			}
			h[k] = s * w
			sum += h[k]
		}
		for k := range h {
			row[k] = float32(h[k] / sum)
		}
	}

	for i := range out {
		pos := int64(i) * int64(down)
		base := int(pos / int64(up))
		p := int(pos % int64(up))
		if phases != up {
			p = int(int64(p) * int64(phases) / int64(up))
		}
		row := bank[p*taps : (p+1)*taps]
		first := base - half + 1
		var acc float32
		if first >= 0 && first+taps <= len(src) {
			for k, c := range src[first : first+taps] {
				acc += c * row[k]
			}
		} else {
			for k, c := range row {
				if j := first + k; j >= 0 && j < len(src) {
					acc += src[j] * c
				}
			}
		}
		out[i] = acc
	}
	return out, nil
}

const (
	resampleRolloff   = 0.92
	resampleZeros     = 16 // zero crossings of the sinc on each side
	resampleBeta      = 7.9
	resampleMaxPhases = 1024
)

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
