// Package alert is the alert an operator receives and its lifecycle:
// opened, updated (severity, forecast or acknowledgement changed),
// resolved. The Tracker is the lifecycle; pdmkit/monitor feeds it, so the
// live scorer, the backtest and the trainer decide alike.
//
// Invariants:
//   - A Tracker is a pure state machine: the same observations in the same
//     order give the same events with the same ids, so a replay after a
//     crash republishes identical records instead of new alerts.
//   - At most one alert per asset and kind is open at a time.
//   - Hysteresis and a minimum duration stand between a score and a state
//     change, so a flapping score makes one alert, not fifty.
package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// State is where an alert is in its lifecycle.
type State string

// The states an alert event carries.
const (
	Opened   State = "opened"
	Updated  State = "updated"
	Resolved State = "resolved"
)

// Severity grades an open alert.
type Severity string

// Severity levels, in rising order.
const (
	Warning  Severity = "warning"
	Major    Severity = "major"
	Critical Severity = "critical"
)

func (s Severity) rank() int {
	switch s {
	case Warning:
		return 1
	case Major:
		return 2
	case Critical:
		return 3
	}
	return 0
}

// KindAnomaly is the kind of alert raised from the anomaly score.
const KindAnomaly = "anomaly"

// Sensor is one sensor's share of the score behind an alert.
type Sensor struct {
	Name  string  `json:"name"`
	Share float64 `json:"share"`
}

// Forecast is the estimated time to failure, in seconds, with its range.
type Forecast struct {
	TimeToFailure float64   `json:"ttf_seconds"`
	Low           float64   `json:"ttf_low_seconds"`
	High          float64   `json:"ttf_high_seconds"`
	FailureAt     time.Time `json:"failure_at"`
}

// Alert is the published state of one alert. Every change is published as
// a whole Alert, so the latest record is the current state.
type Alert struct {
	// ID is the same for every event of one alert and the same on replay:
	// a hash of asset, kind and the sequence number of the reading that
	// started it.
	ID       string   `json:"id"`
	Site     string   `json:"site"`
	Asset    string   `json:"asset"`
	Kind     string   `json:"kind"`
	State    State    `json:"state"`
	Severity Severity `json:"severity"`
	// Score is the latest score; Peak the highest since the alert began.
	Score float64 `json:"score"`
	Peak  float64 `json:"peak"`
	// TopSensors are the largest contributions of the latest score.
	TopSensors []Sensor   `json:"top_sensors"`
	Forecast   *Forecast  `json:"forecast,omitempty"`
	Model      string     `json:"model"`
	Version    string     `json:"version"`
	FirstSeq   uint64     `json:"first_seq"`
	LastSeq    uint64     `json:"last_seq"`
	FirstTime  time.Time  `json:"first_reading_time"`
	LastTime   time.Time  `json:"last_reading_time"`
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
	// Resolution says why a resolved alert ended: "recovered" (the score
	// fell back), "new_normal" (the new operating point was learnt as
	// normal) or "operator" (an operator said it is the new normal).
	Resolution string `json:"resolution,omitempty"`
	// Revision counts the events of this alert from 1; (ID, Revision)
	// identifies one event for de-duplication.
	Revision int `json:"revision"`
	// Acked, AckedBy and AckedAt record an operator's acknowledgement.
	Acked   bool       `json:"acked"`
	AckedBy string     `json:"acked_by,omitempty"`
	AckedAt *time.Time `json:"acked_at,omitempty"`
	// Reason is what the operator said when acknowledging.
	Reason string `json:"reason,omitempty"`
}

// Resolutions of a resolved alert.
const (
	Recovered = "recovered"
	NewNormal = "new_normal"
	Operator  = "operator"
)

// EventID names one event of the alert.
func (a *Alert) EventID() string { return a.ID + "/" + strconv.Itoa(a.Revision) }

// ID derives an alert id from what started it.
func ID(asset, kind string, firstSeq uint64) string {
	h := sha256.New()
	h.Write([]byte(asset))
	h.Write([]byte{0})
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(strconv.FormatUint(firstSeq, 10)))
	return hex.EncodeToString(h.Sum(nil)[:12])
}
