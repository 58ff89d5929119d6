// Package tflite reads TensorFlow Lite model files (a flatbuffer) into a
// plain Go graph: tensors with their constant data, and operators with their
// options. It reads only what Invigil's converter and reference evaluator
// need, and reports malformed input as errors, never panics.
package tflite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// TensorType is the element type of a tensor (TFLite's TensorType enum).
type TensorType uint8

const (
	Float32 TensorType = 0
	Float16 TensorType = 1
	Int32   TensorType = 2
	Uint8   TensorType = 3
	Int64   TensorType = 4
	Int8    TensorType = 9
)

func (t TensorType) String() string {
	switch t {
	case Float32:
		return "FLOAT32"
	case Float16:
		return "FLOAT16"
	case Int32:
		return "INT32"
	case Uint8:
		return "UINT8"
	case Int64:
		return "INT64"
	case Int8:
		return "INT8"
	}
	return fmt.Sprintf("TensorType(%d)", uint8(t))
}

// elemSize is the byte size of one element, 0 for types we do not decode.
func (t TensorType) elemSize() int {
	switch t {
	case Float32, Int32:
		return 4
	case Float16:
		return 2
	case Int64:
		return 8
	case Uint8, Int8:
		return 1
	}
	return 0
}

// Op is a TFLite builtin operator code.
type Op int32

const (
	OpAdd             Op = 0
	OpAveragePool2D   Op = 1
	OpConcatenation   Op = 2
	OpConv2D          Op = 3
	OpDepthwiseConv2D Op = 4
	OpDequantize      Op = 6
	OpFullyConnected  Op = 9
	OpLogistic        Op = 14
	OpMaxPool2D       Op = 17
	OpMul             Op = 18
	OpRelu            Op = 19
	OpRelu6           Op = 21
	OpReshape         Op = 22
	OpResizeBilinear  Op = 23
	OpCustom          Op = 32
	OpPad             Op = 34
	OpMean            Op = 40
	OpPrelu           Op = 54
	OpDensify         Op = 124
)

var opNames = map[Op]string{
	OpAdd: "ADD", OpAveragePool2D: "AVERAGE_POOL_2D", OpConcatenation: "CONCATENATION",
	OpConv2D: "CONV_2D", OpDepthwiseConv2D: "DEPTHWISE_CONV_2D", OpDequantize: "DEQUANTIZE",
	OpFullyConnected: "FULLY_CONNECTED", OpLogistic: "LOGISTIC", OpMaxPool2D: "MAX_POOL_2D",
	OpMul: "MUL", OpRelu: "RELU", OpRelu6: "RELU6", OpReshape: "RESHAPE",
	OpResizeBilinear: "RESIZE_BILINEAR", OpCustom: "CUSTOM", OpPad: "PAD", OpMean: "MEAN",
	OpPrelu: "PRELU", OpDensify: "DENSIFY",
}

func (o Op) String() string {
	if n, ok := opNames[o]; ok {
		return n
	}
	return fmt.Sprintf("builtin op %d", int32(o))
}

// Padding is TFLite's padding scheme for convolutions and pools.
type Padding uint8

const (
	PaddingSame  Padding = 0
	PaddingValid Padding = 1
)

// Activation is a fused activation function.
type Activation uint8

const (
	ActNone      Activation = 0
	ActRelu      Activation = 1
	ActReluN1To1 Activation = 2
	ActRelu6     Activation = 3
	ActTanh      Activation = 4
)

func (a Activation) String() string {
	switch a {
	case ActNone:
		return "NONE"
	case ActRelu:
		return "RELU"
	case ActReluN1To1:
		return "RELU_N1_TO_1"
	case ActRelu6:
		return "RELU6"
	case ActTanh:
		return "TANH"
	}
	return fmt.Sprintf("activation %d", uint8(a))
}

