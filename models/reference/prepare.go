package reference

import (
	"fmt"

	"invigil/models/tflite"
)

// hasFusedActivation reports whether the op carries a fused activation
// option that the evaluator applies to its result.
func hasFusedActivation(code tflite.Op) bool {
	switch code {
	case tflite.OpAdd, tflite.OpConv2D, tflite.OpDepthwiseConv2D, tflite.OpMaxPool2D,
		tflite.OpConcatenation, tflite.OpFullyConnected:
		return true
	}
	return false
}

// prepare validates one operator, infers its output shape and resolves its
// constant parameters. It returns nil for DEQUANTIZE, which it folds into
// a constant.
func (e *Evaluator) prepare(op *tflite.Operator) (*step, error) {
	n := len(e.model.Tensors)
	for _, t := range op.Inputs {
		if t < -1 || t >= n {
			return nil, fmt.Errorf("input tensor index %d out of range (%d tensors)", t, n)
		}
	}
	if len(op.Outputs) != 1 {
		return nil, fmt.Errorf("%d outputs; expected 1", len(op.Outputs))
	}
	s := &step{op: op, out: op.Outputs[0]}
	if s.out < 0 || s.out >= n {
		return nil, fmt.Errorf("output tensor index %d out of range (%d tensors)", s.out, n)
	}
	o := op.Options
	if hasFusedActivation(op.Code) && o.Activation > tflite.ActTanh {
		return nil, fmt.Errorf("unsupported fused activation %s", o.Activation)
	}

	var out []int // inferred output shape
	var err error
	switch op.Code {
	case tflite.OpDequantize:
		return nil, e.prepareDequantize(op)

	case tflite.OpAdd:
		a, b, err := e.twoFloatInputs(op)
		if err != nil {
			return nil, err
		}
		if out, err = broadcastShape(a, b); err != nil {
			return nil, err
		}

	case tflite.OpPrelu:
		x, alpha, err := e.twoFloatInputs(op)
		if err != nil {
			return nil, err
		}
		b, err := broadcastShape(x, alpha)
		if err != nil {
			return nil, err
		}
		if !equalShapes(b, x) {
			return nil, fmt.Errorf("alpha shape %v would broadcast input %v to %v", alpha, x, b)
		}
		out = x

	case tflite.OpRelu, tflite.OpRelu6, tflite.OpLogistic:
		if err := wantInputs(op, 1, 1); err != nil {
			return nil, err
		}
		if out, err = e.floatInput(op, 0); err != nil {
			return nil, err
		}

	case tflite.OpConv2D, tflite.OpDepthwiseConv2D:
		out, err = e.prepareConv(op, s)

	case tflite.OpMaxPool2D:
		out, err = e.preparePool(op, s)

	case tflite.OpPad:
		out, err = e.preparePad(op, s)

	case tflite.OpReshape:
		out, err = e.prepareReshape(op)

	case tflite.OpConcatenation:
		out, err = e.prepareConcat(op, s)

	case tflite.OpResizeBilinear:
		out, err = e.prepareResize(op)

	case tflite.OpMean:
		out, err = e.prepareMean(op, s)

	case tflite.OpFullyConnected:
		out, err = e.prepareFullyConnected(op)

	default:
		return nil, fmt.Errorf("unsupported op")
	}
	if err != nil {
		return nil, err
	}
	if err := e.setOutput(s.out, out); err != nil {
		return nil, err
	}
	return s, nil
}

