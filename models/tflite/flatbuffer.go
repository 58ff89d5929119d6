package tflite

import (
	"encoding/binary"
	"fmt"
	"math"
)

// buf is a bounds-checked view of a flatbuffer. Every accessor checks offsets
// against the buffer length so that a truncated or hostile file yields an
// error naming the offset instead of a panic.
type buf []byte

// maxVector bounds vector lengths so a corrupt length field cannot make us
// allocate gigabytes before the bounds check notices the data is missing.
const maxVector = 1 << 28

func (b buf) u8(off int) (uint8, error) {
	if off < 0 || off+1 > len(b) {
		return 0, fmt.Errorf("read u8 at offset %d: out of bounds (file is %d bytes)", off, len(b))
	}
	return b[off], nil
}

func (b buf) u16(off int) (uint16, error) {
	if off < 0 || off+2 > len(b) {
		return 0, fmt.Errorf("read u16 at offset %d: out of bounds (file is %d bytes)", off, len(b))
	}
	return binary.LittleEndian.Uint16(b[off:]), nil
}

func (b buf) u32(off int) (uint32, error) {
	if off < 0 || off+4 > len(b) {
		return 0, fmt.Errorf("read u32 at offset %d: out of bounds (file is %d bytes)", off, len(b))
	}
	return binary.LittleEndian.Uint32(b[off:]), nil
}

func (b buf) u64(off int) (uint64, error) {
	if off < 0 || off+8 > len(b) {
		return 0, fmt.Errorf("read u64 at offset %d: out of bounds (file is %d bytes)", off, len(b))
	}
	return binary.LittleEndian.Uint64(b[off:]), nil
}

// table is a flatbuffer table: its position and its vtable's position.
type table struct {
	b       buf
	pos     int
	vtab    int
	vtabLen int
}

func (b buf) table(pos int) (table, error) {
	soff, err := b.u32(pos)
	if err != nil {
		return table{}, fmt.Errorf("table at offset %d: %w", pos, err)
	}
	vt := pos - int(int32(soff))
	vlen, err := b.u16(vt)
	if err != nil {
		return table{}, fmt.Errorf("vtable of table at offset %d: %w", pos, err)
	}
	if vlen < 4 || vlen%2 != 0 || vt+int(vlen) > len(b) {
		return table{}, fmt.Errorf("vtable at offset %d: bad length %d", vt, vlen)
	}
	return table{b: b, pos: pos, vtab: vt, vtabLen: int(vlen)}, nil
}

// field returns the absolute offset of field id, or 0 when the field is absent.
func (t table) field(id int) (int, error) {
	slot := 4 + 2*id
	if slot+2 > t.vtabLen {
		return 0, nil
	}
	rel, err := t.b.u16(t.vtab + slot)
	if err != nil {
		return 0, err
	}
	if rel == 0 {
		return 0, nil
	}
	return t.pos + int(rel), nil
}

func (t table) scalarU8(id int, def uint8) (uint8, error) {
	off, err := t.field(id)
	if err != nil || off == 0 {
		return def, err
	}
	return t.b.u8(off)
}

func (t table) scalarI32(id int, def int32) (int32, error) {
	off, err := t.field(id)
	if err != nil || off == 0 {
		return def, err
	}
	v, err := t.b.u32(off)
	return int32(v), err
}

func (t table) scalarU32(id int, def uint32) (uint32, error) {
	off, err := t.field(id)
	if err != nil || off == 0 {
		return def, err
	}
	return t.b.u32(off)
}

func (t table) scalarU64(id int, def uint64) (uint64, error) {
	off, err := t.field(id)
	if err != nil || off == 0 {
		return def, err
	}
	return t.b.u64(off)
}

// indirect follows the uoffset stored at off.
func (b buf) indirect(off int) (int, error) {
	rel, err := b.u32(off)
	if err != nil {
		return 0, err
	}
	target := off + int(rel)
	if rel > math.MaxInt32 || target > len(b) {
		return 0, fmt.Errorf("offset at %d points outside the file (%d)", off, target)
	}
	return target, nil
}

// vector returns the start of a vector's elements and its length, or (0,0)
// when the field is absent.
func (t table) vector(id int, elemSize int) (start, n int, err error) {
	off, err := t.field(id)
	if err != nil || off == 0 {
		return 0, 0, err
	}
	vpos, err := t.b.indirect(off)
	if err != nil {
		return 0, 0, fmt.Errorf("field %d: %w", id, err)
	}
	ln, err := t.b.u32(vpos)
	if err != nil {
		return 0, 0, fmt.Errorf("vector length at offset %d: %w", vpos, err)
	}
	if ln > maxVector || vpos+4+int(ln)*elemSize > len(t.b) {
		return 0, 0, fmt.Errorf("vector at offset %d: length %d runs past the end of the file", vpos, ln)
	}
	return vpos + 4, int(ln), nil
}

func (t table) bytesField(id int) ([]byte, error) {
	start, n, err := t.vector(id, 1)
	if err != nil || n == 0 {
		return nil, err
	}
	return t.b[start : start+n], nil
}

func (t table) stringField(id int) (string, error) {
	b, err := t.bytesField(id)
	return string(b), err
}

func (t table) int32s(id int) ([]int32, error) {
	start, n, err := t.vector(id, 4)
	if err != nil || n == 0 {
		return nil, err
	}
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(t.b[start+4*i:]))
	}
	return out, nil
}

func (t table) float32s(id int) ([]float32, error) {
	start, n, err := t.vector(id, 4)
	if err != nil || n == 0 {
		return nil, err
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.b[start+4*i:]))
	}
	return out, nil
}

func (t table) int64s(id int) ([]int64, error) {
	start, n, err := t.vector(id, 8)
	if err != nil || n == 0 {
		return nil, err
	}
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(t.b[start+8*i:]))
	}
	return out, nil
}

// tables returns the tables of a vector of tables.
func (t table) tables(id int) ([]table, error) {
	start, n, err := t.vector(id, 4)
	if err != nil || n == 0 {
		return nil, err
	}
	out := make([]table, n)
	for i := range out {
		pos, err := t.b.indirect(start + 4*i)
		if err != nil {
			return nil, fmt.Errorf("element %d of field %d: %w", i, id, err)
		}
		if out[i], err = t.b.table(pos); err != nil {
			return nil, fmt.Errorf("element %d of field %d: %w", i, id, err)
		}
	}
	return out, nil
}

// subtable returns the table a field points at; ok is false when absent.
func (t table) subtable(id int) (table, bool, error) {
	off, err := t.field(id)
	if err != nil || off == 0 {
		return table{}, false, err
	}
	pos, err := t.b.indirect(off)
	if err != nil {
		return table{}, false, fmt.Errorf("field %d: %w", id, err)
	}
	st, err := t.b.table(pos)
	return st, err == nil, err
}
