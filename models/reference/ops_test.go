package reference_test

import (
	"math"
	"strings"
	"testing"

	"invigil/models/reference"
	"invigil/models/tflite"
)

// The expected values below are worked out by hand (see the comments);
// the 4×4 input 1..16 is
//
//	 1  2  3  4
//	 5  6  7  8
//	 9 10 11 12
//	13 14 15 16

func TestConv2DValid3x3(t *testing.T) {
	g := &graph{}
	x := g.input(1, 4, 4, 1)
	// Filter 0 sums the 3×3 window; filter 1 picks its center.
	w := g.floats(s(2, 3, 3, 1),
		1, 1, 1, 1, 1, 1, 1, 1, 1,
		0, 0, 0, 0, 1, 0, 0, 0, 0)
	b := g.floats(s(2), 1, -1)
	y := g.tensor(1, 2, 2, 2)
	g.op(tflite.OpConv2D, func(o *tflite.Options) { o.Padding = tflite.PaddingValid }, y, x, w, b)
	g.output(y)
	got, shape := g.run(t, seq(16))
	// Window sums 54, 63, 90, 99 (+1); centers 6, 7, 10, 11 (-1).
	expect(t, got, shape, []float32{55, 5, 64, 6, 91, 9, 100, 10}, s(1, 2, 2, 2))
}

func TestConv2DSameUnevenPadding(t *testing.T) {
	for _, tc := range []struct {
		name string
		k    int
		want []float32
	}{
		// 3×3 stride 2 on 4: out 2, pad total (2-1)*... = 1 → 0 before, 1
		// after. Windows rows/cols {0..2}, {2..4}: 54, 3+4+7+8+11+12 = 45,
		// 9+10+11+13+14+15 = 72, 11+12+15+16 = 54. (Padding 1 before would
		// give 1+2+5+6 = 14 first.)
		{"3x3", 3, []float32{54, 45, 72, 54}},
		// 5×5 stride 2 on 4: pad total 3 → 1 before, 2 after. Windows
		// {-1..3}, {1..5}: all 136; 136-28 = 108; 136-10 = 126; 136-10-28+1 = 99.
		{"5x5", 5, []float32{136, 108, 126, 99}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &graph{}
			x := g.input(1, 4, 4, 1)
			w := g.floats(s(1, tc.k, tc.k, 1), fill(tc.k*tc.k, 1)...)
			y := g.tensor(1, 2, 2, 1)
			g.op(tflite.OpConv2D, func(o *tflite.Options) { o.StrideH, o.StrideW = 2, 2 }, y, x, w, -1)
			g.output(y)
			got, shape := g.run(t, seq(16))
			expect(t, got, shape, tc.want, s(1, 2, 2, 1))
		})
	}
}

func TestConv2DDilation(t *testing.T) {
	g := &graph{}
	x := g.input(1, 5, 5, 1)
	w := g.floats(s(1, 3, 3, 1), fill(9, 1)...)
	y := g.tensor(1, 1, 1, 1)
	g.op(tflite.OpConv2D, func(o *tflite.Options) {
		o.Padding = tflite.PaddingValid
		o.DilationH, o.DilationW = 2, 2
	}, y, x, w)
	g.output(y)
	got, shape := g.run(t, seq(25))
	// Rows and columns 0, 2, 4 of 1..25: 1+3+5+11+13+15+21+23+25.
	expect(t, got, shape, []float32{117}, s(1, 1, 1, 1))
}

func TestConv2DChannelsAndFusedRelu(t *testing.T) {
	g := &graph{}
	x := g.input(1, 1, 2, 3)
	w := g.floats(s(2, 1, 1, 3), 1, 0, -1, 0.5, 0.5, 0.5)
	y := g.tensor(1, 1, 2, 2)
	g.op(tflite.OpConv2D, func(o *tflite.Options) { o.Activation = tflite.ActRelu }, y, x, w)
	g.output(y)
	got, shape := g.run(t, seq(6))
	// Pixel (1,2,3): 1-3 = -2 → 0, 3. Pixel (4,5,6): -2 → 0, 7.5.
	expect(t, got, shape, []float32{0, 3, 0, 7.5}, s(1, 1, 2, 2))
}

