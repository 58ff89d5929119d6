package tflitetest

import (
	"math/rand"

	"invigil/models/tflite"
)

// Case is a small named graph exercising one op (and its layout and
// padding rules) the way the MediaPipe models use it.
type Case struct {
	Name  string
	Model []byte
}

type t = Tensor

func randFloats(rng *rand.Rand, n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = (rng.Float32()*2 - 1) * scale
	}
	return v
}

// halfExact rounds values to what float16 can hold so fp16 weights are exact.
func halfExact(v []float32) []float32 {
	for i := range v {
		v[i] = tflite.HalfToFloat(floatToHalf(v[i]))
	}
	return v
}

func opts(fields ...any) *Table { return &Table{Fields: fields} }

// Cases returns one graph per supported op, with random but fixed weights.
func Cases() []Case {
	rng := rand.New(rand.NewSource(42))
	f32 := tflite.Float32
	var cases []Case
	add := func(name string, g Graph) { cases = append(cases, Case{name, Build(g)}) }

	// CONV_2D 3×3 stride 2 SAME on an odd size (uneven pads), fp16 weights
	// through DEQUANTIZE, bias, fused RELU6.
	add("conv_same_stride2_relu6", Graph{
		Tensors: []t{
			{Name: "input", Shape: []int32{1, 7, 9, 3}, Type: f32},
			{Name: "w16", Shape: []int32{4, 3, 3, 3}, Type: tflite.Float16, Data: Float16Bytes(halfExact(randFloats(rng, 108, 1))...)},
			{Name: "w", Shape: []int32{4, 3, 3, 3}, Type: f32},
			{Name: "b", Shape: []int32{4}, Type: f32, Data: Float32Bytes(randFloats(rng, 4, 1)...)},
			{Name: "out", Shape: []int32{1, 4, 5, 4}, Type: f32},
		},
		Ops: []Op{
			{Code: tflite.OpDequantize, Inputs: []int32{1}, Outputs: []int32{2}},
			{Code: tflite.OpConv2D, Inputs: []int32{0, 2, 3}, Outputs: []int32{4}, OptionsType: 1,
				Options: opts(U8(tflite.PaddingSame), I32(2), I32(2), U8(tflite.ActRelu6))},
		},
		Inputs: []int32{0}, Outputs: []int32{4},
	})
	// CONV_2D 5×5 stride 2 SAME on an even size: pads (1,2).
	add("conv5x5_same_stride2", Graph{
		Tensors: []t{
			{Name: "input", Shape: []int32{1, 8, 8, 3}, Type: f32},
			{Name: "w", Shape: []int32{2, 5, 5, 3}, Type: f32, Data: Float32Bytes(randFloats(rng, 150, 1)...)},
			{Name: "b", Shape: []int32{2}, Type: f32, Data: Float32Bytes(randFloats(rng, 2, 1)...)},
			{Name: "out", Shape: []int32{1, 4, 4, 2}, Type: f32},
		},
		Ops: []Op{{Code: tflite.OpConv2D, Inputs: []int32{0, 1, 2}, Outputs: []int32{3}, OptionsType: 1,
			Options: opts(U8(tflite.PaddingSame), I32(2), I32(2), U8(tflite.ActNone))}},
		Inputs: []int32{0}, Outputs: []int32{3},
	})
	// DEPTHWISE_CONV_2D with depth multiplier 2, stride 2 SAME, fused RELU.
	add("depthwise_mult2_stride2_relu", Graph{
		Tensors: []t{
			{Name: "input", Shape: []int32{1, 6, 6, 3}, Type: f32},
			{Name: "w", Shape: []int32{1, 3, 3, 6}, Type: f32, Data: Float32Bytes(randFloats(rng, 54, 1)...)},
			{Name: "b", Shape: []int32{6}, Type: f32, Data: Float32Bytes(randFloats(rng, 6, 1)...)},
			{Name: "out", Shape: []int32{1, 3, 3, 6}, Type: f32},
		},
		Ops: []Op{{Code: tflite.OpDepthwiseConv2D, Inputs: []int32{0, 1, 2}, Outputs: []int32{3}, OptionsType: 2,
			Options: opts(U8(tflite.PaddingSame), I32(2), I32(2), I32(2), U8(tflite.ActRelu))}},
		Inputs: []int32{0}, Outputs: []int32{3},
	})
	// DEPTHWISE_CONV_2D 3×3 and 5×5 in the shapes the converter rewrites
	// for OpenCV's fast path (split into 3×3 blocks, widened by zeros) and
	// in those it keeps: 5×5 at stride 1 SAME 16 wide with a fused RELU6,
	// at stride 2 SAME on an even size (pads 1 and 2), at stride 2 VALID
	// on an odd size, at stride 1 9 wide (split and widened); 3×3 12 wide
	// (widened) and 20 wide (kept); 5×5 and 3×3 6 wide (kept).
	for _, dw := range []struct {
		name                string
		k, in, out, stride  int32
		padding, activation uint8
	}{
		{"depthwise5x5_split_stride1_relu6", 5, 16, 16, 1, uint8(tflite.PaddingSame), uint8(tflite.ActRelu6)},
		{"depthwise5x5_split_stride2_same", 5, 20, 10, 2, uint8(tflite.PaddingSame), uint8(tflite.ActNone)},
		{"depthwise5x5_split_stride2_valid", 5, 19, 8, 2, uint8(tflite.PaddingValid), uint8(tflite.ActNone)},
		{"depthwise5x5_split_widened", 5, 9, 9, 1, uint8(tflite.PaddingSame), uint8(tflite.ActRelu)},
		{"depthwise3x3_widened", 3, 12, 12, 1, uint8(tflite.PaddingSame), uint8(tflite.ActRelu6)},
		{"depthwise3x3_kept_wide", 3, 20, 20, 1, uint8(tflite.PaddingSame), uint8(tflite.ActNone)},
		{"depthwise5x5_kept_narrow", 5, 6, 6, 1, uint8(tflite.PaddingSame), uint8(tflite.ActNone)},
		{"depthwise3x3_kept_narrow", 3, 6, 6, 1, uint8(tflite.PaddingSame), uint8(tflite.ActNone)},
	} {
		const ch = 3
		add(dw.name, Graph{
			Tensors: []t{
				{Name: "input", Shape: []int32{1, dw.in, dw.in, ch}, Type: f32},
				{Name: "w", Shape: []int32{1, dw.k, dw.k, ch}, Type: f32, Data: Float32Bytes(randFloats(rng, int(dw.k*dw.k*ch), 1)...)},
				{Name: "b", Shape: []int32{ch}, Type: f32, Data: Float32Bytes(randFloats(rng, ch, 1)...)},
				{Name: "out", Shape: []int32{1, dw.out, dw.out, ch}, Type: f32},
			},
			Ops: []Op{{Code: tflite.OpDepthwiseConv2D, Inputs: []int32{0, 1, 2}, Outputs: []int32{3}, OptionsType: 2,
				Options: opts(U8(dw.padding), I32(dw.stride), I32(dw.stride), I32(1), U8(dw.activation))}},
			Inputs: []int32{0}, Outputs: []int32{3},
		})
	}
	// PAD on the channel axis (residual widening), then ADD with a conv
	// branch of the wider width, then RELU.
	add("pad_channels_add_relu", Graph{
		Tensors: []t{
			{Name: "input", Shape: []int32{1, 4, 4, 3}, Type: f32},
			{Name: "pads", Shape: []int32{4, 2}, Type: tflite.Int32, Data: Int32Bytes(0, 0, 0, 0, 0, 0, 0, 2)},
			{Name: "padded", Shape: []int32{1, 4, 4, 5}, Type: f32},
			{Name: "w", Shape: []int32{5, 1, 1, 3}, Type: f32, Data: Float32Bytes(randFloats(rng, 15, 1)...)},
			{Name: "b", Shape: []int32{5}, Type: f32, Data: Float32Bytes(randFloats(rng, 5, 1)...)},
			{Name: "branch", Shape: []int32{1, 4, 4, 5}, Type: f32},
			{Name: "sum", Shape: []int32{1, 4, 4, 5}, Type: f32},
			{Name: "out", Shape: []int32{1, 4, 4, 5}, Type: f32},
		},
		Ops: []Op{
			{Code: tflite.OpPad, Inputs: []int32{0, 1}, Outputs: []int32{2}},
			{Code: tflite.OpConv2D, Inputs: []int32{0, 3, 4}, Outputs: []int32{5}, OptionsType: 1,
				Options: opts(U8(tflite.PaddingValid), I32(1), I32(1), U8(tflite.ActNone))},
			{Code: tflite.OpAdd, Inputs: []int32{2, 5}, Outputs: []int32{6}, OptionsType: 11, Options: opts(U8(tflite.ActNone))},
			{Code: tflite.OpRelu, Inputs: []int32{6}, Outputs: []int32{7}},
		},
		Inputs: []int32{0}, Outputs: []int32{7},
	})
	// Spatial PAD then VALID MAX_POOL_2D 2×2 stride 2.
	add("pad_spatial_maxpool", Graph{
		Tensors: []t{
			{Name: "input", Shape: []int32{1, 5, 5, 2}, Type: f32},
			{Name: "pads", Shape: []int32{4, 2}, Type: tflite.Int32, Data: Int32Bytes(0, 0, 0, 1, 0, 1, 0, 0)},
			{Name: "padded", Shape: []int32{1, 6, 6, 2}, Type: f32},
			{Name: "out", Shape: []int32{1, 3, 3, 2}, Type: f32},
		},
		Ops: []Op{
			{Code: tflite.OpPad, Inputs: []int32{0, 1}, Outputs: []int32{2}},
			{Code: tflite.OpMaxPool2D, Inputs: []int32{2}, Outputs: []int32{3}, OptionsType: 5,
				Options: opts(U8(tflite.PaddingValid), I32(2), I32(2), I32(2), I32(2), U8(tflite.ActNone))},
		},
		Inputs: []int32{0}, Outputs: []int32{3},
	})
	// A detection head: conv → RESHAPE to [1, H*W*A, K] (element order must
	// stay NHWC) for two scales, CONCATENATION on the anchor axis.
	add("head_reshape_concat", Graph{
		Tensors: []t{
			{Name: "input", Shape: []int32{1, 4, 4, 3}, Type: f32},
			{Name: "w1", Shape: []int32{4, 1, 1, 3}, Type: f32, Data: Float32Bytes(randFloats(rng, 12, 1)...)},
			{Name: "c1", Shape: []int32{1, 4, 4, 4}, Type: f32},
			{Name: "r1", Shape: []int32{1, 32, 2}, Type: f32},
			{Name: "w2", Shape: []int32{6, 3, 3, 3}, Type: f32, Data: Float32Bytes(randFloats(rng, 162, 1)...)},
			{Name: "c2", Shape: []int32{1, 2, 2, 6}, Type: f32},
			{Name: "r2", Shape: []int32{1, 12, 2}, Type: f32},
			{Name: "out", Shape: []int32{1, 44, 2}, Type: f32},
			{Name: "shape", Shape: []int32{3}, Type: tflite.Int32, Data: Int32Bytes(1, -1, 2)},
		},
		Ops: []Op{
			{Code: tflite.OpConv2D, Inputs: []int32{0, 1, -1}, Outputs: []int32{2}, OptionsType: 1,
				Options: opts(U8(tflite.PaddingValid), I32(1), I32(1), U8(tflite.ActNone))},
			{Code: tflite.OpReshape, Inputs: []int32{2, 8}, Outputs: []int32{3}, OptionsType: 17, Options: opts([]int32{1, 32, 2})},
			{Code: tflite.OpConv2D, Inputs: []int32{0, 4, -1}, Outputs: []int32{5}, OptionsType: 1,
				Options: opts(U8(tflite.PaddingSame), I32(2), I32(2), U8(tflite.ActNone))},
			{Code: tflite.OpReshape, Inputs: []int32{5, 8}, Outputs: []int32{6}},
			{Code: tflite.OpConcatenation, Inputs: []int32{3, 6}, Outputs: []int32{7}, OptionsType: 10, Options: opts(I32(1), U8(tflite.ActNone))},
		},
		Inputs: []int32{0}, Outputs: []int32{7},
	})
	// RESIZE_BILINEAR ×2 with half-pixel centers, CONCATENATION on the
	// channel axis (a feature-pyramid merge), PRELU.
	add("resize_halfpixel_concat_prelu", Graph{
		Tensors: []t{
			{Name: "input", Shape: []int32{1, 6, 6, 3}, Type: f32},
			{Name: "pool", Shape: []int32{1, 3, 3, 3}, Type: f32},
			{Name: "size", Shape: []int32{2}, Type: tflite.Int32, Data: Int32Bytes(6, 6)},
			{Name: "up", Shape: []int32{1, 6, 6, 3}, Type: f32},
			{Name: "cat", Shape: []int32{1, 6, 6, 6}, Type: f32},
			{Name: "alpha", Shape: []int32{1, 1, 6}, Type: f32, Data: Float32Bytes(randFloats(rng, 6, 0.5)...)},
			{Name: "out", Shape: []int32{1, 6, 6, 6}, Type: f32},
		},
		Ops: []Op{
			{Code: tflite.OpMaxPool2D, Inputs: []int32{0}, Outputs: []int32{1}, OptionsType: 5,
				Options: opts(U8(tflite.PaddingValid), I32(2), I32(2), I32(2), I32(2), U8(tflite.ActNone))},
			{Code: tflite.OpResizeBilinear, Inputs: []int32{1, 2}, Outputs: []int32{3}, OptionsType: 15,
				Options: opts(nil, nil, U8(0), U8(1))},
			{Code: tflite.OpConcatenation, Inputs: []int32{0, 3}, Outputs: []int32{4}, OptionsType: 10, Options: opts(I32(3), U8(tflite.ActNone))},
			{Code: tflite.OpPrelu, Inputs: []int32{4, 5}, Outputs: []int32{6}},
		},
		Inputs: []int32{0}, Outputs: []int32{6},
	})
	// The landmark tail: MEAN over H,W → FULLY_CONNECTED → LOGISTIC, plus
	// a second FC output, as in hand_landmark.
	add("mean_fc_logistic", Graph{
		Tensors: []t{
			{Name: "input", Shape: []int32{1, 4, 4, 3}, Type: f32},
			{Name: "axes", Shape: []int32{2}, Type: tflite.Int32, Data: Int32Bytes(1, 2)},
			{Name: "mean", Shape: []int32{1, 3}, Type: f32},
			{Name: "w", Shape: []int32{5, 3}, Type: f32, Data: Float32Bytes(randFloats(rng, 15, 1)...)},
			{Name: "b", Shape: []int32{5}, Type: f32, Data: Float32Bytes(randFloats(rng, 5, 1)...)},
			{Name: "fc", Shape: []int32{1, 5}, Type: f32},
			{Name: "prob", Shape: []int32{1, 5}, Type: f32},
			{Name: "w2", Shape: []int32{2, 3}, Type: f32, Data: Float32Bytes(randFloats(rng, 6, 1)...)},
			{Name: "fc2", Shape: []int32{1, 2}, Type: f32},
		},
		Ops: []Op{
			{Code: tflite.OpMean, Inputs: []int32{0, 1}, Outputs: []int32{2}, OptionsType: 27, Options: opts(U8(0))},
			{Code: tflite.OpFullyConnected, Inputs: []int32{2, 3, 4}, Outputs: []int32{5}, OptionsType: 8, Options: opts(U8(tflite.ActNone))},
			{Code: tflite.OpLogistic, Inputs: []int32{5}, Outputs: []int32{6}},
			{Code: tflite.OpFullyConnected, Inputs: []int32{2, 7, -1}, Outputs: []int32{8}, OptionsType: 8, Options: opts(U8(tflite.ActRelu6))},
		},
		Inputs: []int32{0}, Outputs: []int32{6, 8},
	})
	return cases
}
