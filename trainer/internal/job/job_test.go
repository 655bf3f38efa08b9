package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/model/modeltest"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/pdmstream/pdm/trainer/internal/config"
	"github.com/pdmstream/pdm/trainer/internal/history"
	"github.com/pdmstream/pdm/trainer/internal/registry"
)

// fakeRegistry is an in-process stand-in for the scorer's registry API in
// these unit tests (the closed loop on the real stack is trainer/e2e).
type fakeRegistry struct {
	mu        sync.Mutex
	artifacts map[string]*model.Artifact // name@version
	active    map[string]string
	shadow    map[string]string
	pins      map[string]string
	uploads   int
	report    registry.ShadowReport
}

func newFakeRegistry() *fakeRegistry {
	return &fakeRegistry{artifacts: map[string]*model.Artifact{}, active: map[string]string{}, shadow: map[string]string{}, pins: map[string]string{}}
}

func (f *fakeRegistry) Model(_ context.Context, name string) (registry.Model, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := registry.Model{Name: name, Active: f.active[name], Shadow: f.shadow[name]}
	found := false
	for k := range f.artifacts {
		if strings.HasPrefix(k, name+"@") {
			found = true
		}
	}
	if !found {
		return m, &registry.Error{Status: 404, Reason: "no model " + name}
	}
	return m, nil
}

func (f *fakeRegistry) Artifact(_ context.Context, name, version string) (*model.Artifact, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.artifacts[name+"@"+version]
	if !ok {
		return nil, &registry.Error{Status: 404, Reason: "no version"}
	}
	return a, nil
}

