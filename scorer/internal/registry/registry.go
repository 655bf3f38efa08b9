package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/model"
)

// Log stores registry records durably and in order. The registry learns of
// its own writes the same way as of others': through Apply.
type Log interface {
	Append(ctx context.Context, key string, value []byte) error
}

// syncer is a Log that can wait until this instance has applied what
// other instances wrote.
type syncer interface {
	Sync(ctx context.Context) error
}

// sync catches up with the log before a change, so an upload or activation
// made through another instance a moment ago is not missed.
func (r *Registry) sync(ctx context.Context) error {
	if s, ok := r.store.(syncer); ok {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return s.Sync(sctx)
	}
	return nil
}

// Catalog tells the registry which assets exist and what sensors each
// reads, so an activation that would not fit an asset is refused up front.
type Catalog interface {
	Assets() []string
	Sensors(asset string) []string
}

// siteCatalog is a Catalog that also knows each asset's site; without it
// every asset is of site "".
type siteCatalog interface {
	Site(asset string) string
}

// Registry is the in-memory view of the registry topic plus the operations
// that change it. Resolve is safe for concurrent use and lock-free.
type Registry struct {
	log     *slog.Logger
	factory Factory
	store   Log
	catalog Catalog

	snap atomic.Pointer[snapshot]
	// wmu serialises snapshot replacements (Apply and Refuse).
	wmu sync.Mutex

	// mu serialises changes made through this instance and guards changed.
	mu      sync.Mutex
	changed chan struct{}
	// ops serialises read-modify-write operations of this instance.
	ops sync.Mutex

	shadowMu sync.Mutex
	shadow   map[string]*ShadowStats

	// fallback is the model for assets when the control names no default.
	fallback string

	// budget bounds the resident artifacts' bytes (0: none); see
	// SetCacheBytes.
	budget    int64
	evictions atomic.Int64
	// trust decides whose signatures are accepted; nil refuses every
	// artifact.
	trust *model.Trust
	// refusedRecords counts artifact records of the log that were refused.
	refusedRecords atomic.Uint64
}

// New returns an empty registry that stores records in store and builds
// detectors with factory. catalog may be nil.
func New(store Log, factory Factory, catalog Catalog, log *slog.Logger) *Registry {
	r := &Registry{log: log, factory: factory, store: store, catalog: catalog, changed: make(chan struct{}), shadow: map[string]*ShadowStats{}}
	r.snap.Store(&snapshot{control: Control{}.clone(), versions: map[string]*Version{}, refused: map[string]string{}})
	return r
}

// SetCatalog sets the catalog once the scoring loop exists.
func (r *Registry) SetCatalog(c Catalog) {
	r.ops.Lock()
	r.catalog = c
	r.ops.Unlock()
}

// SetFallback names the model for assets when the control document names
// no default (configuration's default_model). Call before Run.
func (r *Registry) SetFallback(model string) { r.fallback = model }

// SetTrust sets the keys whose signatures make an artifact loadable
// (configuration's models.trusted_keys and models.accept_unsigned). Until
// it is called every artifact is refused. Call before Run.
func (r *Registry) SetTrust(t *model.Trust) { r.trust = t }

// RefusedRecords is how many artifact records read from the log were
// refused (unsigned, badly signed, corrupted or not loadable).
func (r *Registry) RefusedRecords() uint64 { return r.refusedRecords.Load() }

// Resolve returns the versions that score asset of site now.
func (r *Registry) Resolve(site, asset string) Binding {
	return r.snap.Load().resolve(site, asset, r.fallback)
}

