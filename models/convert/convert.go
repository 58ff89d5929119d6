// Package convert turns TFLite models into ONNX graphs that OpenCV 4.6's DNN
// module imports. It handles the ops of Google's MediaPipe face, palm and
// hand-landmark models; the facts it relies on are in ../shared/MODELS.md.
//
// Layout: TFLite is NHWC, OpenCV's DNN is NCHW. Every 4-D tensor inside the
// emitted graph is NCHW (so BlobFromImage feeds the input directly); tensors
// of other ranks keep TFLite's layout. A Transpose is inserted wherever a
// 4-D tensor meets an op that depends on element order (RESHAPE), which is
// what keeps the detection heads' anchor rows in TFLite order.
package convert

import (
	"fmt"
	"strings"

	"invigil/models/onnx"
	"invigil/models/tflite"
)

// Version identifies the converter's output; bump it whenever the emitted
// graph changes so that provisioned models are converted again.
const Version = "3"

// Convert converts a TFLite flatbuffer to a serialized ONNX model.
func Convert(tfliteData []byte) ([]byte, error) {
	m, err := tflite.Parse(tfliteData)
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	model, err := ConvertModel(m)
	if err != nil {
		return nil, err
	}
	return model.Marshal(), nil
}

// ConvertModel converts a parsed TFLite model to an ONNX model.
func ConvertModel(m *tflite.Model) (*onnx.Model, error) {
	c := &converter{
		m:      m,
		consts: map[int][]float32{},
		names:  map[int]string{},
		inits:  map[string]bool{},
	}
	if err := c.run(); err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	return &onnx.Model{
		IRVersion:       7,
		Opset:           11,
		ProducerName:    "invigil-tflite2onnx",
		ProducerVersion: Version,
		Graph:           c.g,
	}, nil
}

type converter struct {
	m      *tflite.Model
	g      onnx.Graph
	consts map[int][]float32 // float values of constant tensors, incl. DEQUANTIZE outputs
	names  map[int]string    // ONNX value name of each tensor
	inits  map[string]bool   // initializer names already emitted
	serial int
}

// sanitize keeps names readable but free of the ';' and '/' that TFLite
// names carry; the index prefix keeps them unique.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

func (c *converter) name(t int) string {
	if n, ok := c.names[t]; ok {
		return n
	}
	n := fmt.Sprintf("t%d_%s", t, sanitize(c.m.Tensors[t].Name))
	c.names[t] = n
	return n
}

func (c *converter) fresh(base string) string {
	c.serial++
	return fmt.Sprintf("%s__%d", base, c.serial)
}

func (c *converter) addNode(op string, inputs, outputs []string, attrs ...onnx.Attr) {
	c.g.Nodes = append(c.g.Nodes, onnx.Node{
		Name:    c.fresh(op),
		OpType:  op,
		Inputs:  inputs,
		Outputs: outputs,
		Attrs:   attrs,
	})
}

// addInit emits an initializer once; a TFLite tensor used by several ops
// must map to one ONNX initializer (OpenCV rejects duplicates).
func (c *converter) addInit(t onnx.Tensor) string {
	if !c.inits[t.Name] {
		c.inits[t.Name] = true
		c.g.Initializers = append(c.g.Initializers, t)
	}
	return t.Name
}

func (c *converter) int64Const(base string, v ...int64) string {
	return c.addInit(onnx.Int64Tensor(c.fresh(base), []int64{int64(len(v))}, v))
}

func (c *converter) rank(t int) int { return len(c.m.Tensors[t].Shape) }

func (c *converter) shape(t int) []int { return c.m.Tensors[t].Shape }

// constFloats returns the float values of a constant tensor, or nil.
func (c *converter) constFloats(t int) ([]float32, error) {
	if v, ok := c.consts[t]; ok {
		return v, nil
	}
	tt := c.m.Tensors[t]
	if !tt.IsConst() {
		return nil, nil
	}
	v, err := tt.Float32s()
	if err != nil {
		return nil, err
	}
	c.consts[t] = v
	return v, nil
}

