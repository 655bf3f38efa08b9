package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/model/modeltest"
)

// memLog applies each record as soon as it is appended, like a topic with
// one follower.
type memLog struct {
	r       *Registry
	records []string
	newest  map[string][]byte
	// unreadable makes Read fail, as a log whose broker is away.
	unreadable bool
	reads      int
}

func (m *memLog) Append(_ context.Context, key string, value []byte) error {
	m.records = append(m.records, key)
	if m.newest == nil {
		m.newest = map[string][]byte{}
	}
	m.newest[key] = value
	m.r.Apply(key, value)
	return nil
}

func (m *memLog) Read(_ context.Context, key string) ([]byte, error) {
	if m.unreadable {
		return nil, errors.New("log unreachable")
	}
	m.reads++
	return m.newest[key], nil
}

// fakeDetector is enough to prove which version scored.
type fakeDetector struct{ name, version string }

func (f fakeDetector) Observe(time.Time, map[string]float64) (anomaly.Result, error) {
	return anomaly.Result{Model: f.name, Version: f.version}, nil
}

func fakeFactory(a *model.Artifact) (anomaly.Detector, error) {
	if a.Metrics["broken"] == 1 {
		return nil, errors.New("weights do not load")
	}
	return fakeDetector{a.Name, a.Version}, nil
}

type catalog map[string][]string

func (c catalog) Assets() []string {
	var out []string
	for a := range c {
		out = append(out, a)
	}
	return out
}
func (c catalog) Sensors(a string) []string { return c[a] }

// artifact returns a sealed, valid artifact of model name at version,
// signed by the test key.
func artifact(t *testing.T, name, version string, features ...string) []byte {
	t.Helper()
	return modeltest.Encode(t, unsigned(t, name, version, features...))
}

// unsigned returns a valid artifact of model name at version, not sealed.
func unsigned(t *testing.T, name, version string, features ...string) *model.Artifact {
	t.Helper()
	if len(features) == 0 {
		features = []string{"bearing_temp", "vibration"}
	}
	d := len(features)
	a := model.Artifact{
		Kind: model.RUL, Name: name, Version: version, CreatedAt: time.Unix(0, 0).UTC(),
		Features: features, Window: 1,
		Architecture: model.Architecture{Sizes: []int{d, 1}, Activations: []string{"linear"}},
		Weights:      make([]float64, d+1),
	}
	a.Scaler.Mean = make([]float64, d)
	a.Scaler.Std = make([]float64, d)
	for i := range a.Scaler.Std {
		a.Scaler.Std[i] = 1
	}
	return &a
}

