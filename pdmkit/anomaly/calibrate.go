package anomaly

import (
	"math"
	"sort"
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