func TestDepthwiseMultiplier(t *testing.T) {
	g := &graph{}
	x := g.input(1, 2, 2, 2)
	// Output channel c*2+m reads input channel c. Taps (row-major) hold
	// the four output channels: oc0 sums, oc1 takes tap 0, oc2 takes tap 3,
	// oc3 halves everything.
	w := g.floats(s(1, 2, 2, 4),
		1, 1, 0, 0.5,
		1, 0, 0, 0.5,
		1, 0, 0, 0.5,
		1, 0, 1, 0.5)
	b := g.floats(s(4), 0, 0, 0, 1)
	y := g.tensor(1, 1, 1, 4)
	g.op(tflite.OpDepthwiseConv2D, func(o *tflite.Options) {
		o.Padding = tflite.PaddingValid
		o.DepthMultiplier = 2
	}, y, x, w, b)
	g.output(y)
	// Channel 0 is 1,2,3,4 and channel 1 is 10,20,30,40.
	got, shape := g.run(t, []float32{1, 10, 2, 20, 3, 30, 4, 40})
	// oc0 = 1+2+3+4, oc1 = 1, oc2 = 40, oc3 = (10+20+30+40)/2 + 1.
	expect(t, got, shape, []float32{10, 1, 40, 51}, s(1, 1, 1, 4))
}

func TestDepthwiseSameStride2(t *testing.T) {
	g := &graph{}
	x := g.input(1, 4, 4, 2)
	// Channel 0 sums its window; channel 1 negates it, then RELU6 clips.
	w := g.floats(s(1, 3, 3, 2), []float32{
		1, -1, 1, -1, 1, -1,
		1, -1, 1, -1, 1, -1,
		1, -1, 1, -1, 1, -1}...)
	y := g.tensor(1, 2, 2, 2)
	g.op(tflite.OpDepthwiseConv2D, func(o *tflite.Options) {
		o.StrideH, o.StrideW = 2, 2
		o.Activation = tflite.ActRelu6
	}, y, x, w)
	g.output(y)
	in := make([]float32, 32)
	for i := 0; i < 16; i++ {
		in[2*i] = float32(i+1) / 10 // 0.1 .. 1.6
		in[2*i+1] = float32(i + 1)
	}
	got, shape := g.run(t, in)
	// The 3×3 stride-2 sums of TestConv2DSameUnevenPadding, over 10.
	expect(t, got, shape, []float32{5.4, 0, 4.5, 0, 6, 0, 5.4, 0}, s(1, 2, 2, 2))
}

func TestMaxPool(t *testing.T) {
	t.Run("valid", func(t *testing.T) {
		g := &graph{}
		x := g.input(1, 4, 4, 1)
		y := g.tensor(1, 2, 2, 1)
		g.op(tflite.OpMaxPool2D, func(o *tflite.Options) {
			o.Padding = tflite.PaddingValid
			o.FilterH, o.FilterW, o.StrideH, o.StrideW = 2, 2, 2, 2
		}, y, x)
		g.output(y)
		got, shape := g.run(t, seq(16))
		expect(t, got, shape, []float32{6, 8, 14, 16}, s(1, 2, 2, 1))
	})
	t.Run("same ignores padding", func(t *testing.T) {
		g := &graph{}
		x := g.input(1, 3, 3, 1)
		y := g.tensor(1, 2, 2, 1)
		g.op(tflite.OpMaxPool2D, func(o *tflite.Options) {
			o.FilterH, o.FilterW, o.StrideH, o.StrideW = 2, 2, 2, 2
		}, y, x)
		g.output(y)
		in := seq(9)
		for i := range in {
			in[i] = -in[i]
		}
		got, shape := g.run(t, in)
		// Padding (one after) never wins even though it would be 0.
		expect(t, got, shape, []float32{-1, -3, -7, -9}, s(1, 2, 2, 1))
	})
}

func TestElementwise(t *testing.T) {
	for _, tc := range []struct {
		name string
		code tflite.Op
		in   []float32
		want []float32
	}{
		{"relu", tflite.OpRelu, []float32{-1, 0, 2}, []float32{0, 0, 2}},
		{"relu6", tflite.OpRelu6, []float32{-1, 3, 7}, []float32{0, 3, 6}},
		{"logistic", tflite.OpLogistic, []float32{0, float32(math.Log(3)), -float32(math.Log(3))}, []float32{0.5, 0.75, 0.25}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &graph{}
			x := g.input(3)
			y := g.tensor(3)
			g.op(tc.code, nil, y, x)
			g.output(y)
			got, shape := g.run(t, tc.in)
			expect(t, got, shape, tc.want, s(3))
		})
	}
}

