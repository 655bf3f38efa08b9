// Package job is one training job: read a class's history, train a
// candidate, validate it and the active version on the same held-out
// history through the live decision, and publish the candidate — active,
// or shadow first — only when it is not worse, recording why either way.
//
// Invariants:
//   - Publishing is the last step: a job that fails or is killed before it
//     publishes nothing; one killed while publishing is run again from its
//     request and uploads the same version (versions are named after the
//     request, and the registry takes an identical upload twice).
//   - A job's record says what it read (range, rows, gaps, exclusions,
//     data hash), the candidate's and active version's metrics, the
//     decision and its reason, and lists its plots.
package job

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/monitor"
	"github.com/pdmstream/pdm/pdmkit/rul"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/pdmstream/pdm/trainer/internal/config"
	"github.com/pdmstream/pdm/trainer/internal/history"
	"github.com/pdmstream/pdm/trainer/internal/plot"
	"github.com/pdmstream/pdm/trainer/internal/registry"
	"github.com/pdmstream/pdm/trainer/internal/train"
	"github.com/pdmstream/pdm/trainer/internal/validate"
)

// Reader reads history (history.Reader for InfluxDB, or a file's).
type Reader interface {
	Read(ctx context.Context, q history.Query, rep history.Reporter) ([]*history.Series, error)
}

// Registry is the part of the model registry a job uses.
type Registry interface {
	Model(ctx context.Context, name string) (registry.Model, error)
	Artifact(ctx context.Context, name, version string) (*model.Artifact, error)
	Upload(ctx context.Context, a *model.Artifact) error
	Activate(ctx context.Context, name, version string, assets []string) error
	SetShadow(ctx context.Context, name, version string) error
	Shadow(ctx context.Context, name string) (registry.ShadowReport, error)
}

