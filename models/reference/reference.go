// Package reference is a plain, unoptimised evaluator of TFLite graphs in
// TFLite's own NHWC layout, in float32 throughout. It exists to be a test
// oracle: the ONNX files made by package convert, run through OpenCV, must
// reproduce its outputs. It is written for readability and for being
// obviously right, not for speed, and it is never used in production.
//
// New checks the whole graph once (supported ops, tensor indices, constant
// parameters, and every shape, which it infers itself and compares with the
// shapes the file declares), so that Run only does arithmetic on shapes
// known to be consistent. Errors name the operator index and op; malformed
// graphs never cause a panic.
package reference

import (
	"fmt"

	"invigil/models/tflite"
)

// Evaluator runs one TFLite model.
type Evaluator struct {
	model  *tflite.Model
	input  int         // the model's single input tensor
	shapes [][]int     // inferred shape of every tensor the graph uses
	consts [][]float32 // constant float data (weights, biases; DEQUANTIZE outputs)
	steps  []step
	// lastUse[t] is the index of the last step reading tensor t, so that Run
	// can drop intermediate results it no longer needs.
	lastUse []int
	isOut   []bool
}

// step is one operator with the parameters New resolved for it.
type step struct {
	op  *tflite.Operator
	out int // output tensor

	// CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D: padding before the first
	// row and column (the extra padding of an odd total goes after).
	padTop, padLeft int
	// PAD: padding before each axis.
	padBefore []int
	// MEAN: reduced[axis] is true for the axes averaged over.
	reduced []bool
	// CONCATENATION: the axis, made non-negative.
	axis int
}

// New validates m and prepares it for evaluation. Every operator must be
// one the evaluator supports; otherwise the error names the op and the
// operator's index. The Evaluator keeps m: do not modify it afterwards.
func New(m *tflite.Model) (*Evaluator, error) {
	if m == nil {
		return nil, fmt.Errorf("reference: nil model")
	}
	n := len(m.Tensors)
	for i, t := range m.Tensors {
		if t == nil {
			return nil, fmt.Errorf("reference: tensor %d is nil", i)
		}
	}
	if len(m.Inputs) != 1 {
		return nil, fmt.Errorf("reference: model has %d inputs; only single-input models are supported", len(m.Inputs))
	}
	if len(m.Outputs) == 0 {
		return nil, fmt.Errorf("reference: model has no outputs")
	}
	e := &Evaluator{
		model:   m,
		input:   m.Inputs[0],
		shapes:  make([][]int, n),
		consts:  make([][]float32, n),
		lastUse: make([]int, n),
		isOut:   make([]bool, n),
	}
	if e.input < 0 || e.input >= n {
		return nil, fmt.Errorf("reference: input tensor index %d out of range (%d tensors)", e.input, n)
	}
	in := m.Tensors[e.input]
	if in.Type != tflite.Float32 {
		return nil, fmt.Errorf("reference: input tensor %d %q is %s; only FLOAT32 inputs are supported", e.input, in.Name, in.Type)
	}
	if len(in.Shape) == 0 {
		return nil, fmt.Errorf("reference: input tensor %d %q has no shape", e.input, in.Name)
	}
	for _, d := range in.Shape {
		if d <= 0 {
			return nil, fmt.Errorf("reference: input tensor %d %q has shape %v; all dimensions must be known and positive", e.input, in.Name, in.Shape)
		}
	}
	e.shapes[e.input] = append([]int(nil), in.Shape...)

	for i, op := range m.Operators {
		if op == nil {
			return nil, fmt.Errorf("reference: operator %d is nil", i)
		}
		s, err := e.prepare(op)
		if err != nil {
			return nil, fmt.Errorf("reference: operator %d (%s): %w", i, opName(op), err)
		}
		if s != nil {
			e.steps = append(e.steps, *s)
		}
	}

	for t := range e.lastUse {
		e.lastUse[t] = -1
	}
	for si, s := range e.steps {
		for _, t := range s.op.Inputs {
			if t >= 0 {
				e.lastUse[t] = si
			}
		}
	}
	for _, t := range m.Outputs {
		if t < 0 || t >= n {
			return nil, fmt.Errorf("reference: output tensor index %d out of range (%d tensors)", t, n)
		}
		if e.shapes[t] == nil {
			return nil, fmt.Errorf("reference: output tensor %d %q is never computed", t, m.Tensors[t].Name)
		}
		e.isOut[t] = true
	}
	return e, nil
}

// InputShape is the shape Run expects its input in (NHWC for images).
func (e *Evaluator) InputShape() []int { return append([]int(nil), e.shapes[e.input]...) }

