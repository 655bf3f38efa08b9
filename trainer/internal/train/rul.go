package train

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/pdmstream/pdm/pdmkit/rul"
	"github.com/pdmstream/pdm/trainer/internal/history"
)

// fitRUL trains the remaining-useful-life kind. Every series is one run to
// failure (an asset's history ending when it failed, or one unit of a
// run-to-failure file): its last row is the failure, so the target of a
// row is the number of rows after it. Rows where a feature has no value
// are left out (they do not end the run, which counts rows, not time).
// The hold-out is the newest share of whole runs, in the order given (at
// least one when there is a hold-out), since windows of one run overlap.
func fitRUL(ctx context.Context, data []*history.Series, spec Spec, features []string, log *slog.Logger) (*Result, error) {
	res := &Result{HoldOut: make([]*history.Series, len(data))}
	share := spec.holdOut()
	held := 0
	if share > 0 {
		held = max(1, int(math.Round(share*float64(len(data)))))
	}
	if len(data)-held < 2 {
		return nil, fmt.Errorf("train: %d runs to failure, %d held out: the RUL kind needs at least 2 to train on: %w", len(data), held, history.ErrNoData)
	}
	var runs []rul.Series
	for i, s := range data {
		idx, err := columns(s, features)
		if err != nil {
			return nil, err
		}
		if i >= len(data)-held {
			res.HoldOut[i] = s
			res.HoldOutRows += s.Rows
			continue
		}
		run := rul.Series{Unit: s.Asset}
		for _, sg := range s.Segments {
			for r := range sg.N {
				row, ok := pick(sg.Row(r), idx)
				if !ok {
					res.Incomplete++
					continue
				}
				t := sg.Time(r)
				if res.TrainRows == 0 || t.Before(res.From) {
					res.From = t
				}
				if t.After(res.To) {
					res.To = t
				}
				res.TrainRows++
				run.Rows = append(run.Rows, row)
			}
		}
		if len(run.Rows) > 0 {
			runs = append(runs, run)
		}
	}
	res.Segments = len(runs)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	log.Info("training", "kind", spec.Kind, "runs", len(runs), "rows", res.TrainRows, "held_out_runs", held,
		"held_out", res.HoldOutRows, "incomplete", res.Incomplete)
	start := time.Now()
	c := spec.RUL
	c.Name, c.Version, c.ParentVersion = cmp.Or(spec.Name, c.Name), cmp.Or(spec.Version, c.Version), cmp.Or(spec.ParentVersion, c.ParentVersion)
	c.Seed = cmp.Or(spec.Seed, c.Seed)
	c.CreatedAt = res.To
	m, err := rul.Train(runs, features, c)
	if err != nil {
		return nil, fmt.Errorf("train: %s: %w", spec.Kind, err)
	}
	res.Artifact, res.Curve = m.Artifact, m.Curve
	log.Info("trained", "kind", spec.Kind, "name", res.Artifact.Name, "version", res.Artifact.Version,
		"epochs", len(res.Curve), "features", m.Features(), "seconds", time.Since(start).Seconds())
	return res, nil
}