func TestAdd(t *testing.T) {
	t.Run("per-channel broadcast", func(t *testing.T) {
		g := &graph{}
		x := g.input(1, 2, 2, 2)
		c := g.floats(s(2), 10, 20)
		y := g.tensor(1, 2, 2, 2)
		g.op(tflite.OpAdd, nil, y, x, c)
		g.output(y)
		got, shape := g.run(t, seq(8))
		expect(t, got, shape, []float32{11, 22, 13, 24, 15, 26, 17, 28}, s(1, 2, 2, 2))
	})
	t.Run("both sides broadcast", func(t *testing.T) {
		g := &graph{}
		x := g.input(2, 1)
		c := g.floats(s(1, 3), 10, 20, 30)
		y := g.tensor(2, 3)
		g.op(tflite.OpAdd, nil, y, c, x)
		g.output(y)
		got, shape := g.run(t, []float32{1, 2})
		expect(t, got, shape, []float32{11, 21, 31, 12, 22, 32}, s(2, 3))
	})
	for _, tc := range []struct {
		act  tflite.Activation
		want []float32
	}{
		// Sums are -2, 0.25, 2, 7.
		{tflite.ActNone, []float32{-2, 0.25, 2, 7}},
		{tflite.ActRelu, []float32{0, 0.25, 2, 7}},
		{tflite.ActRelu6, []float32{0, 0.25, 2, 6}},
		{tflite.ActReluN1To1, []float32{-1, 0.25, 1, 1}},
		{tflite.ActTanh, []float32{float32(math.Tanh(-2)), float32(math.Tanh(0.25)), float32(math.Tanh(2)), float32(math.Tanh(7))}},
	} {
		t.Run("fused "+tc.act.String(), func(t *testing.T) {
			g := &graph{}
			x := g.input(4)
			c := g.floats(s(4), 1, -0.25, 0, 7)
			y := g.tensor(4)
			g.op(tflite.OpAdd, func(o *tflite.Options) { o.Activation = tc.act }, y, x, c)
			g.output(y)
			got, shape := g.run(t, []float32{-3, 0.5, 2, 0})
			expect(t, got, shape, tc.want, s(4))
		})
	}
}

func TestPrelu(t *testing.T) {
	g := &graph{}
	x := g.input(1, 1, 2, 2)
	alpha := g.floats(s(1, 1, 2), 0.5, 0.25)
	y := g.tensor(1, 1, 2, 2)
	g.op(tflite.OpPrelu, nil, y, x, alpha)
	g.output(y)
	// Pixels (channel 0, channel 1): (-1, -2) and (-3, 4).
	got, shape := g.run(t, []float32{-1, -2, -3, 4})
	// Channel 0 slope 0.5, channel 1 slope 0.25; positives pass.
	expect(t, got, shape, []float32{-0.5, -0.5, -1.5, 4}, s(1, 1, 2, 2))
}

func TestPad(t *testing.T) {
	t.Run("channel axis", func(t *testing.T) {
		g := &graph{}
		x := g.input(1, 1, 2, 2)
		p := g.ints(s(4, 2), 0, 0, 0, 1, 0, 0, 0, 2)
		y := g.tensor(1, 2, 2, 4)
		g.op(tflite.OpPad, nil, y, x, p)
		g.output(y)
		got, shape := g.run(t, []float32{1, 2, 3, 4})
		expect(t, got, shape, []float32{
			1, 2, 0, 0, 3, 4, 0, 0, // row 0: two channels appended
			0, 0, 0, 0, 0, 0, 0, 0, // row 1: padding
		}, s(1, 2, 2, 4))
	})
	t.Run("before and after", func(t *testing.T) {
		g := &graph{}
		x := g.input(1, 1, 1, 2)
		p := g.ints(s(4, 2), 0, 0, 1, 0, 0, 1, 1, 0)
		y := g.tensor(1, 2, 2, 3)
		g.op(tflite.OpPad, nil, y, x, p)
		g.output(y)
		got, shape := g.run(t, []float32{5, 6})
		expect(t, got, shape, []float32{
			0, 0, 0, 0, 0, 0, // row 0: padding before
			0, 5, 6, 0, 0, 0, // row 1: one channel before; a padded column after
		}, s(1, 2, 2, 3))
	})
}

