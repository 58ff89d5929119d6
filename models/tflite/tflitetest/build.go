// Package tflitetest builds small TFLite flatbuffers for tests: single-op
// graphs to check the converter op by op, and seeds for fuzzing the reader.
// It writes the format forward (children after parents, vtables before
// their tables), which flatbuffer readers accept.
package tflitetest

import (
	"encoding/binary"
	"math"

	"invigil/models/tflite"
)

// Table is a flatbuffer table; Fields[i] is field id i. A field holds one
// of: nil (absent), U8, I32, U32, U64, []int32, []float32, []int64,
// string, []byte, *Table, []*Table.
type Table struct {
	Fields []any
}

// Scalar field types, distinguished so the encoder knows their width.
type (
	U8  uint8
	I32 int32
	U32 uint32
	U64 uint64
)

// Encode serializes root with the "TFL3" file identifier.
func Encode(root *Table) []byte {
	e := &encoder{b: make([]byte, 8)}
	copy(e.b[4:], "TFL3")
	pos := e.table(root)
	binary.LittleEndian.PutUint32(e.b[0:], uint32(pos))
	return e.b
}

type encoder struct{ b []byte }

func (e *encoder) align(n int) {
	for len(e.b)%n != 0 {
		e.b = append(e.b, 0)
	}
}

// table writes vtable, table and then its children; returns the table's position.
func (e *encoder) table(t *Table) int {
	type patch struct {
		at    int
		child any
	}
	// Inline layout: soffset, then each present field at its own offset.
	offs := make([]uint16, len(t.Fields))
	size := 4
	for i, f := range t.Fields {
		w := width(f)
		if w == 0 {
			continue
		}
		for size%w != 0 {
			size++
		}
		offs[i] = uint16(size)
		size += w
	}
	e.align(2)
	vt := len(e.b)
	e.b = binary.LittleEndian.AppendUint16(e.b, uint16(4+2*len(t.Fields)))
	e.b = binary.LittleEndian.AppendUint16(e.b, uint16(size))
	for _, o := range offs {
		e.b = binary.LittleEndian.AppendUint16(e.b, o)
	}
	e.align(8)
	pos := len(e.b)
	e.b = append(e.b, make([]byte, size)...)
	binary.LittleEndian.PutUint32(e.b[pos:], uint32(int32(pos-vt)))
	var patches []patch
	for i, f := range t.Fields {
		at := pos + int(offs[i])
		switch v := f.(type) {
		case U8:
			e.b[at] = byte(v)
		case I32:
			binary.LittleEndian.PutUint32(e.b[at:], uint32(v))
		case U32:
			binary.LittleEndian.PutUint32(e.b[at:], uint32(v))
		case U64:
			binary.LittleEndian.PutUint64(e.b[at:], uint64(v))
		case nil:
		default:
			patches = append(patches, patch{at, v})
		}
	}
	for _, p := range patches {
		target := e.child(p.child)
		binary.LittleEndian.PutUint32(e.b[p.at:], uint32(target-p.at))
	}
	return pos
}

func width(f any) int {
	switch f.(type) {
	case nil:
		return 0
	case U8:
		return 1
	case U64:
		return 8
	}
	return 4 // 32-bit scalars and offsets
}

func (e *encoder) vector(n, elem int) int {
	e.align(8)
	pos := len(e.b)
	e.b = binary.LittleEndian.AppendUint32(e.b, uint32(n))
	return pos
}