// OutputShapes lists the shape of each output, in the model's output order.
func (e *Evaluator) OutputShapes() [][]int {
	out := make([][]int, len(e.model.Outputs))
	for i, t := range e.model.Outputs {
		out[i] = append([]int(nil), e.shapes[t]...)
	}
	return out
}

// Run evaluates the graph on one input laid out in the model's input shape
// (NHWC, row-major) and returns each output, in the model's output order,
// as a flat row-major slice of the shape OutputShapes reports.
func (e *Evaluator) Run(input []float32) ([][]float32, error) {
	if want := numElements(e.shapes[e.input]); len(input) != want {
		return nil, fmt.Errorf("reference: input has %d values; shape %v needs %d", len(input), e.shapes[e.input], want)
	}
	vals := make([][]float32, len(e.model.Tensors))
	copy(vals, e.consts)
	vals[e.input] = input

	for si := range e.steps {
		s := &e.steps[si]
		out, err := e.exec(s, vals)
		if err != nil {
			return nil, err
		}
		vals[s.out] = out
		for _, t := range s.op.Inputs {
			if t >= 0 && e.lastUse[t] == si && !e.isOut[t] && e.consts[t] == nil {
				vals[t] = nil // let the garbage collector have it
			}
		}
	}

	outs := make([][]float32, len(e.model.Outputs))
	for i, t := range e.model.Outputs {
		// Copy: results may alias the input or the constants.
		outs[i] = append([]float32(nil), vals[t]...)
	}
	return outs, nil
}

// exec runs one prepared step; New checked every shape it relies on.
func (e *Evaluator) exec(s *step, vals [][]float32) ([]float32, error) {
	op := s.op
	o := op.Options
	in := func(i int) []float32 {
		if i >= len(op.Inputs) || op.Inputs[i] < 0 {
			return nil // an omitted optional input (a bias)
		}
		return vals[op.Inputs[i]]
	}
	shape := func(i int) []int { return e.shapes[op.Inputs[i]] }
	outShape := e.shapes[s.out]

	var y []float32
	switch op.Code {
	case tflite.OpAdd:
		y = add(in(0), shape(0), in(1), shape(1), outShape)
	case tflite.OpConv2D:
		y = conv2D(in(0), shape(0), in(1), shape(1), in(2), outShape,
			o.StrideH, o.StrideW, o.DilationH, o.DilationW, s.padTop, s.padLeft)
	case tflite.OpDepthwiseConv2D:
		y = depthwiseConv2D(in(0), shape(0), in(1), shape(1), in(2), outShape,
			o.StrideH, o.StrideW, o.DilationH, o.DilationW, s.padTop, s.padLeft)
	case tflite.OpMaxPool2D:
		y = maxPool2D(in(0), shape(0), outShape, o.FilterH, o.FilterW, o.StrideH, o.StrideW, s.padTop, s.padLeft)
	case tflite.OpRelu:
		y = applyActivation(clone(in(0)), tflite.ActRelu)
	case tflite.OpRelu6:
		y = applyActivation(clone(in(0)), tflite.ActRelu6)
	case tflite.OpLogistic:
		y = logistic(in(0))
	case tflite.OpPrelu:
		y = prelu(in(0), shape(0), in(1), shape(1))
	case tflite.OpPad:
		y = pad(in(0), shape(0), outShape, s.padBefore)
	case tflite.OpReshape:
		y = in(0) // same data, new shape: nothing is ever written in place
	case tflite.OpConcatenation:
		xs := make([][]float32, len(op.Inputs))
		shapes := make([][]int, len(op.Inputs))
		for i := range op.Inputs {
			xs[i], shapes[i] = in(i), shape(i)
		}
		y = concat(xs, shapes, outShape, s.axis)
	case tflite.OpResizeBilinear:
		y = resizeBilinear(in(0), shape(0), outShape, o.AlignCorners, o.HalfPixelCenters)
	case tflite.OpMean:
		y = mean(in(0), shape(0), s.reduced)
	case tflite.OpFullyConnected:
		y = fullyConnected(in(0), in(1), shape(1), in(2))
	default: // New accepts only the codes above
		return nil, fmt.Errorf("reference: operator %d (%s) was not prepared", op.Index, opName(op))
	}
	if hasFusedActivation(op.Code) {
		y = applyActivation(y, o.Activation)
	}
	return y, nil
}

func clone(x []float32) []float32 { return append([]float32(nil), x...) }

func opName(op *tflite.Operator) string {
	if op.Code == tflite.OpCustom && op.Custom != "" {
		return "CUSTOM " + op.Custom
	}
	return op.Code.String()
}

func numElements(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func equalShapes(a, b []int) bool {
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