// Apply takes one record of the registry topic, in topic order.
func (r *Registry) Apply(key string, value []byte) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	cur := r.snap.Load()
	var next *snapshot
	switch {
	case key == controlKey:
		c, err := decodeControl(value)
		if err != nil {
			r.log.Warn("control record ignored", "err", err)
			return
		}
		var ignored []string
		next, ignored = r.residentFor(cur, c).applyControl(c)
		if len(ignored) > 0 {
			r.log.Warn("control record names unknown versions; kept previous", "ignored", ignored)
		}
		r.log.Info("models control applied", "rev", c.Rev, "active", next.control.Active, "shadow", next.control.Shadow, "default", next.control.Default)
	case len(key) > len(artifactPrefix) && key[:len(artifactPrefix)] == artifactPrefix:
		if len(value) == 0 {
			return // a tombstone: versions are never forgotten by a running scorer
		}
		v, err := loadVersion(value, r.factory, r.trust, time.Now())
		if err != nil {
			r.refusedRecords.Add(1)
			r.log.Warn("artifact record refused", "key", key, "err", err)
			next = cur.withRefused(key[len(artifactPrefix):], err.Error())
			break
		}
		if old := cur.versions[v.Key()]; old != nil && old.SHA256 == v.SHA256 {
			return
		}
		next = cur.withVersion(v)
		r.log.Info("model version registered", "model", v.Name, "version", v.Version, "sha256", v.SHA256, "signed_by", v.SignedBy)
	default:
		return
	}
	r.snap.Store(r.withinBudget(next))
	r.mu.Lock()
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// waitFor blocks until cond holds for the current snapshot.
func (r *Registry) waitFor(ctx context.Context, cond func(*snapshot) bool) error {
	for {
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		if cond(r.snap.Load()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("registry: waiting for own write: %w", ctx.Err())
		case <-ch:
		}
	}
}

// Upload verifies an artifact, stores it and returns it once this instance
// has it. name and version, when set, must match the artifact's.
func (r *Registry) Upload(ctx context.Context, name, version string, raw []byte) (*Version, error) {
	v, err := loadVersion(raw, r.factory, r.trust, time.Now())
	if err != nil {
		return nil, err
	}
	if (name != "" && name != v.Name) || (version != "" && version != v.Version) {
		return nil, fmt.Errorf("%w: artifact is %s %s, uploaded as %s %s", ErrRefused, v.Name, v.Version, name, version)
	}
	if err := r.sync(ctx); err != nil {
		return nil, err
	}
	if old := r.snap.Load().versions[v.Key()]; old != nil {
		if old.SHA256 == v.SHA256 {
			return old, nil
		}
		return nil, fmt.Errorf("%w: %s with sha256 %s", ErrExists, v.Key(), old.SHA256)
	}
	if err := r.store.Append(ctx, artifactKey(v.Name, v.Version), raw); err != nil {
		return nil, fmt.Errorf("registry: store %s: %w", v.Key(), err)
	}
	key := v.Key()
	if err := r.waitFor(ctx, func(s *snapshot) bool { return s.versions[key] != nil || s.refused[v.Name+"/"+v.Version] != "" }); err != nil {
		return nil, err
	}
	s := r.snap.Load()
	if got := s.versions[key]; got != nil {
		return got, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrRefused, s.refused[v.Name+"/"+v.Version])
}

// change applies edit to a copy of the control and stores it.
func (r *Registry) change(ctx context.Context, edit func(s *snapshot, c *Control) error) (Control, error) {
	r.ops.Lock()
	defer r.ops.Unlock()
	if err := r.sync(ctx); err != nil {
		return Control{}, err
	}
	s := r.snap.Load()
	c := s.control.clone()
	if err := edit(s, &c); err != nil {
		return Control{}, err
	}
	// What the change puts in use is read back into memory first, so a
	// version the log cannot give back is an error here, not a control
	// record every instance ignores.
	for key := range c.live() {
		if v := s.versions[key]; v != nil {
			if _, err := r.resident(ctx, v); err != nil {
				return Control{}, err
			}
		}
	}
	c.Rev = s.control.Rev + 1
	b, err := json.Marshal(c)
	if err != nil {
		return Control{}, fmt.Errorf("registry: encode control: %w", err)
	}
	if err := r.store.Append(ctx, controlKey, b); err != nil {
		return Control{}, fmt.Errorf("registry: store control: %w", err)
	}
	rev := c.Rev
	if err := r.waitFor(ctx, func(s *snapshot) bool { return s.control.Rev >= rev }); err != nil {
		return Control{}, err
	}
	return r.snap.Load().control.clone(), nil
}