// setOutput records the inferred shape of an operator's output tensor and
// checks it against the shape the file declares.
func (e *Evaluator) setOutput(t int, shape []int) error {
	tt := e.model.Tensors[t]
	if e.shapes[t] != nil || tt.IsConst() {
		return fmt.Errorf("output tensor %d %q is already defined (a constant, the input or another op's output)", t, tt.Name)
	}
	if tt.Type != tflite.Float32 {
		return fmt.Errorf("output tensor %d %q is %s; only FLOAT32 activations are supported", t, tt.Name, tt.Type)
	}
	if len(tt.Shape) > 0 && !equalShapes(tt.Shape, shape) {
		return fmt.Errorf("output tensor %d %q: inferred shape %v, the file declares %v", t, tt.Name, shape, tt.Shape)
	}
	for _, d := range shape {
		if d <= 0 {
			return fmt.Errorf("output tensor %d %q: inferred shape %v has an empty dimension", t, tt.Name, shape)
		}
	}
	e.shapes[t] = shape
	return nil
}

// wantInputs checks the operator's input count.
func wantInputs(op *tflite.Operator, min, max int) error {
	if len(op.Inputs) < min || len(op.Inputs) > max {
		if min == max {
			return fmt.Errorf("%d inputs; expected %d", len(op.Inputs), min)
		}
		return fmt.Errorf("%d inputs; expected %d to %d", len(op.Inputs), min, max)
	}
	return nil
}

// floatInput returns the shape of float input i: either the output of an
// earlier operator, the model input, or a constant (decoded here, so
// FLOAT16 and quantized weights become float32).
func (e *Evaluator) floatInput(op *tflite.Operator, i int) ([]int, error) {
	if i >= len(op.Inputs) || op.Inputs[i] < 0 {
		return nil, fmt.Errorf("input %d is missing", i)
	}
	t := op.Inputs[i]
	if e.shapes[t] != nil {
		return e.shapes[t], nil
	}
	tt := e.model.Tensors[t]
	if !tt.IsConst() {
		return nil, fmt.Errorf("input tensor %d %q is read before any operator writes it", t, tt.Name)
	}
	data, err := tt.Float32s()
	if err != nil {
		return nil, err
	}
	e.consts[t] = data
	e.shapes[t] = append([]int(nil), tt.Shape...)
	return e.shapes[t], nil
}

// optionalFloatInput is floatInput for an input that may be omitted (-1
// or absent); it returns a nil shape then.
func (e *Evaluator) optionalFloatInput(op *tflite.Operator, i int) ([]int, bool, error) {
	if i >= len(op.Inputs) || op.Inputs[i] < 0 {
		return nil, false, nil
	}
	s, err := e.floatInput(op, i)
	return s, true, err
}

func (e *Evaluator) twoFloatInputs(op *tflite.Operator) ([]int, []int, error) {
	if err := wantInputs(op, 2, 2); err != nil {
		return nil, nil, err
	}
	a, err := e.floatInput(op, 0)
	if err != nil {
		return nil, nil, err
	}
	b, err := e.floatInput(op, 1)
	return a, b, err
}

// intInput reads a constant integer input (paddings, a shape, axes, a size).
func (e *Evaluator) intInput(op *tflite.Operator, i int, what string) ([]int, []int, error) {
	if i >= len(op.Inputs) || op.Inputs[i] < 0 {
		return nil, nil, fmt.Errorf("%s input %d is missing", what, i)
	}
	tt := e.model.Tensors[op.Inputs[i]]
	if !tt.IsConst() {
		return nil, nil, fmt.Errorf("%s tensor %d %q is not constant; only constant %s are supported", what, tt.Index, tt.Name, what)
	}
	v, err := tt.Ints()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	return v, tt.Shape, nil
}

func (e *Evaluator) prepareDequantize(op *tflite.Operator) error {
	if err := wantInputs(op, 1, 1); err != nil {
		return err
	}
	t := op.Inputs[0]
	if t < 0 || !e.model.Tensors[t].IsConst() {
		return fmt.Errorf("only constant inputs are supported (weights stored as FLOAT16 or INT8)")
	}
	shape, err := e.floatInput(op, 0)
	if err != nil {
		return err
	}
	out := op.Outputs[0]
	if err := e.setOutput(out, shape); err != nil {
		return err
	}
	e.consts[out] = e.consts[t] // the widened constant, shared: never written
	return nil
}

