package reference_test

import (
	"encoding/binary"
	"math"
	"testing"

	"invigil/models/reference"
	"invigil/models/tflite"
)

// graph builds small tflite.Model values by hand for the op tests.
type graph struct{ m tflite.Model }

func (g *graph) add(t *tflite.Tensor) int {
	t.Index = len(g.m.Tensors)
	g.m.Tensors = append(g.m.Tensors, t)
	return t.Index
}

// input declares the model's (single) input.
func (g *graph) input(shape ...int) int {
	i := g.add(&tflite.Tensor{Name: "input", Shape: shape, Type: tflite.Float32})
	g.m.Inputs = append(g.m.Inputs, i)
	return i
}

// tensor declares an activation tensor; a nil shape leaves it undeclared.
func (g *graph) tensor(shape ...int) int {
	return g.add(&tflite.Tensor{Name: "t", Shape: shape, Type: tflite.Float32})
}

func (g *graph) floats(shape []int, v ...float32) int {
	data := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(f))
	}
	return g.add(&tflite.Tensor{Name: "const", Shape: shape, Type: tflite.Float32, Data: data})
}

func (g *graph) halves(shape []int, v ...uint16) int {
	data := make([]byte, 2*len(v))
	for i, h := range v {
		binary.LittleEndian.PutUint16(data[2*i:], h)
	}
	return g.add(&tflite.Tensor{Name: "const16", Shape: shape, Type: tflite.Float16, Data: data})
}

func (g *graph) ints(shape []int, v ...int32) int {
	data := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(data[4*i:], uint32(x))
	}
	return g.add(&tflite.Tensor{Name: "ints", Shape: shape, Type: tflite.Int32, Data: data})
}

// op appends an operator; opts starts from the defaults Parse uses.
func (g *graph) op(code tflite.Op, opts func(*tflite.Options), out int, in ...int) {
	o := tflite.Options{StrideW: 1, StrideH: 1, DilationW: 1, DilationH: 1, DepthMultiplier: 1}
	if opts != nil {
		opts(&o)
	}
	g.m.Operators = append(g.m.Operators, &tflite.Operator{
		Index: len(g.m.Operators), Code: code, Inputs: in, Outputs: []int{out}, Options: o,
	})
}

func (g *graph) output(t int) { g.m.Outputs = append(g.m.Outputs, t) }

// run evaluates the graph and returns its first output with its shape.
func (g *graph) run(t *testing.T, input []float32) ([]float32, []int) {
	t.Helper()
	e, err := reference.New(&g.m)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	out, err := e.Run(input)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return out[0], e.OutputShapes()[0]
}

func s(d ...int) []int { return d }

// seq is 1, 2, ..., n.
func seq(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i + 1)
	}
	return v
}

func fill(n int, x float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = x
	}
	return v
}

func expect(t *testing.T, got []float32, gotShape []int, want []float32, wantShape []int) {
	t.Helper()
	if !equalInts(gotShape, wantShape) {
		t.Fatalf("shape %v, want %v", gotShape, wantShape)
	}
	if len(got) != len(want) {
		t.Fatalf("%d values, want %d", len(got), len(want))
	}
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*(1+math.Abs(float64(want[i]))) {
			t.Fatalf("got %v\nwant %v (first difference at %d)", got, want, i)
		}
	}
}

func equalInts(a, b []int) bool {
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
