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
// any other error ends it and is logged.
type Source interface {
	Next(ctx context.Context) (map[string]float64, error)
}

// ErrMissed reports a cycle without a reading: a poll that failed or timed
// out. A source never invents a value for it. The agent counts the miss by
// asset and asks for the next cycle.
var ErrMissed = errors.New("source: no reading this cycle")