// convGeometry computes a TFLite output size and the padding before the
// first element along one spatial axis (SAME: out = ceil(in/stride), the
// total padding split with the odd one after; VALID: no padding).
func convGeometry(in, k, stride, dilation int, p tflite.Padding) (out, before int, err error) {
	if k < 1 || stride < 1 || dilation < 1 {
		return 0, 0, fmt.Errorf("window %d, stride %d and dilation %d must be positive", k, stride, dilation)
	}
	eff := (k-1)*dilation + 1
	switch p {
	case tflite.PaddingSame:
		out = (in + stride - 1) / stride
		total := (out-1)*stride + eff - in
		if total < 0 {
			total = 0
		}
		return out, total / 2, nil // an odd extra goes after
	case tflite.PaddingValid:
		out = (in - eff + stride) / stride
		if in < eff {
			out = 0
		}
		return out, 0, nil
	}
	return 0, 0, fmt.Errorf("unknown padding %d", p)
}

func (e *Evaluator) prepareConv(op *tflite.Operator, s *step) ([]int, error) {
	if err := wantInputs(op, 2, 3); err != nil {
		return nil, err
	}
	x, err := e.floatInput(op, 0)
	if err != nil {
		return nil, err
	}
	w, err := e.floatInput(op, 1)
	if err != nil {
		return nil, err
	}
	if len(x) != 4 || len(w) != 4 {
		return nil, fmt.Errorf("input %v and filter %v must both be 4-D", x, w)
	}
	var outC int
	if op.Code == tflite.OpConv2D {
		// Filter [O, KH, KW, I].
		if w[3] != x[3] {
			return nil, fmt.Errorf("filter %v has %d input channels; input %v has %d (grouped convolution is not supported)", w, w[3], x, x[3])
		}
		outC = w[0]
	} else {
		// Filter [1, KH, KW, I*M]; output channel c*M+m reads input channel c.
		if w[0] != 1 || w[3]%x[3] != 0 {
			return nil, fmt.Errorf("depthwise filter %v does not fit input %v", w, x)
		}
		outC = w[3]
		if m := outC / x[3]; op.Options.DepthMultiplier != m && op.Options.DepthMultiplier != 0 {
			return nil, fmt.Errorf("depth multiplier %d, but filter %v on input %v implies %d", op.Options.DepthMultiplier, w, x, m)
		}
	}
	bias, ok, err := e.optionalFloatInput(op, 2)
	if err != nil {
		return nil, err
	}
	if ok && numElements(bias) != outC {
		return nil, fmt.Errorf("bias %v does not have %d elements", bias, outC)
	}
	o := op.Options
	oh, top, err := convGeometry(x[1], w[1], o.StrideH, o.DilationH, o.Padding)
	if err != nil {
		return nil, err
	}
	ow, left, err := convGeometry(x[2], w[2], o.StrideW, o.DilationW, o.Padding)
	if err != nil {
		return nil, err
	}
	s.padTop, s.padLeft = top, left
	return []int{x[0], oh, ow, outC}, nil
}

func (e *Evaluator) preparePool(op *tflite.Operator, s *step) ([]int, error) {
	if err := wantInputs(op, 1, 1); err != nil {
		return nil, err
	}
	x, err := e.floatInput(op, 0)
	if err != nil {
		return nil, err
	}
	if len(x) != 4 {
		return nil, fmt.Errorf("input %v must be 4-D", x)
	}
	o := op.Options
	if o.FilterH < 1 || o.FilterW < 1 {
		return nil, fmt.Errorf("pool filter %d×%d must be positive", o.FilterH, o.FilterW)
	}
	oh, top, err := convGeometry(x[1], o.FilterH, o.StrideH, 1, o.Padding)
	if err != nil {
		return nil, err
	}
	ow, left, err := convGeometry(x[2], o.FilterW, o.StrideW, 1, o.Padding)
	if err != nil {
		return nil, err
	}
	s.padTop, s.padLeft = top, left
	return []int{x[0], oh, ow, x[3]}, nil
}