func (s *snapshot) version(name, version string) (*Version, error) {
	v := s.versions[name+"@"+version]
	if v == nil {
		if reason := s.refused[name+"/"+version]; reason != "" {
			return nil, fmt.Errorf("%w: %s", ErrRefused, reason)
		}
		return nil, fmt.Errorf("%w: model %s version %s", ErrNotFound, name, version)
	}
	return v, nil
}

// fits refuses v when an asset it would score lacks one of its features,
// naming every such asset, what it lacks and what it reports.
func (r *Registry) fits(v *Version, assets []string) error {
	if r.catalog == nil {
		return nil
	}
	var unfit []string
	checked := 0
	for _, a := range assets {
		sensors := r.catalog.Sensors(a)
		if len(sensors) == 0 {
			continue
		}
		checked++
		if v.Artifact.CheckFeatures(sensors) != nil {
			var lacks []string
			for _, f := range v.Features {
				if !slices.Contains(sensors, f) {
					lacks = append(lacks, f)
				}
			}
			unfit = append(unfit, fmt.Sprintf("%s lacks %v (reports %v)", a, lacks, sensors))
		}
	}
	if len(unfit) > 0 {
		return fmt.Errorf("%w: %w: %s %s needs %v; %d of the %d assets it would score do not have them: %s; narrow the scope (site, class or assets) or pin those assets elsewhere",
			ErrRefused, model.ErrFeatures, v.Name, v.Version, v.Features, len(unfit), checked, strings.Join(unfit, "; "))
	}
	return nil
}

// siteOf is asset's site as the catalog knows it.
func (r *Registry) siteOf(asset string) string {
	if sc, ok := r.catalog.(siteCatalog); ok {
		return sc.Site(asset)
	}
	return ""
}

// assetsOf lists the known assets that would follow model name's active
// version under control c.
func (r *Registry) assetsOf(c *Control, name string) []string {
	if r.catalog == nil {
		return nil
	}
	var out []string
	for _, a := range r.catalog.Assets() {
		if m, v := c.modelOf(r.siteOf(a), a, r.fallback); m == name && v == "" {
			out = append(out, a)
		}
	}
	return out
}

// Scope is what an activation binds to the model besides the assets
// already on it: Site every asset of a site (now and later), Class every
// asset whose id matches a pattern ("pump-*"), Assets those assets (pins
// following the model's active version), Default every asset that nothing
// else binds. Only the assets the activation would then score are checked.
type Scope struct {
	Default bool     `json:"default,omitempty"`
	Site    string   `json:"site,omitempty"`
	Class   string   `json:"class,omitempty"`
	Assets  []string `json:"assets,omitempty"`
}

// Activation is the answer to an activation: the control document and the
// known assets the model's active version now scores.
type Activation struct {
	Control
	Scoring []string `json:"scoring"`
}

