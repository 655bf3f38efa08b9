package tep

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"time"

	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/monitor"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/pdmstream/pdm/trainer/internal/history"
	"github.com/pdmstream/pdm/trainer/internal/train"
)

// The statistics compared at equal FAR.
const (
	Ours = iota // the trained detector's score (its raw error, see Row)
	T2          // PCA Hotelling T²
	SPE         // PCA squared prediction error
	methods
)

// MethodNames name the statistics in tables.
var MethodNames = [methods]string{"ours", "PCA T²", "PCA SPE"}

// PCAShare is the share of the standardised variance the baseline keeps.
const PCAShare = 0.9

// Options configure a benchmark run.
type Options struct {
	// Dir holds d00.dat and d00_te.dat … d21_te.dat.
	Dir string
	// Spec is what train.Fit trains on d00 (Kind default
	// model.Reconstruction with DefaultReconstruction; HoldOut as given,
	// so -1 trains on all 500 rows as the protocol says).
	Spec train.Spec
	// Decision is the alert decision (default monitor.DefaultConfig); the
	// run also decides with its new-normal horizon off.
	Decision monitor.Config
	Log      *slog.Logger
}

// Row is one test file's figures. For d00_te (Fault 0) every share is a
// false-alarm rate over all its rows; for a fault it is a detection rate
// over rows FaultStart… of its file.
type Row struct {
	Fault int
	// Alerts is the share of rows after which the decision has an alert
	// open (the alerts an operator would have had), with the decision as
	// configured; AlertsKept with its new-normal horizon off, so that a
	// fault which settles is not learnt as the plant's new normal.
	Alerts, AlertsKept float64
	// FirstAlert is the row of the first open alert at or after the fault
	// start (-1: none), with the horizon off.
	FirstAlert int
	// At5 is, per method, the share of rows above that method's threshold
	// at 5 % FAR on d00_te; AUC the area under its ROC curve against
	// d00_te's rows.
	At5, AUC [methods]float64
	// Limit99 is, for T² and SPE, the share of rows above the textbook
	// limits (99th percentile of the training statistic).
	Limit99 [2]float64
}

// Report is a benchmark run's result.
type Report struct {
	Train *train.Result
	PCA   *PCA
	// Normal is d00_te's row, Faults d01_te … d21_te's.
	Normal Row
	Faults []Row
	// Mean18 and Mean21 are the means over the detectable and over all
	// faults.
	Mean18, Mean21 Row
	// TrainTime is train.Fit's, ScoreTime the decision's over all files
	// (both decisions, 22 files).
	TrainTime, ScoreTime time.Duration
}

// DefaultReconstruction is the model the benchmark trains unless told
// otherwise, and DefaultForecaster the forecaster's settings; both were
// chosen by Validate on d00.dat alone (trainer/README.md has the runs):
// a window of 4 readings (12 minutes) with the online learner's
// bottleneck of a quarter of the input, each sensor's error averaged over
// about 20 readings (smoothing 0.05: TEP's faults persist, and the
// average of a squared error is a variance estimate, which is what a
// random variation changes), and no sensor taken as drifting context
// (drift ratio 1: over 25 hours of one operating point the slow stripper
// loop looks like drift, but a fault there must still be heard).
var (
	DefaultReconstruction = anomaly.ReconstructionConfig{Window: 4, Smoothing: 0.05, DriftRatio: 1}
	DefaultForecaster     = anomaly.ForecasterConfig{Window: 2, Horizon: 1, Smoothing: 0.05, Members: 5, CalibrationFolds: 2}
)

// trace is what the methods said about one test file, row by row.
type trace struct {
	stat       [methods][]float64 // NaN: not scored
	open, kept []bool
}

