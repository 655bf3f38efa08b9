package tep

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"

	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/monitor"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/pdmstream/pdm/trainer/internal/history"
	"github.com/pdmstream/pdm/trainer/internal/train"
)

// Synthetic are the faults Validate injects into held-out normal rows, in
// units of each variable's deviation on d00: one variable at a time, a
// step of 3 and of 6 deviations and a ramp to 6 (up or down at random),
// added noise of 2 deviations (a random variation) and the value frozen at
// the fault's start (a stuck sensor or valve); and all variables at once, a
// step of 4 deviations in total along a random direction (a disturbance
// the loops spread).
var Synthetic = []string{"step 3σ", "step 6σ", "ramp to 6σ", "noise 2σ", "frozen", "spread step 4σ"}

// Validation is how a training spec does on d00.dat alone, by blocked
// cross-validation: d00 is cut into Folds blocks; a model trained by
// train.Fit on the others (two segments, so no window spans the hole)
// scores each block, clean and with every synthetic fault in every
// variable. No test file is read.
type Validation struct {
	Folds int
	// Alerts is the share of the clean held-out rows after which the
	// decision (monitor.DefaultConfig) had an alert open: its false-alarm
	// rate with its own thresholds.
	Alerts float64
	// Detect is, per synthetic fault, the share of faulty rows whose
	// evidence is above the 95th percentile of the same fold's clean
	// held-out rows (an equal-FAR point of 5 %), not counting the
	// first Settle rows of the fault: a benchmark fault lasts 800 rows, so
	// how much of it a detector flags is decided by how it does once the
	// fault is under way, not by its first rows, which a 100-row block
	// would weigh eight times as much. AUC is the area under the ROC curve
	// over the same rows against the fold's clean rows; both are averaged
	// over variables and folds.
	Detect, AUC []float64
	// Mean are their means over the synthetic faults.
	MeanDetect, MeanAUC float64
	// PCADetect and PCAAUC are MeanDetect and MeanAUC of the PCA baseline
	// (T², SPE) fitted on the same folds, for reference.
	PCADetect, PCAAUC [2]float64
	// Rows is how many clean held-out rows were scored.
	Rows int
}

// validateContext is how many rows before a held-out block are replayed
// first to fill the detector's window and moving averages; they are not
// counted. Fold 0 has none before it and gives its own first rows.
const validateContext = 60

// Settle is how many rows at the start of a synthetic fault Validate does
// not count.
const Settle = 20

// Validate cross-validates spec on d00 (folds blocks, at least 2).
func Validate(ctx context.Context, d00 *history.Series, spec train.Spec, folds int) (*Validation, error) {
	if len(d00.Segments) != 1 {
		return nil, fmt.Errorf("tep: d00 has %d segments; the cross-validation cuts one contiguous run", len(d00.Segments))
	}
	rs := rows(d00)
	if folds < 2 || len(rs)/folds <= validateContext {
		return nil, fmt.Errorf("tep: %d folds of %d rows leave blocks of at most %d rows (need more than %d)", folds, len(rs), len(rs)/max(folds, 1), validateContext)
	}
	spec.HoldOut = -1
	std := deviations(d00)
	b := len(rs) / folds
	v := &Validation{Folds: folds, Detect: make([]float64, len(Synthetic)), AUC: make([]float64, len(Synthetic))}
	n := make([]int, len(Synthetic))
	alerts, streams := 0, 0
	for k := range folds {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		from, to := k*b, (k+1)*b
		if k == folds-1 {
			to = len(rs)
		}
		res, err := train.Fit(ctx, []*history.Series{without(d00, from, to)}, spec)
		if err != nil {
			return nil, fmt.Errorf("tep: fold %d: %w", k+1, err)
		}
		p, err := FitPCA(append(slices.Clone(rs[:from]), rs[to:]...), PCAShare)
		if err != nil {
			return nil, err
		}
		start, count := max(from-validateContext, 0), from
		if from == 0 {
			count = validateContext
		}
		block := rs[start:to]
		off := count - start // index in block of the first counted row
		// scores are, per method (ours, T², SPE), the counted rows' values.
		scores := func(block [][]float64) ([3][]float64, []bool, error) {
			var out [3][]float64
			ev, open, err := evidence(res.Artifact, d00, block)
			if err != nil {
				return out, nil, err
			}
			out[0] = ev[off:]
			for _, r := range block[off:] {
				t2, spe := p.Stats(r)
				out[1], out[2] = append(out[1], t2), append(out[2], spe)
			}
			return out, open[off:], nil
		}
		clean, open, err := scores(block)
		if err != nil {
			return nil, err
		}
		v.Rows += len(clean[0])
		for _, o := range open {
			if o {
				alerts++
			}
		}
		// Each fold is judged against its own clean rows, so folds whose
		// models calibrate differently are not mixed on one scale.
		var thr [3]float64
		for m := range thr {
			thr[m] = threshold5(clean[m])
		}
		rng := rand.New(rand.NewPCG(uint64(k+1), 7))
		for kind := range Synthetic {
			for j := range std {
				f, _, err := scores(inject(block, off, j, kind, std, rng))
				if err != nil {
					return nil, err
				}
				v.Detect[kind] += above(f[0][Settle:], 0, thr[0])
				v.AUC[kind] += auc(clean[0], f[0][Settle:])
				for m := range 2 {
					v.PCADetect[m] += above(f[m+1][Settle:], 0, thr[m+1])
					v.PCAAUC[m] += auc(clean[m+1], f[m+1][Settle:])
				}
				n[kind]++
				streams++
			}
		}
	}
	v.Alerts = float64(alerts) / float64(v.Rows)
	for kind := range Synthetic {
		v.Detect[kind] /= float64(n[kind])
		v.AUC[kind] /= float64(n[kind])
		v.MeanDetect += v.Detect[kind] / float64(len(Synthetic))
		v.MeanAUC += v.AUC[kind] / float64(len(Synthetic))
	}
	for m := range 2 {
		v.PCADetect[m] /= float64(streams)
		v.PCAAUC[m] /= float64(streams)
	}
	return v, nil
}