// Activate makes version the active version of model name, for the assets
// already on it and those scope adds. Every affected asset that has
// reported sensors must have the version's features.
func (r *Registry) Activate(ctx context.Context, name, version string, scope Scope) (Activation, error) {
	if scope.Class != "" {
		if _, err := path.Match(scope.Class, ""); err != nil {
			return Activation{}, fmt.Errorf("%w: class %q is not a pattern over asset ids (pump-*): %w", ErrRefused, scope.Class, err)
		}
	}
	var scoring []string
	c, err := r.change(ctx, func(s *snapshot, c *Control) error {
		if c.Unloaded[name] {
			return unloaded(name)
		}
		v, err := s.version(name, version)
		if err != nil {
			return err
		}
		if scope.Default {
			c.Default = name
		}
		if scope.Site != "" {
			c.Sites[scope.Site] = name
		}
		if scope.Class != "" {
			c.Classes[scope.Class] = name
		}
		for _, a := range scope.Assets {
			c.Pins[a] = Pin{Model: name}
		}
		scoring = r.assetsOf(c, name)
		if err := r.fits(v, scoring); err != nil {
			return err
		}
		if prev, ok := c.Active[name]; ok && prev != version {
			c.History[name] = append(c.History[name], prev)
		}
		c.Active[name] = version
		if c.Shadow[name] == version {
			delete(c.Shadow, name)
		}
		return nil
	})
	if scoring == nil {
		scoring = []string{}
	}
	return Activation{Control: c, Scoring: scoring}, err
}

func unloaded(name string) error {
	return fmt.Errorf("%w: %s: load it first with POST /v2/repository/models/%s/load", ErrUnloaded, name, name)
}

// Unload takes model name out of the repository: inference on it and its
// activation are refused until Load. A model that scores assets (active
// for any of them, the default, a site's, a class's, pinned, or shadowed)
// is refused with what still uses it.
func (r *Registry) Unload(ctx context.Context, name string) (Control, error) {
	return r.change(ctx, func(s *snapshot, c *Control) error {
		if !s.hasModel(name) {
			return fmt.Errorf("%w: model %s", ErrNotFound, name)
		}
		var uses []string
		if c.Default == name || (c.Default == "" && r.fallback == name) {
			uses = append(uses, "the fleet default")
		}
		if c.Shadow[name] != "" {
			uses = append(uses, "shadow version "+c.Shadow[name])
		}
		for _, m := range []map[string]string{c.Sites, c.Classes} {
			for scope, model := range m {
				if model == name {
					uses = append(uses, "scope "+scope)
				}
			}
		}
		for asset, p := range c.Pins {
			if p.Model == name {
				uses = append(uses, "pin of "+asset)
			}
		}
		if len(uses) > 0 {
			slices.Sort(uses)
			return fmt.Errorf("%w: %s is used by %s: activate another model there, or unpin, first", ErrInService, name, strings.Join(uses, ", "))
		}
		c.Unloaded[name] = true
		return nil
	})
}

// Load puts an unloaded model back in the repository; loading a loaded
// model changes nothing.
func (r *Registry) Load(ctx context.Context, name string) (Control, error) {
	if !r.snap.Load().hasModel(name) {
		return Control{}, fmt.Errorf("%w: model %s has no registered version: upload one with PUT /v1/models/%s/versions/{version}", ErrNotFound, name, name)
	}
	if !r.snap.Load().control.Unloaded[name] {
		return r.Control(), nil
	}
	return r.change(ctx, func(s *snapshot, c *Control) error {
		delete(c.Unloaded, name)
		return nil
	})
}

// Rollback re-activates the version that was active before the current one.
func (r *Registry) Rollback(ctx context.Context, name string) (Control, error) {
	return r.change(ctx, func(s *snapshot, c *Control) error {
		h := c.History[name]
		if len(h) == 0 {
			return fmt.Errorf("%w: model %s", ErrNoPrevious, name)
		}
		prev := h[len(h)-1]
		v, err := s.version(name, prev)
		if err != nil {
			return err
		}
		if err := r.fits(v, r.assetsOf(c, name)); err != nil {
			return err
		}
		c.History[name] = h[:len(h)-1]
		c.Active[name] = prev
		return nil
	})
}

