package monitor

import (
	"math"
	"time"
)

// trend fits a straight line to an asset's recent deviation — the square
// root of the detector's error, how many standard deviations the readings
// are from what the model expects — and extrapolates it to the failure
// level: the time-to-failure forecast, with a range from the slope's
// standard error. The deviation grows in proportion to a fault that grows
// steadily, so a line suits it; the score, bounded below 1, and the
// evidence, a logarithm, bend over however fast the machine degrades.
type trend struct {
	n    int       // capacity
	z    []float64 // deviation
	t    []float64 // seconds since t0
	head int
	size int
	t0   time.Time
	set  bool
}

func newTrend(n int) *trend { return &trend{n: n, z: make([]float64, n), t: make([]float64, n)} }

func (tr *trend) reset() { tr.head, tr.size, tr.set = 0, 0, false }

func (tr *trend) add(at time.Time, z float64) {
	if !tr.set {
		tr.t0, tr.set = at, true
	}
	tr.z[tr.head] = z
	tr.t[tr.head] = at.Sub(tr.t0).Seconds()
	tr.head = (tr.head + 1) % tr.n
	if tr.size < tr.n {
		tr.size++
	}
}

// line fits the newest k points: level at the newest point, slope per
// second and the slope's standard error.
func (tr *trend) line(k int) (level, slope, se float64, ok bool) {
	k = min(k, tr.size)
	if k < 5 {
		return 0, 0, 0, false
	}
	idx := func(i int) int { return (tr.head - k + i + tr.n) % tr.n } // i-th oldest of the k
	var st, sz float64
	for i := range k {
		st += tr.t[idx(i)]
		sz += tr.z[idx(i)]
	}
	fk := float64(k)
	mt, mz := st/fk, sz/fk
	var stt, stz float64
	for i := range k {
		dt := tr.t[idx(i)] - mt
		stt += dt * dt
		stz += dt * (tr.z[idx(i)] - mz)
	}
	if stt <= 0 {
		return 0, 0, 0, false
	}
	slope = stz / stt
	var sse, lag, prev float64
	for i := range k {
		r := tr.z[idx(i)] - (mz + slope*(tr.t[idx(i)]-mt))
		sse += r * r
		if i > 0 {
			lag += r * prev
		}
		prev = r
	}
	se = math.Sqrt(sse/math.Max(fk-2, 1)) / math.Sqrt(stt)
	// Smoothed errors are strongly autocorrelated, so k readings carry the
	// information of far fewer: widen the error by the lag-one
	// autocorrelation of the residuals, sqrt((1+ρ)/(1−ρ)).
	if sse > 0 {
		rho := math.Min(lag/sse, 0.99)
		if rho > 0 {
			se *= math.Sqrt((1 + rho) / (1 - rho))
		}
	}
	level = mz + slope*(tr.t[idx(k-1)]-mt)
	return level, slope, se, true
}

// forecast returns the time until the fitted line reaches limit, with a
// range wide enough to be honest about the line being only a line: it
// spans the slopes of the whole window and of its newest half and quarter
// (a degradation that accelerates shows there first), each ± 2 standard
// errors; the far end is open (10× the estimate) when the slowest
// slope is not positive. It gives none unless the deviation rises
// significantly over the whole window and still rises over its newest
// quarter, and is below the limit: a falling or levelling score says
// nothing about a failure time.
func (tr *trend) forecast(limit float64) (ttf, low, high time.Duration, ok bool) {
	if tr.size < max(tr.n/2, 5) {
		return 0, 0, 0, false
	}
	level, slope, se, ok := tr.line(tr.size)
	if !ok || slope <= 2*se || level >= limit {
		return 0, 0, 0, false
	}
	_, quarter, quarterSE, ok := tr.line(tr.size / 4)
	if !ok || quarter <= 0 {
		return 0, 0, 0, false
	}
	_, half, halfSE, ok := tr.line(tr.size / 2)
	if !ok {
		half, halfSE = slope, se
	}
	gap := limit - level
	est := gap / slope
	fast := gap / max(slope+2*se, half+2*halfSE, quarter+2*quarterSE)
	slow := est * 10
	if s := min(slope-2*se, half-2*halfSE); s > 0 {
		slow = gap / s
	}
	return seconds(est), seconds(fast), seconds(slow), true
}

func seconds(s float64) time.Duration {
	const maxDur = float64(100 * 365 * 24 * time.Hour)
	return time.Duration(math.Min(s*float64(time.Second), maxDur))
}
