package reference_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"invigil/models/convert"
	"invigil/models/reference"
	"invigil/models/tflite"
)

// oracleTolerance is the largest difference allowed between OpenCV running
// the converted model and the reference, relative to the range (max-min) of
// the reference output.
const oracleTolerance = 1e-3

// TestOracle converts each of the six models to ONNX, runs it in OpenCV's
// DNN through GoCV and requires every output to match the pure-Go
// reference evaluator of the original TFLite graph on real photos.
func TestOracle(t *testing.T) {
	for _, rm := range realModels {
		t.Run(rm.name, func(t *testing.T) {
			data, m := loadTFLite(t, rm.name)
			onnxBytes, err := convert.Convert(data)
			if err != nil {
				t.Fatalf("convert: %v", err)
			}
			e, err := reference.New(m)
			if err != nil {
				t.Fatal(err)
			}
			net, err := gocv.ReadNetFromONNXBytes(onnxBytes)
			if err != nil {
				t.Fatalf("OpenCV rejects the converted model: %v", err)
			}
			defer net.Close()
			names := onnxOutputNames(t, &net, m)

			for _, photo := range []string{rm.photo, "messi5.jpg"} {
				in := photoInput(t, photo, rm.size, rm.lo, rm.hi)
				want, err := e.Run(in)
				if err != nil {
					t.Fatal(err)
				}
				got := runNet(t, &net, names, e.InputShape(), in)
				for i := range want {
					worst := compareToRange(t, photo+" "+names[i], got[i], want[i], e.OutputShapes()[i])
					t.Logf("%s %s: worst difference %.2g of the output's range", photo, names[i], worst)
				}
			}
		})
	}
}

// onnxOutputNames lists the converted graph's outputs in TFLite output
// order. The converter names them after the TFLite output tensors, with
// every character other than a letter, digit or '_' replaced by '_'; OpenCV
// names each layer after its first output. The names are checked against
// the net's unconnected output layers first, since asking OpenCV for an
// unknown layer aborts the process. (GetLayerNames is not used: in GoCV
// v0.31 it returns dangling strings for some nets.)
func onnxOutputNames(t *testing.T, net *gocv.Net, m *tflite.Model) []string {
	t.Helper()
	var layers []string
	for _, id := range net.GetUnconnectedOutLayers() {
		l := net.GetLayer(id)
		layers = append(layers, l.GetName())
		l.Close()
	}
	var names []string
	for _, o := range m.Outputs {
		name := strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
				return r
			}
			return '_'
		}, m.Tensors[o].Name)
		if !slices.Contains(layers, name) {
			t.Fatalf("the converted net has no output layer %q for TFLite output %q (it has %q)", name, m.Tensors[o].Name, layers)
		}
		names = append(names, name)
	}
	return names
}

// runNet feeds the NHWC input as the NCHW blob [N,C,H,W] the converted
// graph takes (the same float values, only transposed) and returns the
// named outputs.
func runNet(t *testing.T, net *gocv.Net, names []string, nhwcShape []int, in []float32) [][]float32 {
	t.Helper()
	n, h, w, c := nhwcShape[0], nhwcShape[1], nhwcShape[2], nhwcShape[3]
	blob := gocv.NewMatWithSizes([]int{n, c, h, w}, gocv.MatTypeCV32F)
	defer blob.Close()
	nchw, err := blob.DataPtrFloat32()
	if err != nil {
		t.Fatal(err)
	}
	if len(nchw) != len(in) {
		t.Fatalf("blob holds %d values, input has %d", len(nchw), len(in))
	}
	for b := 0; b < n; b++ {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				for k := 0; k < c; k++ {
					nchw[((b*c+k)*h+y)*w+x] = in[((b*h+y)*w+x)*c+k]
				}
			}
		}
	}
	net.SetInput(blob, "")
	mats := net.ForwardLayers(names)
	out := make([][]float32, len(mats))
	for i := range mats {
		v, err := mats[i].DataPtrFloat32()
		if err != nil {
			t.Fatalf("output %s: %v", names[i], err)
		}
		out[i] = append([]float32(nil), v...)
		mats[i].Close()
	}
	return out
}

// compareToRange fails the test when any element of got differs from want
// by more than oracleTolerance times want's range, and returns the worst
// such ratio.
func compareToRange(t *testing.T, what string, got, want []float32, shape []int) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: OpenCV gives %d values, the reference %d (shape %v)", what, len(got), len(want), shape)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range want {
		lo, hi = math.Min(lo, float64(v)), math.Max(hi, float64(v))
	}
	span := hi - lo
	if span == 0 {
		// A single value (hand presence, handedness: probabilities) has no
		// range; use its size, but at least 1, the span of a probability.
		span = math.Max(math.Abs(hi), 1)
	}
	worst, at := 0.0, 0
	for i := range want {
		d := math.Abs(float64(got[i])-float64(want[i])) / span
		if d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	if worst > oracleTolerance || math.IsNaN(worst) {
		t.Errorf("%s: element %d is %g in OpenCV, %g in the reference: %.2g of the range %.3g (tolerance %g)",
			what, at, got[at], want[at], worst, span, oracleTolerance)
	}
	return worst
}
