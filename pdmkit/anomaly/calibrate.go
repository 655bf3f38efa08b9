package anomaly

import (
	"math"
	"sort"

	"github.com/pdmstream/pdm/pdmkit/model"
)

// calibrator maps a raw error to evidence and a score. Errors are sums of
// squares, positive and right-skewed, so the calibration works on their
// logarithm: evidence z = (ln e − logMean) / logStd, where logMean is the
// median log error on normal data the model did not train on.
//
// logStd is the larger of two spreads: the robust deviation of normal log
// errors (1.4826 · MAD), and the one that puts the worst normal error seen
// out of sample at ceilingZ. The second matters for normal operation with
// rare large errors — the switches of a duty cycle, a noise-free signal —
// whose median and MAD describe only the quiet part: without it, every
// switch would look like a fault.
type calibrator struct {
	logMean, logStd float64
}

// minLogStd keeps the calibration from turning into a step function when
// the normal errors are nearly identical (a constant signal).
const minLogStd = 0.05

// ceilingZ is where the worst normal (out-of-sample) error sits on the
// evidence scale; the alert levels of pdmkit/monitor lie above it.
const ceilingZ = 3.0

// tiny is the smallest error the calibration distinguishes: errors are in
// squared standard deviations, so anything below 1e-6 is numerical noise
// (an all-constant signal) and must not look like a change. It also keeps
// log(0) out.
const tiny = 1e-6

// fitCalibrator calibrates on held-out normal errors.
func fitCalibrator(errs []float64) calibrator {
	if len(errs) == 0 {
		return calibrator{logMean: 0, logStd: 1}
	}
	logs := make([]float64, len(errs))
	for i, e := range errs {
		logs[i] = math.Log(math.Max(e, tiny))
	}
	sort.Float64s(logs)
	med := quantile(logs, 0.5)
	dev := make([]float64, len(logs))
	for i, v := range logs {
		dev[i] = math.Abs(v - med)
	}
	sort.Float64s(dev)
	s := 1.4826 * quantile(dev, 0.5)
	ceiling := (logs[len(logs)-1] - med) / ceilingZ
	return calibrator{logMean: med, logStd: math.Max(minLogStd, math.Max(s, ceiling))}
}

// errorAt is the raw error whose evidence is z.
func (c calibrator) errorAt(z float64) float64 { return math.Exp(c.logMean + z*c.logStd) }

func (c calibrator) evidence(e float64) float64 {
	return (math.Log(math.Max(e, tiny)) - c.logMean) / c.logStd
}

// Score maps evidence to [0, 1): the distribution function of Student's t
// with three degrees of freedom. Near 0 it is close to the normal
// distribution function (0.5 at the normal median); its tail falls like
// z⁻³ instead of exp(−z²/2), so scores of very different evidence stay
// different instead of all rounding to 1 — an operator can rank a fleet
// of alarming assets by score. Normal log errors are heavier-tailed than
// a normal law in practice, which this tail also respects.
func Score(z float64) float64 {
	if math.IsNaN(z) {
		return 0
	}
	x := z / math.Sqrt(3)
	s := 0.5 + (math.Atan(x)+x/(1+x*x))/math.Pi
	return math.Max(0, math.Min(s, math.Nextafter(1, 0)))
}

