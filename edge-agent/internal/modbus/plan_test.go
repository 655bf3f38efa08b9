package modbus

import (
	"fmt"
	"strings"
	"testing"
)

func pt(sensor string, unit uint8, tb table, addr uint16, typ valueType) point {
	return point{sensor: sensor, unit: unit, table: tb, addr: addr, typ: typ, scale: 1}
}

// describe renders requests as "u1 holding 0+4 [a@0 b@2]; ...".
func describe(reqs []request) string {
	var parts []string
	for _, r := range reqs {
		var ps []string
		for _, p := range r.points {
			ps = append(ps, fmt.Sprintf("%s@%d", p.sensor, p.off))
		}
		parts = append(parts, fmt.Sprintf("u%d %s %d+%d [%s]", r.unit, r.table, r.addr, r.count, strings.Join(ps, " ")))
	}
	return strings.Join(parts, "; ")
}

func run(n int, f func(i int) point) []point {
	out := make([]point, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

func TestPlan(t *testing.T) {
	def := limits{maxRegs: MaxRegisters, maxBits: MaxBits}
	for _, tc := range []struct {
		name   string
		points []point
		lim    limits
		want   string // "" = check only count and limits
		count  int
	}{
		{"contiguous", []point{pt("c", 1, holding, 2, typeFloat32), pt("a", 1, holding, 0, typeUint16), pt("b", 1, holding, 1, typeInt16)},
			def, "u1 holding 0+4 [a@0 b@1 c@2]", 1},
		{"gap over max_gap 0", []point{pt("a", 1, holding, 0, typeUint16), pt("b", 1, holding, 2, typeUint16)},
			def, "u1 holding 0+1 [a@0]; u1 holding 2+1 [b@0]", 2},
		{"gap within max_gap", []point{pt("a", 1, holding, 0, typeUint16), pt("b", 1, holding, 3, typeUint16)},
			limits{maxRegs: 125, maxBits: 2000, maxGap: 2}, "u1 holding 0+4 [a@0 b@3]", 1},
		{"gap one past max_gap", []point{pt("a", 1, holding, 0, typeUint16), pt("b", 1, holding, 4, typeUint16)},
			limits{maxRegs: 125, maxBits: 2000, maxGap: 2}, "u1 holding 0+1 [a@0]; u1 holding 4+1 [b@0]", 2},
		{"125 registers then one more", run(126, func(i int) point { return pt(fmt.Sprint("r", i), 1, input, uint16(i), typeUint16) }),
			def, "", 2},
		{"float32 straddling 125", []point{pt("a", 1, holding, 0, typeUint16), pt("b", 1, holding, 124, typeFloat32)},
			limits{maxRegs: 125, maxBits: 2000, maxGap: 123}, "u1 holding 0+1 [a@0]; u1 holding 124+2 [b@0]", 2},
		{"float32 ending at 125", []point{pt("a", 1, holding, 0, typeUint16), pt("b", 1, holding, 123, typeFloat32)},
			limits{maxRegs: 125, maxBits: 2000, maxGap: 122}, "u1 holding 0+125 [a@0 b@123]", 1},
		{"device max_registers 10", run(25, func(i int) point { return pt(fmt.Sprint("r", i), 1, holding, uint16(i), typeUint16) }),
			limits{maxRegs: 10, maxBits: 2000}, "", 3},
		{"float64 groups of four", run(4, func(i int) point { return pt(fmt.Sprint("d", i), 1, holding, uint16(4*i), typeFloat64) }),
			limits{maxRegs: 8, maxBits: 2000}, "u1 holding 0+8 [d0@0 d1@4]; u1 holding 8+8 [d2@0 d3@4]", 2},
		{"mixed tables", []point{pt("h", 1, holding, 0, typeUint16), pt("i", 1, input, 0, typeUint16), pt("c", 1, coil, 0, typeBool),
			pt("d", 1, discrete, 0, typeBool), pt("h2", 1, holding, 1, typeUint16)},
			def, "u1 holding 0+2 [h@0 h2@1]; u1 input 0+1 [i@0]; u1 coil 0+1 [c@0]; u1 discrete 0+1 [d@0]", 4},
		{"unit ids apart", []point{pt("a", 2, holding, 0, typeUint16), pt("b", 1, holding, 1, typeUint16), pt("c", 1, holding, 0, typeUint16)},
			def, "u1 holding 0+2 [c@0 b@1]; u2 holding 0+1 [a@0]", 2},
		{"2000 coils then one more", run(2001, func(i int) point { return pt(fmt.Sprint("c", i), 1, coil, uint16(i), typeBool) }),
			def, "", 2},
		{"coil gap within max_gap", []point{pt("a", 1, coil, 0, typeBool), pt("b", 1, coil, 5, typeBool)},
			limits{maxRegs: 125, maxBits: 2000, maxGap: 4}, "u1 coil 0+6 [a@0 b@5]", 1},
		{"overlapping tags share a read", []point{pt("f", 1, holding, 10, typeFloat32), pt("lo", 1, holding, 11, typeUint16)},
			def, "u1 holding 10+2 [f@0 lo@1]", 1},
		{"last address", []point{pt("z", 1, holding, 65535, typeUint16), pt("y", 1, holding, 65534, typeUint16)},
			def, "u1 holding 65534+2 [y@0 z@1]", 1},
		{"empty", nil, def, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reqs := plan(tc.points, tc.lim)
			if tc.want != "" && describe(reqs) != tc.want {
				t.Errorf("plan\n got %s\nwant %s", describe(reqs), tc.want)
			}
			if len(reqs) != tc.count {
				t.Errorf("%d requests, want %d: %s", len(reqs), tc.count, describe(reqs))
			}
			// Every point lies in exactly one read, inside it, and every
			// read keeps the limits.
			seen := map[string]int{}
			for _, r := range reqs {
				maxCount := tc.lim.maxRegs
				if r.table.bits() {
					maxCount = tc.lim.maxBits
				}
				if r.count == 0 || int(r.count) > maxCount || int(r.addr)+int(r.count) > 0x10000 {
					t.Errorf("request %d+%d breaks the limits (max %d)", r.addr, r.count, maxCount)
				}
				for _, p := range r.points {
					seen[p.sensor]++
					if p.unit != r.unit || p.table != r.table || p.off < 0 || p.off+p.size() > int(r.count) || int(r.addr)+p.off != int(p.addr) {
						t.Errorf("%s (unit %d %s %d) misplaced in u%d %s %d+%d at %d", p.sensor, p.unit, p.table, p.addr, r.unit, r.table, r.addr, r.count, p.off)
					}
				}
			}
			for _, p := range tc.points {
				if seen[p.sensor] != 1 {
					t.Errorf("%s in %d reads", p.sensor, seen[p.sensor])
				}
			}
		})
	}
}

// The plan does not depend on the order of the tags in the config.
func TestPlanDeterministic(t *testing.T) {
	ps := []point{pt("a", 1, holding, 7, typeUint32), pt("b", 3, input, 0, typeInt16), pt("c", 1, holding, 0, typeUint16),
		pt("d", 1, coil, 9, typeBool), pt("e", 1, holding, 1, typeFloat64)}
	want := describe(plan(ps, limits{maxRegs: 125, maxBits: 2000, maxGap: 2}))
	rev := []point{ps[4], ps[3], ps[2], ps[1], ps[0]}
	if got := describe(plan(rev, limits{maxRegs: 125, maxBits: 2000, maxGap: 2})); got != want {
		t.Fatalf("reversed tags planned as\n%s\nnot\n%s", got, want)
	}
	if want != "u1 holding 0+9 [c@0 e@1 a@7]; u1 coil 9+1 [d@0]; u3 input 0+1 [b@0]" {
		t.Errorf("plan %s", want)
	}
}