// Options holds the builtin options of the operators Invigil handles. Only
// the fields meaningful for the operator's code are set.
type Options struct {
	Padding          Padding
	StrideW, StrideH int
	DilationW        int
	DilationH        int
	DepthMultiplier  int
	FilterW, FilterH int
	Activation       Activation
	Axis             int   // CONCATENATION
	NewShape         []int // RESHAPE (may be empty: then the shape input decides)
	AlignCorners     bool  // RESIZE_BILINEAR
	HalfPixelCenters bool  // RESIZE_BILINEAR
	KeepDims         bool  // MEAN
	KeepNumDims      bool  // FULLY_CONNECTED
	WeightsFormat    int   // FULLY_CONNECTED; 0 is the plain format
}

// Tensor is one tensor of the graph. Data is set for constant tensors.
type Tensor struct {
	Index int
	Name  string
	Shape []int
	Type  TensorType
	Data  []byte // raw little-endian constant data, nil for activations
	// Quantization parameters; empty for float models.
	Scale     []float32
	ZeroPoint []int64
}

// IsConst reports whether the tensor carries constant data.
func (t *Tensor) IsConst() bool { return len(t.Data) > 0 }

// NumElements is the product of the shape (1 for a scalar).
func (t *Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Float32s decodes constant data as float32, widening FLOAT16 and
// dequantizing INT8/UINT8 with the tensor's scale and zero point.
func (t *Tensor) Float32s() ([]float32, error) {
	n := t.NumElements()
	size := t.Type.elemSize()
	if size == 0 {
		return nil, fmt.Errorf("tensor %d %q: cannot decode %s as float", t.Index, t.Name, t.Type)
	}
	if len(t.Data) != n*size {
		return nil, fmt.Errorf("tensor %d %q: %d bytes of data for shape %v of %s", t.Index, t.Name, len(t.Data), t.Shape, t.Type)
	}
	out := make([]float32, n)
	switch t.Type {
	case Float32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
		}
	case Float16:
		for i := range out {
			out[i] = HalfToFloat(binary.LittleEndian.Uint16(t.Data[2*i:]))
		}
	case Int8, Uint8:
		if len(t.Scale) != 1 {
			return nil, fmt.Errorf("tensor %d %q: per-axis quantization is not supported", t.Index, t.Name)
		}
		zp := int64(0)
		if len(t.ZeroPoint) > 0 {
			zp = t.ZeroPoint[0]
		}
		for i := range out {
			var q int64
			if t.Type == Int8 {
				q = int64(int8(t.Data[i]))
			} else {
				q = int64(t.Data[i])
			}
			out[i] = float32(q-zp) * t.Scale[0]
		}
	default:
		return nil, fmt.Errorf("tensor %d %q: cannot decode %s as float", t.Index, t.Name, t.Type)
	}
	return out, nil
}

// Ints decodes constant INT32 or INT64 data.
func (t *Tensor) Ints() ([]int, error) {
	n := t.NumElements()
	switch t.Type {
	case Int32:
		if len(t.Data) != 4*n {
			return nil, fmt.Errorf("tensor %d %q: %d bytes of data for %d INT32 values", t.Index, t.Name, len(t.Data), n)
		}
		out := make([]int, n)
		for i := range out {
			out[i] = int(int32(binary.LittleEndian.Uint32(t.Data[4*i:])))
		}
		return out, nil
	case Int64:
		if len(t.Data) != 8*n {
			return nil, fmt.Errorf("tensor %d %q: %d bytes of data for %d INT64 values", t.Index, t.Name, len(t.Data), n)
		}
		out := make([]int, n)
		for i := range out {
			out[i] = int(int64(binary.LittleEndian.Uint64(t.Data[8*i:])))
		}
		return out, nil
	}
	return nil, fmt.Errorf("tensor %d %q: %s is not an integer type", t.Index, t.Name, t.Type)
}

// HalfToFloat widens an IEEE 754 half-precision value.
func HalfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: normalise
		e := uint32(127 - 15 + 1)
		for frac&0x400 == 0 {
			frac <<= 1
			e--
		}
		frac &= 0x3ff
		return math.Float32frombits(sign | e<<23 | frac<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
}

// Operator is one node of the graph.
type Operator struct {
	Index   int
	Code    Op
	Custom  string // custom op name when Code is OpCustom
	Inputs  []int  // tensor indices; -1 marks an omitted optional input
	Outputs []int
	Options Options
}

