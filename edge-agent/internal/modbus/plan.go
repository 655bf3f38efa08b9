package modbus

import (
	"cmp"
	"slices"
)

// limits bound the requests the planner makes.
type limits struct {
	// maxRegs and maxBits: the most registers / bits in one read.
	maxRegs, maxBits int
	// maxGap: the most unused registers / bits between two tags of one read.
	maxGap int
}

// request is one read: count registers (or bits) of one table of one unit
// from addr, and where each of its points lies in the response.
type request struct {
	unit   uint8
	table  table
	addr   uint16
	count  uint16
	points []placed
}

// placed is a point and its offset from its request's first address.
type placed struct {
	point
	off int
}

// plan coalesces the points of one group into reads. Points are sorted by
// (unit, table, address) and taken in order: a point joins the current read
// when it has the same unit and table, starts at most maxGap past the end
// of what the read covers so far, and the read stays within the protocol
// limit; otherwise it starts the next read. A subset of a readable span is
// readable too, so this greedy pass gives the fewest reads for tags that do
// not overlap. Overlapping tags (one register read as two types) share the
// read. plan is pure: same points, same requests, in the same order.
func plan(points []point, lim limits) []request {
	ps := slices.Clone(points)
	slices.SortStableFunc(ps, func(a, b point) int {
		return cmp.Or(cmp.Compare(a.unit, b.unit), cmp.Compare(a.table, b.table),
			cmp.Compare(a.addr, b.addr), cmp.Compare(b.size(), a.size()), cmp.Compare(a.sensor, b.sensor))
	})
	var out []request
	end := 0 // one past the last address the current read covers
	for _, p := range ps {
		start, stop := int(p.addr), int(p.addr)+p.size()
		maxCount := lim.maxRegs
		if p.table.bits() {
			maxCount = lim.maxBits
		}
		if n := len(out); n > 0 {
			r := &out[n-1]
			first := int(r.addr)
			if r.unit == p.unit && r.table == p.table && start-end <= lim.maxGap && max(end, stop)-first <= maxCount {
				end = max(end, stop)
				r.count = uint16(end - first)
				r.points = append(r.points, placed{point: p, off: start - first})
				continue
			}
		}
		out = append(out, request{unit: p.unit, table: p.table, addr: p.addr, count: uint16(p.size()),
			points: []placed{{point: p}}})
		end = stop
	}
	return out
}
