package anomaly

import (
	"math"
	"time"
)

// trend fits a straight line to the recent health indicator (the smoothed
// score) and extrapolates it to the failure limit. This is the "anomaly
// forecast": a time to failure with a range from the slope's standard
// error, given only when the indicator is rising.
type trend struct {
	n       int // capacity
	h       []float64
	t       []float64 // seconds since first sample
	head    int
	size    int
	t0      time.Time
	haveT0  bool
	limit   float64
	minSize int
}

func newTrend(n int, limit float64) *trend {
	return &trend{n: n, h: make([]float64, n), t: make([]float64, n), limit: limit, minSize: max(n/2, 5)}
}

func (tr *trend) reset() { tr.head, tr.size, tr.haveT0 = 0, 0, false }

func (tr *trend) add(at time.Time, h float64) {
	if !tr.haveT0 {
		tr.t0, tr.haveT0 = at, true
	}
	tr.h[tr.head] = h
	tr.t[tr.head] = at.Sub(tr.t0).Seconds()
	tr.head = (tr.head + 1) % tr.n
	if tr.size < tr.n {
		tr.size++
	}
}

// forecast returns nil unless the indicator rises significantly and is still
// below the limit. Low and High come from slope ± 2 standard errors (the
// upper end is open-ended when the slower slope is not positive: then High
// is 10× the estimate).
func (tr *trend) forecast() *Forecast {
	if tr.size < tr.minSize {
		return nil
	}
	var st, sh float64
	for i := 0; i < tr.size; i++ {
		st += tr.t[i]
		sh += tr.h[i]
	}
	k := float64(tr.size)
	mt, mh := st/k, sh/k
	var stt, sth float64
	for i := 0; i < tr.size; i++ {
		dt := tr.t[i] - mt
		stt += dt * dt
		sth += dt * (tr.h[i] - mh)
	}
	if stt <= 0 {
		return nil
	}
	slope := sth / stt
	var sse float64
	for i := 0; i < tr.size; i++ {
		r := tr.h[i] - (mh + slope*(tr.t[i]-mt))
		sse += r * r
	}
	se := math.Sqrt(sse/math.Max(k-2, 1)) / math.Sqrt(stt)
	// The newest sample is just before head.
	last := (tr.head - 1 + tr.n) % tr.n
	now := tr.t[last]
	level := mh + slope*(now-mt)
	if slope <= 2*se || level >= tr.limit {
		return nil
	}
	gap := tr.limit - level
	est := gap / slope
	fast := gap / (slope + 2*se)
	slow := est * 10
	if s := slope - 2*se; s > 0 {
		slow = gap / s
	}
	toDur := func(s float64) time.Duration {
		const maxDur = float64(100 * 365 * 24 * time.Hour)
		return time.Duration(math.Min(s*float64(time.Second), maxDur))
	}
	return &Forecast{TimeToFailure: toDur(est), Low: toDur(fast), High: toDur(slow)}
}