// Model is the single subgraph of a TFLite file.
type Model struct {
	Description string
	Tensors     []*Tensor
	Operators   []*Operator
	Inputs      []int
	Outputs     []int
}

// ErrNotTFLite is returned when the file identifier is not "TFL3".
var ErrNotTFLite = errors.New("not a TFLite file (missing TFL3 identifier)")

// maxDims bounds tensor ranks and dimensions so that shape products of a
// hostile file cannot overflow.
const (
	maxRank = 8
	maxDim  = 1 << 24
)

// Parse reads a TFLite model. Constant tensor data aliases b.
func Parse(data []byte) (*Model, error) {
	b := buf(data)
	if len(b) < 8 {
		return nil, fmt.Errorf("tflite: file is %d bytes, too short", len(b))
	}
	if string(b[4:8]) != "TFL3" {
		return nil, ErrNotTFLite
	}
	root, err := b.indirect(0)
	if err != nil {
		return nil, fmt.Errorf("tflite: root: %w", err)
	}
	mt, err := b.table(root)
	if err != nil {
		return nil, fmt.Errorf("tflite: model table: %w", err)
	}
	m := &Model{}
	if m.Description, err = mt.stringField(3); err != nil {
		return nil, fmt.Errorf("tflite: description: %w", err)
	}

	buffers, err := readBuffers(b, mt)
	if err != nil {
		return nil, err
	}
	codes, err := readOpCodes(mt)
	if err != nil {
		return nil, err
	}

	subgraphs, err := mt.tables(2)
	if err != nil {
		return nil, fmt.Errorf("tflite: subgraphs: %w", err)
	}
	if len(subgraphs) != 1 {
		return nil, fmt.Errorf("tflite: %d subgraphs; only single-subgraph models are supported", len(subgraphs))
	}
	sg := subgraphs[0]

	tensors, err := sg.tables(0)
	if err != nil {
		return nil, fmt.Errorf("tflite: tensors: %w", err)
	}
	for i, tt := range tensors {
		t, err := readTensor(i, tt, buffers)
		if err != nil {
			return nil, fmt.Errorf("tflite: %w", err)
		}
		m.Tensors = append(m.Tensors, t)
	}
	if m.Inputs, err = readIndices(sg, 1, len(m.Tensors), false); err != nil {
		return nil, fmt.Errorf("tflite: subgraph inputs: %w", err)
	}
	if m.Outputs, err = readIndices(sg, 2, len(m.Tensors), false); err != nil {
		return nil, fmt.Errorf("tflite: subgraph outputs: %w", err)
	}

	ops, err := sg.tables(3)
	if err != nil {
		return nil, fmt.Errorf("tflite: operators: %w", err)
	}
	for i, ot := range ops {
		op, err := readOperator(i, ot, codes, len(m.Tensors))
		if err != nil {
			return nil, fmt.Errorf("tflite: %w", err)
		}
		m.Operators = append(m.Operators, op)
	}
	return m, nil
}

func readBuffers(b buf, mt table) ([][]byte, error) {
	bts, err := mt.tables(4)
	if err != nil {
		return nil, fmt.Errorf("tflite: buffers: %w", err)
	}
	out := make([][]byte, len(bts))
	for i, bt := range bts {
		if out[i], err = bt.bytesField(0); err != nil {
			return nil, fmt.Errorf("tflite: buffer %d: %w", i, err)
		}
		if len(out[i]) > 0 {
			continue
		}
		// Large models keep data outside the flatbuffer, addressed by offset.
		off, err := bt.scalarU64(1, 0)
		if err != nil {
			return nil, fmt.Errorf("tflite: buffer %d offset: %w", i, err)
		}
		size, err := bt.scalarU64(2, 0)
		if err != nil {
			return nil, fmt.Errorf("tflite: buffer %d size: %w", i, err)
		}
		if off > 1 && size > 0 {
			if off > uint64(len(b)) || size > uint64(len(b))-off {
				return nil, fmt.Errorf("tflite: buffer %d: offset %d size %d outside the file", i, off, size)
			}
			out[i] = b[off : off+size]
		}
	}
	return out, nil
}

