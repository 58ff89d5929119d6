package convert_test

import (
	"os"
	"strings"
	"testing"

	"invigil/internal/testassets"
	"invigil/models/convert"
	"invigil/models/onnx"
	"invigil/models/tflite"
	"invigil/models/tflite/tflitetest"
)

var realModels = []string{
	"face_detection_short_range", "face_detection_full_range",
	"palm_detection_lite", "palm_detection_full",
	"hand_landmark_lite", "hand_landmark_full", "face_landmark",
}

// checkWellFormed asserts what OpenCV's importer relies on: each value is
// defined once, before use; initializer names are unique; the outputs exist.
func checkWellFormed(t *testing.T, m *onnx.Model) {
	t.Helper()
	defined := map[string]bool{}
	for _, in := range m.Graph.Inputs {
		defined[in.Name] = true
	}
	for _, init := range m.Graph.Initializers {
		if defined[init.Name] {
			t.Fatalf("initializer %q defined twice", init.Name)
		}
		defined[init.Name] = true
		n := int64(1)
		for _, d := range init.Dims {
			n *= d
		}
		if got := int64(len(init.Float) + len(init.Int64)); got != n {
			t.Fatalf("initializer %q has %d values for dims %v", init.Name, got, init.Dims)
		}
	}
	for _, node := range m.Graph.Nodes {
		for _, in := range node.Inputs {
			if in != "" && !defined[in] {
				t.Fatalf("node %s (%s) uses %q before it is defined", node.Name, node.OpType, in)
			}
		}
		for _, out := range node.Outputs {
			if defined[out] {
				t.Fatalf("node %s (%s) redefines %q", node.Name, node.OpType, out)
			}
			defined[out] = true
		}
		if strings.ContainsAny(node.Name, ";/:") {
			t.Fatalf("unsanitised node name %q", node.Name)
		}
	}
	for _, out := range m.Graph.Outputs {
		if !defined[out.Name] {
			t.Fatalf("output %q is never produced", out.Name)
		}
	}
}

func TestConvertRealModels(t *testing.T) {
	for _, name := range realModels {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(testassets.Model(t, name+".tflite"))
			if err != nil {
				t.Fatal(err)
			}
			tm, err := tflite.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			m, err := convert.ConvertModel(tm)
			if err != nil {
				t.Fatal(err)
			}
			checkWellFormed(t, m)
			in := tm.Tensors[tm.Inputs[0]].Shape
			if got := m.Graph.Inputs[0].Dims; got[1] != 3 || got[2] != int64(in[1]) || got[3] != int64(in[2]) {
				t.Errorf("input dims %v, want NCHW of %v", got, in)
			}
			if len(m.Graph.Outputs) != len(tm.Outputs) {
				t.Fatalf("%d outputs, want %d", len(m.Graph.Outputs), len(tm.Outputs))
			}
			for i, o := range tm.Outputs {
				if m.Graph.Outputs[i].Name != tm.Tensors[o].Name {
					t.Errorf("output %d named %q, want %q", i, m.Graph.Outputs[i].Name, tm.Tensors[o].Name)
				}
			}
			ops := map[string]int{}
			for _, n := range m.Graph.Nodes {
				ops[n.OpType]++
				if n.OpType == "Clip" && len(n.Inputs) != 1 {
					t.Error("Clip must use the attribute form for OpenCV 4.6")
				}
			}
			if ops["Conv"] == 0 {
				t.Errorf("no Conv nodes: %v", ops)
			}
			// DEQUANTIZE is folded, never emitted.
			if ops["DequantizeLinear"] != 0 || ops["Cast"] != 0 {
				t.Errorf("unfolded dequantize: %v", ops)
			}
		})
	}
}

func TestConvertCases(t *testing.T) {
	for _, c := range tflitetest.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			m := convertCase(t, c)
			checkWellFormed(t, m)
			if len(m.Marshal()) == 0 {
				t.Fatal("empty encoding")
			}
		})
	}
}