func (c *converter) run() error {
	if len(c.m.Inputs) != 1 {
		return fmt.Errorf("model has %d inputs; one image input is expected", len(c.m.Inputs))
	}
	in := c.m.Inputs[0]
	s := c.shape(in)
	if len(s) != 4 {
		return fmt.Errorf("input %q has shape %v; an NHWC image [1,H,W,C] is expected", c.m.Tensors[in].Name, s)
	}
	c.names[in] = sanitize(c.m.Tensors[in].Name)
	c.g.Name = "invigil"
	c.g.Inputs = append(c.g.Inputs, onnx.ValueInfo{Name: c.names[in], Dims: []int64{int64(s[0]), int64(s[3]), int64(s[1]), int64(s[2])}})

	outputs := map[int]bool{}
	for _, o := range c.m.Outputs {
		outputs[o] = true
	}
	for _, op := range c.m.Operators {
		if err := c.convertOp(op); err != nil {
			return fmt.Errorf("operator %d (%s): %w", op.Index, op.Code, err)
		}
	}
	for _, o := range c.m.Outputs {
		if err := c.emitOutput(o); err != nil {
			return err
		}
	}
	return nil
}

// emitOutput names graph outputs after the TFLite output tensors and gives
// 4-D outputs back their NHWC layout so shapes match the TFLite model's.
func (c *converter) emitOutput(t int) error {
	name := sanitize(c.m.Tensors[t].Name)
	src, ok := c.names[t]
	if !ok {
		return fmt.Errorf("output %q is produced by no operator", c.m.Tensors[t].Name)
	}
	if c.rank(t) == 4 {
		c.addNode("Transpose", []string{src}, []string{name}, onnx.IntsAttr("perm", 0, 2, 3, 1))
	} else if src != name {
		c.addNode("Identity", []string{src}, []string{name})
	}
	dims := make([]int64, 0, c.rank(t))
	for _, d := range c.shape(t) {
		dims = append(dims, int64(d))
	}
	c.g.Outputs = append(c.g.Outputs, onnx.ValueInfo{Name: name, Dims: dims})
	return nil
}

func (c *converter) checkIO(op *tflite.Operator, minIn, maxIn int) error {
	if len(op.Inputs) < minIn || len(op.Inputs) > maxIn {
		return fmt.Errorf("%d inputs, want %d to %d", len(op.Inputs), minIn, maxIn)
	}
	if len(op.Outputs) != 1 {
		return fmt.Errorf("%d outputs, want 1", len(op.Outputs))
	}
	for i := 0; i < minIn; i++ {
		if op.Inputs[i] < 0 {
			return fmt.Errorf("required input %d is omitted", i)
		}
	}
	return nil
}

// activationInput returns the value an activated op must be produced into.
func (c *converter) activated(act tflite.Activation, out int) (string, func() error) {
	final := c.name(out)
	if act == tflite.ActNone {
		return final, func() error { return nil }
	}
	pre := c.fresh(final + "_preact")
	return pre, func() error { return c.activation(act, pre, final) }
}

func (c *converter) activation(act tflite.Activation, in, out string) error {
	switch act {
	case tflite.ActNone:
		c.addNode("Identity", []string{in}, []string{out})
	case tflite.ActRelu:
		c.addNode("Relu", []string{in}, []string{out})
	case tflite.ActRelu6:
		// OpenCV 4.6 imports only the attribute form of Clip.
		c.addNode("Clip", []string{in}, []string{out}, onnx.FloatAttr("min", 0), onnx.FloatAttr("max", 6))
	case tflite.ActReluN1To1:
		c.addNode("Clip", []string{in}, []string{out}, onnx.FloatAttr("min", -1), onnx.FloatAttr("max", 1))
	case tflite.ActTanh:
		c.addNode("Tanh", []string{in}, []string{out})
	default:
		return fmt.Errorf("unsupported fused activation %s", act)
	}
	return nil
}

