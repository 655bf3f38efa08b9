// Package train turns stored history into a candidate model artifact:
// Fit is the one function a training job calls, whether the history came
// from InfluxDB or a file (both readers give history.Series).
//
// Invariants:
//
//   - No input window spans two assets, a gap, an exclusion or a row where
//     a feature has no value: every asset's segments stay separate
//     segments, and a row with a missing feature ends its segment.
//   - The hold-out is the newest part of every asset's history (of its
//     new normal, see Spec.NewNormal), never seen by the training;
//     Result.HoldOut holds it for the caller's backtest, and
//     Result.From/To is the window the model learnt from.
//   - The same data and Spec give the same artifact, bit for bit (the
//     seeded training of pdmkit/nn).
package train

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/nn"
	"github.com/pdmstream/pdm/pdmkit/rul"
	"github.com/pdmstream/pdm/trainer/internal/history"
)

// DefaultHoldOut is the share of every asset's newest rows kept out of
// training for validation when Spec.HoldOut is zero.
const DefaultHoldOut = 0.2

// Spec says what to train. Zero fields take the defaults noted.
type Spec struct {
	// Kind is model.Reconstruction, model.Forecaster or model.RUL (every
	// series then is one run to failure; see fitRUL).
	Kind model.Kind
	// Name, Version and ParentVersion name the artifact; set, they
	// override the per-kind configuration's (default there, else the
	// kind's name and version "1").
	Name, Version, ParentVersion string
	// Features are the sensors the model reads, in input order (default:
	// the first series' sensors). Every series must have all of them.
	Features []string
	// Reconstruction and Forecaster are the hyperparameters of each kind;
	// zero fields take pdmkit/anomaly's defaults (the online learner's for
	// a reconstruction).
	Reconstruction anomaly.ReconstructionConfig
	Forecaster     anomaly.ForecasterConfig
	RUL            rul.Config
	// Seed, when set, replaces the kind's seed (default: the kind's, 1).
	Seed uint64
	// HoldOut is the share of every asset's newest rows kept for
	// validation (default DefaultHoldOut, 0.2; negative: none, train on
	// everything).
	HoldOut float64
	// NewNormal maps assets to when their new normal began (a drift or an
	// operator's re-baseline): such an asset's hold-out is the newest share
	// of its rows since then, so the candidate trains on the rest of the
	// new normal and is judged on its newest part.
	NewNormal map[string]time.Time
	// Log receives one line per training (default: discarded).
	Log *slog.Logger
}

// Validate rejects a Spec that cannot train, naming the values.
func (s Spec) Validate() error {
	switch s.Kind {
	case model.Reconstruction, model.Forecaster, model.RUL:
	default:
		return fmt.Errorf("train: unknown model kind %q (want %s or %s)", s.Kind, model.Reconstruction, model.Forecaster)
	}
	if s.HoldOut >= 1 || math.IsNaN(s.HoldOut) {
		return fmt.Errorf("train: hold-out share (%v) must be below 1", s.HoldOut)
	}
	seen := map[string]bool{}
	for _, f := range s.Features {
		if f == "" || seen[f] {
			return fmt.Errorf("train: feature %q empty or repeated", f)
		}
		seen[f] = true
	}
	return nil
}

func (s Spec) holdOut() float64 {
	switch {
	case s.HoldOut < 0:
		return 0
	case s.HoldOut == 0:
		return DefaultHoldOut
	}
	return s.HoldOut
}

// Result is a candidate artifact and what it was trained on.
type Result struct {
	// Artifact is sealed; anomaly.FromArtifact builds the scorer's
	// detector from it.
	Artifact *model.Artifact
	// Curve is the final network's learning curve, one entry per epoch.
	Curve []nn.EpochLoss
	// TrainRows were trained on; HoldOutRows kept back (their sum plus
	// Incomplete is every row of the input); Incomplete rows were left out
	// of training because a feature had no value.
	TrainRows, HoldOutRows, Incomplete int
	// Segments is how many contiguous runs the training rows formed.
	Segments int
	// From and To are the first and last training row's time.
	From, To time.Time
	// HoldOut is, per input series, its newest part (nil entries for none):
	// the same sensors and step, segments split at the cut, gaps and
	// exclusions reaching into its range, clipped to it (a clipped
	// exclusion counts no rows in Read). Its Hash is empty: it is a slice
	// of a read, not a read.
	HoldOut []*history.Series
}

