package monitor

import (
	"time"

	"github.com/pdmstream/pdm/pdmkit/alert"
)

// Settings is the decision's configuration as services read it (the
// `alert:` section of the scorer's and the trainer's configuration, the
// same keys everywhere): the lifecycle's levels on the score, how long a
// score must hold past them, and the horizon within which a new operating
// point becomes normal.
type Settings struct {
	// Open is the score at or above which an alert opens. Default 0.986
	// (evidence 4: the worst normal error seen in training sits at 3).
	Open float64 `yaml:"open" help:"score that opens an alert"`
	// Resolve is the score below which an open alert resolves; below Open
	// for hysteresis. Default 0.93.
	Resolve float64 `yaml:"resolve" help:"score that resolves an alert"`
	// Major is the score from which the severity is major. Default 0.995.
	Major float64 `yaml:"major" help:"score for major severity"`
	// Critical is the score from which the severity is critical. Default
	// 0.999.
	Critical float64 `yaml:"critical" help:"score for critical severity"`
	// MinReadings and MinDuration are how long a score must stay past a
	// level before the state changes: both must hold. Defaults 3 and 0s.
	MinReadings int           `yaml:"min_readings" help:"readings past a level before a change"`
	MinDuration time.Duration `yaml:"min_duration" help:"reading time past a level before a change"`
	// NewNormal bounds how long a settled excursion stays an alert before
	// it is learnt as the asset's new normal. Defaults 300 readings or 24h,
	// whichever the data reaches first.
	NewNormal Horizon `yaml:"new_normal"`
	// MaxRise is how much an excursion's deviation (in standard deviations)
	// may still rise for it to count as settled. Default 0.2.
	MaxRise float64 `yaml:"max_rise" help:"deviation rise below which an excursion has settled"`
	// FailureScore is the score at which an asset counts as failed; open
	// alerts then carry a time-to-failure forecast towards it while their
	// deviation rises. A model's own health limit takes precedence.
	// Default 0: none, and no forecast from the online learner.
	FailureScore float64 `yaml:"failure_score" help:"score at which an asset counts as failed (0: none, no forecasts)"`
}

// Config is the decision's configuration.
func (a Settings) Config() Config {
	return Config{
		Alert: alert.Thresholds{Open: a.Open, Resolve: a.Resolve, Major: a.Major, Critical: a.Critical,
			MinReadings: a.MinReadings, MinDuration: a.MinDuration},
		NewNormal:    a.NewNormal,
		MaxRise:      a.MaxRise,
		FailureScore: a.FailureScore,
	}
}

// DefaultSettings are the decision's defaults.
func DefaultSettings() Settings {
	m := DefaultConfig()
	return Settings{
		Open: m.Alert.Open, Resolve: m.Alert.Resolve, Major: m.Alert.Major, Critical: m.Alert.Critical,
		MinReadings: m.Alert.MinReadings, MinDuration: m.Alert.MinDuration,
		NewNormal: m.NewNormal,
		MaxRise:   m.MaxRise,
	}
}