type opCode struct {
	code   Op
	custom string
}

func readOpCodes(mt table) ([]opCode, error) {
	cts, err := mt.tables(1)
	if err != nil {
		return nil, fmt.Errorf("tflite: operator codes: %w", err)
	}
	out := make([]opCode, len(cts))
	for i, ct := range cts {
		dep, err := ct.scalarU8(0, 0)
		if err != nil {
			return nil, fmt.Errorf("tflite: operator code %d: %w", i, err)
		}
		bc, err := ct.scalarI32(3, 0)
		if err != nil {
			return nil, fmt.Errorf("tflite: operator code %d: %w", i, err)
		}
		// Old files only fill the deprecated byte; new ones put 127 there
		// and the real code in builtin_code. The larger is the truth.
		code := int32(int8(dep))
		if bc > code {
			code = bc
		}
		custom, err := ct.stringField(1)
		if err != nil {
			return nil, fmt.Errorf("tflite: operator code %d custom name: %w", i, err)
		}
		out[i] = opCode{code: Op(code), custom: custom}
	}
	return out, nil
}

func readTensor(i int, tt table, buffers [][]byte) (*Tensor, error) {
	t := &Tensor{Index: i}
	shape, err := tt.int32s(0)
	if err != nil {
		return nil, fmt.Errorf("tensor %d shape: %w", i, err)
	}
	if len(shape) > maxRank {
		return nil, fmt.Errorf("tensor %d: rank %d exceeds %d", i, len(shape), maxRank)
	}
	total := 1
	for _, d := range shape {
		if d < 0 || d > maxDim {
			return nil, fmt.Errorf("tensor %d: bad dimension %d in shape %v", i, d, shape)
		}
		t.Shape = append(t.Shape, int(d))
		total *= int(d)
		if total > maxVector {
			return nil, fmt.Errorf("tensor %d: shape %v is too large", i, shape)
		}
	}
	typ, err := tt.scalarU8(1, 0)
	if err != nil {
		return nil, fmt.Errorf("tensor %d type: %w", i, err)
	}
	t.Type = TensorType(typ)
	bi, err := tt.scalarU32(2, 0)
	if err != nil {
		return nil, fmt.Errorf("tensor %d buffer: %w", i, err)
	}
	if int64(bi) >= int64(len(buffers)) && bi != 0 {
		return nil, fmt.Errorf("tensor %d: buffer index %d out of range (%d buffers)", i, bi, len(buffers))
	}
	if int(bi) < len(buffers) {
		t.Data = buffers[bi]
	}
	if t.Name, err = tt.stringField(3); err != nil {
		return nil, fmt.Errorf("tensor %d name: %w", i, err)
	}
	q, ok, err := tt.subtable(4)
	if err != nil {
		return nil, fmt.Errorf("tensor %d quantization: %w", i, err)
	}
	if ok {
		if t.Scale, err = q.float32s(2); err != nil {
			return nil, fmt.Errorf("tensor %d quantization scale: %w", i, err)
		}
		if t.ZeroPoint, err = q.int64s(3); err != nil {
			return nil, fmt.Errorf("tensor %d quantization zero point: %w", i, err)
		}
	}
	if _, sparse, err := tt.subtable(6); err != nil {
		return nil, fmt.Errorf("tensor %d sparsity: %w", i, err)
	} else if sparse {
		return nil, fmt.Errorf("tensor %d %q is sparse; sparse models (DENSIFY) are not supported", i, t.Name)
	}
	return t, nil
}

func readIndices(t table, id int, nTensors int, allowOmitted bool) ([]int, error) {
	raw, err := t.int32s(id)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(raw))
	for i, v := range raw {
		if v == -1 && allowOmitted {
			out[i] = -1
			continue
		}
		if v < 0 || int(v) >= nTensors {
			return nil, fmt.Errorf("tensor index %d out of range (%d tensors)", v, nTensors)
		}
		out[i] = int(v)
	}
	return out, nil
}