// Pin binds asset to model name at version (or its active version when
// version is empty); an empty name removes the pin.
func (r *Registry) Pin(ctx context.Context, asset, name, version string) (Control, error) {
	return r.change(ctx, func(s *snapshot, c *Control) error {
		if name == "" {
			delete(c.Pins, asset)
			return nil
		}
		if c.Unloaded[name] {
			return unloaded(name)
		}
		v := version
		if v == "" {
			v = c.Active[name]
		}
		ver, err := s.version(name, v)
		if err != nil {
			return err
		}
		if err := r.fits(ver, []string{asset}); err != nil {
			return err
		}
		c.Pins[asset] = Pin{Model: name, Version: version}
		return nil
	})
}

// Shadow scores version of model name beside the active one without
// alerting from it; an empty version ends shadowing.
func (r *Registry) Shadow(ctx context.Context, name, version string) (Control, error) {
	return r.change(ctx, func(s *snapshot, c *Control) error {
		if version == "" {
			delete(c.Shadow, name)
			return nil
		}
		if c.Unloaded[name] {
			return unloaded(name)
		}
		v, err := s.version(name, version)
		if err != nil {
			return err
		}
		if err := r.fits(v, r.assetsOf(c, name)); err != nil {
			return err
		}
		c.Shadow[name] = version
		r.shadowMu.Lock()
		delete(r.shadow, v.Key())
		r.shadowMu.Unlock()
		return nil
	})
}

// maxRefusals bounds the assets' reasons kept for one version.
const maxRefusals = 8

// Refuse records that a version could not score an asset (found by the
// scoring loop, e.g. a sensor missing from the readings); reason names
// the asset. The reasons of up to maxRefusals assets are kept, joined by
// "; ".
func (r *Registry) Refuse(v *Version, reason string) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	cur := r.snap.Load()
	key := v.Name + "/" + v.Version
	old := cur.refused[key]
	if old != "" {
		parts := strings.Split(old, "; ")
		if slices.Contains(parts, reason) || len(parts) >= maxRefusals {
			return
		}
		reason = old + "; " + reason
	}
	r.snap.Store(cur.withRefused(key, reason))
}

// Control returns the current control document.
func (r *Registry) Control() Control { return r.snap.Load().control.clone() }

// ModelInfo describes one model and its versions.
type ModelInfo struct {
	Name     string        `json:"name"`
	Active   string        `json:"active,omitempty"`
	Shadow   string        `json:"shadow,omitempty"`
	History  []string      `json:"history,omitempty"`
	Default  bool          `json:"default"`
	Unloaded bool          `json:"unloaded,omitempty"`
	Versions []VersionInfo `json:"versions"`
	// Refused lists refused versions and why.
	Refused map[string]string `json:"refused,omitempty"`
}

// VersionInfo describes one version.
type VersionInfo struct {
	Version    string    `json:"version"`
	SHA256     string    `json:"sha256"`
	Kind       string    `json:"kind"`
	Features   []string  `json:"features"`
	Parent     string    `json:"parent_version,omitempty"`
	Registered time.Time `json:"registered"`
	// SignedBy is the id of the key that signed the artifact (empty when
	// it was accepted unsigned).
	SignedBy string `json:"signed_by,omitempty"`
	// Metrics are the artifact's validation results; Training its data
	// window and lineage (assets, data hash, job, trainer build).
	Metrics  map[string]float64 `json:"metrics,omitempty"`
	Training model.Training     `json:"training"`
}