func (f *fakeRegistry) Upload(_ context.Context, a *model.Artifact) error {
	if err := a.Validate(); err != nil {
		return &registry.Error{Status: 422, Reason: err.Error()}
	}
	if _, err := anomaly.FromArtifact(a); err != nil {
		return &registry.Error{Status: 422, Reason: err.Error()}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.artifacts[a.Name+"@"+a.Version] = a
	f.uploads++
	return nil
}

func (f *fakeRegistry) Activate(_ context.Context, name, version string, assets []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.artifacts[name+"@"+version]; !ok {
		return &registry.Error{Status: 404, Reason: "no version"}
	}
	f.active[name] = version
	for _, a := range assets {
		f.pins[a] = name
	}
	delete(f.shadow, name)
	return nil
}

func (f *fakeRegistry) SetShadow(_ context.Context, name, version string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shadow[name] = version
	return nil
}

func (f *fakeRegistry) Shadow(context.Context, string) (registry.ShadowReport, error) {
	return f.report, nil
}

// fileReader serves generated history through the file reader, the type
// the InfluxDB reader returns; down makes it fail like an unreachable
// server.
type fileReader struct {
	csv  string
	down bool
}

func (r *fileReader) Read(_ context.Context, q history.Query, _ history.Reporter) ([]*history.Series, error) {
	if r.down {
		return nil, fmt.Errorf("%w: connection refused", history.ErrUnavailable)
	}
	if r.csv == "" {
		return nil, fmt.Errorf("%w: nothing stored", history.ErrNoData)
	}
	return history.ReadTable(strings.NewReader(r.csv), history.FileOptions{Site: q.Site, Asset: q.Assets[0], Step: q.Step})
}

var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// machine writes n rows a minute apart of a pump: load with a daily cycle,
// a flow that follows it, a temperature; from faultFrom on (if ≥ 0) the
// vibration carries a fault of the given size.
func machine(n, faultFrom int, fault float64, seed uint64) string {
	rng := rand.New(rand.NewPCG(seed, 9))
	var b strings.Builder
	b.WriteString("timestamp,flow,load,temperature,vibration\n")
	for i := range n {
		load := 60 + 10*math.Sin(2*math.Pi*float64(i)/1440) + 0.5*rng.NormFloat64()
		vib := 1 + 0.01*load + 0.02*rng.NormFloat64()
		if faultFrom >= 0 && i >= faultFrom {
			vib += fault * (1 + 0.5*math.Sin(float64(i)/7))
		}
		fmt.Fprintf(&b, "%s,%.4f,%.4f,%.4f,%.4f\n", t0.Add(time.Duration(i)*time.Minute).Format(time.RFC3339),
			2*load+rng.NormFloat64(), load, 40+0.1*load+0.1*rng.NormFloat64(), vib)
	}
	return b.String()
}

func runner(t *testing.T, reader Reader, reg Registry, edit func(*config.Job)) *Runner {
	t.Helper()
	cfg := config.Default()
	cfg.Job.Step = time.Minute
	cfg.Job.History = 30 * 24 * time.Hour
	cfg.Job.Epochs = 30
	if edit != nil {
		edit(&cfg.Job)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	st, err := NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &Runner{Config: &cfg, History: reader, Registry: reg, Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now: func() time.Time { return t0.Add(7 * 24 * time.Hour) }}
}

func request(asset string, at time.Time) wire.TrainingRequest {
	return wire.TrainingRequest{Site: "s", Asset: asset, Reason: wire.ReasonManual, At: at}
}

// TestColdStartPublishesWithLineage: a class with enough normal history
// and no model gets a version, activated for its assets, carrying its
// lineage, signed with the configured key, with its plots beside the
// record.
func TestColdStartPublishesWithLineage(t *testing.T) {
	reg := newFakeRegistry()
	r := runner(t, &fileReader{csv: machine(3000, -1, 0, 1)}, reg, nil)
	r.Key = modeltest.Private
	rec, err := r.Run(context.Background(), request("pump-1", t0.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != Promoted || rec.Cand == nil || rec.Active != nil {
		t.Fatalf("record %s: %s", rec.State, rec.Reason)
	}
	v := rec.Cand.Version
	a := reg.artifacts["pump-1@"+v]
	if a == nil || reg.active["pump-1"] != v || reg.pins["pump-1"] != "pump-1" {
		t.Fatalf("published %v, active %v, pins %v", a != nil, reg.active, reg.pins)
	}
	if a.Training.Job != rec.ID || a.Training.DataHash != rec.Data.Hash || a.Training.DataHash == "" ||
		!slices.Equal(a.Training.Assets, []string{"pump-1"}) || a.Training.Rows != rec.Data.TrainRows || a.Metrics["candidate_false_alarms"] != 0 {
		t.Fatalf("lineage %+v metrics %v, record data %+v", a.Training, a.Metrics, rec.Data)
	}
	if id, err := modeltest.Trust().Verify(a); err != nil || id != model.KeyID(modeltest.Public) {
		t.Fatalf("published artifact's signature: %q %v", id, err)
	}
	if rec.Cand.Metrics.FalseAlarms != 0 || rec.Cand.Metrics.Detection < 0.5 || rec.Cand.Metrics.Injected == 0 {
		t.Fatalf("candidate metrics %+v", rec.Cand.Metrics)
	}
	for _, p := range []string{"loss.png", "scores.png"} {
		if st, err := os.Stat(filepath.Join(r.Store.Dir(rec.ID), p)); err != nil || st.Size() < 1000 || !slices.Contains(rec.Plots, p) {
			t.Fatalf("plot %s: %v", p, err)
		}
	}
	// The same request again is the same job: nothing new.
	again, err := r.Run(context.Background(), request("pump-1", t0.Add(time.Hour)))
	if err != nil || again.ID != rec.ID || reg.uploads != 1 {
		t.Fatalf("second run: %v, id %s, %d uploads", err, again.ID, reg.uploads)
	}
	t.Logf("candidate %s: %+v; %s", v, rec.Cand.Metrics, rec.Reason)
}

// TestTooLittleDataTrainsNothing: a clear reason, no model.
func TestTooLittleDataTrainsNothing(t *testing.T) {
	reg := newFakeRegistry()
	r := runner(t, &fileReader{csv: machine(300, -1, 0, 2)}, reg, nil)
	rec, err := r.Run(context.Background(), request("pump-2", t0))
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != NoData || !strings.Contains(rec.Reason, "300 rows") || reg.uploads != 0 {
		t.Fatalf("%s: %s (%d uploads)", rec.State, rec.Reason, reg.uploads)
	}
	r = runner(t, &fileReader{}, reg, nil)
	if rec, err := r.Run(context.Background(), request("pump-3", t0)); err != nil || rec.State != NoData {
		t.Fatalf("empty history: %v %+v", err, rec)
	}
}

// TestWorseCandidateIsKept: a candidate trained on history that held a
// fault no alert marked (vibration far off for most of the training part)
// has learnt to miss vibration faults the active version sees; it is not
// promoted, its record says why, and the active version stays.
func TestWorseCandidateIsKept(t *testing.T) {
	reg := newFakeRegistry()
	r := runner(t, &fileReader{csv: machine(3000, -1, 0, 3)}, reg, nil)
	first, err := r.Run(context.Background(), request("pump-4", t0))
	if err != nil || first.State != Promoted {
		t.Fatalf("first version: %v %+v", err, first)
	}
	faulty := machine(3000, 200, 1, 4)
	healthy := machine(3000, -1, 0, 4)
	lines := strings.SplitAfter(faulty, "\n")
	tail := strings.SplitAfter(healthy, "\n")
	r.History = &fileReader{csv: strings.Join(lines[:2201], "") + strings.Join(tail[2201:], "")} // the fault ends before the hold-out
	rec, err := r.Run(context.Background(), request("pump-4", t0.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != Kept || rec.Active == nil || reg.active["pump-4"] != first.Cand.Version || reg.uploads != 1 {
		t.Fatalf("%s: %s; active %v (%d uploads)", rec.State, rec.Reason, reg.active, reg.uploads)
	}
	t.Logf("kept: %s\ncandidate %+v\nactive %+v", rec.Reason, rec.Cand.Metrics, rec.Active.Metrics)
}

// TestHistoryDownPublishesNothing: an unreachable InfluxDB is an error
// worth retrying the request for, and nothing is published.
func TestHistoryDownPublishesNothing(t *testing.T) {
	reg := newFakeRegistry()
	r := runner(t, &fileReader{down: true}, reg, nil)
	rec, err := r.Run(context.Background(), request("pump-5", t0))
	if !errors.Is(err, ErrUnavailable) || rec.State != Failed || reg.uploads != 0 {
		t.Fatalf("err %v, %+v, %d uploads", err, rec, reg.uploads)
	}
	// The retried request runs to its end.
	r.History = &fileReader{csv: machine(3000, -1, 0, 5)}
	if rec, err := r.Run(context.Background(), request("pump-5", t0)); err != nil || rec.State != Promoted {
		t.Fatalf("retry: %v %+v", err, rec)
	}
}

// TestShadowThenActivate: with a shadow period, a promoted candidate runs
// in shadow first and is activated when its alerts agreed; one that
// disagreed too often is taken out of shadow and kept out.
func TestShadowThenActivate(t *testing.T) {
	for _, tc := range []struct {
		disagreements int64
		want          string
	}{{0, Promoted}, {40, Kept}} {
		reg := newFakeRegistry()
		r := runner(t, &fileReader{csv: machine(3000, -1, 0, 6)}, reg, func(j *config.Job) { j.Shadow = time.Hour })
		if first, err := r.Run(context.Background(), request("pump-6", t0)); err != nil || first.State != Promoted {
			t.Fatalf("first version (no active: no shadow): %v %+v", err, first)
		}
		r.History = &fileReader{csv: machine(3000, -1, 0, 7)}
		rec, err := r.Run(context.Background(), request("pump-6", t0.Add(time.Hour)))
		if err != nil || rec.State != Shadow || reg.shadow["pump-6"] != rec.Cand.Version {
			t.Fatalf("second version: %v %+v shadow %v", err, rec, reg.shadow)
		}
		reg.report = registry.ShadowReport{Count: 500, AlertDisagreements: tc.disagreements}
		rec, err = r.EndShadow(context.Background(), rec)
		if err != nil || rec.State != tc.want {
			t.Fatalf("%d disagreements: %v %s %s", tc.disagreements, err, rec.State, rec.Reason)
		}
		if got := reg.active["pump-6"]; (got == rec.Cand.Version) != (tc.want == Promoted) {
			t.Fatalf("%d disagreements: active %s, candidate %s", tc.disagreements, got, rec.Cand.Version)
		}
	}
}
