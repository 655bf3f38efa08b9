// Package anomaly turns a stream of one asset's readings into anomaly
// scores, explanations and forecasts. The live scorer and the backtest
// command use the same detectors, so a backtest shows what production does.
package anomaly

import "time"

// Detector scores one asset's readings in time order. It is not safe for
// concurrent use: the scorer owns one per asset.
type Detector interface {
	// Observe takes the next reading and returns its result. Sensors missing
	// from the detector's feature list or non-finite values are an error.
	Observe(t time.Time, sensors map[string]float64) (Result, error)
}

// Result is what a detector says about one reading.
type Result struct {
	// Score is the calibrated anomaly score in [0, 1]; 0 while warming up.
	Score float64
	// Alert is the detector's own decision after hysteresis.
	Alert bool
	// WarmingUp is true while the detector is still learning normal.
	WarmingUp bool
	// Contributions are the sensors behind the score, largest share first;
	// shares sum to 1 when the score is above 0.
	Contributions []Contribution
	// Forecast estimates the time until the health indicator crosses its
	// failure limit; nil when the model gives none.
	Forecast *Forecast
	// Model and Version name what produced the result.
	Model   string
	Version string
}

// Contribution is one sensor's share of an anomaly score.
type Contribution struct {
	Sensor string
	Share  float64
}

// Forecast is an estimated time to failure with a range.
type Forecast struct {
	TimeToFailure time.Duration
	Low, High     time.Duration
}

// Both constructors' results are Detectors: NewOnline for an asset without
// a model, FromArtifact for a trained reconstruction or forecaster model.
var (
	_ Detector = (*Online)(nil)
	_ Detector = (*ModelDetector)(nil)
)