func readOperator(i int, ot table, codes []opCode, nTensors int) (*Operator, error) {
	ci, err := ot.scalarU32(0, 0)
	if err != nil {
		return nil, fmt.Errorf("operator %d opcode index: %w", i, err)
	}
	if int64(ci) >= int64(len(codes)) {
		return nil, fmt.Errorf("operator %d: opcode index %d out of range (%d codes)", i, ci, len(codes))
	}
	op := &Operator{Index: i, Code: codes[ci].code, Custom: codes[ci].custom}
	if op.Inputs, err = readIndices(ot, 1, nTensors, true); err != nil {
		return nil, fmt.Errorf("operator %d (%s) inputs: %w", i, op.Code, err)
	}
	if op.Outputs, err = readIndices(ot, 2, nTensors, false); err != nil {
		return nil, fmt.Errorf("operator %d (%s) outputs: %w", i, op.Code, err)
	}
	opts, ok, err := ot.subtable(4)
	if err != nil {
		return nil, fmt.Errorf("operator %d (%s) options: %w", i, op.Code, err)
	}
	op.Options = Options{StrideW: 1, StrideH: 1, DilationW: 1, DilationH: 1, DepthMultiplier: 1}
	if ok {
		if err := readOptions(op, opts); err != nil {
			return nil, fmt.Errorf("operator %d (%s) options: %w", i, op.Code, err)
		}
	}
	return op, nil
}

// readOptions decodes the option table by the operator's code; field ids
// follow TFLite's schema.fbs.
func readOptions(op *Operator, t table) error {
	o := &op.Options
	var errs []error
	u8 := func(id int, def uint8) uint8 {
		v, err := t.scalarU8(id, def)
		errs = append(errs, err)
		return v
	}
	i32 := func(id int, def int32) int {
		v, err := t.scalarI32(id, def)
		errs = append(errs, err)
		return int(v)
	}
	switch op.Code {
	case OpConv2D:
		o.Padding = Padding(u8(0, 0))
		o.StrideW, o.StrideH = i32(1, 1), i32(2, 1)
		o.Activation = Activation(u8(3, 0))
		o.DilationW, o.DilationH = i32(4, 1), i32(5, 1)
	case OpDepthwiseConv2D:
		o.Padding = Padding(u8(0, 0))
		o.StrideW, o.StrideH = i32(1, 1), i32(2, 1)
		o.DepthMultiplier = i32(3, 1)
		o.Activation = Activation(u8(4, 0))
		o.DilationW, o.DilationH = i32(5, 1), i32(6, 1)
	case OpMaxPool2D, OpAveragePool2D:
		o.Padding = Padding(u8(0, 0))
		o.StrideW, o.StrideH = i32(1, 1), i32(2, 1)
		o.FilterW, o.FilterH = i32(3, 1), i32(4, 1)
		o.Activation = Activation(u8(5, 0))
	case OpAdd, OpMul:
		o.Activation = Activation(u8(0, 0))
	case OpConcatenation:
		o.Axis = i32(0, 0)
		o.Activation = Activation(u8(1, 0))
	case OpReshape:
		shape, err := t.int32s(0)
		errs = append(errs, err)
		for _, d := range shape {
			o.NewShape = append(o.NewShape, int(d))
		}
	case OpResizeBilinear:
		o.AlignCorners = u8(2, 0) != 0
		o.HalfPixelCenters = u8(3, 0) != 0
	case OpFullyConnected:
		o.Activation = Activation(u8(0, 0))
		o.WeightsFormat = int(u8(1, 0))
		o.KeepNumDims = u8(2, 0) != 0
	case OpMean:
		o.KeepDims = u8(0, 0) != 0
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if o.StrideW < 1 || o.StrideH < 1 || o.DilationW < 1 || o.DilationH < 1 || o.DepthMultiplier < 1 {
		return fmt.Errorf("strides %d×%d, dilation %d×%d, depth multiplier %d must be positive",
			o.StrideW, o.StrideH, o.DilationW, o.DilationH, o.DepthMultiplier)
	}
	if (op.Code == OpMaxPool2D || op.Code == OpAveragePool2D) && (o.FilterW < 1 || o.FilterH < 1) {
		return fmt.Errorf("pool filter %d×%d must be positive", o.FilterW, o.FilterH)
	}
	return nil
}
