// Package source is the contract between the edge agent and what it reads
// from: simulated assets, CSV replay, controllers polled over a fieldbus.
// Each source yields one asset's sensor values and paces itself.
package source

import (
	"context"
	"errors"
)

// Source yields the sensor values of one asset, waiting for its own
// schedule. io.EOF ends it; an error wrapping ErrMissed skips one cycle;
// any other error ends it and is logged. A source that holds a connection
// also implements io.Closer; the agent closes it when it stops reading.
type Source interface {
	Next(ctx context.Context) (map[string]float64, error)
}

// Marker is a Source whose values carry a quality, such as OPC UA's status
// codes. Quality returns the marks of the values Next returned last:
// sensor name → a wire quality mark (wire.QualityClass names its class),
// nil when every value is good. A sensor marked bad is not among the
// values. The agent puts the marks in the reading and counts them.
type Marker interface {
	Quality() map[string]string
}

// ErrMissed reports a cycle without a reading: a poll that failed or timed
// out. A source never invents a value for it. The agent counts the miss by
// asset and asks for the next cycle.
var ErrMissed = errors.New("source: no reading this cycle")