func (e *encoder) child(c any) int {
	switch v := c.(type) {
	case *Table:
		return e.table(v)
	case string:
		pos := e.vector(len(v), 1)
		e.b = append(e.b, v...)
		e.b = append(e.b, 0)
		return pos
	case []byte:
		pos := e.vector(len(v), 1)
		e.b = append(e.b, v...)
		return pos
	case []int32:
		pos := e.vector(len(v), 4)
		for _, x := range v {
			e.b = binary.LittleEndian.AppendUint32(e.b, uint32(x))
		}
		return pos
	case []float32:
		pos := e.vector(len(v), 4)
		for _, x := range v {
			e.b = binary.LittleEndian.AppendUint32(e.b, math.Float32bits(x))
		}
		return pos
	case []int64:
		pos := e.vector(len(v), 8)
		for _, x := range v {
			e.b = binary.LittleEndian.AppendUint64(e.b, uint64(x))
		}
		return pos
	case []*Table:
		pos := e.vector(len(v), 4)
		slots := len(e.b)
		e.b = append(e.b, make([]byte, 4*len(v))...)
		for i, t := range v {
			target := e.table(t)
			at := slots + 4*i
			binary.LittleEndian.PutUint32(e.b[at:], uint32(target-at))
		}
		return pos
	}
	panic("tflitetest: unsupported field type")
}

// Graph describes a one-subgraph model for Build.
type Graph struct {
	Tensors []Tensor
	Ops     []Op
	Inputs  []int32
	Outputs []int32
}

// Tensor is a graph tensor; Data non-nil makes it constant.
type Tensor struct {
	Name  string
	Shape []int32
	Type  tflite.TensorType
	Data  []byte
}

// Op is one operator; Options is the builtin options table (field ids as
// in TFLite's schema), OptionsType the union tag.
type Op struct {
	Code        tflite.Op
	Inputs      []int32
	Outputs     []int32
	OptionsType uint8
	Options     *Table
}

// Build encodes a graph as a TFLite file.
func Build(g Graph) []byte {
	buffers := []*Table{{}} // buffer 0 is the empty sentinel
	var tensors []*Table
	for _, t := range g.Tensors {
		buf := U32(0)
		if t.Data != nil {
			buffers = append(buffers, &Table{Fields: []any{t.Data}})
			buf = U32(len(buffers) - 1)
		}
		tensors = append(tensors, &Table{Fields: []any{t.Shape, U8(t.Type), buf, t.Name}})
	}
	codeIndex := map[tflite.Op]int{}
	var codes []*Table
	var ops []*Table
	for _, op := range g.Ops {
		idx, ok := codeIndex[op.Code]
		if !ok {
			idx = len(codes)
			codeIndex[op.Code] = idx
			dep := op.Code
			if dep > 127 {
				dep = 127
			}
			codes = append(codes, &Table{Fields: []any{U8(dep), nil, I32(1), I32(op.Code)}})
		}
		var opts any
		if op.Options != nil {
			opts = op.Options
		}
		ops = append(ops, &Table{Fields: []any{U32(idx), op.Inputs, op.Outputs, U8(op.OptionsType), opts}})
	}
	sub := &Table{Fields: []any{tensors, g.Inputs, g.Outputs, ops, "main"}}
	model := &Table{Fields: []any{U32(3), codes, []*Table{sub}, "tflitetest", buffers}}
	return Encode(model)
}

// Float32Bytes and Float16Bytes and Int32Bytes encode constant data.
func Float32Bytes(v ...float32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func Int32Bytes(v ...int32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, uint32(x))
	}
	return b
}

// Float16Bytes encodes values that are exactly representable in half
// precision (tests pick such values) by truncating the mantissa.
func Float16Bytes(v ...float32) []byte {
	b := make([]byte, 0, 2*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint16(b, floatToHalf(x))
	}
	return b
}

func floatToHalf(f float32) uint16 {
	bits := math.Float32bits(f)
	sign := uint16(bits>>16) & 0x8000
	exp := int32(bits>>23&0xff) - 127 + 15
	frac := uint16(bits>>13) & 0x3ff
	switch {
	case f == 0:
		return sign
	case exp <= 0:
		return sign // flush tiny values; tests avoid them
	case exp >= 31:
		return sign | 0x7c00
	}
	return sign | uint16(exp)<<10 | frac
}