func (c *converter) convertOp(op *tflite.Operator) error {
	switch op.Code {
	case tflite.OpDequantize:
		return c.dequantize(op)
	case tflite.OpConv2D:
		return c.conv(op)
	case tflite.OpDepthwiseConv2D:
		return c.depthwise(op)
	case tflite.OpRelu:
		return c.unary(op, "Relu")
	case tflite.OpRelu6:
		if err := c.checkIO(op, 1, 1); err != nil {
			return err
		}
		return c.activation(tflite.ActRelu6, c.name(op.Inputs[0]), c.name(op.Outputs[0]))
	case tflite.OpLogistic:
		return c.unary(op, "Sigmoid")
	case tflite.OpAdd:
		return c.add(op)
	case tflite.OpPad:
		return c.pad(op)
	case tflite.OpMaxPool2D:
		return c.maxPool(op)
	case tflite.OpReshape:
		return c.reshape(op)
	case tflite.OpConcatenation:
		return c.concat(op)
	case tflite.OpResizeBilinear:
		return c.resize(op)
	case tflite.OpPrelu:
		return c.prelu(op)
	case tflite.OpMean:
		return c.mean(op)
	case tflite.OpFullyConnected:
		return c.fullyConnected(op)
	case tflite.OpCustom:
		return fmt.Errorf("unsupported custom op %q", op.Custom)
	}
	return fmt.Errorf("unsupported op %s", op.Code)
}

func (c *converter) dequantize(op *tflite.Operator) error {
	if err := c.checkIO(op, 1, 1); err != nil {
		return err
	}
	in := op.Inputs[0]
	if !c.m.Tensors[in].IsConst() {
		return fmt.Errorf("DEQUANTIZE of a non-constant tensor %q is not supported", c.m.Tensors[in].Name)
	}
	v, err := c.m.Tensors[in].Float32s()
	if err != nil {
		return err
	}
	if len(v) != c.m.Tensors[op.Outputs[0]].NumElements() {
		return fmt.Errorf("DEQUANTIZE output shape %v does not hold %d values", c.shape(op.Outputs[0]), len(v))
	}
	// Folded: the output becomes a constant that later ops turn into
	// initializers in whatever layout they need.
	c.consts[op.Outputs[0]] = v
	return nil
}

func (c *converter) unary(op *tflite.Operator, onnxOp string) error {
	if err := c.checkIO(op, 1, 1); err != nil {
		return err
	}
	c.addNode(onnxOp, []string{c.name(op.Inputs[0])}, []string{c.name(op.Outputs[0])})
	return nil
}

// samePads computes TFLite's SAME padding for one spatial axis: the output
// is ceil(in/stride) and any odd padding goes after, which ONNX expresses
// with uneven begin/end pads.
func samePads(in, k, stride, dilation int) (before, after int) {
	eff := (k-1)*dilation + 1
	out := (in + stride - 1) / stride
	total := (out-1)*stride + eff - in
	if total < 0 {
		total = 0
	}
	return total / 2, total - total/2
}

func (c *converter) spatialPads(in4 []int, kh, kw int, o tflite.Options) []int64 {
	if o.Padding != tflite.PaddingSame {
		return []int64{0, 0, 0, 0}
	}
	t, b := samePads(in4[1], kh, o.StrideH, o.DilationH)
	l, r := samePads(in4[2], kw, o.StrideW, o.DilationW)
	return []int64{int64(t), int64(l), int64(b), int64(r)}
}

func (c *converter) require4D(ts ...int) error {
	for _, t := range ts {
		if c.rank(t) != 4 {
			return fmt.Errorf("tensor %q has shape %v; 4-D NHWC is required", c.m.Tensors[t].Name, c.shape(t))
		}
	}
	return nil
}

// weights returns the constant values of a weight tensor, with an error
// naming it when it is not constant.
func (c *converter) weights(t int, what string) ([]float32, error) {
	v, err := c.constFloats(t)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if v == nil {
		return nil, fmt.Errorf("%s %q is not constant", what, c.m.Tensors[t].Name)
	}
	return v, nil
}

func (c *converter) bias(op *tflite.Operator, outC int) (string, error) {
	if len(op.Inputs) < 3 || op.Inputs[2] < 0 {
		return "", nil
	}
	v, err := c.weights(op.Inputs[2], "bias")
	if err != nil {
		return "", err
	}
	if len(v) != outC {
		return "", fmt.Errorf("bias has %d values for %d output channels", len(v), outC)
	}
	return c.addInit(onnx.FloatTensor(c.name(op.Inputs[2]), []int64{int64(outC)}, v)), nil
}

