package monitor

import (
	"math"
	"time"
)

// drift watches the scores of quiet readings (no alert open) for a lasting
// shift of their distribution that raises no alert: a new operating point
// that the model still finds plausible but scores higher than the one it
// learnt. Such an asset needs a model of its new normal, not an alert.
//
// The baseline is the first full window of quiet readings after the
// detector was set (or last shifted): both the new-normal horizon's
// readings and its duration, so a daily cycle is in it whole. After it,
// readings are summarised in blocks of a twelfth of the baseline. A shift
// starts with a block most of whose readings (driftShare) score above the
// baseline's 90th percentile, and lasts while most of its readings since
// do. It is reported once it has lasted two windows and, as with a new normal
// under an alert, its deviation since its start (less the oldest quarter,
// the change itself) is flat: a step to a new level, not a degradation,
// which keeps rising. A shift that has not settled within exSpan windows
// is not reported. After a report the next window is the new baseline.
type drift struct {
	h       Horizon
	maxRise float64

	hist [driftBins]int // baseline scores
	n    int
	from time.Time
	p90  float64 // NaN until the baseline is complete
	size int     // readings per block

	cur   block
	shift []block // since the shift started, oldest first
	above int     // readings of shift above p90
	count int     // readings of shift
}

const (
	driftBins   = 200
	driftBlocks = 12
	driftShare  = 0.5
	// driftWindows is how many windows a shift must last: one window's
	// noisy deviation cannot tell a step from a rise of twice MaxRise per
	// window.
	driftWindows = 2
)

type block struct {
	above, n int
	t0       time.Time
	secs     float64 // sum of seconds since t0 of the block's readings
	dev      float64 // sum of deviations
}

func newDrift(h Horizon, maxRise float64) *drift {
	d := &drift{h: h, maxRise: maxRise}
	d.reset()
	return d
}

func (d *drift) reset() {
	d.hist, d.n, d.p90 = [driftBins]int{}, 0, math.NaN()
	d.cur = block{}
	d.endShift()
}

func (d *drift) endShift() { d.shift, d.above, d.count = d.shift[:0], 0, 0 }

// add takes one quiet reading's score and deviation and reports whether
// the distribution has now shifted, and since when.
func (d *drift) add(t time.Time, score, dev float64) (bool, time.Time) {
	if math.IsNaN(d.p90) {
		if d.n == 0 {
			d.from = t
		}
		d.hist[min(int(score*driftBins), driftBins-1)]++
		d.n++
		if d.n >= d.h.Readings && t.Sub(d.from) >= d.h.Duration {
			d.p90 = d.quantile(0.9)
			d.size = max(d.n/driftBlocks, 1)
		}
		return false, time.Time{}
	}
	if d.cur.n == 0 {
		d.cur.t0 = t
	}
	d.cur.n++
	d.cur.secs += t.Sub(d.cur.t0).Seconds()
	d.cur.dev += dev
	if score > d.p90 {
		d.cur.above++
	}
	if d.cur.n < d.size {
		return false, time.Time{}
	}
	b := d.cur
	d.cur = block{}
	if len(d.shift) == 0 && float64(b.above) < driftShare*float64(b.n) {
		return false, time.Time{}
	}
	if len(d.shift) == exSpan*driftBlocks {
		return false, time.Time{} // too long to settle: not a step
	}
	d.shift = append(d.shift, b)
	d.above += b.above
	d.count += b.n
	if float64(d.above) < driftShare*float64(d.count) {
		d.endShift()
		return false, time.Time{}
	}
	if len(d.shift) < driftWindows*driftBlocks || !d.settled() {
		return false, time.Time{}
	}
	since := d.shift[0].t0
	d.reset()
	return true, since
}

func (d *drift) quantile(q float64) float64 {
	want := int(math.Ceil(q * float64(d.n)))
	seen := 0
	for i, c := range d.hist {
		if seen += c; seen >= want {
			return float64(i+1) / driftBins
		}
	}
	return 1
}

// settled: the shift's blocks, less its oldest quarter, are flat.
func (d *drift) settled() bool {
	bs := d.shift[len(d.shift)/4:]
	pts := make([]point, len(bs))
	for i, b := range bs {
		mean := b.secs / float64(b.n)
		pts[i] = point{b.t0.Add(time.Duration(mean * float64(time.Second))), b.dev / float64(b.n)}
	}
	return flat(pts, d.maxRise)
}