func TestSamePadsUneven(t *testing.T) {
	// MODELS.md: a 5×5 stride-2 conv on an even size needs pads (1,2).
	m := convertCase(t, tflitetest.Cases()[1])
	for _, n := range m.Graph.Nodes {
		if n.OpType != "Conv" {
			continue
		}
		for _, a := range n.Attrs {
			if a.Name == "pads" {
				if want := []int64{1, 1, 2, 2}; !equal(a.Ints, want) {
					t.Errorf("pads %v, want %v", a.Ints, want)
				}
				return
			}
		}
	}
	t.Fatal("no Conv with pads")
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestUnsupportedOpNamed(t *testing.T) {
	tm, err := tflite.Parse(tflitetest.Cases()[0].Model)
	if err != nil {
		t.Fatal(err)
	}
	tm.Operators[1].Code = tflite.OpDensify
	_, err = convert.ConvertModel(tm)
	if err == nil || !strings.Contains(err.Error(), "operator 1 (DENSIFY)") {
		t.Fatalf("error %v does not name the op", err)
	}
	tm.Operators[1].Code = tflite.OpCustom
	tm.Operators[1].Custom = "Convolution2DTransposeBias"
	_, err = convert.ConvertModel(tm)
	if err == nil || !strings.Contains(err.Error(), "Convolution2DTransposeBias") {
		t.Fatalf("error %v does not name the custom op", err)
	}
}

func TestConvertMalformed(t *testing.T) {
	if _, err := convert.Convert([]byte("not a model at all")); err == nil {
		t.Fatal("garbage converted")
	}
	data := tflitetest.Cases()[0].Model
	for n := 0; n < len(data); n += 7 {
		_, _ = convert.Convert(data[:n]) // must not panic
	}
	// Weights whose shape disagrees with the input channels.
	tm, err := tflite.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	tm.Tensors[0].Shape = []int{1, 7, 9, 4}
	if _, err := convert.ConvertModel(tm); err == nil || !strings.Contains(err.Error(), "input channels") {
		t.Fatalf("mismatched channels: %v", err)
	}
}

func FuzzConvert(f *testing.F) {
	for _, c := range tflitetest.Cases() {
		f.Add(c.Model)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = convert.Convert(data)
	})
}

// TestFastDepthwise checks which depthwise layers are rewritten for
// OpenCV's fast path (their numbers are checked against the reference
// evaluator by TestCasesInOpenCV): a 5×5 layer becomes four 3×3 ones summed,
// a narrow layer is widened by zeros and cut back by a slice, and a layer
// too narrow to gain, or a wide 3×3 one, stays as it is.
func TestFastDepthwise(t *testing.T) {
	for _, c := range tflitetest.Cases() {
		if !strings.HasPrefix(c.Name, "depthwise3x3_") && !strings.HasPrefix(c.Name, "depthwise5x5_") {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			m := convertCase(t, c)
			kernels := map[int64]int{}
			ops := map[string]int{}
			for _, n := range m.Graph.Nodes {
				ops[n.OpType]++
				for _, a := range n.Attrs {
					if n.OpType == "Conv" && a.Name == "kernel_shape" {
						kernels[a.Ints[0]]++
					}
				}
			}
			var want3, want5, slices, sums int
			switch {
			case strings.Contains(c.Name, "_split"):
				want3, slices, sums = 4, 4, 1
			case strings.HasPrefix(c.Name, "depthwise3x3_widened"):
				want3, slices = 1, 1
			case strings.HasPrefix(c.Name, "depthwise3x3_kept"):
				want3 = 1
			default:
				want5 = 1
			}
			if kernels[3] != want3 || kernels[5] != want5 || ops["Slice"] != slices || ops["Sum"] != sums {
				t.Errorf("3×3 convolutions %d, 5×5 %d, ops %v; want %d 3×3, %d 5×5, %d slices, %d sums",
					kernels[3], kernels[5], ops, want3, want5, slices, sums)
			}
		})
	}
}

// convertCase parses and converts one single-op graph.
func convertCase(t *testing.T, c tflitetest.Case) *onnx.Model {
	t.Helper()
	tm, err := tflite.Parse(c.Model)
	if err != nil {
		t.Fatal(err)
	}
	m, err := convert.ConvertModel(tm)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
