package modbus

import (
	"encoding/binary"
	"math"
)

// decodeRegisters reads p's value from its registers, as the protocol
// delivers them (each a big-endian 16-bit word, lowest address first), and
// scales it: raw*scale + offset. regs must hold p.size() registers.
//
// Orders, for a 32-bit value with bytes A (most significant) … D:
//
//	word big,    byte big:    registers AB CD  ("ABCD", the common default)
//	word little, byte big:    registers CD AB  ("CDAB")
//	word big,    byte little: registers BA DC  ("BADC")
//	word little, byte little: registers DC BA  ("DCBA")
//
// 64-bit values follow the same rule over four registers.
func (p point) decodeRegisters(regs []uint16) float64 {
	var b [8]byte
	n := p.size()
	for i := range n {
		w := regs[i]
		if p.wordLittle {
			w = regs[n-1-i]
		}
		if p.byteLittle {
			w = w<<8 | w>>8
		}
		binary.BigEndian.PutUint16(b[2*i:], w)
	}
	var raw float64
	switch p.typ {
	case typeUint16:
		raw = float64(binary.BigEndian.Uint16(b[:]))
	case typeInt16:
		raw = float64(int16(binary.BigEndian.Uint16(b[:])))
	case typeUint32:
		raw = float64(binary.BigEndian.Uint32(b[:]))
	case typeInt32:
		raw = float64(int32(binary.BigEndian.Uint32(b[:])))
	case typeFloat32:
		raw = float64(math.Float32frombits(binary.BigEndian.Uint32(b[:])))
	case typeFloat64:
		raw = math.Float64frombits(binary.BigEndian.Uint64(b[:]))
	}
	return raw*p.scale + p.offset
}

// decodeBit is a coil or discrete input as 0 or 1, scaled like any value.
func (p point) decodeBit(on bool) float64 {
	raw := 0.0
	if on {
		raw = 1
	}
	return raw*p.scale + p.offset
}
