package modbus

import (
	"encoding/binary"
	"math"
	"testing"
)

// Known answers: each register layout is written out by hand from the
// value's big-endian bytes, for every type and all four orders.
func TestDecodeRegisters(t *testing.T) {
	const (
		bb = iota // word big, byte big: ABCD
		lb        // word little, byte big: CDAB
		bl        // word big, byte little: BADC
		ll        // word little, byte little: DCBA
	)
	for _, tc := range []struct {
		name  string
		typ   valueType
		order int
		regs  []uint16
		want  float64
	}{
		{"uint16 max", typeUint16, bb, []uint16{0xffff}, 65535},
		{"uint16 byte little", typeUint16, bl, []uint16{0x3412}, 0x1234},
		{"uint16 word order ignored", typeUint16, lb, []uint16{0x1234}, 0x1234},
		{"int16 -1", typeInt16, bb, []uint16{0xffff}, -1},
		{"int16 min", typeInt16, bb, []uint16{0x8000}, -32768},
		{"int16 byte little", typeInt16, ll, []uint16{0x0080}, -32768},
		{"uint32 ABCD", typeUint32, bb, []uint16{0x1234, 0x5678}, 0x12345678},
		{"uint32 CDAB", typeUint32, lb, []uint16{0x5678, 0x1234}, 0x12345678},
		{"uint32 BADC", typeUint32, bl, []uint16{0x3412, 0x7856}, 0x12345678},
		{"uint32 DCBA", typeUint32, ll, []uint16{0x7856, 0x3412}, 0x12345678},
		{"uint32 max", typeUint32, bb, []uint16{0xffff, 0xffff}, 4294967295},
		{"int32 ABCD", typeInt32, bb, []uint16{0xf8a4, 0x32eb}, -123456789},
		{"int32 CDAB", typeInt32, lb, []uint16{0x32eb, 0xf8a4}, -123456789},
		{"int32 BADC", typeInt32, bl, []uint16{0xa4f8, 0xeb32}, -123456789},
		{"int32 DCBA", typeInt32, ll, []uint16{0xeb32, 0xa4f8}, -123456789},
		{"float32 ABCD", typeFloat32, bb, []uint16{0x42f6, 0xe979}, float64(float32(123.456))},
		{"float32 CDAB", typeFloat32, lb, []uint16{0xe979, 0x42f6}, float64(float32(123.456))},
		{"float32 BADC", typeFloat32, bl, []uint16{0xf642, 0x79e9}, float64(float32(123.456))},
		{"float32 DCBA", typeFloat32, ll, []uint16{0x79e9, 0xf642}, float64(float32(123.456))},
		{"float32 negative", typeFloat32, bb, []uint16{0xbe20, 0x0000}, -0.15625},
		{"float64 ABCD", typeFloat64, bb, []uint16{0x4009, 0x21fb, 0x5444, 0x2d18}, math.Pi},
		{"float64 CDAB", typeFloat64, lb, []uint16{0x2d18, 0x5444, 0x21fb, 0x4009}, math.Pi},
		{"float64 BADC", typeFloat64, bl, []uint16{0x0940, 0xfb21, 0x4454, 0x182d}, math.Pi},
		{"float64 DCBA", typeFloat64, ll, []uint16{0x182d, 0x4454, 0xfb21, 0x0940}, math.Pi},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := point{typ: tc.typ, wordLittle: tc.order == lb || tc.order == ll, byteLittle: tc.order == bl || tc.order == ll, scale: 1}
			if got := p.decodeRegisters(tc.regs); got != tc.want {
				t.Fatalf("%v → %v, want %v", tc.regs, got, tc.want)
			}
		})
	}
}

func TestDecodeScaleOffset(t *testing.T) {
	p := point{typ: typeInt16, scale: 0.1, offset: 5}
	if got := p.decodeRegisters([]uint16{0xff06}); math.Abs(got-(-20)) > 1e-12 { // -250 × 0.1 + 5
		t.Errorf("int16 -250 ×0.1 +5 = %v, want -20", got)
	}
	p = point{typ: typeUint16, scale: 0.001, offset: -0.5}
	if got := p.decodeRegisters([]uint16{1500}); math.Abs(got-1) > 1e-12 {
		t.Errorf("1500 ×0.001 −0.5 = %v, want 1", got)
	}
	b := point{typ: typeBool, scale: 2, offset: 1}
	if b.decodeBit(true) != 3 || b.decodeBit(false) != 1 {
		t.Errorf("bool ×2 +1: %v %v, want 3 1", b.decodeBit(true), b.decodeBit(false))
	}
	b = point{typ: typeBool, scale: 1}
	if b.decodeBit(true) != 1 || b.decodeBit(false) != 0 {
		t.Errorf("coil: %v %v, want 1 0", b.decodeBit(true), b.decodeBit(false))
	}
	nan := point{typ: typeFloat32, scale: 1}
	if got := nan.decodeRegisters([]uint16{0x7fc0, 0}); !math.IsNaN(got) {
		t.Errorf("float32 NaN pattern decoded as %v", got)
	}
}

// encode is the inverse of decodeRegisters for the round trip below.
func encode(p point, raw uint64) []uint16 {
	n := p.size()
	var b [8]byte
	switch n {
	case 1:
		binary.BigEndian.PutUint16(b[:], uint16(raw))
	case 2:
		binary.BigEndian.PutUint32(b[:], uint32(raw))
	case 4:
		binary.BigEndian.PutUint64(b[:], raw)
	}
	regs := make([]uint16, n)
	for i := range n {
		w := binary.BigEndian.Uint16(b[2*i:])
		if p.byteLittle {
			w = w<<8 | w>>8
		}
		if p.wordLittle {
			regs[n-1-i] = w
		} else {
			regs[i] = w
		}
	}
	return regs
}

// Any bit pattern written in any order reads back as the value those bits
// mean, for every type.
func FuzzDecodeRoundTrip(f *testing.F) {
	f.Add(uint64(0x400921fb54442d18), uint8(0))
	f.Add(uint64(0xf8a432eb), uint8(0x13))
	f.Add(uint64(0x7fc00000), uint8(0x24))
	f.Fuzz(func(t *testing.T, raw uint64, sel uint8) {
		p := point{typ: valueType(sel % 6), wordLittle: sel&0x40 != 0, byteLittle: sel&0x80 != 0, scale: 1}
		var want float64
		switch p.typ {
		case typeUint16:
			want = float64(uint16(raw))
		case typeInt16:
			want = float64(int16(raw))
		case typeUint32:
			want = float64(uint32(raw))
		case typeInt32:
			want = float64(int32(raw))
		case typeFloat32:
			want = float64(math.Float32frombits(uint32(raw)))
		case typeFloat64:
			want = math.Float64frombits(raw)
		}
		got := p.decodeRegisters(encode(p, raw))
		if got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Fatalf("%s word little %v byte little %v: %#x → %v, want %v", p.typ, p.wordLittle, p.byteLittle, raw, got, want)
		}
	})
}