// Runner runs jobs one at a time per call; the service runs one per class
// at a time.
type Runner struct {
	Config   *config.Config
	History  Reader
	Registry Registry
	Store    *Store
	Log      *slog.Logger
	// Key, when set, signs every artifact before it is published (the
	// configuration's signing key); without it artifacts go unsigned.
	Key ed25519.PrivateKey
	// Progress, when set, receives the history read's progress.
	Progress history.Reporter
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (r *Runner) clock() func() time.Time {
	if r.Now != nil {
		return r.Now
	}
	return time.Now
}

// ErrUnavailable wraps a failure worth retrying the request for: the
// history or the registry could not be reached.
var ErrUnavailable = errors.New("job: a server the job needs is unavailable")

// ID is the job id of a request for class: the class and the request's
// time, so a request redelivered after a crash is the same job.
func ID(class string, at time.Time) string {
	return class + "-" + at.UTC().Format("20060102T150405.000Z")
}

// Run runs the job req asks for and returns its record. A request whose
// job already ended returns that record and does nothing. Errors worth a
// retry wrap ErrUnavailable; every other outcome, including too little
// data and a candidate kept out, is a record with a nil error.
func (r *Runner) Run(ctx context.Context, req wire.TrainingRequest) (*Record, error) {
	now := r.clock()
	class := r.Config.Class(req.Key())
	j := class.Job
	id := ID(class.Name, req.At)
	if prev, err := r.Store.Get(id); err == nil && prev.Ended != nil {
		return prev, nil
	}
	rec := &Record{ID: id, Class: class.Name, Model: class.Name, Site: cmp.Or(req.Site, j.Site), Assets: class.Assets,
		Request: req, Started: now().UTC(), State: Running}
	log := r.Log.With("job", id, "class", class.Name)
	log.Info("job started", "reason", req.Reason, "assets", class.Assets)
	if err := r.Store.Put(rec); err != nil {
		return nil, err
	}
	end := func(state, reason string) (*Record, error) {
		t := now().UTC()
		rec.Ended, rec.State, rec.Reason = &t, state, reason
		log.Info("job ended", "state", state, "reason", reason)
		return rec, r.Store.Put(rec)
	}

	// The history.
	to := rec.Started.Truncate(j.Step)
	q := history.Query{Site: rec.Site, Assets: class.Assets, From: to.Add(-j.History), To: to, Step: j.Step}
	data, err := r.History.Read(ctx, q, r.Progress)
	switch {
	case errors.Is(err, history.ErrNoData):
		return end(NoData, "no normal history: "+err.Error())
	case errors.Is(err, history.ErrUnavailable), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		rec.State, rec.Reason = Failed, err.Error()
		_ = r.Store.Put(rec)
		return rec, fmt.Errorf("%w: %w", ErrUnavailable, err)
	case err != nil:
		return end(Failed, "history: "+err.Error())
	}
	rec.Data = describe(data, q)
	if rec.Data.Rows < j.MinRows {
		return end(NoData, fmt.Sprintf("too little normal history: %d rows of %s (%d read, the rest under alerts, maintenance or labels); the class needs %d",
			rec.Data.Rows, j.Step, rec.Data.Read, j.MinRows))
	}

	// The active version, if any.
	var active *model.Artifact
	m, err := r.Registry.Model(ctx, class.Name)
	switch {
	case errors.Is(err, registry.ErrNotFound):
	case err != nil:
		rec.State, rec.Reason = Failed, err.Error()
		_ = r.Store.Put(rec)
		return rec, fmt.Errorf("%w: %w", ErrUnavailable, err)
	case m.Active != "":
		if active, err = r.Registry.Artifact(ctx, class.Name, m.Active); err != nil {
			return end(Failed, fmt.Sprintf("active version %s: %v", m.Active, err))
		}
	}

	// The candidate.
	version := req.At.UTC().Format("20060102T150405.000Z")
	spec := train.Spec{Kind: model.Kind(j.Kind), Name: class.Name, Version: version, HoldOut: j.Holdout, Log: log,
		Reconstruction: anomaly.ReconstructionConfig{Window: j.Window, Hidden: j.Hidden, Epochs: j.Epochs, Smoothing: j.Smoothing, HealthLimit: j.FailureScore},
		Forecaster:     anomaly.ForecasterConfig{Window: j.Window, Hidden: j.Hidden, Epochs: j.Epochs, Smoothing: j.Smoothing, HealthLimit: j.FailureScore},
		RUL:            rul.Config{Window: j.Window, Epochs: j.Epochs, Smoothing: j.Smoothing, Members: j.Members}}
	if j.Hidden > 0 {
		spec.RUL.Hidden = []int{j.Hidden}
	}
	if active != nil {
		spec.ParentVersion = active.Version
	}
	if !req.Since.IsZero() && req.Asset != "" {
		spec.NewNormal = map[string]time.Time{req.Asset: req.Since}
	}
	res, err := train.Fit(ctx, data, spec)
	if err != nil {
		return end(Failed, "training: "+err.Error())
	}
	rec.Data.TrainRows, rec.Data.HoldOut = res.TrainRows, res.HoldOutRows
	rec.Data.TrainedFrom, rec.Data.TrainedTo = res.From, res.To

	// Validation of both on the same held-out history, through the
	// decision the scorer runs.
	decision := r.Config.Alert.Config()
	backtest := func(a *model.Artifact) (validate.Metrics, validate.Trace, error) {
		if a.Kind == model.RUL {
			return validate.Runs(a, res.HoldOut, decision)
		}
		return validate.Backtest(a, res.HoldOut, decision, validate.Faults{})
	}
	cm, ctr, err := backtest(res.Artifact)
	if err != nil {
		return end(Failed, "validating the candidate: "+err.Error())
	}
	rec.Cand = &Version{Version: version, Kind: j.Kind, Metrics: cm}
	var am *validate.Metrics
	var atr *validate.Trace
	if active != nil {
		mm, tr, err := backtest(active)
		if err != nil {
			log.Warn("the active version cannot score the held-out history; the candidate is judged alone", "version", active.Version, "err", err)
		} else {
			rec.Active = &Version{Version: active.Version, Kind: string(active.Kind), Metrics: mm}
			am, atr = &mm, &tr
		}
	}
	r.plots(rec, res, ctr, atr, decision, log)
	promote, why := validate.Decide(cm, am, j.Promote)
	if !promote {
		return end(Kept, why)
	}

	// Lineage, then publishing.
	a := res.Artifact
	a.Training.Assets, a.Training.DataHash, a.Training.Job, a.Training.Trainer = class.Assets, rec.Data.Hash, id, trainerVersion()
	if a.Metrics == nil {
		a.Metrics = map[string]float64{}
	}
	maps.Copy(a.Metrics, cm.Map("candidate_"))
	if am != nil {
		maps.Copy(a.Metrics, am.Map("active_"))
	}
	a.SHA256, a.Signature = "", nil
	seal := a.Seal
	if r.Key != nil {
		seal = func() error { return a.Sign(r.Key) }
	}
	if err := seal(); err != nil {
		return end(Failed, "sealing the candidate: "+err.Error())
	}
	if err := r.Registry.Upload(ctx, a); err != nil {
		return r.publishFailed(rec, end, "upload", err)
	}
	if j.Shadow > 0 && active != nil {
		if err := r.Registry.SetShadow(ctx, class.Name, version); err != nil {
			return r.publishFailed(rec, end, "shadow", err)
		}
		rec.Shadow = &ShadowCheck{Until: now().UTC().Add(j.Shadow)}
		rec.State, rec.Reason = Shadow, why+"; in shadow until "+rec.Shadow.Until.Format(time.RFC3339)
		log.Info("candidate in shadow", "version", version, "until", rec.Shadow.Until)
		return rec, r.Store.Put(rec)
	}
	if err := r.Registry.Activate(ctx, class.Name, version, class.Assets); err != nil {
		return r.publishFailed(rec, end, "activate", err)
	}
	return end(Promoted, why)
}

// publishFailed records a failed publication; an unreachable registry is
// worth retrying the request for.
func (r *Runner) publishFailed(rec *Record, end func(string, string) (*Record, error), step string, err error) (*Record, error) {
	var refused *registry.Error
	if errors.As(err, &refused) {
		return end(Failed, fmt.Sprintf("the registry refused the %s: %v", step, err))
	}
	rec.State, rec.Reason = Failed, step+": "+err.Error()
	_ = r.Store.Put(rec)
	return rec, fmt.Errorf("%w: %s: %w", ErrUnavailable, step, err)
}

// EndShadow ends a shadowed candidate's trial: activated when its alerts
// disagreed with the active version's on at most the class's allowed
// readings, otherwise taken out of shadow and kept out.
func (r *Runner) EndShadow(ctx context.Context, rec *Record) (*Record, error) {
	now := r.clock()
	class := r.Config.Class(rec.Class)
	rep, err := r.Registry.Shadow(ctx, rec.Model)
	if err != nil {
		return rec, fmt.Errorf("%w: shadow report: %w", ErrUnavailable, err)
	}
	rec.Shadow.Count, rec.Shadow.AlertDisagreements = rep.Count, rep.AlertDisagreements
	t := now().UTC()
	rec.Ended = &t
	if rep.AlertDisagreements > int64(class.Job.ShadowDisagreements) {
		if err := r.Registry.SetShadow(ctx, rec.Model, ""); err != nil {
			return rec, fmt.Errorf("%w: ending the shadow: %w", ErrUnavailable, err)
		}
		rec.State = Kept
		rec.Reason = fmt.Sprintf("in shadow, its alerts differed from the active version's on %d of %d readings (allowed %d)",
			rep.AlertDisagreements, rep.Count, class.Job.ShadowDisagreements)
	} else {
		if err := r.Registry.Activate(ctx, rec.Model, rec.Cand.Version, rec.Assets); err != nil {
			return rec, fmt.Errorf("%w: activate: %w", ErrUnavailable, err)
		}
		rec.State = Promoted
		rec.Reason += fmt.Sprintf("; after %d readings in shadow with %d alert disagreements, activated", rep.Count, rep.AlertDisagreements)
	}
	r.Log.Info("shadow trial ended", "job", rec.ID, "state", rec.State, "reason", rec.Reason)
	return rec, r.Store.Put(rec)
}

// plots draws the learning curve and the held-out scores beside the
// record; a plot that fails is logged, not fatal.
func (r *Runner) plots(rec *Record, res *train.Result, cand validate.Trace, active *validate.Trace, decision monitor.Config, log *slog.Logger) {
	draw := func(name string, f func(*bytes.Buffer) error) {
		var b bytes.Buffer
		if err := f(&b); err != nil {
			log.Warn("plot failed", "plot", name, "err", err)
			return
		}
		if err := os.WriteFile(filepath.Join(r.Store.Dir(rec.ID), name), b.Bytes(), 0o644); err != nil {
			log.Warn("plot not written", "plot", name, "err", err)
			return
		}
		rec.Plots = append(rec.Plots, name)
	}
	title := fmt.Sprintf("%s %s: learning curve (%d training rows)", rec.Model, rec.Cand.Version, res.TrainRows)
	draw("loss.png", func(b *bytes.Buffer) error { return plot.Loss(b, title, res.Curve) })
	title = fmt.Sprintf("%s: held-out anomaly score, candidate %s", rec.Model, rec.Cand.Version)
	if rec.Active != nil {
		title += " and active " + rec.Active.Version
	}
	d := decision.WithDefaults()
	draw("scores.png", func(b *bytes.Buffer) error { return plot.Scores(b, title, cand, active, d.Alert.Open) })
}

// describe sums what was read.
func describe(data []*history.Series, q history.Query) *Data {
	d := &Data{From: q.From, To: q.To, Step: q.Step.String()}
	h := sha256.New()
	for _, s := range data {
		d.Read += s.Read
		d.Rows += s.Rows
		d.Gaps += len(s.Gaps)
		d.Exclusions += len(s.Excluded)
		h.Write([]byte(s.Asset + ":" + s.Hash + "\n"))
	}
	d.Hash = hex.EncodeToString(h.Sum(nil))
	return d
}

// trainerVersion names the build, for lineage.
func trainerVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return "trainer@" + s.Value
			}
		}
		return "trainer@" + bi.Main.Version
	}
	return "trainer"
}