func (c *converter) conv(op *tflite.Operator) error {
	if err := c.checkIO(op, 2, 3); err != nil {
		return err
	}
	in, w, out := op.Inputs[0], op.Inputs[1], op.Outputs[0]
	if err := c.require4D(in, w, out); err != nil {
		return err
	}
	ws := c.shape(w) // OHWI
	o, kh, kw, ci := ws[0], ws[1], ws[2], ws[3]
	if ci != c.shape(in)[3] {
		return fmt.Errorf("weights %v do not match %d input channels", ws, c.shape(in)[3])
	}
	v, err := c.weights(w, "weights")
	if err != nil {
		return err
	}
	oihw := make([]float32, len(v))
	for oc := 0; oc < o; oc++ {
		for y := 0; y < kh; y++ {
			for x := 0; x < kw; x++ {
				for ic := 0; ic < ci; ic++ {
					oihw[((oc*ci+ic)*kh+y)*kw+x] = v[((oc*kh+y)*kw+x)*ci+ic]
				}
			}
		}
	}
	wname := c.addInit(onnx.FloatTensor(c.name(w)+"_oihw", []int64{int64(o), int64(ci), int64(kh), int64(kw)}, oihw))
	return c.emitConv(op, wname, o, kh, kw, 1)
}

// emitConv adds an ONNX Conv (with bias and fused activation) for a TFLite
// convolution whose weights are already the initializer wname.
func (c *converter) emitConv(op *tflite.Operator, wname string, outC, kh, kw, group int) error {
	in, out := op.Inputs[0], op.Outputs[0]
	inputs := []string{c.name(in), wname}
	b, err := c.bias(op, outC)
	if err != nil {
		return err
	}
	if b != "" {
		inputs = append(inputs, b)
	}
	dst, finish := c.activated(op.Options.Activation, out)
	c.addNode("Conv", inputs, []string{dst},
		onnx.IntsAttr("kernel_shape", int64(kh), int64(kw)),
		onnx.IntsAttr("strides", int64(op.Options.StrideH), int64(op.Options.StrideW)),
		onnx.IntsAttr("dilations", int64(op.Options.DilationH), int64(op.Options.DilationW)),
		onnx.IntsAttr("pads", c.spatialPads(c.shape(in), kh, kw, op.Options)...),
		onnx.IntAttr("group", int64(group)))
	return finish()
}

func (c *converter) depthwise(op *tflite.Operator) error {
	if err := c.checkIO(op, 2, 3); err != nil {
		return err
	}
	in, w, out := op.Inputs[0], op.Inputs[1], op.Outputs[0]
	if err := c.require4D(in, w, out); err != nil {
		return err
	}
	ws := c.shape(w) // [1, KH, KW, C*M]
	kh, kw, oc := ws[1], ws[2], ws[3]
	ci := c.shape(in)[3]
	if ws[0] != 1 || ci == 0 || oc%ci != 0 {
		return fmt.Errorf("depthwise weights %v do not fit %d input channels", ws, ci)
	}
	v, err := c.weights(w, "weights")
	if err != nil {
		return err
	}
	// TFLite output channel ic*M+m is ONNX group ic's m-th output: the
	// same index, so [1,KH,KW,C*M] becomes [C*M,1,KH,KW] by a plain transpose.
	cm := make([]float32, len(v))
	for ch := 0; ch < oc; ch++ {
		for y := 0; y < kh; y++ {
			for x := 0; x < kw; x++ {
				cm[(ch*kh+y)*kw+x] = v[(y*kw+x)*oc+ch]
			}
		}
	}
	if oc == ci {
		if margin, ok := fastLayout(kh, kw, c.shape(in), c.shape(out), op.Options); ok {
			return c.fastDepthwise(op, cm, kh, oc, margin)
		}
	}
	wname := c.addInit(onnx.FloatTensor(c.name(w)+"_c1hw", []int64{int64(oc), 1, int64(kh), int64(kw)}, cm))
	return c.emitConv(op, wname, oc, kh, kw, ci)
}

// OpenCV 4.6 runs a depthwise convolution on its vectorized path only if
// it is 3×3 with at most one pixel of padding and, at stride 1, at least
// fastWidth outputs wide; anything else takes its generic path, 8 to 26
// times slower (measured on this machine, one thread: a 5×5 layer of 32
// channels at 96×96 takes 3.3 ms, a 3×3 one 0.13 ms; 3×3 layers of 256
// channels run at 1.2–1.4 GMAC/s up to 14 wide, 14–20 from 16 wide). The palm detector and
// the hand landmark model are mostly 5×5 depthwise layers, and all the
// models end in small ones, so fastDepthwise rewrites the layers into what
// the fast path takes.
const fastWidth = 16