func TestReshape(t *testing.T) {
	t.Run("options", func(t *testing.T) {
		g := &graph{}
		x := g.input(1, 2, 2, 2)
		y := g.tensor(1, 4, 2)
		g.op(tflite.OpReshape, func(o *tflite.Options) { o.NewShape = []int{1, -1, 2} }, y, x)
		g.output(y)
		got, shape := g.run(t, seq(8))
		expect(t, got, shape, seq(8), s(1, 4, 2))
	})
	t.Run("shape tensor", func(t *testing.T) {
		g := &graph{}
		x := g.input(1, 2, 2, 2)
		sh := g.ints(s(2), -1, 4)
		y := g.tensor() // undeclared: inferred
		g.op(tflite.OpReshape, nil, y, x, sh)
		g.output(y)
		got, shape := g.run(t, seq(8))
		expect(t, got, shape, seq(8), s(2, 4))
	})
}

func TestConcatenation(t *testing.T) {
	for _, tc := range []struct {
		name      string
		axis      int
		inShape   []int
		constShp  []int
		want      []float32
		wantShape []int
	}{
		// [1,2,1]=(1,2) with [1,2,2]=(3,4),(5,6) on the last axis.
		{"negative axis", -1, s(1, 2, 1), s(1, 2, 2), []float32{1, 3, 4, 2, 5, 6}, s(1, 2, 3)},
		// [1,1,2]=(1,2) with [1,2,2] on axis 1: rows stack.
		{"axis 1", 1, s(1, 1, 2), s(1, 2, 2), []float32{1, 2, 3, 4, 5, 6}, s(1, 3, 2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &graph{}
			x := g.input(tc.inShape...)
			c := g.floats(tc.constShp, 3, 4, 5, 6)
			y := g.tensor(tc.wantShape...)
			g.op(tflite.OpConcatenation, func(o *tflite.Options) { o.Axis = tc.axis }, y, x, c)
			g.output(y)
			got, shape := g.run(t, []float32{1, 2})
			expect(t, got, shape, tc.want, tc.wantShape)
		})
	}
}

func TestResizeBilinear(t *testing.T) {
	for _, tc := range []struct {
		name               string
		alignCorners, half bool
		size               int
		want               []float32
	}{
		// Half-pixel: source coordinate (i+0.5)/2-0.5 = -0.25→0, 0.25,
		// 0.75, 1.25→1 (clamped). Along a row (a,b): a, a+(b-a)/4,
		// a+3(b-a)/4, b; the same weights between rows.
		{"half pixel 2x2 to 4x4", false, true, 4, []float32{
			1, 1.25, 1.75, 2,
			1.5, 1.75, 2.25, 2.5,
			2.5, 2.75, 3.25, 3.5,
			3, 3.25, 3.75, 4}},
		// Align corners: scale (2-1)/(3-1) = 0.5, coordinates 0, 0.5, 1.
		{"align corners 2x2 to 3x3", true, false, 3, []float32{
			1, 1.5, 2,
			2, 2.5, 3,
			3, 3.5, 4}},
		// Neither: coordinates i/2 = 0, 0.5, 1, 1.5 (upper index clamped).
		{"legacy 2x2 to 4x4", false, false, 4, []float32{
			1, 1.5, 2, 2,
			2, 2.5, 3, 3,
			3, 3.5, 4, 4,
			3, 3.5, 4, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &graph{}
			x := g.input(1, 2, 2, 2)
			size := g.ints(s(2), int32(tc.size), int32(tc.size))
			y := g.tensor(1, tc.size, tc.size, 2)
			g.op(tflite.OpResizeBilinear, func(o *tflite.Options) {
				o.AlignCorners, o.HalfPixelCenters = tc.alignCorners, tc.half
			}, y, x, size)
			g.output(y)
			// Channel 0 is [[1,2],[3,4]]; channel 1 is ten times it.
			got, shape := g.run(t, []float32{1, 10, 2, 20, 3, 30, 4, 40})
			want := make([]float32, 0, 2*len(tc.want))
			for _, v := range tc.want {
				want = append(want, v, 10*v)
			}
			expect(t, got, shape, want, s(1, tc.size, tc.size, 2))
		})
	}
}

