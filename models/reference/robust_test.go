package reference_test

import (
	"fmt"
	"math/rand"
	"testing"

	"invigil/models/reference"
	"invigil/models/tflite"
)

// TestCorruptGraphsNeverPanic damages a real model in random ways (tensor
// indices, shapes, op codes, options) and checks that New reports an error
// or accepts a graph that Run then evaluates, never panicking.
func TestCorruptGraphsNeverPanic(t *testing.T) {
	_, orig := loadTFLite(t, "face_detection_short_range")
	codes := []tflite.Op{tflite.OpAdd, tflite.OpConv2D, tflite.OpDepthwiseConv2D, tflite.OpMaxPool2D,
		tflite.OpRelu, tflite.OpPad, tflite.OpReshape, tflite.OpConcatenation, tflite.OpResizeBilinear,
		tflite.OpMean, tflite.OpFullyConnected, tflite.OpPrelu, tflite.OpDequantize, tflite.OpLogistic, tflite.OpMul}
	rng := rand.New(rand.NewSource(1))
	const iterations = 300
	accepted, runs := 0, 0
	for iter := 0; iter < iterations; iter++ {
		m := cloneModel(orig)
		what := mutate(rng, m, codes)
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("iteration %d (%s): panic: %v", iter, what, r)
				}
			}()
			e, err := reference.New(m)
			if err != nil {
				return
			}
			accepted++
			if runs < 3 { // Run costs ~0.1 s: check a few accepted graphs
				runs++
				if _, err := e.Run(make([]float32, 128*128*3)); err != nil {
					t.Logf("iteration %d (%s): Run: %v", iter, what, err)
				}
			}
		}()
	}
	t.Logf("%d of %d damaged graphs accepted (they still make sense), %d run", accepted, iterations, runs)
}

func cloneModel(m *tflite.Model) *tflite.Model {
	c := *m
	c.Tensors = make([]*tflite.Tensor, len(m.Tensors))
	for i, t := range m.Tensors {
		tc := *t
		tc.Shape = append([]int(nil), t.Shape...)
		c.Tensors[i] = &tc
	}
	c.Operators = make([]*tflite.Operator, len(m.Operators))
	for i, op := range m.Operators {
		oc := *op
		oc.Inputs = append([]int(nil), op.Inputs...)
		oc.Outputs = append([]int(nil), op.Outputs...)
		oc.Options.NewShape = append([]int(nil), op.Options.NewShape...)
		c.Operators[i] = &oc
	}
	c.Inputs = append([]int(nil), m.Inputs...)
	c.Outputs = append([]int(nil), m.Outputs...)
	return &c
}

// mutate applies one random change and describes it.
func mutate(rng *rand.Rand, m *tflite.Model, codes []tflite.Op) string {
	op := m.Operators[rng.Intn(len(m.Operators))]
	n := len(m.Tensors)
	switch rng.Intn(8) {
	case 0:
		if len(op.Inputs) == 0 {
			return "nothing"
		}
		i := rng.Intn(len(op.Inputs))
		op.Inputs[i] = rng.Intn(n+2) - 1
		return fmt.Sprintf("op %d input %d = %d", op.Index, i, op.Inputs[i])
	case 1:
		op.Inputs = op.Inputs[:rng.Intn(len(op.Inputs)+1)]
		return fmt.Sprintf("op %d keeps %d inputs", op.Index, len(op.Inputs))
	case 2:
		op.Code = codes[rng.Intn(len(codes))]
		return fmt.Sprintf("op %d becomes %s", op.Index, op.Code)
	case 3:
		t := m.Tensors[rng.Intn(n)]
		if len(t.Shape) > 0 {
			t.Shape[rng.Intn(len(t.Shape))] = rng.Intn(5)
		}
		return fmt.Sprintf("tensor %d shape %v", t.Index, t.Shape)
	case 4:
		t := m.Tensors[rng.Intn(n)]
		t.Shape = t.Shape[:rng.Intn(len(t.Shape)+1)]
		return fmt.Sprintf("tensor %d shape %v", t.Index, t.Shape)
	case 5:
		o := &op.Options
		o.StrideH, o.StrideW = rng.Intn(4), rng.Intn(4)
		o.DilationH, o.DilationW = rng.Intn(3), rng.Intn(3)
		o.FilterH, o.FilterW = rng.Intn(4), rng.Intn(4)
		o.Padding = tflite.Padding(rng.Intn(3))
		return fmt.Sprintf("op %d options %+v", op.Index, *o)
	case 6:
		op.Options.Axis = rng.Intn(9) - 4
		op.Options.Activation = tflite.Activation(rng.Intn(7))
		op.Options.NewShape = []int{rng.Intn(4) - 1, rng.Intn(4) - 1}
		return fmt.Sprintf("op %d axis/activation/new shape %+v", op.Index, op.Options)
	default:
		t := m.Tensors[rng.Intn(n)]
		t.Data = t.Data[:len(t.Data)/2]
		return fmt.Sprintf("tensor %d data truncated", t.Index)
	}
}