// ValidateDir reads d00.dat from dir and validates spec on it.
func ValidateDir(ctx context.Context, dir string, spec train.Spec, folds int) (*Validation, error) {
	d00, err := ReadFile(filepath.Join(dir, "d00.dat"))
	if err != nil {
		return nil, err
	}
	return Validate(ctx, d00, spec, folds)
}

// deviations are each variable's standard deviation over s.
func deviations(s *history.Series) []float64 {
	rs := rows(s)
	d := len(s.Sensors)
	out := make([]float64, d)
	for j := range d {
		var m, ss float64
		for _, r := range rs {
			m += r[j]
		}
		m /= float64(len(rs))
		for _, r := range rs {
			ss += (r[j] - m) * (r[j] - m)
		}
		out[j] = math.Sqrt(ss / float64(len(rs)))
	}
	return out
}

// without returns s with rows [from, to) removed: the rows before and
// after become separate segments.
func without(s *history.Series, from, to int) *history.Series {
	w := len(s.Sensors)
	sg := s.Segments[0]
	out := &history.Series{Site: s.Site, Asset: s.Asset, Step: s.Step, From: s.From, To: s.To,
		Sensors: slices.Clone(s.Sensors), Present: slices.Clone(s.Present)}
	for _, part := range [][2]int{{0, from}, {to, sg.N}} {
		if part[1] > part[0] {
			out.Segments = append(out.Segments, history.Segment{Start: sg.Time(part[0]), Step: sg.Step, N: part[1] - part[0],
				Values: sg.Values[part[0]*w : part[1]*w]})
			out.Rows += part[1] - part[0]
		}
	}
	out.Read = out.Rows
	return out
}

// inject returns a copy of block with synthetic fault kind in variable j
// (a random direction for the spread step) from row off on; devs are the
// variables' deviations.
func inject(block [][]float64, off, j, kind int, devs []float64, rng *rand.Rand) [][]float64 {
	out := make([][]float64, len(block))
	dev := devs[j]
	if rng.IntN(2) == 0 {
		dev = -dev // steps and ramps go either way
	}
	var dir []float64
	if kind == 5 {
		dir = make([]float64, len(devs))
		norm := 0.0
		for v := range dir {
			dir[v] = rng.NormFloat64()
			norm += dir[v] * dir[v]
		}
		for v := range dir {
			dir[v] /= math.Sqrt(norm)
		}
	}
	n := len(block) - off
	for i, r := range block {
		out[i] = slices.Clone(r)
		if i < off {
			continue
		}
		p := i - off
		switch kind {
		case 0:
			out[i][j] += 3 * dev
		case 1:
			out[i][j] += 6 * dev
		case 2:
			out[i][j] += 6 * dev * float64(p+1) / float64(n)
		case 3:
			out[i][j] += 2 * dev * rng.NormFloat64()
		case 4:
			out[i][j] = block[off-1][j]
		case 5:
			for v := range out[i] {
				out[i][v] += 4 * dir[v] * devs[v]
			}
		}
	}
	return out
}

// evidence scores block with a fresh detector and decision built from a:
// each row's evidence (NaN while warming up) and whether an alert is
// open after it.
func evidence(a *model.Artifact, s *history.Series, block [][]float64) ([]float64, []bool, error) {
	det, err := anomaly.FromArtifact(a)
	if err != nil {
		return nil, nil, err
	}
	mon, err := monitor.New(det, monitor.DefaultConfig())
	if err != nil {
		return nil, nil, err
	}
	ev := make([]float64, len(block))
	open := make([]bool, len(block))
	sg := s.Segments[0]
	for i, r := range block {
		sensors := make(map[string]float64, len(s.Sensors))
		for j, name := range s.Sensors {
			sensors[name] = r[j]
		}
		d, err := mon.Observe(&wire.Reading{Site: s.Site, Asset: s.Asset, Time: sg.Time(i), Seq: uint64(i + 1), Sensors: sensors})
		if err != nil {
			return nil, nil, err
		}
		ev[i], open[i] = math.NaN(), d.Open
		if !d.WarmingUp {
			ev[i] = d.Evidence
		}
	}
	return ev, open, nil
}
