package convert_test

import (
	"math"
	"math/rand"
	"testing"

	"gocv.io/x/gocv"

	"invigil/models/convert"
	"invigil/models/reference"
	"invigil/models/tflite"
	"invigil/models/tflite/tflitetest"
)

// TestCasesInOpenCV runs each single-op graph through OpenCV 4.6's DNN and
// through the pure-Go reference evaluator (TFLite semantics, NHWC) and
// requires the same numbers: this pins down layouts, padding, resize
// coordinates, and fused activations op by op. The real models are checked
// end to end by the reference package's oracle test.
func TestCasesInOpenCV(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for _, c := range tflitetest.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			tm, err := tflite.Parse(c.Model)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := reference.New(tm)
			if err != nil {
				t.Fatal(err)
			}
			inShape := tm.Tensors[tm.Inputs[0]].Shape
			nhwc := make([]float32, inShape[0]*inShape[1]*inShape[2]*inShape[3])
			for i := range nhwc {
				nhwc[i] = rng.Float32()*4 - 2
			}
			want, err := ev.Run(nhwc)
			if err != nil {
				t.Fatal(err)
			}

			onnxBytes, err := convert.Convert(c.Model)
			if err != nil {
				t.Fatal(err)
			}
			got := runOpenCV(t, onnxBytes, tm, nhwc)
			for i := range want {
				compare(t, tm.Tensors[tm.Outputs[i]].Name, got[i], want[i], 1e-4)
			}
		})
	}
}

// runOpenCV feeds an NHWC input as the NCHW blob the converted graph
// expects and returns the outputs in graph order.
func runOpenCV(t *testing.T, onnxBytes []byte, tm *tflite.Model, nhwc []float32) [][]float32 {
	t.Helper()
	net, err := gocv.ReadNetFromONNXBytes(onnxBytes)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	s := tm.Tensors[tm.Inputs[0]].Shape
	n, h, w, ch := s[0], s[1], s[2], s[3]
	// The blob owns its memory (NewMatWithSizesFromBytes would alias a Go
	// slice that the collector may move or free while OpenCV reads it).
	blob := gocv.NewMatWithSizes([]int{n, ch, h, w}, gocv.MatTypeCV32F)
	defer blob.Close()
	dst, err := blob.DataPtrFloat32()
	if err != nil {
		t.Fatal(err)
	}
	for b := 0; b < n; b++ {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				for k := 0; k < ch; k++ {
					dst[((b*ch+k)*h+y)*w+x] = nhwc[((b*h+y)*w+x)*ch+k]
				}
			}
		}
	}
	net.SetInput(blob, "")
	var names []string
	for _, o := range tm.Outputs {
		names = append(names, tm.Tensors[o].Name)
	}
	mats := net.ForwardLayers(names)
	out := make([][]float32, len(mats))
	for i, m := range mats {
		v, err := m.DataPtrFloat32()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = append([]float32(nil), v...)
		m.Close()
	}
	return out
}

// compare requires |got-want| ≤ tol × range(want) element-wise.
func compare(t *testing.T, name string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range want {
		lo, hi = math.Min(lo, float64(v)), math.Max(hi, float64(v))
	}
	span := math.Max(hi-lo, 1e-6)
	worst, at := 0.0, 0
	for i := range want {
		if d := math.Abs(float64(got[i]-want[i])) / span; d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	if worst > tol || math.IsNaN(worst) {
		t.Errorf("%s: element %d is %g, want %g (relative error %.2g > %g)", name, at, got[at], want[at], worst, tol)
	}
}
