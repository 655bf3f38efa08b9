package history

import (
	"math"
	"slices"
	"sort"
	"time"
)

// builder assembles one asset's Series from rows given in time order, one
// step apart or more: it splits segments at gaps and exclusions, counts
// what each exclusion removed and keeps the kept rows in one flat slice.
// Both readers feed it, so the InfluxDB and file paths cut and count alike.
type builder struct {
	step, from, to int64
	sensors        []string
	index          map[string]int
	// fixed: the sensors were given; other names are not added.
	fixed bool
	data  []float64
	segs  []segRef
	gaps  []Gap
	excl  []Exclusion
	spans []span // sorted by from
	// active is the first span that may still cover a later row.
	active int
	// last is the time of the last row read (kept or not), from-step
	// before the first; kept says whether that row was kept, so that the
	// next one a step later continues its segment.
	last int64
	kept bool
	read int
}

// segRef is a segment before the storage is final: rows are indices into
// builder.data, which moves as it grows or gains a sensor.
type segRef struct {
	start   int64
	row0, n int
}

// span is an exclusion in row times: rows t with from <= t < to.
type span struct {
	from, to int64
	excl     int // index in builder.excl
}

func newBuilder(step, from, to int64, sensors []string, fixed bool) *builder {
	b := &builder{step: step, from: from, to: to, fixed: fixed, index: map[string]int{}, last: from - step}
	for _, s := range sensors {
		b.index[s] = len(b.sensors)
		b.sensors = append(b.sensors, s)
	}
	return b
}

// exclude sets the spans to remove; ex are in real time (From, To as
// stored, unpadded). Each is padded, widened to the windows it overlaps,
// clipped to the range; one that leaves nothing is dropped. Call it before
// the first row.
func (b *builder) exclude(ex []Exclusion, pad int64) {
	for _, e := range ex {
		from := max(floorStep(e.From.UnixNano()-pad, b.step), b.from)
		to := min(ceilStep(e.To.UnixNano()+pad, b.step), b.to)
		if from >= to {
			continue
		}
		e.From, e.To, e.Rows = unixTime(from), unixTime(to), 0
		b.excl = append(b.excl, e)
	}
	sort.SliceStable(b.excl, func(i, j int) bool { return b.excl[i].From.Before(b.excl[j].From) })
	b.spans = make([]span, len(b.excl))
	for i, e := range b.excl {
		b.spans[i] = span{from: e.From.UnixNano(), to: e.To.UnixNano(), excl: i}
	}
}

// addSensors makes sure every name is a column, in sorted position unless
// the sensors are fixed (then unknown names are ignored). Existing rows get
// NaN in a new column. Indices of earlier names may change.
func (b *builder) addSensors(names []string) {
	if b.fixed {
		return
	}
	var add []string
	for _, n := range names {
		if _, ok := b.index[n]; !ok && !slices.Contains(add, n) {
			add = append(add, n)
		}
	}
	if len(add) == 0 {
		return
	}
	old := b.sensors
	all := append(slices.Clone(old), add...)
	slices.Sort(all)
	rows := b.rows()
	w, nw := len(old), len(all)
	data := make([]float64, rows*nw, max(cap(b.data)/max(w, 1)*nw, rows*nw))
	// where[j] is the new column of old column j.
	where := make([]int, w)
	for j, s := range old {
		where[j], _ = slices.BinarySearch(all, s)
	}
	for r := range rows {
		dst := data[r*nw : (r+1)*nw]
		for k := range dst {
			dst[k] = math.NaN()
		}
		for j, v := range b.data[r*w : (r+1)*w] {
			dst[where[j]] = v
		}
	}
	b.data, b.sensors = data, all
	clear(b.index)
	for i, s := range all {
		b.index[s] = i
	}
}

// rows returns the number of rows kept so far.
func (b *builder) rows() int {
	if len(b.sensors) == 0 {
		return 0
	}
	return len(b.data) / len(b.sensors)
}