// fastLayout says whether a kh×kw depthwise layer is worth rewriting, and
// the zero margin its 3×3 convolutions need on the left and right to be
// fastWidth wide: a 5×5 layer at stride 1 becomes 3×3 blocks 2 wider than
// its output, at stride 2 it pays from 18 inputs wide (5.7 GMAC/s against
// 1.6); a narrow 3×3 or 5×5 layer at stride 1 is widened by zeros, which
// costs more multiplications (up to 2× at 8 wide) but at ten times the
// speed. Narrower than 8 the zeros would cost more than the speed gives.
func fastLayout(kh, kw int, in, out []int, o tflite.Options) (margin int, ok bool) {
	if kh != kw || (kh != 3 && kh != 5) || o.DilationH != 1 || o.DilationW != 1 || len(in) != 4 || len(out) != 4 {
		return 0, false
	}
	if o.StrideH == 2 && o.StrideW == 2 {
		return 0, kh == 5 && in[2] >= fastWidth+2
	}
	if o.StrideH != 1 || o.StrideW != 1 || out[2] < 8 {
		return 0, false
	}
	blocks := out[2] + kh - 3 // the 3×3 convolutions' width without a margin
	if blocks >= fastWidth {
		return 0, kh == 5 // a wide 3×3 layer is fast as it is
	}
	return (fastWidth - blocks + 1) / 2, true
}

// fastDepthwise emits a 3×3 or 5×5 depthwise convolution as fastLayout
// found OpenCV runs fast. The input is padded once as the layer would pad
// it, plus margin zero columns on either side (a Pad node: uneven padding
// is fine there, not in a convolution). A 5×5 kernel is cut into 3×3
// blocks at rows and columns {0, 2} (the middle row and column, which two
// blocks cover, belong to the first); a 3×3 kernel is its own block. Block
// (a, b) of output (y, x) reads padded input (s·y+a+i, s·x+b+margin+j),
// which is the unpadded 3×3 convolution's output (y+a/s, x+b/s+margin): a
// slice of it. The blocks' slices are summed.
func (c *converter) fastDepthwise(op *tflite.Operator, kernel []float32, k, channels, margin int) error {
	in, out := op.Inputs[0], op.Outputs[0]
	sh, sw := op.Options.StrideH, op.Options.StrideW
	if (sh != 1 && sh != 2) || (sw != 1 && sw != 2) || (margin > 0 && sw != 1) {
		return fmt.Errorf("%d×%d depthwise convolution with strides %d×%d and margin %d is not supported", k, k, sh, sw, margin)
	}
	is, os := c.shape(in), c.shape(out)         // NHWC
	pads := c.spatialPads(is, k, k, op.Options) // top, left, bottom, right
	pads[1] += int64(margin)
	pads[3] += int64(margin)
	padded := c.name(in)
	if pads[0]+pads[1]+pads[2]+pads[3] > 0 {
		padded = c.fresh(c.name(out) + "_padded")
		c.addNode("Pad", []string{c.name(in), c.int64Const("pads", 0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3])},
			[]string{padded}, onnx.StringAttr("mode", "constant"))
	}
	offsets := []int{0}
	if k == 5 {
		offsets = []int{0, 2}
	}
	last := offsets[len(offsets)-1]
	// The unpadded 3×3 convolutions' outputs must reach past the layer's
	// by the largest shift.
	ph, pw := is[1]+int(pads[0]+pads[2]), is[2]+int(pads[1]+pads[3])
	if (ph-3)/sh+1 < os[1]+last/sh || (pw-3)/sw+1 < os[2]+last/sw+2*margin {
		return fmt.Errorf("%d×%d depthwise convolution of %v to %v cannot be rewritten", k, k, is, os)
	}
	bias, err := c.bias(op, channels)
	if err != nil {
		return err
	}
	var parts []string
	for _, by := range offsets {
		for _, bx := range offsets {
			block := make([]float32, channels*9)
			for ch := 0; ch < channels; ch++ {
				for y := 0; y < 3; y++ {
					for x := 0; x < 3; x++ {
						if (by == 2 && y == 0) || (bx == 2 && x == 0) {
							continue // the middle row or column: the first block's
						}
						block[(ch*3+y)*3+x] = kernel[(ch*k+by+y)*k+bx+x]
					}
				}
			}
			wname := c.addInit(onnx.FloatTensor(c.fresh(c.name(op.Inputs[1])+"_block"), []int64{int64(channels), 1, 3, 3}, block))
			inputs := []string{padded, wname}
			if bias != "" && len(parts) == 0 {
				inputs = append(inputs, bias)
			}
			conv := c.fresh(c.name(out) + "_block")
			c.addNode("Conv", inputs, []string{conv},
				onnx.IntsAttr("kernel_shape", 3, 3),
				onnx.IntsAttr("strides", int64(sh), int64(sw)),
				onnx.IntsAttr("pads", 0, 0, 0, 0),
				onnx.IntAttr("group", int64(channels)))
			dy, dx := by/sh, bx/sw+margin
			shifted := c.fresh(c.name(out) + "_shifted")
			c.addNode("Slice", []string{conv,
				c.int64Const("starts", int64(dy), int64(dx)),
				c.int64Const("ends", int64(dy+os[1]), int64(dx+os[2])),
				c.int64Const("axes", 2, 3)}, []string{shifted})
			parts = append(parts, shifted)
		}
	}
	dst, finish := c.activated(op.Options.Activation, out)
	if len(parts) == 1 {
		c.addNode("Identity", parts, []string{dst})
	} else {
		// One Sum of the four (OpenCV's Eltwise reads them in one pass).
		c.addNode("Sum", parts, []string{dst})
	}
	return finish()
}