func (e *Evaluator) preparePad(op *tflite.Operator, s *step) ([]int, error) {
	if err := wantInputs(op, 2, 2); err != nil {
		return nil, err
	}
	x, err := e.floatInput(op, 0)
	if err != nil {
		return nil, err
	}
	p, pshape, err := e.intInput(op, 1, "paddings")
	if err != nil {
		return nil, err
	}
	if len(pshape) != 2 || pshape[0] != len(x) || pshape[1] != 2 {
		return nil, fmt.Errorf("paddings shape %v does not fit input %v (want [%d 2])", pshape, x, len(x))
	}
	out := make([]int, len(x))
	s.padBefore = make([]int, len(x))
	for i := range x {
		b, a := p[2*i], p[2*i+1]
		if b < 0 || a < 0 {
			return nil, fmt.Errorf("negative paddings %v", p)
		}
		s.padBefore[i] = b
		out[i] = b + x[i] + a
	}
	return out, nil
}

func (e *Evaluator) prepareReshape(op *tflite.Operator) ([]int, error) {
	if err := wantInputs(op, 1, 2); err != nil {
		return nil, err
	}
	x, err := e.floatInput(op, 0)
	if err != nil {
		return nil, err
	}
	// The shape comes from the second input when there is one, else from
	// the options, else from the output tensor's declared shape.
	var shape []int
	switch {
	case len(op.Inputs) == 2 && op.Inputs[1] >= 0:
		v, vs, err := e.intInput(op, 1, "shape")
		if err != nil {
			return nil, err
		}
		if len(vs) != 1 {
			return nil, fmt.Errorf("shape tensor has shape %v; expected 1-D", vs)
		}
		shape = v
	case len(op.Options.NewShape) > 0:
		shape = op.Options.NewShape
	default:
		shape = e.model.Tensors[op.Outputs[0]].Shape
	}
	return resolveShape(x, shape)
}

// resolveShape fills in a single -1 dimension so that the element count
// matches the input.
func resolveShape(in, shape []int) ([]int, error) {
	out := append([]int(nil), shape...)
	unknown := -1
	known := 1
	for i, d := range out {
		switch {
		case d == -1 && unknown < 0:
			unknown = i
		case d <= 0:
			return nil, fmt.Errorf("new shape %v is invalid", shape)
		default:
			known *= d
		}
	}
	total := numElements(in)
	if unknown >= 0 {
		if total%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v to %v", in, shape)
		}
		out[unknown] = total / known
	}
	if numElements(out) != total {
		return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v", in, total, shape)
	}
	return out, nil
}

func (e *Evaluator) prepareConcat(op *tflite.Operator, s *step) ([]int, error) {
	if len(op.Inputs) == 0 {
		return nil, fmt.Errorf("no inputs")
	}
	first, err := e.floatInput(op, 0)
	if err != nil {
		return nil, err
	}
	rank := len(first)
	axis := op.Options.Axis
	if axis < 0 {
		axis += rank
	}
	if axis < 0 || axis >= rank {
		return nil, fmt.Errorf("axis %d out of range for rank %d", op.Options.Axis, rank)
	}
	s.axis = axis
	out := append([]int(nil), first...)
	for i := 1; i < len(op.Inputs); i++ {
		x, err := e.floatInput(op, i)
		if err != nil {
			return nil, err
		}
		if len(x) != rank {
			return nil, fmt.Errorf("input %d has shape %v; input 0 has %v", i, x, first)
		}
		for d := range x {
			if d != axis && x[d] != first[d] {
				return nil, fmt.Errorf("input %d has shape %v; input 0 has %v (they may differ only on axis %d)", i, x, first, axis)
			}
		}
		out[axis] += x[axis]
	}
	return out, nil
}