// reserve grows the storage to hold n rows in all, so that a long read
// grows it a few times to its estimated size instead of doubling.
func (b *builder) reserve(n int) {
	w := len(b.sensors)
	if w == 0 || cap(b.data) >= n*w {
		return
	}
	b.data = slices.Grow(b.data, n*w-len(b.data))
}

// add appends the row at t (a multiple of step, after every earlier row),
// values in b.sensors order. A row before or at the last one, or outside
// the range, is ignored: the readers deliver rows in order, merged.
func (b *builder) add(t int64, row []float64) {
	if !b.advance(t) {
		return
	}
	if i := b.spanAt(t); i >= 0 {
		b.excl[i].Rows++
		b.kept = false
		return
	}
	b.keep(t, row)
}

// addExcluded records the row at t as removed by a span found while
// reading (a file's label): the span continues the last exclusion when it
// has the same reason and ends at t, else starts a new one.
func (b *builder) addExcluded(t int64, reason Reason, note string) {
	if !b.advance(t) {
		return
	}
	if n := len(b.excl); n > 0 && b.excl[n-1].Reason == reason && b.excl[n-1].To.UnixNano() == t {
		b.excl[n-1].To = unixTime(t + b.step)
		b.excl[n-1].Rows++
	} else {
		b.excl = append(b.excl, Exclusion{From: unixTime(t), To: unixTime(t + b.step), Reason: reason, Note: note, Rows: 1})
	}
	b.kept = false
}

// advance accounts for the steps between the last row and t; false means
// t is not a new row in range.
func (b *builder) advance(t int64) bool {
	if t <= b.last || t < b.from || t >= b.to {
		return false
	}
	if t > b.last+b.step {
		b.gaps = append(b.gaps, Gap{From: unixTime(b.last + b.step), To: unixTime(t), Steps: int((t - b.last - b.step) / b.step)})
		b.kept = false
	}
	b.last = t
	b.read++
	return true
}

func (b *builder) keep(t int64, row []float64) {
	if !b.kept || len(b.segs) == 0 {
		b.segs = append(b.segs, segRef{start: t, row0: b.rows()})
	}
	b.data = append(b.data, row...)
	b.segs[len(b.segs)-1].n++
	b.kept = true
}

// spanAt returns the exclusion removing the row at t (the earliest-starting
// one covering it) or -1. Rows come in time order, so spans that ended are
// skipped for good.
func (b *builder) spanAt(t int64) int {
	for b.active < len(b.spans) && b.spans[b.active].to <= t {
		b.active++
	}
	for _, s := range b.spans[b.active:] {
		if s.from > t {
			break
		}
		if t < s.to {
			return s.excl
		}
	}
	return -1
}

// finish returns the Series; the builder must not be used afterwards.
func (b *builder) finish(site, asset string) *Series {
	if b.last+b.step < b.to {
		b.gaps = append(b.gaps, Gap{From: unixTime(b.last + b.step), To: unixTime(b.to), Steps: int((b.to - b.last - b.step) / b.step)})
	}
	w := len(b.sensors)
	rows := b.rows()
	if cap(b.data) > len(b.data)+len(b.data)/4+1024 {
		// An estimate too high by over a quarter is given back.
		b.data = slices.Clip(slices.Clone(b.data))
	}
	s := &Series{
		Site: site, Asset: asset, Step: time.Duration(b.step), From: unixTime(b.from), To: unixTime(b.to),
		Sensors: b.sensors, Gaps: b.gaps, Excluded: b.excl, Rows: rows, Read: b.read,
		Present: make([]int, w),
	}
	if s.Sensors == nil {
		s.Sensors = []string{}
	}
	for _, r := range b.segs {
		vals := b.data[r.row0*w : (r.row0+r.n)*w : (r.row0+r.n)*w]
		s.Segments = append(s.Segments, Segment{Start: unixTime(r.start), Step: s.Step, N: r.n, Values: vals})
	}
	for r := range rows {
		for j, v := range b.data[r*w : (r+1)*w] {
			if !math.IsNaN(v) {
				s.Present[j]++
			}
		}
	}
	s.Hash = hashSeries(s.Sensors, s.Segments)
	return s
}