// Fit trains a model of spec.Kind on data, the history of one asset or of
// several assets of a class, pooled. Training itself is not interruptible;
// ctx is checked before it starts.
func Fit(ctx context.Context, data []*history.Series, spec Spec) (*Result, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("train: no history: %w", history.ErrNoData)
	}
	log := spec.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	features := spec.Features
	if len(features) == 0 {
		features = data[0].Sensors
	}
	if spec.Kind == model.RUL {
		return fitRUL(ctx, data, spec, features, log)
	}
	res := &Result{HoldOut: make([]*history.Series, len(data))}
	var segs [][][]float64
	share := spec.holdOut()
	for i, s := range data {
		idx, err := columns(s, features)
		if err != nil {
			return nil, err
		}
		cut := cutTime(s, share, spec.NewNormal[s.Asset])
		res.HoldOut[i] = holdOutPart(s, cut)
		if res.HoldOut[i] != nil {
			res.HoldOutRows += res.HoldOut[i].Rows
		}
		for _, sg := range s.Segments {
			var run [][]float64
			flush := func() {
				if len(run) > 0 {
					segs = append(segs, run)
				}
				run = nil
			}
			for r := range sg.N {
				t := sg.Time(r)
				if !t.Before(cut) {
					break
				}
				row, ok := pick(sg.Row(r), idx)
				if !ok {
					res.Incomplete++
					flush()
					continue
				}
				if res.TrainRows == 0 || t.Before(res.From) {
					res.From = t
				}
				if t.After(res.To) {
					res.To = t
				}
				res.TrainRows++
				run = append(run, row)
			}
			flush()
		}
	}
	res.Segments = len(segs)
	if res.TrainRows == 0 {
		return nil, fmt.Errorf("train: no complete rows before the hold-out (%d held out, %d incomplete): %w", res.HoldOutRows, res.Incomplete, history.ErrNoData)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	log.Info("training", "kind", spec.Kind, "assets", len(data), "rows", res.TrainRows, "segments", res.Segments,
		"held_out", res.HoldOutRows, "incomplete", res.Incomplete, "from", res.From, "to", res.To)
	start := time.Now()
	var tr *anomaly.Trained
	var err error
	switch spec.Kind {
	case model.Reconstruction:
		c := spec.Reconstruction
		c.Name, c.Version, c.ParentVersion = cmp.Or(spec.Name, c.Name), cmp.Or(spec.Version, c.Version), cmp.Or(spec.ParentVersion, c.ParentVersion)
		c.Name, c.Version = cmp.Or(c.Name, string(spec.Kind)), cmp.Or(c.Version, "1")
		c.Seed = cmp.Or(spec.Seed, c.Seed)
		tr, err = anomaly.TrainReconstruction(segs, res.From, res.To, features, c)
	case model.Forecaster:
		c := spec.Forecaster
		c.Name, c.Version, c.ParentVersion = cmp.Or(spec.Name, c.Name), cmp.Or(spec.Version, c.Version), cmp.Or(spec.ParentVersion, c.ParentVersion)
		c.Seed = cmp.Or(spec.Seed, c.Seed)
		tr, err = anomaly.TrainForecasterSegments(segs, res.From, res.To, features, c)
	}
	if err != nil {
		return nil, fmt.Errorf("train: %s: %w", spec.Kind, err)
	}
	res.Artifact, res.Curve = tr.Artifact, tr.Curve
	log.Info("trained", "kind", spec.Kind, "name", res.Artifact.Name, "version", res.Artifact.Version,
		"epochs", len(res.Curve), "seconds", time.Since(start).Seconds())
	return res, nil
}

// columns maps features to s's columns.
func columns(s *history.Series, features []string) ([]int, error) {
	idx := make([]int, len(features))
	for k, f := range features {
		j := slices.Index(s.Sensors, f)
		if j < 0 {
			return nil, fmt.Errorf("train: asset %s/%s has no sensor %q (it has %v)", s.Site, s.Asset, f, s.Sensors)
		}
		idx[k] = j
	}
	return idx, nil
}

// pick copies the features of row; ok is false when one has no value.
func pick(row []float64, idx []int) ([]float64, bool) {
	out := make([]float64, len(idx))
	for k, j := range idx {
		v := row[j]
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, false
		}
		out[k] = v
	}
	return out, true
}

// cutTime is the time of the first held-out row of s: the newest share of
// its rows (of those at or after since, when that is in its range) lie at
// or after it. Without a hold-out it is past the range.
func cutTime(s *history.Series, share float64, since time.Time) time.Time {
	rows := s.Rows
	if since.After(s.From) {
		rows = 0
		for _, sg := range s.Segments {
			for r := range sg.N {
				if !sg.Time(r).Before(since) {
					rows++
				}
			}
		}
	}
	n := int(math.Round(share * float64(rows)))
	end := s.To
	if len(s.Segments) > 0 {
		end = s.Segments[len(s.Segments)-1].End()
	}
	end = later(end, s.To)
	if n <= 0 {
		return end.Add(1)
	}
	for k := len(s.Segments) - 1; k >= 0; k-- {
		sg := s.Segments[k]
		if n <= sg.N {
			return sg.Time(sg.N - n)
		}
		n -= sg.N
	}
	return s.From
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// holdOutPart is the part of s at or after cut, or nil when it is empty.
func holdOutPart(s *history.Series, cut time.Time) *history.Series {
	h := &history.Series{Site: s.Site, Asset: s.Asset, Step: s.Step, From: cut, To: s.To,
		Sensors: slices.Clone(s.Sensors), Present: make([]int, len(s.Sensors))}
	w := len(s.Sensors)
	for _, sg := range s.Segments {
		if !sg.End().After(cut) {
			continue
		}
		first := 0
		if sg.Start.Before(cut) {
			first = int(cut.Sub(sg.Start) / sg.Step)
		}
		part := history.Segment{Start: sg.Time(first), Step: sg.Step, N: sg.N - first, Values: sg.Values[first*w : sg.N*w]}
		h.Segments = append(h.Segments, part)
		h.Rows += part.N
		for r := range part.N {
			for j, v := range part.Row(r) {
				if !math.IsNaN(v) {
					h.Present[j]++
				}
			}
		}
	}
	if h.Rows == 0 {
		return nil
	}
	h.Read = h.Rows
	for _, g := range s.Gaps {
		if g.To.After(cut) {
			if g.From.Before(cut) {
				g.Steps -= int(cut.Sub(g.From) / s.Step)
				g.From = cut
			}
			h.Gaps = append(h.Gaps, g)
		}
	}
	for _, e := range s.Excluded {
		if !e.To.After(cut) {
			continue
		}
		if e.From.Before(cut) {
			// Which of its rows lay after the cut is not known: it counts none.
			e.From, e.Rows = cut, 0
		}
		h.Excluded = append(h.Excluded, e)
		h.Read += e.Rows
	}
	return h
}