func newTest(t *testing.T, cat Catalog) (*Registry, *memLog) {
	t.Helper()
	m := &memLog{}
	r := New(m, fakeFactory, cat, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.SetTrust(modeltest.Trust())
	m.r = r
	return r, m
}

func active(t *testing.T, r *Registry, asset string) string {
	t.Helper()
	b := r.Resolve("", asset)
	if b.Active == nil {
		return "online"
	}
	return b.Active.Key()
}

func TestActivateRollbackPin(t *testing.T) {
	ctx := context.Background()
	r, _ := newTest(t, catalog{"a1": {"bearing_temp", "vibration", "rpm"}})
	if got := active(t, r, "a1"); got != "online" {
		t.Fatalf("empty registry resolves to %s, want the online learner", got)
	}
	for _, v := range []string{"1", "2", "3"} {
		if _, err := r.Upload(ctx, "bearing", v, artifact(t, "bearing", v)); err != nil {
			t.Fatalf("upload %s: %v", v, err)
		}
	}
	steps := []struct {
		name string
		do   func() error
		want map[string]string
	}{
		{"activate 1", func() error { _, err := r.Activate(ctx, "bearing", "1", Scope{Default: true}); return err }, map[string]string{"a1": "bearing@1", "a2": "bearing@1"}},
		{"activate 2", func() error { _, err := r.Activate(ctx, "bearing", "2", Scope{}); return err }, map[string]string{"a1": "bearing@2"}},
		{"pin a2 to 1", func() error { _, err := r.Pin(ctx, "a2", "bearing", "1"); return err }, map[string]string{"a1": "bearing@2", "a2": "bearing@1"}},
		{"activate 3", func() error { _, err := r.Activate(ctx, "bearing", "3", Scope{}); return err }, map[string]string{"a1": "bearing@3", "a2": "bearing@1"}},
		{"rollback to 2", func() error { _, err := r.Rollback(ctx, "bearing"); return err }, map[string]string{"a1": "bearing@2"}},
		{"rollback to 1", func() error { _, err := r.Rollback(ctx, "bearing"); return err }, map[string]string{"a1": "bearing@1"}},
		{"unpin a2", func() error { _, err := r.Pin(ctx, "a2", "", ""); return err }, map[string]string{"a2": "bearing@1"}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		for asset, want := range s.want {
			if got := active(t, r, asset); got != want {
				t.Fatalf("%s: %s resolves to %s, want %s", s.name, asset, got, want)
			}
		}
	}
	if _, err := r.Rollback(ctx, "bearing"); !errors.Is(err, ErrNoPrevious) {
		t.Fatalf("rollback past the first version: %v, want ErrNoPrevious", err)
	}
	// A model activated for chosen assets is theirs alone: not the default.
	if _, err := r.Upload(ctx, "pump-7", "1", artifact(t, "pump-7", "1")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Activate(ctx, "pump-7", "1", Scope{Assets: []string{"a3"}}); err != nil {
		t.Fatal(err)
	}
	if got, other := active(t, r, "a3"), active(t, r, "a4"); got != "pump-7@1" || other != "bearing@1" {
		t.Fatalf("scoped activation: a3 on %s, a4 on %s; want pump-7@1 and the default bearing@1", got, other)
	}
	if _, err := r.Activate(ctx, "bearing", "9", Scope{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("activate unknown: %v, want ErrNotFound", err)
	}
}

func TestShadow(t *testing.T) {
	ctx := context.Background()
	r, _ := newTest(t, nil)
	for _, v := range []string{"1", "2"} {
		if _, err := r.Upload(ctx, "m", v, artifact(t, "m", v)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Activate(ctx, "m", "1", Scope{Default: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Shadow(ctx, "m", "2"); err != nil {
		t.Fatal(err)
	}
	b := r.Resolve("", "any")
	if b.Active.Key() != "m@1" || b.Shadow == nil || b.Shadow.Key() != "m@2" {
		t.Fatalf("binding %+v, want active m@1 shadow m@2", b)
	}
	r.RecordShadow(b.Active, b.Shadow, anomaly.Result{Score: 0.2}, anomaly.Result{Score: 0.5}, false, true)
	r.RecordShadow(b.Active, b.Shadow, anomaly.Result{Score: 0.2}, anomaly.Result{Score: 0.3}, false, false)
	st, ok := r.ShadowReport("m")
	if !ok || st.Count != 2 || st.AlertDisagreements != 1 || st.MaxAbsDiff < 0.29 || st.MeanAbsDiff < 0.19 || st.MeanAbsDiff > 0.21 {
		t.Fatalf("shadow report %+v", st)
	}
	// Activating the candidate ends its shadow.
	if _, err := r.Activate(ctx, "m", "2", Scope{}); err != nil {
		t.Fatal(err)
	}
	if b := r.Resolve("", "any"); b.Shadow != nil || b.Active.Key() != "m@2" {
		t.Fatalf("after activation %+v", b)
	}
}

func TestRefusals(t *testing.T) {
	ctx := context.Background()
	r, log := newTest(t, catalog{"a1": {"bearing_temp", "vibration"}})
	if _, err := r.Upload(ctx, "m", "1", artifact(t, "m", "1")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Activate(ctx, "m", "1", Scope{Default: true}); err != nil {
		t.Fatal(err)
	}
	good := artifact(t, "m", "2")
	tampered := bytes.Replace(good, []byte(`"rows": 0`), []byte(`"rows": 7`), 1)
	if bytes.Equal(good, tampered) {
		t.Fatal("tampering changed nothing")
	}
	broken := func() []byte {
		a, err := model.Load(bytes.NewReader(artifact(t, "m", "4")))
		if err != nil {
			t.Fatal(err)
		}
		a.Metrics = map[string]float64{"broken": 1}
		return modeltest.Encode(t, a)
	}()
	cases := []struct {
		name, version string
		raw           []byte
		want          string
	}{
		{"tampered", "2", tampered, "checksum"},
		{"truncated", "2", good[:len(good)/2], "not a supported artifact"},
		{"wrong name", "2", artifact(t, "other", "2"), "uploaded as m 2"},
		{"load error", "4", broken, "weights do not load"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Upload(ctx, "m", tc.version, tc.raw)
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("upload: %v, want ErrRefused mentioning %q", err, tc.want)
			}
			if got := active(t, r, "a1"); got != "m@1" {
				t.Fatalf("active changed to %s", got)
			}
		})
	}
	// A version whose features the asset lacks is stored but cannot be
	// activated.
	if _, err := r.Upload(ctx, "m", "3", artifact(t, "m", "3", "bearing_temp", "oil_pressure")); err != nil {
		t.Fatal(err)
	}
	_, err := r.Activate(ctx, "m", "3", Scope{})
	if !errors.Is(err, ErrRefused) || !errors.Is(err, model.ErrFeatures) || !strings.Contains(err.Error(), "oil_pressure") {
		t.Fatalf("activate mismatched: %v", err)
	}
	if got := active(t, r, "a1"); got != "m@1" {
		t.Fatalf("active changed to %s", got)
	}
	// A control record naming a version nobody has keeps the active one.
	n := len(log.records)
	r.Apply(controlKey, []byte(`{"rev":99,"default":"m","active":{"m":"77"}}`))
	if got := active(t, r, "a1"); got != "m@1" {
		t.Fatalf("unknown version in control made %s active", got)
	}
	if len(log.records) != n {
		t.Fatal("Apply wrote records")
	}
	// Re-uploading the same content is idempotent; different content under
	// the same version is refused.
	if _, err := r.Upload(ctx, "m", "1", artifact(t, "m", "1")); err != nil {
		t.Fatalf("idempotent re-upload: %v", err)
	}
	if _, err := r.Upload(ctx, "m", "1", artifact(t, "m", "1", "bearing_temp")); !errors.Is(err, ErrExists) {
		t.Fatalf("conflicting re-upload: %v, want ErrExists", err)
	}
}

// siteCat is a catalog that knows each asset's site.
type siteCat map[string]struct {
	site    string
	sensors []string
}

func (c siteCat) Assets() []string {
	var out []string
	for a := range c {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}
func (c siteCat) Sensors(a string) []string { return c[a].sensors }
func (c siteCat) Site(a string) string      { return c[a].site }

// An activation scores, and is checked against, only its scope: a site, a
// class of asset ids or chosen assets; an asset outside it (a motor
// without flow, a stray asset) neither blocks it nor follows it, and a
// refusal names every asset in scope that lacks a feature and what it
// reports.
func TestActivationScope(t *testing.T) {
	ctx := context.Background()
	pump := []string{"bearing_temp", "discharge_pressure", "flow", "motor_current", "speed", "vibration_rms"}
	motor := []string{"bearing_temp", "motor_current", "speed", "vibration_rms", "voltage", "winding_temp"}
	cat := siteCat{
		"pump-1":  {"plant1", pump},
		"pump-2":  {"plant1", pump},
		"motor-1": {"plant1", motor},
		"pump-9":  {"plant2", pump},
		"stray-1": {"lab", []string{"x"}},
	}
	r, _ := newTest(t, cat)
	if _, err := r.Upload(ctx, "pumps", "1", artifact(t, "pumps", "1", "flow", "vibration_rms")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Upload(ctx, "motors", "1", artifact(t, "motors", "1", "winding_temp", "voltage")); err != nil {
		t.Fatal(err)
	}
	at := func(asset string) string {
		b := r.Resolve(cat[asset].site, asset)
		if b.Active == nil {
			return "online"
		}
		return b.Active.Key()
	}

	// A site holding a motor: refused, naming the motor, what it lacks and
	// what it reports; nothing changes.
	_, err := r.Activate(ctx, "pumps", "1", Scope{Site: "plant1"})
	want := "pumps 1 needs [flow vibration_rms]; 1 of the 3 assets it would score do not have them: motor-1 lacks [flow] (reports [bearing_temp motor_current speed vibration_rms voltage winding_temp])"
	if !errors.Is(err, ErrRefused) || !strings.Contains(fmt.Sprint(err), want) {
		t.Fatalf("site with a motor: %v\nwant %s", err, want)
	}
	if at("pump-1") != "online" {
		t.Fatalf("refused activation changed pump-1 to %s", at("pump-1"))
	}

	// The pumps by class: the motor and the stray asset are not in scope.
	act, err := r.Activate(ctx, "pumps", "1", Scope{Class: "pump-*"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(act.Scoring) != "[pump-1 pump-2 pump-9]" || act.Classes["pump-*"] != "pumps" {
		t.Fatalf("class activation scores %v, control %+v", act.Scoring, act.Control)
	}
	// The motors of one site by site; the class binding of the pumps wins
	// over the site, so the motor model is checked against motor-1 only.
	act, err = r.Activate(ctx, "motors", "1", Scope{Site: "plant1"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(act.Scoring) != "[motor-1]" {
		t.Fatalf("site activation scores %v", act.Scoring)
	}
	for asset, want := range map[string]string{"pump-1": "pumps@1", "pump-9": "pumps@1", "motor-1": "motors@1", "stray-1": "online"} {
		if got := at(asset); got != want {
			t.Errorf("%s scored by %s, want %s", asset, got, want)
		}
	}
	// An asset not yet seen is bound by the rules when it appears.
	if got := r.Resolve("plant1", "pump-77").Active; got == nil || got.Key() != "pumps@1" {
		t.Errorf("new pump-77 scored by %v", got)
	}
	if got := r.Resolve("plant1", "compressor-1").Active; got == nil || got.Key() != "motors@1" {
		t.Errorf("new asset of plant1 scored by %v", got)
	}
	// Chosen assets: a pin beats the class.
	if _, err := r.Upload(ctx, "pumps", "2", artifact(t, "pumps", "2", "flow")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Upload(ctx, "special", "1", artifact(t, "special", "1", "flow")); err != nil {
		t.Fatal(err)
	}
	act, err = r.Activate(ctx, "special", "1", Scope{Assets: []string{"pump-2"}})
	if err != nil || fmt.Sprint(act.Scoring) != "[pump-2]" || at("pump-2") != "special@1" || at("pump-1") != "pumps@1" {
		t.Fatalf("assets activation: %v %v; pump-2 %s pump-1 %s", err, act.Scoring, at("pump-2"), at("pump-1"))
	}
	// A new version is checked against the model's assets only.
	act, err = r.Activate(ctx, "pumps", "2", Scope{})
	if err != nil || fmt.Sprint(act.Scoring) != "[pump-1 pump-9]" || at("pump-1") != "pumps@2" {
		t.Fatalf("new version: %v %v", err, act.Scoring)
	}
	// The fleet default covers what nothing else binds, and is checked
	// against exactly that: the stray asset.
	_, err = r.Activate(ctx, "pumps", "2", Scope{Default: true})
	if !errors.Is(err, ErrRefused) || !strings.Contains(fmt.Sprint(err), "stray-1 lacks [flow] (reports [x])") || strings.Contains(fmt.Sprint(err), "motor-1") {
		t.Fatalf("default over a stray asset: %v", err)
	}
	if _, err := r.Activate(ctx, "pumps", "2", Scope{Class: "pump-["}); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "not a pattern") {
		t.Fatalf("bad class pattern: %v", err)
	}
}

// The scoring loop's refusals of one version keep each asset's reason, a
// bounded number of them, once each.
func TestRefusalsNameEachAsset(t *testing.T) {
	ctx := context.Background()
	r, _ := newTest(t, nil)
	v, err := r.Upload(ctx, "m", "1", artifact(t, "m", "1"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxRefusals + 3 {
		r.Refuse(v, fmt.Sprintf("asset a%d lacks [vibration]", i%(maxRefusals+2)))
		r.Refuse(v, "asset a0 lacks [vibration]")
	}
	m, _ := r.Model("m")
	parts := strings.Split(m.Refused["1"], "; ")
	if len(parts) != maxRefusals || parts[0] != "asset a0 lacks [vibration]" || parts[1] != "asset a1 lacks [vibration]" {
		t.Fatalf("refused %q", m.Refused["1"])
	}
}

// With a byte budget, versions nothing scores with leave memory, least
// recently looked up first, but stay listed with their lineage; a lookup
// or an activation reads them back from the log, and an activation the log
// cannot serve is refused and changes nothing.
func TestCacheBytes(t *testing.T) {
	ctx := context.Background()
	r, m := newTest(t, nil)
	size := int64(len(artifact(t, "m", "1")))
	r.SetCacheBytes(2*size + size/2)
	raw := map[string][]byte{}
	for _, v := range []string{"1", "2", "3", "4", "5"} {
		raw[v] = artifact(t, "m", v)
		if _, err := r.Upload(ctx, "m", v, raw[v]); err != nil {
			t.Fatal(err)
		}
		if v == "1" {
			if _, err := r.Activate(ctx, "m", "1", Scope{Default: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := r.ResidentBytes(); got > 2*size || r.Evictions() != 3 {
		t.Fatalf("resident %d bytes (budget %d, one artifact %d), %d evictions; want 2 artifacts and 3 evictions", got, r.budget, size, r.Evictions())
	}
	if b := r.Resolve("", "a"); b.Active == nil || b.Active.Key() != "m@1" || b.Active.New == nil {
		t.Fatalf("the active version must stay in memory: %+v", b.Active)
	}
	info, _ := r.Model("m")
	if len(info.Versions) != 5 || info.Versions[1].SHA256 == "" || info.Versions[1].Features == nil {
		t.Fatalf("every version stays listed: %+v", info.Versions)
	}
	// Version 2 left memory first (oldest use); looking it up reads it back
	// whole, and the least recently used other one leaves instead.
	v, err := r.Lookup(ctx, "m", "2")
	if err != nil || !bytes.Equal(v.Raw, raw["2"]) || v.New == nil || m.reads != 1 {
		t.Fatalf("lookup of a version out of memory: %v, %d reads", err, m.reads)
	}
	if got := r.ResidentBytes(); got > 2*size {
		t.Fatalf("resident %d bytes after a read back, want at most %d", got, 2*size)
	}
	m.unreadable = true
	if _, err := r.Activate(ctx, "m", "3", Scope{}); err == nil || !strings.Contains(err.Error(), "log unreachable") {
		t.Fatalf("activating a version the log cannot give back: %v", err)
	}
	if got := active(t, r, "a"); got != "m@1" {
		t.Fatalf("a refused activation changed the active version: %s", got)
	}
	m.unreadable = false
	if _, err := r.Activate(ctx, "m", "3", Scope{}); err != nil {
		t.Fatal(err)
	}
	if b := r.Resolve("", "a"); b.Active == nil || b.Active.Key() != "m@3" || b.Active.New == nil {
		t.Fatalf("activated version out of memory: %+v", b.Active)
	}
}
