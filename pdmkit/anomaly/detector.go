// Package anomaly turns a stream of one asset's readings into anomaly
// scores and explanations. It does not decide alerts: that is the job of
// pdmkit/monitor, which owns one detector per asset and the alert
// lifecycle, so the live scorer, the backtest and the trainer's validation
// all make the same decisions from the same scores.
package anomaly

import "time"

// Detector scores one asset's readings in time order. It is not safe for
// concurrent use: the owner of an asset's state holds one per asset.
type Detector interface {
	// Observe takes the next reading and returns its result. Sensors missing
	// from the detector's feature list or non-finite values are an error.
	Observe(t time.Time, sensors map[string]float64) (Result, error)
}

// Learner is a detector that can be told that its most recent readings are
// normal operation: a persistent new operating point that the decision
// accepted, or an operator's "this is the new normal". Afterwards readings
// like those score as normal.
type Learner interface {
	Detector
	// LearnRecent takes the last n readings observed (at most what the
	// detector keeps) as normal and re-baselines on them.
	LearnRecent(n int) error
}

// Calibrated is a detector that can say which raw error a level of
// evidence stands for, so a trend of its errors can be extrapolated to a
// failure level given as a score.
type Calibrated interface {
	ErrorAt(evidence float64) float64
}

// Result is what a detector says about one reading.
type Result struct {
	// Score is the calibrated anomaly score in [0, 1): 0.5 is the median of
	// normal operation, and it rises smoothly without reaching 1, so more
	// abnormal readings always score higher. 0 while warming up.
	Score float64
	// Evidence is the same quantity before the map to [0, 1): the error's
	// distance from normal in robust standard units of its logarithm. It is
	// unbounded, which suits trends and forecasts.
	Evidence float64
	// Error is the raw error behind both (squared standard deviations,
	// summed over the scored sensors): whether an excursion still grows is
	// judged on it, independently of any calibration.
	Error float64
	// WarmingUp is true while the detector is still learning normal.
	WarmingUp bool
	// Moving is true when the reading was taken while the machine moved
	// (a switch of a duty cycle): it was judged by the calibration of such
	// readings, which is laxer, so it says less about whether an alert's
	// cause has gone.
	Moving bool
	// Contributions are the sensors behind the score, largest share first;
	// shares sum to 1 when the score is above 0.
	Contributions []Contribution
	// Model and Version name what produced the result.
	Model   string
	Version string
}

// Contribution is one sensor's share of an anomaly score.
type Contribution struct {
	Sensor string
	Share  float64
}

// Both constructors' results are Learners: NewOnline for an asset without
// a model, FromArtifact for a trained reconstruction or forecaster model.
var (
	_ Learner    = (*Online)(nil)
	_ Learner    = (*ModelDetector)(nil)
	_ Calibrated = (*Online)(nil)
	_ Calibrated = (*ModelDetector)(nil)
)
