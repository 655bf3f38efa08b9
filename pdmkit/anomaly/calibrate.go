package anomaly

import (
	"math"
	"sort"
)

// calibrator maps a raw error to [0, 1] with the normal CDF of the log error
// under the distribution seen on normal data. Reconstruction errors are
// sums of squares, right-skewed and positive, so their logarithm is close
// to normal; the score is then "how unusual is this error for normal
// operation", comparable across assets and models.
type calibrator struct {
	logMean, logStd float64
}

// minLogStd keeps the calibration from turning into a step function when
// the normal errors are nearly identical (a constant signal).
const minLogStd = 0.05

// tiny is the smallest error the calibration distinguishes: errors are in
// squared standard deviations, so anything below 1e-6 is numerical noise
// (an all-constant signal) and must not look like a change. It also keeps
// log(0) out.
const tiny = 1e-6

func fitCalibrator(errs []float64) calibrator {
	if len(errs) == 0 {
		return calibrator{logMean: 0, logStd: 1}
	}
	// Median and MAD are used instead of mean and standard deviation so a
	// few odd warm-up readings do not widen the normal band.
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
	return calibrator{logMean: med, logStd: math.Max(s, minLogStd)}
}

func (c calibrator) score(e float64) float64 {
	z := (math.Log(math.Max(e, tiny)) - c.logMean) / c.logStd
	return 0.5 * math.Erfc(-z/math.Sqrt2)
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

// Hysteresis turns a score stream into an alert state: the score must stay
// at or above Enter for MinDuration consecutive readings to open an alert and
// below Exit for MinDuration readings to close it, so one noisy point neither
// opens nor closes an alert.
type Hysteresis struct {
	Enter, Exit float64
	MinDuration int

	on    bool
	count int
}

// Update feeds one score and returns the alert state after it.
func (h *Hysteresis) Update(score float64) bool {
	need := max(h.MinDuration, 1)
	if !h.on {
		if score >= h.Enter {
			h.count++
		} else {
			h.count = 0
		}
		if h.count >= need {
			h.on, h.count = true, 0
		}
		return h.on
	}
	if score < h.Exit {
		h.count++
	} else {
		h.count = 0
	}
	if h.count >= need {
		h.on, h.count = false, 0
	}
	return h.on
}

// Reset clears the alert state.
func (h *Hysteresis) Reset() { h.on, h.count = false, 0 }
