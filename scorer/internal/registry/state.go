// Package registry keeps the versions of every model and which version is
// active, durably, in a compacted Kafka topic, and tells the scoring loop
// which detector to use for each asset.
//
// Records (key → value), all on partition 0 so they are applied in order:
//
//	artifact/{name}/{version} → the artifact JSON, as uploaded
//	control                   → the whole Control document
//
// Compaction keeps the last record of each key: every artifact and the
// latest control survive forever, and a new instance rebuilds the registry
// by reading the topic from the start.
//
// Invariants:
//   - Only artifacts that pass model.Load (format, sha256, consistency),
//     carry a signature by a trusted key (SetTrust; unless the trust
//     accepts unsigned artifacts) and build a detector enter the registry;
//     anything else is refused with the reason and changes nothing, on
//     upload and when read from the topic alike.
//   - A control record naming a version the registry lacks leaves that
//     model's active version as it was.
//   - Resolve reads one immutable snapshot, so a swap happens between two
//     readings and never in the middle of one.
package registry

import (
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/nn"
)

// Factory builds a fresh detector for one asset from an artifact.
type Factory func(a *model.Artifact) (anomaly.Detector, error)

// Version is one loaded model version. It is immutable once registered.
type Version struct {
	Name     string
	Version  string
	SHA256   string
	Features []string
	Kind     model.Kind
	// SignedBy is the id of the key that signed the artifact ("" when it
	// was accepted unsigned).
	SignedBy string
	Artifact *model.Artifact
	// Raw is the artifact as uploaded; nil while the version is not
	// resident (see Registry.SetCacheBytes).
	Raw []byte
	// Size is the length of the artifact as uploaded.
	Size       int
	Registered time.Time
	// New builds a detector for one asset; nil while not resident.
	New func() (anomaly.Detector, error)
	// used is when the version was last looked up (Unix nanoseconds), for
	// choosing which one leaves memory first.
	used atomic.Int64
}

// Key is name@version.
func (v *Version) Key() string { return v.Name + "@" + v.Version }

// resident reports whether the version's weights and bytes are in memory.
func (v *Version) resident() bool { return v.Raw != nil }

// evicted returns v without its weights and bytes: what lists, lineage and
// feature checks need, and a small fraction of its memory.
func (v *Version) evicted() *Version {
	a := *v.Artifact
	a.Weights, a.Scaler = nil, nn.Scaler{}
	out := &Version{Name: v.Name, Version: v.Version, SHA256: v.SHA256, Features: v.Features, Kind: v.Kind, SignedBy: v.SignedBy, Artifact: &a,
		Size: v.Size, Registered: v.Registered}
	out.used.Store(v.used.Load())
	return out
}

// Pin binds an asset to a model, optionally to one version of it.
type Pin struct {
	Model   string `json:"model"`
	Version string `json:"version,omitempty"`
}

// Control is which version of each model is in use. It is stored whole, so
// the latest record is the complete state.
type Control struct {
	// Rev increases with every change.
	Rev uint64 `json:"rev"`
	// Default is the model for assets without a pin; empty means the online
	// learner.
	Default string `json:"default,omitempty"`
	// Active maps a model name to its active version.
	Active map[string]string `json:"active"`
	// History holds each model's previously active versions, latest last,
	// for rollback.
	History map[string][]string `json:"history"`
	// Shadow maps a model name to a candidate scored beside the active one.
	Shadow map[string]string `json:"shadow"`
	// Pins binds assets to models or versions.
	Pins map[string]Pin `json:"pins"`
	// Sites maps a site to the model of its assets without a pin or a
	// class.
	Sites map[string]string `json:"sites,omitempty"`
	// Classes maps a class, a pattern over asset ids (path.Match: "pump-*"),
	// to the model of the assets it matches that have no pin; when several
	// match, the longest pattern wins.
	Classes map[string]string `json:"classes,omitempty"`
	// Unloaded holds the models taken out of the repository (the Open
	// Inference Protocol's unload): not servable, not activatable, their
	// versions kept for a later load.
	Unloaded map[string]bool `json:"unloaded,omitempty"`
}

func (c Control) clone() Control {
	out := Control{Rev: c.Rev, Default: c.Default, Active: maps.Clone(c.Active), Shadow: maps.Clone(c.Shadow), Pins: maps.Clone(c.Pins),
		Sites: maps.Clone(c.Sites), Classes: maps.Clone(c.Classes), Unloaded: maps.Clone(c.Unloaded), History: map[string][]string{}}
	for k, v := range c.History {
		out.History[k] = slices.Clone(v)
	}
	if out.Active == nil {
		out.Active = map[string]string{}
	}
	if out.Shadow == nil {
		out.Shadow = map[string]string{}
	}
	if out.Pins == nil {
		out.Pins = map[string]Pin{}
	}
	if out.Sites == nil {
		out.Sites = map[string]string{}
	}
	if out.Classes == nil {
		out.Classes = map[string]string{}
	}
	if out.Unloaded == nil {
		out.Unloaded = map[string]bool{}
	}
	return out
}