// Evidence is the inverse of Score: the evidence whose score is s, for
// s in (0, 1). Levels configured as scores are compared as evidence.
func Evidence(s float64) float64 {
	if !(s > 0 && s < 1) {
		if s >= 1 {
			return math.Inf(1)
		}
		return math.Inf(-1)
	}
	lo, hi := -1e6, 1e6
	for range 200 {
		mid := (lo + hi) / 2
		if Score(mid) < s {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// calibration is a calibrator per state of the machine. Readings whose
// smoothed window change (the scorers' act) is above cut are judged by
// active, the others by steady. A duty cycle's switches make errors far
// larger than steady running does; with one calibration for both, the
// switches would set the normal band for everything and a fault while
// running would have to outgrow a switch to be seen. The split is made
// only when it matters: when the active band's errors are clearly larger.
type calibration struct {
	steady calibrator
	active *calibrator
	cut    float64
}

// Band splitting: the active band is the readings above the activeShare
// quantile of change; it gets a calibration of its own when its median
// log error exceeds the steady band's by splitGap and it holds at least
// minBand errors.
const (
	activeShare = 0.85
	splitGap    = 1.0
	minBand     = 20
	// minCut: a window whose readings moved by less than half a standard
	// deviation of normal is not moving, whatever the quantile says.
	minCut = 0.5
)

// fitCalibration calibrates on held-out errors and the change at each.
func fitCalibration(errs, acts []float64) calibration {
	c := calibration{steady: fitCalibrator(errs)}
	if len(acts) != len(errs) || len(errs) < 4*minBand {
		return c
	}
	sorted := append([]float64(nil), acts...)
	sort.Float64s(sorted)
	cut := math.Max(quantile(sorted, activeShare), minCut)
	var st, ac []float64
	for i, e := range errs {
		if acts[i] > cut {
			ac = append(ac, e)
		} else {
			st = append(st, e)
		}
	}
	if len(ac) < minBand || len(st) < minBand {
		return c
	}
	s, a := fitCalibrator(st), fitCalibrator(ac)
	if a.logMean-s.logMean < splitGap || s.logStd <= minLogStd {
		// Bands of like errors, or a steady band with no spread of its own
		// (a noise-free signal between switches): one calibration.
		return c
	}
	return calibration{steady: s, active: &a, cut: cut}
}

// artifact is the calibration as an artifact stores it.
func (c calibration) artifact(smoothing float64) *model.Calibration {
	a := &model.Calibration{LogMean: c.steady.logMean, LogStd: c.steady.logStd, Smoothing: smoothing}
	if c.active != nil {
		a.Active = &model.Band{Cut: c.cut, LogMean: c.active.logMean, LogStd: c.active.logStd}
	}
	return a
}

// calibrationOf reads an artifact's calibration.
func calibrationOf(a *model.Calibration) calibration {
	c := calibration{steady: calibrator{logMean: a.LogMean, logStd: a.LogStd}}
	if b := a.Active; b != nil {
		c.active, c.cut = &calibrator{logMean: b.LogMean, logStd: b.LogStd}, b.Cut
	}
	return c
}

// widened covers both c and o, band by band: the calibration of a model
// that takes recent errors as normal too (ModelDetector.LearnRecent).
func (c calibration) widened(o calibration) calibration {
	w := func(a, b calibrator) calibrator {
		return calibrator{logMean: math.Max(a.logMean, b.logMean), logStd: math.Max(a.logStd, b.logStd)}
	}
	out := calibration{steady: w(c.steady, o.steady), active: c.active, cut: c.cut}
	switch {
	case c.active != nil && o.active != nil:
		a := w(*c.active, *o.active)
		out.active, out.cut = &a, math.Max(c.cut, o.cut)
	case c.active == nil && o.active != nil:
		out.active, out.cut = o.active, o.cut
	}
	return out
}

// bands follows one detector's readings through the bands: how often of
// late the machine has been moving. Switches are rare by construction
// (the active band is the most moving 1 − activeShare of normal
// readings); a machine that keeps moving — a cavitating pump's bursts,
// a loose part — is not switching, and is judged by the steady band.
type bands struct {
	share float64 // smoothed share of recent readings in the active band
}

// bandMemory is the weight of the newest reading in bands.share (about
// the last 100 readings count); maxShare is how far above its normal
// share of readings the active band may go before it is no longer trusted.
const (
	bandMemory = 0.005
	maxShare   = 3 * (1 - activeShare)
)

// judge returns the evidence of error e at change act, and whether the
// reading was judged as taken while moving.
func (b *bands) judge(c calibration, e, act float64) (z float64, moving bool) {
	in := c.active != nil && act > c.cut
	if in {
		b.share += bandMemory * (1 - b.share)
	} else {
		b.share -= bandMemory * b.share
	}
	if in && b.share <= maxShare {
		return c.active.evidence(e), true
	}
	return c.steady.evidence(e), false
}

// errorAt is the steady band's raw error at evidence z: a degradation the
// forecast follows is judged there.
func (c calibration) errorAt(z float64) float64 { return c.steady.errorAt(z) }

// quantile of sorted values, linear interpolation.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	p := q * float64(len(sorted)-1)
	i := int(p)
	if i >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	f := p - float64(i)
	return sorted[i]*(1-f) + sorted[i+1]*f
}