// Run trains on d00.dat and scores every test file.
func Run(ctx context.Context, opt Options) (*Report, error) {
	log := opt.Log
	if log == nil {
		log = slog.Default()
	}
	spec := opt.Spec
	if spec.Kind == "" {
		spec.Kind = model.Reconstruction
		spec.Reconstruction = DefaultReconstruction
	}
	spec.Name = cmp.Or(spec.Name, "tep")
	spec.Log = cmp.Or(spec.Log, log)
	dec := opt.Decision.WithDefaults()
	kept := dec
	kept.NewNormal.Off = true
	d00, err := ReadFile(filepath.Join(opt.Dir, "d00.dat"))
	if err != nil {
		return nil, err
	}
	start := time.Now()
	res, err := train.Fit(ctx, []*history.Series{d00}, spec)
	if err != nil {
		return nil, fmt.Errorf("tep: %w", err)
	}
	rep := &Report{Train: res, TrainTime: time.Since(start)}
	if rep.PCA, err = FitPCA(rows(d00), PCAShare); err != nil {
		return nil, err
	}
	traces := make([]trace, Faults+1)
	start = time.Now()
	for f := 0; f <= Faults; f++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s, err := ReadFile(filepath.Join(opt.Dir, TestFile(f)))
		if err != nil {
			return nil, err
		}
		if s.Rows <= FaultStart {
			return nil, fmt.Errorf("tep: %s has %d rows; a test file has 960, the fault from row %d on", TestFile(f), s.Rows, FaultStart+1)
		}
		if traces[f], err = score(res.Artifact, rep.PCA, s, dec, kept); err != nil {
			return nil, fmt.Errorf("tep: %s: %w", TestFile(f), err)
		}
	}
	rep.ScoreTime = time.Since(start)
	var thr [methods]float64
	for m := range methods {
		thr[m] = threshold5(traces[0].stat[m])
	}
	limits := [2]float64{rep.PCA.LimitT2, rep.PCA.LimitSPE}
	for f, tr := range traces {
		from := FaultStart
		if f == 0 {
			from = 0
		}
		r := Row{Fault: f, Alerts: share(tr.open, from), AlertsKept: share(tr.kept, from), FirstAlert: firstFrom(tr.kept, from)}
		for m := range methods {
			r.At5[m] = above(tr.stat[m], from, thr[m])
			r.AUC[m] = auc(traces[0].stat[m], tr.stat[m][from:])
		}
		for k, m := range []int{T2, SPE} {
			r.Limit99[k] = above(tr.stat[m], from, limits[k])
		}
		if f == 0 {
			rep.Normal = r
		} else {
			rep.Faults = append(rep.Faults, r)
		}
	}
	rep.Mean18, rep.Mean21 = mean(rep.Faults, true), mean(rep.Faults, false)
	log.Info("tep", "mean_fdr_18_at_5pct_far", rep.Mean18.At5[Ours], "far_alerts", rep.Normal.AlertsKept,
		"pca_t2", rep.Mean18.At5[T2], "pca_spe", rep.Mean18.At5[SPE])
	return rep, nil
}

// score runs one test file through two decisions over fresh detectors
// built from the artifact (one as configured, one with the new-normal
// horizon off) and through the PCA baseline.
func score(a *model.Artifact, p *PCA, s *history.Series, dec, kept monitor.Config) (trace, error) {
	var tr trace
	mons := make([]*monitor.Monitor, 2)
	for k, cfg := range []monitor.Config{dec, kept} {
		det, err := anomaly.FromArtifact(a)
		if err != nil {
			return tr, err
		}
		if mons[k], err = monitor.New(det, cfg); err != nil {
			return tr, err
		}
	}
	rs := rows(s)
	for m := range methods {
		tr.stat[m] = make([]float64, len(rs))
	}
	tr.open, tr.kept = make([]bool, len(rs)), make([]bool, len(rs))
	var times []time.Time
	for _, sg := range s.Segments {
		for k := range sg.N {
			times = append(times, sg.Time(k))
		}
	}
	for i, r := range rs {
		sensors := make(map[string]float64, len(s.Sensors))
		for j, name := range s.Sensors {
			sensors[name] = r[j]
		}
		rd := &wire.Reading{Site: s.Site, Asset: s.Asset, Time: times[i], Seq: uint64(i + 1), Sensors: sensors}
		d, err := mons[0].Observe(rd)
		if err != nil {
			return tr, err
		}
		tr.open[i] = d.Open
		if d, err = mons[1].Observe(rd); err != nil {
			return tr, err
		}
		tr.kept[i] = d.Open
		// The raw error ranks rows as the score does under the artifact's
		// calibration, and the decision's new-normal recalibration does
		// not move it.
		tr.stat[Ours][i] = math.NaN()
		if !d.WarmingUp {
			tr.stat[Ours][i] = d.Error
		}
		tr.stat[T2][i], tr.stat[SPE][i] = p.Stats(r)
	}
	return tr, nil
}

// mean averages the faults' rows, without the undetectable ones when
// detectable is set.
func mean(rows []Row, detectable bool) Row {
	var out Row
	n := 0
	for _, r := range rows {
		if detectable && slices.Contains(Undetectable, r.Fault) {
			continue
		}
		n++
		out.Alerts += r.Alerts
		out.AlertsKept += r.AlertsKept
		for m := range methods {
			out.At5[m] += r.At5[m]
			out.AUC[m] += r.AUC[m]
		}
		for k := range out.Limit99 {
			out.Limit99[k] += r.Limit99[k]
		}
	}
	f := 1 / float64(n)
	out.Alerts *= f
	out.AlertsKept *= f
	for m := range methods {
		out.At5[m] *= f
		out.AUC[m] *= f
	}
	for k := range out.Limit99 {
		out.Limit99[k] *= f
	}
	out.FirstAlert = -1
	return out
}
