package tflite_test

import (
	"errors"
	"math"
	"math/rand"
	"os"
	"strings"
	"testing"

	"invigil/internal/testassets"
	"invigil/models/tflite"
	"invigil/models/tflite/tflitetest"
)

// tinyConv is a two-op graph: an fp16 weight DEQUANTIZE feeding a CONV_2D.
func tinyConv() []byte {
	return tflitetest.Build(tflitetest.Graph{
		Tensors: []tflitetest.Tensor{
			{Name: "input", Shape: []int32{1, 4, 4, 3}, Type: tflite.Float32},
			{Name: "w16", Shape: []int32{2, 3, 3, 3}, Type: tflite.Float16, Data: tflitetest.Float16Bytes(make([]float32, 54)...)},
			{Name: "w", Shape: []int32{2, 3, 3, 3}, Type: tflite.Float32},
			{Name: "bias", Shape: []int32{2}, Type: tflite.Float32, Data: tflitetest.Float32Bytes(0.5, -1)},
			{Name: "out;with/odd:name", Shape: []int32{1, 2, 2, 2}, Type: tflite.Float32},
		},
		Ops: []tflitetest.Op{
			{Code: tflite.OpDequantize, Inputs: []int32{1}, Outputs: []int32{2}},
			{Code: tflite.OpConv2D, Inputs: []int32{0, 2, 3}, Outputs: []int32{4}, OptionsType: 1,
				Options: &tflitetest.Table{Fields: []any{tflitetest.U8(tflite.PaddingSame), tflitetest.I32(2), tflitetest.I32(2), tflitetest.U8(tflite.ActRelu6)}}},
		},
		Inputs:  []int32{0},
		Outputs: []int32{4},
	})
}

func TestParseTiny(t *testing.T) {
	m, err := tflite.Parse(tinyConv())
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Tensors) != 5 || len(m.Operators) != 2 {
		t.Fatalf("got %d tensors, %d ops", len(m.Tensors), len(m.Operators))
	}
	if m.Description != "tflitetest" {
		t.Errorf("description %q", m.Description)
	}
	conv := m.Operators[1]
	if conv.Code != tflite.OpConv2D || conv.Options.StrideW != 2 || conv.Options.StrideH != 2 ||
		conv.Options.Activation != tflite.ActRelu6 || conv.Options.Padding != tflite.PaddingSame ||
		conv.Options.DilationW != 1 {
		t.Errorf("conv options %+v", conv.Options)
	}
	bias, err := m.Tensors[3].Float32s()
	if err != nil || bias[0] != 0.5 || bias[1] != -1 {
		t.Errorf("bias %v %v", bias, err)
	}
	if m.Tensors[2].IsConst() {
		t.Error("activation tensor reported as constant")
	}
	if got := m.Tensors[4].Name; got != "out;with/odd:name" {
		t.Errorf("name %q", got)
	}
}

func TestHalfToFloat(t *testing.T) {
	for _, c := range []struct {
		h    uint16
		want float32
	}{
		{0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x3555, 0.33325195},
		{0x0001, 5.9604645e-08}, {0x0000, 0}, {0x8000, float32(math.Copysign(0, -1))},
	} {
		if got := tflite.HalfToFloat(c.h); got != c.want {
			t.Errorf("HalfToFloat(%#04x) = %g, want %g", c.h, got, c.want)
		}
	}
	if !math.IsInf(float64(tflite.HalfToFloat(0x7c00)), 1) || !math.IsNaN(float64(tflite.HalfToFloat(0x7e00))) {
		t.Error("inf/nan not preserved")
	}
}

// The op mix of each real model, as read by the TFLite reader; MODELS.md
// lists the same ops.
func TestParseRealModels(t *testing.T) {
	want := map[string]struct {
		ops     int
		inShape []int
		outs    int
	}{
		"face_detection_short_range": {164, []int{1, 128, 128, 3}, 2},
		"face_detection_full_range":  {354, []int{1, 192, 192, 3}, 2},
		"palm_detection_lite":        {232, []int{1, 192, 192, 3}, 2},
		"palm_detection_full":        {272, []int{1, 192, 192, 3}, 2},
		"hand_landmark_lite":         {167, []int{1, 224, 224, 3}, 4},
		"hand_landmark_full":         {165, []int{1, 224, 224, 3}, 4},
		"face_landmark":              {210, []int{1, 192, 192, 3}, 2},
	}
	for name, w := range want {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(testassets.Model(t, name+".tflite"))
			if err != nil {
				t.Fatal(err)
			}
			m, err := tflite.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Operators) != w.ops || len(m.Outputs) != w.outs {
				t.Errorf("%d ops, %d outputs; want %d, %d", len(m.Operators), len(m.Outputs), w.ops, w.outs)
			}
			in := m.Tensors[m.Inputs[0]]
			if len(in.Shape) != 4 || in.Shape[1] != w.inShape[1] || in.Shape[2] != w.inShape[2] {
				t.Errorf("input shape %v, want %v", in.Shape, w.inShape)
			}
			for _, op := range m.Operators {
				if op.Code == tflite.OpDequantize {
					src := m.Tensors[op.Inputs[0]]
					if src.Type != tflite.Float16 || !src.IsConst() {
						t.Fatalf("DEQUANTIZE of %s const=%v", src.Type, src.IsConst())
					}
					if _, err := src.Float32s(); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
}

// Every prefix of a real model and random corruptions must fail cleanly.
func TestParseCorrupt(t *testing.T) {
	data, err := os.ReadFile(testassets.Model(t, "face_detection_short_range.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tflite.Parse(nil); err == nil {
		t.Error("empty file parsed")
	}
	junk := append([]byte{}, data[:64]...)
	copy(junk[4:8], "XXXX")
	if _, err := tflite.Parse(junk); !errors.Is(err, tflite.ErrNotTFLite) {
		t.Errorf("wrong identifier: %v", err)
	}
	for _, n := range []int{8, 12, 100, 1000, len(data) / 2, len(data) - 1} {
		_, err := tflite.Parse(data[:n])
		if err == nil {
			t.Errorf("prefix of %d bytes parsed", n)
		} else if !strings.Contains(err.Error(), "offset") && !strings.Contains(err.Error(), "tflite") {
			t.Errorf("prefix %d: error %q does not say where", n, err)
		}
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 300; i++ {
		c := append([]byte{}, data...)
		for j := 0; j < 8; j++ {
			c[8+rng.Intn(4096)] = byte(rng.Intn(256))
		}
		_, _ = tflite.Parse(c) // must not panic
	}
}

func FuzzParse(f *testing.F) {
	f.Add(tinyConv())
	f.Add([]byte("\x08\x00\x00\x00TFL3"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := tflite.Parse(data)
		if err != nil {
			return
		}
		for _, tt := range m.Tensors {
			if tt.IsConst() {
				_, _ = tt.Float32s()
				_, _ = tt.Ints()
			}
		}
	})
}