// Models lists every model, sorted by name.
func (r *Registry) Models() []ModelInfo {
	s := r.snap.Load()
	by := map[string]*ModelInfo{}
	get := func(name string) *ModelInfo {
		if m := by[name]; m != nil {
			return m
		}
		m := &ModelInfo{Name: name, Active: s.control.Active[name], Shadow: s.control.Shadow[name], History: s.control.History[name], Default: s.control.Default == name, Unloaded: s.control.Unloaded[name], Versions: []VersionInfo{}}
		by[name] = m
		return m
	}
	for _, v := range s.versions {
		m := get(v.Name)
		m.Versions = append(m.Versions, VersionInfo{Version: v.Version, SHA256: v.SHA256, Kind: string(v.Kind), Features: v.Features, Parent: v.Artifact.ParentVersion, Registered: v.Registered,
			SignedBy: v.SignedBy, Metrics: v.Artifact.Metrics, Training: v.Artifact.Training})
	}
	for key, reason := range s.refused {
		name, ver, ok := cutLast(key, "/")
		if !ok {
			continue
		}
		m := get(name)
		if m.Refused == nil {
			m.Refused = map[string]string{}
		}
		m.Refused[ver] = reason
	}
	out := make([]ModelInfo, 0, len(by))
	for _, m := range by {
		sort.Slice(m.Versions, func(i, j int) bool { return m.Versions[i].Registered.Before(m.Versions[j].Registered) })
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b ModelInfo) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

func cutLast(s, sep string) (string, string, bool) {
	for i := len(s) - len(sep); i >= 0; i-- {
		if s[i:i+len(sep)] == sep {
			return s[:i], s[i+len(sep):], true
		}
	}
	return "", "", false
}

// Model returns one model's description.
func (r *Registry) Model(name string) (ModelInfo, bool) {
	for _, m := range r.Models() {
		if m.Name == name {
			return m, true
		}
	}
	return ModelInfo{}, false
}

// Lookup returns a registered version of a loaded model, with its weights
// and bytes (read back from the log if they had left memory); version ""
// means the active one.
func (r *Registry) Lookup(ctx context.Context, name, version string) (*Version, error) {
	s := r.snap.Load()
	if s.control.Unloaded[name] {
		return nil, unloaded(name)
	}
	if version == "" {
		version = s.control.Active[name]
	}
	v, err := s.version(name, version)
	if err != nil {
		return nil, err
	}
	return r.resident(ctx, v)
}

// ShadowStats compares a shadow version with the active one it runs beside.
type ShadowStats struct {
	Model   string `json:"model"`
	Shadow  string `json:"shadow_version"`
	Active  string `json:"active_version"`
	Count   int64  `json:"count"`
	sumDiff float64
	// MeanAbsDiff and MaxAbsDiff are over |shadow score − active score|.
	MeanAbsDiff float64 `json:"mean_abs_diff"`
	MaxAbsDiff  float64 `json:"max_abs_diff"`
	// AlertDisagreements counts readings where one version's own alert
	// decision differs from the other's.
	AlertDisagreements int64 `json:"alert_disagreements"`
}

// RecordShadow adds one reading scored by both versions, with whether
// each one's decision had an alert open after it.
func (r *Registry) RecordShadow(active, shadow *Version, a, s anomaly.Result, aOpen, sOpen bool) {
	d := math.Abs(a.Score - s.Score)
	r.shadowMu.Lock()
	defer r.shadowMu.Unlock()
	st := r.shadow[shadow.Key()]
	if st == nil {
		st = &ShadowStats{Model: shadow.Name, Shadow: shadow.Version}
		r.shadow[shadow.Key()] = st
	}
	if active != nil {
		st.Active = active.Version
	}
	st.Count++
	st.sumDiff += d
	st.MeanAbsDiff = st.sumDiff / float64(st.Count)
	st.MaxAbsDiff = math.Max(st.MaxAbsDiff, d)
	if aOpen != sOpen {
		st.AlertDisagreements++
	}
}

// ShadowReport returns the comparison for model name's current shadow.
func (r *Registry) ShadowReport(name string) (ShadowStats, bool) {
	s := r.snap.Load()
	v, ok := s.control.Shadow[name]
	if !ok {
		return ShadowStats{}, false
	}
	r.shadowMu.Lock()
	defer r.shadowMu.Unlock()
	if st := r.shadow[name+"@"+v]; st != nil {
		return *st, true
	}
	return ShadowStats{Model: name, Shadow: v, Active: s.control.Active[name]}, true
}