func (c *converter) add(op *tflite.Operator) error {
	if err := c.checkIO(op, 2, 2); err != nil {
		return err
	}
	a, b, out := op.Inputs[0], op.Inputs[1], op.Outputs[0]
	names := make([]string, 2)
	for i, t := range []int{a, b} {
		v, err := c.constFloats(t)
		if err != nil {
			return err
		}
		if v == nil {
			names[i] = c.name(t)
			continue
		}
		// A constant operand broadcasts over the last (channel) axis in
		// NHWC; in NCHW it must be shaped [1,C,1,1].
		if c.rank(out) == 4 && len(v) == c.shape(out)[3] {
			names[i] = c.addInit(onnx.FloatTensor(c.name(t)+"_c11", []int64{1, int64(len(v)), 1, 1}, v))
			continue
		}
		if c.rank(out) == 4 {
			return fmt.Errorf("constant operand of shape %v cannot broadcast to %v", c.shape(t), c.shape(out))
		}
		dims := make([]int64, 0, c.rank(t))
		for _, d := range c.shape(t) {
			dims = append(dims, int64(d))
		}
		names[i] = c.addInit(onnx.FloatTensor(c.name(t), dims, v))
	}
	if names[0] == "" || names[1] == "" {
		return fmt.Errorf("missing operand")
	}
	if c.rank(a) == 4 && c.rank(b) == 4 && !equalInts(c.shape(a), c.shape(b)) {
		return fmt.Errorf("broadcast between %v and %v is not supported", c.shape(a), c.shape(b))
	}
	dst, finish := c.activated(op.Options.Activation, out)
	c.addNode("Add", names, []string{dst})
	return finish()
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

func (c *converter) intConst(t int, what string) ([]int, error) {
	tt := c.m.Tensors[t]
	if !tt.IsConst() {
		return nil, fmt.Errorf("%s %q is not constant", what, tt.Name)
	}
	v, err := tt.Ints()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return v, nil
}

func (c *converter) pad(op *tflite.Operator) error {
	if err := c.checkIO(op, 2, 2); err != nil {
		return err
	}
	in, out := op.Inputs[0], op.Outputs[0]
	p, err := c.intConst(op.Inputs[1], "paddings")
	if err != nil {
		return err
	}
	r := c.rank(in)
	if len(p) != 2*r {
		return fmt.Errorf("paddings have %d values for rank %d", len(p), r)
	}
	for _, v := range p {
		if v < 0 {
			return fmt.Errorf("negative padding %v", p)
		}
	}
	// TFLite pairs (begin,end) per axis; ONNX lists all begins then all
	// ends, in NCHW axis order for 4-D tensors.
	axes := make([]int, r)
	for i := range axes {
		axes[i] = i
	}
	if r == 4 {
		axes = []int{0, 3, 1, 2}
	}
	pads := make([]int64, 2*r)
	for i, ax := range axes {
		pads[i] = int64(p[2*ax])
		pads[r+i] = int64(p[2*ax+1])
	}
	c.addNode("Pad", []string{c.name(in), c.int64Const("pads", pads...)}, []string{c.name(out)},
		onnx.StringAttr("mode", "constant"))
	return nil
}

func (c *converter) maxPool(op *tflite.Operator) error {
	if err := c.checkIO(op, 1, 1); err != nil {
		return err
	}
	in, out := op.Inputs[0], op.Outputs[0]
	if err := c.require4D(in, out); err != nil {
		return err
	}
	o := op.Options
	dst, finish := c.activated(o.Activation, out)
	c.addNode("MaxPool", []string{c.name(in)}, []string{dst},
		onnx.IntsAttr("kernel_shape", int64(o.FilterH), int64(o.FilterW)),
		onnx.IntsAttr("strides", int64(o.StrideH), int64(o.StrideW)),
		onnx.IntsAttr("pads", c.spatialPads(c.shape(in), o.FilterH, o.FilterW, o)...))
	return finish()
}

func (c *converter) reshape(op *tflite.Operator) error {
	if err := c.checkIO(op, 1, 2); err != nil {
		return err
	}
	in, out := op.Inputs[0], op.Outputs[0]
	src := c.name(in)
	if c.rank(in) == 4 {
		// Element order must be TFLite's (NHWC) before flattening.
		nhwc := c.fresh(src + "_nhwc")
		c.addNode("Transpose", []string{src}, []string{nhwc}, onnx.IntsAttr("perm", 0, 2, 3, 1))
		src = nhwc
	}
	target := make([]int64, 0, c.rank(out))
	for _, d := range c.shape(out) {
		target = append(target, int64(d))
	}
	if len(target) == 0 {
		return fmt.Errorf("reshape to a scalar is not supported")
	}
	dst := c.name(out)
	if c.rank(out) == 4 {
		dst = c.fresh(dst + "_nhwc")
	}
	c.addNode("Reshape", []string{src, c.int64Const("shape", target...)}, []string{dst})
	if c.rank(out) == 4 {
		c.addNode("Transpose", []string{dst}, []string{c.name(out)}, onnx.IntsAttr("perm", 0, 3, 1, 2))
	}
	return nil
}

func (c *converter) concat(op *tflite.Operator) error {
	if len(op.Inputs) < 1 || len(op.Outputs) != 1 {
		return fmt.Errorf("%d inputs and %d outputs", len(op.Inputs), len(op.Outputs))
	}
	out := op.Outputs[0]
	r := c.rank(out)
	axis := op.Options.Axis
	if axis < 0 {
		axis += r
	}
	if axis < 0 || axis >= r {
		return fmt.Errorf("axis %d out of range for rank %d", op.Options.Axis, r)
	}
	if r == 4 {
		axis = []int{0, 2, 3, 1}[axis] // NHWC axis → NCHW axis
	}
	var inputs []string
	for _, t := range op.Inputs {
		if t < 0 || c.rank(t) != r {
			return fmt.Errorf("input ranks differ from the output's %d", r)
		}
		if v, err := c.constFloats(t); err != nil {
			return err
		} else if v != nil {
			return fmt.Errorf("constant inputs are not supported")
		}
		inputs = append(inputs, c.name(t))
	}
	dst, finish := c.activated(op.Options.Activation, out)
	c.addNode("Concat", inputs, []string{dst}, onnx.IntAttr("axis", int64(axis)))
	return finish()
}

func (c *converter) resize(op *tflite.Operator) error {
	if err := c.checkIO(op, 2, 2); err != nil {
		return err
	}
	in, out := op.Inputs[0], op.Outputs[0]
	if err := c.require4D(in, out); err != nil {
		return err
	}
	size, err := c.intConst(op.Inputs[1], "size")
	if err != nil {
		return err
	}
	is, os := c.shape(in), c.shape(out)
	if len(size) != 2 || size[0] != os[1] || size[1] != os[2] || is[1] == 0 || is[2] == 0 {
		return fmt.Errorf("size %v does not match output %v", size, os)
	}
	mode := "asymmetric"
	switch {
	case op.Options.AlignCorners:
		mode = "align_corners"
	case op.Options.HalfPixelCenters:
		mode = "half_pixel"
	}
	scales := []float32{1, 1, float32(os[1]) / float32(is[1]), float32(os[2]) / float32(is[2])}
	sname := c.addInit(onnx.FloatTensor(c.fresh("scales"), []int64{4}, scales))
	c.addNode("Resize", []string{c.name(in), "", sname}, []string{c.name(out)},
		onnx.StringAttr("mode", "linear"),
		onnx.StringAttr("coordinate_transformation_mode", mode))
	return nil
}

func (c *converter) prelu(op *tflite.Operator) error {
	if err := c.checkIO(op, 2, 2); err != nil {
		return err
	}
	in, alpha, out := op.Inputs[0], op.Inputs[1], op.Outputs[0]
	if err := c.require4D(in, out); err != nil {
		return err
	}
	v, err := c.weights(alpha, "alpha")
	if err != nil {
		return err
	}
	ch := c.shape(in)[3]
	if len(v) != ch {
		return fmt.Errorf("alpha of shape %v is not per-channel for %d channels", c.shape(alpha), ch)
	}
	aname := c.addInit(onnx.FloatTensor(c.name(alpha)+"_c11", []int64{int64(ch), 1, 1}, v))
	c.addNode("PRelu", []string{c.name(in), aname}, []string{c.name(out)})
	return nil
}

func (c *converter) mean(op *tflite.Operator) error {
	if err := c.checkIO(op, 2, 2); err != nil {
		return err
	}
	in, out := op.Inputs[0], op.Outputs[0]
	if err := c.require4D(in); err != nil {
		return err
	}
	axes, err := c.intConst(op.Inputs[1], "axes")
	if err != nil {
		return err
	}
	if !(len(axes) == 2 && ((axes[0] == 1 && axes[1] == 2) || (axes[0] == 2 && axes[1] == 1))) {
		return fmt.Errorf("MEAN over axes %v is not supported (only the spatial axes [1,2])", axes)
	}
	if !op.Options.KeepDims {
		pooled := c.fresh(c.name(out) + "_pooled")
		c.addNode("GlobalAveragePool", []string{c.name(in)}, []string{pooled})
		ch := int64(c.shape(in)[3])
		c.addNode("Reshape", []string{pooled, c.int64Const("shape", 1, ch)}, []string{c.name(out)})
		return nil
	}
	c.addNode("GlobalAveragePool", []string{c.name(in)}, []string{c.name(out)})
	return nil
}

func (c *converter) fullyConnected(op *tflite.Operator) error {
	if err := c.checkIO(op, 2, 3); err != nil {
		return err
	}
	in, w, out := op.Inputs[0], op.Inputs[1], op.Outputs[0]
	if op.Options.WeightsFormat != 0 {
		return fmt.Errorf("weights format %d is not supported", op.Options.WeightsFormat)
	}
	ws := c.shape(w)
	if len(ws) != 2 {
		return fmt.Errorf("weights of shape %v, want [O,I]", ws)
	}
	o, i := ws[0], ws[1]
	v, err := c.weights(w, "weights")
	if err != nil {
		return err
	}
	src := c.name(in)
	if is := c.shape(in); len(is) != 2 || is[1] != i {
		if c.rank(in) == 4 {
			nhwc := c.fresh(src + "_nhwc")
			c.addNode("Transpose", []string{src}, []string{nhwc}, onnx.IntsAttr("perm", 0, 2, 3, 1))
			src = nhwc
		}
		flat := c.fresh(src + "_flat")
		c.addNode("Reshape", []string{src, c.int64Const("shape", -1, int64(i))}, []string{flat})
		src = flat
	}
	if c.rank(out) != 2 {
		return fmt.Errorf("output of shape %v, want 2-D", c.shape(out))
	}
	wname := c.addInit(onnx.FloatTensor(c.name(w), []int64{int64(o), int64(i)}, v))
	inputs := []string{src, wname}
	b, err := c.bias(op, o)
	if err != nil {
		return err
	}
	if b != "" {
		inputs = append(inputs, b)
	}
	dst, finish := c.activated(op.Options.Activation, out)
	c.addNode("Gemm", inputs, []string{dst}, onnx.IntAttr("transB", 1))
	return finish()
}