func TestMean(t *testing.T) {
	for _, tc := range []struct {
		name      string
		inShape   []int
		axes      []int32
		keep      bool
		want      []float32
		wantShape []int
	}{
		// Channel 0 of 1..8 is 1,3,5,7 (mean 4); channel 1 is 2,4,6,8 (5).
		{"spatial", s(1, 2, 2, 2), []int32{1, 2}, false, []float32{4, 5}, s(1, 2)},
		{"spatial keep dims", s(1, 2, 2, 2), []int32{1, 2}, true, []float32{4, 5}, s(1, 1, 1, 2)},
		// Rows (1,2,3) and (4,5,6).
		{"negative axis", s(2, 3), []int32{-1}, false, []float32{2, 5}, s(2)},
		{"first axis", s(2, 3), []int32{0}, true, []float32{2.5, 3.5, 4.5}, s(1, 3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &graph{}
			x := g.input(tc.inShape...)
			axes := g.ints(s(len(tc.axes)), tc.axes...)
			y := g.tensor(tc.wantShape...)
			g.op(tflite.OpMean, func(o *tflite.Options) { o.KeepDims = tc.keep }, y, x, axes)
			g.output(y)
			n := 1
			for _, d := range tc.inShape {
				n *= d
			}
			got, shape := g.run(t, seq(n))
			expect(t, got, shape, tc.want, tc.wantShape)
		})
	}
}

func TestFullyConnected(t *testing.T) {
	weights := []float32{1, 0, -1, 0.5, 0.5, 0.5}
	t.Run("bias", func(t *testing.T) {
		g := &graph{}
		x := g.input(1, 3)
		w := g.floats(s(2, 3), weights...)
		b := g.floats(s(2), 10, 20)
		y := g.tensor(1, 2)
		g.op(tflite.OpFullyConnected, nil, y, x, w, b)
		g.output(y)
		got, shape := g.run(t, []float32{1, 2, 3})
		expect(t, got, shape, []float32{-2 + 10, 3 + 20}, s(1, 2))
	})
	t.Run("no bias, rows, fused relu", func(t *testing.T) {
		g := &graph{}
		x := g.input(1, 2, 3)
		w := g.floats(s(2, 3), weights...)
		y := g.tensor(2, 2)
		g.op(tflite.OpFullyConnected, func(o *tflite.Options) { o.Activation = tflite.ActRelu }, y, x, w, -1)
		g.output(y)
		got, shape := g.run(t, seq(6))
		expect(t, got, shape, []float32{0, 3, 0, 7.5}, s(2, 2))
	})
	t.Run("keep num dims", func(t *testing.T) {
		g := &graph{}
		x := g.input(1, 2, 3)
		w := g.floats(s(2, 3), weights...)
		y := g.tensor(1, 2, 2)
		g.op(tflite.OpFullyConnected, func(o *tflite.Options) { o.KeepNumDims = true }, y, x, w)
		g.output(y)
		got, shape := g.run(t, seq(6))
		expect(t, got, shape, []float32{-2, 3, -2, 7.5}, s(1, 2, 2))
	})
}

func TestDequantizeFloat16(t *testing.T) {
	g := &graph{}
	x := g.input(2)
	h := g.halves(s(2), 0x3C00, 0xC000) // 1.0 and -2.0 in IEEE half precision
	d := g.tensor(2)
	y := g.tensor(2)
	g.op(tflite.OpDequantize, nil, d, h)
	g.op(tflite.OpAdd, nil, y, x, d)
	g.output(y)
	got, shape := g.run(t, []float32{0.5, 0.5})
	expect(t, got, shape, []float32{1.5, -1.5}, s(2))
}

