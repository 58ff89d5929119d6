package reference_test

import (
	"fmt"
	"math"
	"os"
	"testing"

	"invigil/internal/testassets"
	"invigil/models/reference"
	"invigil/models/tflite"
)

// realModel describes one of the six MediaPipe models (see
// ../shared/MODELS.md): input side, the RGB range it expects and its
// outputs.
type realModel struct {
	name    string
	size    int
	lo, hi  float32
	outputs [][]int
	photo   string // a photo it should respond to
}

var realModels = []realModel{
	{"face_detection_short_range", 128, -1, 1, [][]int{{1, 896, 16}, {1, 896, 1}}, "sample1.jpg"},
	{"face_detection_full_range", 192, -1, 1, [][]int{{1, 2304, 16}, {1, 2304, 1}}, "sample1.jpg"},
	{"palm_detection_lite", 192, 0, 1, [][]int{{1, 2016, 18}, {1, 2016, 1}}, "handSrc.jpg"},
	{"palm_detection_full", 192, 0, 1, [][]int{{1, 2016, 18}, {1, 2016, 1}}, "handSrc.jpg"},
	// Outputs: 21 landmarks (x,y,z in crop pixels), hand presence and
	// handedness (both already sigmoid), 21 world landmarks.
	{"hand_landmark_lite", 224, 0, 1, [][]int{{1, 63}, {1, 1}, {1, 1}, {1, 63}}, "handSrc.jpg"},
	{"hand_landmark_full", 224, 0, 1, [][]int{{1, 63}, {1, 1}, {1, 1}, {1, 63}}, "handSrc.jpg"},
	// Outputs: 468 face landmarks (x,y,z in crop pixels) and a face logit.
	{"face_landmark", 192, 0, 1, [][]int{{1, 1, 1, 1404}, {1, 1, 1, 1}}, "messi5.jpg"},
}

// loadTFLite reads and parses a provisioned model (from $INVIGIL_MODELS).
func loadTFLite(t testing.TB, name string) ([]byte, *tflite.Model) {
	t.Helper()
	data, err := os.ReadFile(testassets.Model(t, name+".tflite"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := tflite.Parse(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return data, m
}

func newEvaluator(t testing.TB, name string) *reference.Evaluator {
	t.Helper()
	_, m := loadTFLite(t, name)
	e, err := reference.New(m)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return e
}

// run evaluates a model on a photo and checks the outputs' sizes and that
// every value is finite.
func run(t *testing.T, e *reference.Evaluator, rm realModel, photo string) [][]float32 {
	t.Helper()
	out, err := e.Run(photoInput(t, photo, rm.size, rm.lo, rm.hi))
	if err != nil {
		t.Fatalf("%s on %s: %v", rm.name, photo, err)
	}
	for i, o := range out {
		if want := numElements(rm.outputs[i]); len(o) != want {
			t.Fatalf("%s on %s: output %d has %d values, want %d", rm.name, photo, i, len(o), want)
		}
		for j, v := range o {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%s on %s: output %d[%d] = %v", rm.name, photo, i, j, v)
			}
		}
	}
	return out
}

func maxOf(v []float32) float32 {
	m := float32(math.Inf(-1))
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

func sigmoid(x float32) float64 { return 1 / (1 + math.Exp(-float64(x))) }

func numElements(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// TestRealModels runs each of the six models on real photos and checks
// that the answers make sense: the right shapes, finite values, and
// detections where there is something to detect and none where there is
// not. Together with the hand-computed op tests this is what makes the
// evaluator trustworthy as an oracle.
func TestRealModels(t *testing.T) {
	for _, rm := range realModels {
		t.Run(rm.name, func(t *testing.T) {
			e := newEvaluator(t, rm.name)
			if got, want := e.InputShape(), []int{1, rm.size, rm.size, 3}; !equalInts(got, want) {
				t.Fatalf("input shape %v, want %v", got, want)
			}
			shapes := e.OutputShapes()
			if len(shapes) != len(rm.outputs) {
				t.Fatalf("%d outputs, want %d", len(shapes), len(rm.outputs))
			}
			for i := range shapes {
				if !equalInts(shapes[i], rm.outputs[i]) {
					t.Fatalf("output %d shape %v, want %v", i, shapes[i], rm.outputs[i])
				}
			}
			switch rm.name {
			case "face_detection_short_range":
				// Every sample group photo has a face scoring above 0.5.
				for i := 1; i <= 6; i++ {
					photo := fmt.Sprintf("sample%d.jpg", i)
					if m := maxOf(run(t, e, rm, photo)[1]); m <= 0 {
						t.Errorf("%s: best face logit %.3f, want > 0", photo, m)
					}
				}
				expectNothing(t, e, rm, 1, "fruits.jpg", "building.jpg")
			case "face_detection_full_range":
				for _, photo := range []string{"sample1.jpg", "messi5.jpg"} {
					if m := maxOf(run(t, e, rm, photo)[1]); m <= 0 {
						t.Errorf("%s: best face logit %.3f, want > 0", photo, m)
					}
				}
				expectNothing(t, e, rm, 1, "fruits.jpg")
			case "palm_detection_lite", "palm_detection_full":
				if m := maxOf(run(t, e, rm, "handSrc.jpg")[1]); m <= 0 {
					t.Errorf("handSrc.jpg: best palm logit %.3f, want > 0", m)
				}
				expectNothing(t, e, rm, 1, "fruits.jpg")
			case "hand_landmark_lite", "hand_landmark_full":
				out := run(t, e, rm, "handSrc.jpg")
				if p := out[1][0]; p <= 0.5 {
					t.Errorf("handSrc.jpg: hand presence %.3f, want > 0.5", p)
				}
				// The letterboxed hand fills the crop: its landmarks lie in it.
				for k := 0; k < 21; k++ {
					x, y := out[0][3*k], out[0][3*k+1]
					if x < 0 || y < 0 || x > float32(rm.size) || y > float32(rm.size) {
						t.Errorf("handSrc.jpg: landmark %d at (%.1f, %.1f), outside the %d×%d crop", k, x, y, rm.size, rm.size)
					}
				}
				if p := run(t, e, rm, "fruits.jpg")[1][0]; p >= 0.5 {
					t.Errorf("fruits.jpg: hand presence %.3f, want < 0.5", p)
				}
			}
		})
	}
}

// expectNothing checks that no anchor of the logit output scores 0.5 or
// more after the sigmoid on photos without the object.
func expectNothing(t *testing.T, e *reference.Evaluator, rm realModel, output int, photos ...string) {
	t.Helper()
	for _, photo := range photos {
		if m := maxOf(run(t, e, rm, photo)[output]); sigmoid(m) >= 0.5 {
			t.Errorf("%s: best score %.3f (logit %.3f), want < 0.5", photo, sigmoid(m), m)
		}
	}
}

// BenchmarkReference times one evaluation of each model, in ms per run.
func BenchmarkReference(b *testing.B) {
	for _, rm := range realModels {
		b.Run(rm.name, func(b *testing.B) {
			e := newEvaluator(b, rm.name)
			in := photoInput(b, rm.photo, rm.size, rm.lo, rm.hi)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := e.Run(in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/run")
		})
	}
}
