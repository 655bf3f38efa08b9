// Package stream is the scoring loop: a Kafka consumer group on the
// readings topic whose members split the partitions, score every reading
// with the asset's active model version, run the alert lifecycle and hand
// each batch's scores and alerts to the outputs.
//
// Invariants:
//   - Offsets are committed only after every output acknowledged the
//     batch, so a crash replays work instead of losing it.
//   - Outputs carry deterministic ids (score: asset/seq; alert event:
//     alert id/revision), so a replay writes the same records again.
//   - Within a partition readings are scored in offset order and each one
//     resolves the registry once, so a model swap falls between two
//     readings and the version in the scores changes at one point.
//   - After an assignment the loop re-reads up to Replay readings before
//     the committed offset without output, rebuilding windows, detector
//     and alert state from the same data the previous owner saw.
package stream

import (
	"context"
	"strconv"
	"time"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// Score is the record published for one scored reading.
type Score struct {
	// ID is asset/seq: the same reading always gets the same id.
	ID        string    `json:"id"`
	Site      string    `json:"site"`
	Asset     string    `json:"asset"`
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"ts"`
	Score     float64   `json:"score"`
	Alert     bool      `json:"alert"`
	WarmingUp bool      `json:"warming_up"`
	// Contributions are the sensors behind the score, largest first.
	Contributions []alert.Sensor  `json:"contributions,omitempty"`
	Forecast      *alert.Forecast `json:"forecast,omitempty"`
	Model         string          `json:"model"`
	Version       string          `json:"version"`
	Shadow        *ShadowScore    `json:"shadow,omitempty"`
	Error         string          `json:"error,omitempty"`
	Source        Source          `json:"source"`
	// ScoredAt is when this scorer scored the reading (its clock, not the
	// reading's), which is how every instance's fleet view tells a silent
	// asset from a gateway replaying old readings.
	ScoredAt time.Time `json:"scored_at"`
	// Sensors is the reading's values, so a score record stands alone for
	// the fleet view's charts and for data teams. Outputs must not modify it.
	Sensors map[string]float64 `json:"sensors,omitempty"`
}

// ShadowScore is what a shadow version said about the same reading.
type ShadowScore struct {
	Version string  `json:"version"`
	Score   float64 `json:"score"`
	Alert   bool    `json:"alert"`
}

// Source locates the reading in the readings topic.
type Source struct {
	Partition int       `json:"partition"`
	Offset    int64     `json:"offset"`
	Time      time.Time `json:"kafka_ts"`
}

// ScoreID is the deterministic id of a reading's score.
func ScoreID(asset string, seq uint64) string { return asset + "/" + strconv.FormatUint(seq, 10) }

// Batch is the output of one batch of readings.
type Batch struct {
	Partition int
	Scores    []Score
	Alerts    []alert.Alert
	// Requests ask the trainer for a model: an asset learnt a new normal
	// (drift, or an operator's), or has run on the online learner for the
	// cold-start count of readings.
	Requests []wire.TrainingRequest
}

// Output stores a batch's results. Write returns only once the results
// are durable where the output puts them; the loop commits after that.
// Implementations must be safe for concurrent use by partitions.
type Output interface {
	Name() string
	Write(ctx context.Context, b *Batch) error
}