func TestOutputsAreCopies(t *testing.T) {
	g := &graph{}
	x := g.input(2)
	y := g.tensor(1, 2)
	g.op(tflite.OpReshape, func(o *tflite.Options) { o.NewShape = []int{1, 2} }, y, x)
	g.output(y)
	e, err := reference.New(&g.m)
	if err != nil {
		t.Fatal(err)
	}
	in := []float32{1, 2}
	out, err := e.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	out[0][0] = 99
	if in[0] != 1 {
		t.Fatal("writing to an output changed the input")
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(g *graph)
		want  []string // substrings of the error
	}{
		{"unsupported op", func(g *graph) {
			x := g.input(2)
			a, b := g.tensor(2), g.tensor(2)
			g.op(tflite.OpRelu, nil, a, x)
			g.op(tflite.OpMul, nil, b, a, a)
			g.output(b)
		}, []string{"operator 1", "MUL", "unsupported"}},
		{"custom op", func(g *graph) {
			x := g.input(2)
			y := g.tensor(2)
			g.op(tflite.OpCustom, nil, y, x)
			g.m.Operators[0].Custom = "Convolution2DTransposeBias"
			g.output(y)
		}, []string{"operator 0", "Convolution2DTransposeBias"}},
		{"unsupported fused activation", func(g *graph) {
			x := g.input(2)
			y := g.tensor(2)
			g.op(tflite.OpAdd, func(o *tflite.Options) { o.Activation = 7 }, y, x, x)
			g.output(y)
		}, []string{"operator 0", "ADD", "activation"}},
		{"tensor index out of range", func(g *graph) {
			x := g.input(2)
			y := g.tensor(2)
			g.op(tflite.OpRelu, nil, y, x+10)
			g.output(y)
		}, []string{"operator 0", "RELU", "out of range"}},
		{"read before written", func(g *graph) {
			g.input(2)
			a, b := g.tensor(2), g.tensor(2)
			g.op(tflite.OpRelu, nil, b, a)
			g.output(b)
		}, []string{"operator 0", "before any operator writes it"}},
		{"declared shape disagrees", func(g *graph) {
			x := g.input(1, 4, 4, 1)
			w := g.floats(s(1, 3, 3, 1), fill(9, 1)...)
			y := g.tensor(1, 4, 4, 1) // VALID gives 2×2
			g.op(tflite.OpConv2D, func(o *tflite.Options) { o.Padding = tflite.PaddingValid }, y, x, w)
			g.output(y)
		}, []string{"operator 0", "CONV_2D", "inferred shape [1 2 2 1]"}},
		{"conv channel mismatch", func(g *graph) {
			x := g.input(1, 4, 4, 2)
			w := g.floats(s(1, 3, 3, 1), fill(9, 1)...)
			y := g.tensor()
			g.op(tflite.OpConv2D, nil, y, x, w)
			g.output(y)
		}, []string{"CONV_2D", "input channels"}},
		{"non-constant paddings", func(g *graph) {
			x := g.input(2)
			p := g.tensor(1, 2)
			y := g.tensor()
			g.op(tflite.OpPad, nil, y, x, p)
			g.output(y)
		}, []string{"PAD", "not constant"}},
		{"bad reshape", func(g *graph) {
			x := g.input(6)
			y := g.tensor()
			g.op(tflite.OpReshape, func(o *tflite.Options) { o.NewShape = []int{4, -1} }, y, x)
			g.output(y)
		}, []string{"RESHAPE", "cannot reshape"}},
		{"no broadcast", func(g *graph) {
			x := g.input(2, 3)
			c := g.floats(s(2), 1, 2)
			y := g.tensor()
			g.op(tflite.OpAdd, nil, y, x, c)
			g.output(y)
		}, []string{"ADD", "do not broadcast"}},
		{"quantized activations", func(g *graph) {
			x := g.input(2)
			y := g.tensor(2)
			g.m.Tensors[y].Type = tflite.Int8
			g.op(tflite.OpRelu, nil, y, x)
			g.output(y)
		}, []string{"RELU", "INT8"}},
		{"output never computed", func(g *graph) {
			g.input(2)
			g.output(g.tensor(2))
		}, []string{"never computed"}},
		{"two inputs", func(g *graph) {
			g.input(2)
			g.input(2)
		}, []string{"2 inputs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &graph{}
			tc.build(g)
			_, err := reference.New(&g.m)
			if err == nil {
				t.Fatalf("New succeeded; want an error mentioning %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := reference.New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
}

func TestRunChecksInputLength(t *testing.T) {
	g := &graph{}
	x := g.input(1, 2, 2, 1)
	y := g.tensor(1, 2, 2, 1)
	g.op(tflite.OpRelu, nil, y, x)
	g.output(y)
	e, err := reference.New(&g.m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Run(make([]float32, 3)); err == nil || !strings.Contains(err.Error(), "needs 4") {
		t.Fatalf("Run with 3 values: %v", err)
	}
	if got := e.InputShape(); !equalInts(got, s(1, 2, 2, 1)) {
		t.Fatalf("InputShape %v", got)
	}
}