func (e *Evaluator) prepareResize(op *tflite.Operator) ([]int, error) {
	if err := wantInputs(op, 2, 2); err != nil {
		return nil, err
	}
	x, err := e.floatInput(op, 0)
	if err != nil {
		return nil, err
	}
	if len(x) != 4 {
		return nil, fmt.Errorf("input %v must be 4-D", x)
	}
	size, _, err := e.intInput(op, 1, "size")
	if err != nil {
		return nil, err
	}
	if len(size) != 2 || size[0] <= 0 || size[1] <= 0 {
		return nil, fmt.Errorf("size %v must be two positive numbers", size)
	}
	if op.Options.AlignCorners && op.Options.HalfPixelCenters {
		return nil, fmt.Errorf("align_corners and half_pixel_centers are both set")
	}
	return []int{x[0], size[0], size[1], x[3]}, nil
}

func (e *Evaluator) prepareMean(op *tflite.Operator, s *step) ([]int, error) {
	if err := wantInputs(op, 2, 2); err != nil {
		return nil, err
	}
	x, err := e.floatInput(op, 0)
	if err != nil {
		return nil, err
	}
	axes, _, err := e.intInput(op, 1, "axes")
	if err != nil {
		return nil, err
	}
	s.reduced = make([]bool, len(x))
	for _, a := range axes {
		if a < 0 {
			a += len(x)
		}
		if a < 0 || a >= len(x) {
			return nil, fmt.Errorf("axis %v out of range for input %v", axes, x)
		}
		s.reduced[a] = true
	}
	var out []int
	for i, d := range x {
		switch {
		case !s.reduced[i]:
			out = append(out, d)
		case op.Options.KeepDims:
			out = append(out, 1)
		}
	}
	if out == nil {
		out = []int{} // a scalar
	}
	return out, nil
}

func (e *Evaluator) prepareFullyConnected(op *tflite.Operator) ([]int, error) {
	if err := wantInputs(op, 2, 3); err != nil {
		return nil, err
	}
	if op.Options.WeightsFormat != 0 {
		return nil, fmt.Errorf("weights format %d is not supported", op.Options.WeightsFormat)
	}
	x, err := e.floatInput(op, 0)
	if err != nil {
		return nil, err
	}
	w, err := e.floatInput(op, 1)
	if err != nil {
		return nil, err
	}
	if len(w) != 2 {
		return nil, fmt.Errorf("weights %v must be 2-D [outputs, inputs]", w)
	}
	outN, inN := w[0], w[1]
	if len(x) == 0 || numElements(x)%inN != 0 {
		return nil, fmt.Errorf("input %v does not split into rows of %d", x, inN)
	}
	bias, ok, err := e.optionalFloatInput(op, 2)
	if err != nil {
		return nil, err
	}
	if ok && numElements(bias) != outN {
		return nil, fmt.Errorf("bias %v does not have %d elements", bias, outN)
	}
	if op.Options.KeepNumDims {
		if x[len(x)-1] != inN {
			return nil, fmt.Errorf("keep_num_dims with input %v and weights %v", x, w)
		}
		out := append([]int(nil), x...)
		out[len(out)-1] = outN
		return out, nil
	}
	return []int{numElements(x) / inN, outN}, nil
}

// broadcastShape is NumPy broadcasting: shapes align on the right and each
// pair of dimensions must match or contain a 1.
func broadcastShape(a, b []int) ([]int, error) {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := 0; i < n; i++ {
		da, db := dimFromRight(a, n-1-i), dimFromRight(b, n-1-i)
		switch {
		case da == db || db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast", a, b)
		}
	}
	return out, nil
}

// dimFromRight is dimension k counted from the right (0 = last), 1 beyond
// the rank.
func dimFromRight(shape []int, k int) int {
	if k < len(shape) {
		return shape[len(shape)-1-k]
	}
	return 1
}