// modelOf is the model that scores asset of site under c, and the version
// its pin names ("" for the model's active one): a pin, else the longest
// class pattern matching the asset, else the site's model, else the
// default, else fallback.
func (c *Control) modelOf(site, asset, fallback string) (name, version string) {
	if p, ok := c.Pins[asset]; ok {
		return p.Model, p.Version
	}
	best := ""
	for pat, m := range c.Classes {
		if ok, _ := path.Match(pat, asset); ok && (len(pat) > len(best) || (len(pat) == len(best) && pat < best)) {
			best, name = pat, m
		}
	}
	if best != "" {
		return name, ""
	}
	if m := c.Sites[site]; m != "" {
		return m, ""
	}
	if c.Default != "" {
		return c.Default, ""
	}
	return fallback, ""
}

// Binding is what scores one asset: the active version, nil for the online
// learner, and a shadow candidate, if any.
type Binding struct {
	Active *Version
	Shadow *Version
}

// snapshot is an immutable view of the registry.
type snapshot struct {
	control  Control
	versions map[string]*Version // by Key
	// refused lists why artifacts were refused, by name@version.
	refused map[string]string
}

// live lists the keys of the versions c scores with: active, shadow and
// pinned ones. They stay resident whatever the cache's budget.
func (c *Control) live() map[string]bool {
	out := map[string]bool{}
	for name, v := range c.Active {
		out[name+"@"+v] = true
	}
	for name, v := range c.Shadow {
		out[name+"@"+v] = true
	}
	for _, p := range c.Pins {
		if p.Version != "" {
			out[p.Model+"@"+p.Version] = true
		}
	}
	return out
}

// hasModel reports whether any version of name is registered.
func (s *snapshot) hasModel(name string) bool {
	for _, v := range s.versions {
		if v.Name == name {
			return true
		}
	}
	return false
}

func (s *snapshot) resolve(site, asset, fallback string) Binding {
	name, version := s.control.modelOf(site, asset, fallback)
	if name == "" {
		return Binding{}
	}
	if version == "" {
		version = s.control.Active[name]
	}
	b := Binding{Active: s.versions[name+"@"+version]}
	if sv, ok := s.control.Shadow[name]; ok && sv != version {
		b.Shadow = s.versions[name+"@"+sv]
	}
	return b
}

// Record keys.
const (
	controlKey     = "control"
	artifactPrefix = "artifact/"
)

func artifactKey(name, version string) string { return artifactPrefix + name + "/" + version }

// loadVersion verifies raw (checksum, consistency, then its signature
// against trust; a nil trust refuses everything) and builds a Version;
// every failure wraps ErrRefused with the reason.
func loadVersion(raw []byte, factory Factory, trust *model.Trust, now time.Time) (*Version, error) {
	a, err := model.Load(strings.NewReader(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if trust == nil {
		trust = &model.Trust{}
	}
	signer, err := trust.Verify(a)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if factory == nil {
		return nil, fmt.Errorf("%w: no detector factory", ErrRefused)
	}
	if _, err := factory(a); err != nil {
		return nil, fmt.Errorf("%w: load %s %s: %w", ErrRefused, a.Name, a.Version, err)
	}
	return &Version{
		Name: a.Name, Version: a.Version, SHA256: a.SHA256, Features: slices.Clone(a.Features), Kind: a.Kind,
		SignedBy: signer, Artifact: a, Raw: raw, Size: len(raw), Registered: now,
		New: func() (anomaly.Detector, error) { return factory(a) },
	}, nil
}

// applyControl returns the snapshot after a control record: versions the
// registry lacks are left as they were.
func (s *snapshot) applyControl(c Control) (*snapshot, []string) {
	next := &snapshot{control: c.clone(), versions: s.versions, refused: s.refused}
	var ignored []string
	has := func(name, v string) bool { ver := s.versions[name+"@"+v]; return ver != nil && ver.resident() }
	for name, v := range next.control.Active {
		if !has(name, v) {
			ignored = append(ignored, fmt.Sprintf("active %s@%s", name, v))
			if old, ok := s.control.Active[name]; ok {
				next.control.Active[name] = old
			} else {
				delete(next.control.Active, name)
			}
		}
	}
	for name, v := range next.control.Shadow {
		if !has(name, v) {
			ignored = append(ignored, fmt.Sprintf("shadow %s@%s", name, v))
			delete(next.control.Shadow, name)
		}
	}
	for asset, p := range next.control.Pins {
		if p.Version != "" && !has(p.Model, p.Version) {
			ignored = append(ignored, fmt.Sprintf("pin %s→%s@%s", asset, p.Model, p.Version))
			if old, ok := s.control.Pins[asset]; ok {
				next.control.Pins[asset] = old
			} else {
				delete(next.control.Pins, asset)
			}
		}
	}
	return next, ignored
}

func (s *snapshot) withVersion(v *Version) *snapshot {
	next := s.withVersions()
	next.versions[v.Key()] = v
	return next
}

// withVersions returns s with a copy of its versions map to change.
func (s *snapshot) withVersions() *snapshot {
	vs := maps.Clone(s.versions)
	if vs == nil {
		vs = map[string]*Version{}
	}
	return &snapshot{control: s.control, versions: vs, refused: s.refused}
}

func (s *snapshot) withRefused(key, reason string) *snapshot {
	r := maps.Clone(s.refused)
	if r == nil {
		r = map[string]string{}
	}
	r[key] = reason
	return &snapshot{control: s.control, versions: s.versions, refused: r}
}

func decodeControl(b []byte) (Control, error) {
	var c Control
	if err := json.Unmarshal(b, &c); err != nil {
		return Control{}, fmt.Errorf("decode control: %w", err)
	}
	return c.clone(), nil
}
