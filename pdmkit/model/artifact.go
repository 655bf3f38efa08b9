// Package model is the on-disk format of a trained network: one
// self-describing, versioned JSON document that the trainer writes and the
// scorer loads. Everything needed to score (architecture, weights, features
// in order, scaler, calibration) travels in the artifact, a sha256 over
// the content guards it, and an optional ed25519 signature over the same
// bytes says who made it (Sign, Trust; the rule is in sign.go).
//
// Invariants: Load never panics on any input; an artifact that Load returns
// builds a network (Network) without error; the checksum covers every field
// except itself, computed over the document as Load decodes and Sum
// re-encodes it, so the file's whitespace and the spelling of its numbers
// do not matter but any changed value does.
//
// The checksum rule (Sum), for anyone computing it outside Go: the
// lowercase hex SHA-256 of the artifact's canonical bytes (Canonical), its
// encoding by Go's encoding/json Marshal with "sha256" set to "" and
// "signature" left out. That encoding is one line without
// whitespace; object keys in the order of the struct fields (format,
// format_version, kind, name, version, parent_version, created_at,
// features, window, centred, input_smoothing, horizon, architecture
// {sizes, activations}, scaler {mean, std}, weights, calibration
// {log_mean, log_std, smoothing, active {cut, log_mean, log_std}}, health
// {limit, step_seconds}, training {from, to, rows, seed, assets, data_hash,
// job, trainer}, metrics, sha256), "sha256":"" included, "signature" not; the optional
// fields left out when zero or empty (parent_version, centred,
// input_smoothing, horizon, calibration, active, health, metrics and
// training's assets, data_hash, job, trainer); every number in the
// shortest form that reads back as the same float64, a whole number
// without a decimal point (1, not 1.0), exponent form only below 1e-6 or
// from 1e21, the exponent without leading zeros (1e-7, 1e+21);
// times in RFC 3339, UTC as Z, fractional seconds only as long as needed;
// metrics keys sorted; <, > and & in strings as \u003c, \u003e, \u0026.
// Python's json.dumps differs (1.0, 1e-07, spaces after , and :), which
// is why `scorer model seal` computes it.
package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/pdmstream/pdm/pdmkit/nn"
	"github.com/pdmstream/pdm/pdmkit/strictjson"
)

// Format names the document type; FormatVersion is bumped on any change that
// an older loader could misread.
const (
	Format        = "pdm-model"
	FormatVersion = 2
	// MaxSize bounds what Load reads, so a hostile upload cannot exhaust
	// memory.
	MaxSize = 64 << 20
)

// Kind is what the network computes.
type Kind string

// The model kinds.
const (
	// Reconstruction is an autoencoder over a window of readings.
	Reconstruction Kind = "reconstruction"
	// Forecaster predicts the next Horizon steps of each feature from a
	// window.
	Forecaster Kind = "forecaster"
	// RUL regresses remaining useful life (in cycles) from a window.
	RUL Kind = "rul"
)

// Sentinel errors; Load wraps them with the detail.
var (
	// ErrFormat: not a pdm-model document or a version this code cannot read.
	ErrFormat = errors.New("model: not a supported artifact")
	// ErrChecksum: the content does not match its sha256 (corrupted or edited).
	ErrChecksum = errors.New("model: checksum mismatch")
	// ErrInvalid: the document is well formed but inconsistent.
	ErrInvalid = errors.New("model: invalid artifact")
	// ErrFeatures: the artifact's features differ from what the caller has.
	ErrFeatures = errors.New("model: feature mismatch")
)

// Artifact is one trained model version.
type Artifact struct {
	Format        string    `json:"format"`
	FormatVersion int       `json:"format_version"`
	Kind          Kind      `json:"kind"`
	Name          string    `json:"name"`
	Version       string    `json:"version"`
	ParentVersion string    `json:"parent_version,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	// Features are the sensor names in the order the input expects.
	Features []string `json:"features"`
	// Window is how many consecutive readings form one input (≥ 1); the
	// network input is Window×len(Features) values, oldest reading first.
	Window int `json:"window"`
	// Centred are features whose window mean is removed before the network
	// sees them and whose error is not scored (slowly drifting context such
	// as a temperature); a subset of Features.
	Centred []string `json:"centred,omitempty"`
	// InputSmoothing, when above 0, is the weight of the newest reading in
	// an exponential moving average applied to each feature (after scaling)
	// before windowing; 0 means raw readings.
	InputSmoothing float64 `json:"input_smoothing,omitempty"`
	// Horizon is how many future steps a forecaster predicts (0 otherwise).
	Horizon      int          `json:"horizon,omitempty"`
	Architecture Architecture `json:"architecture"`
	// Scaler standardises each feature before windowing.
	Scaler nn.Scaler `json:"scaler"`
	// Weights is the network's parameter vector (nn.Network.Params).
	Weights []float64 `json:"weights"`
	// Calibration maps raw error to a score in [0, 1]; required for
	// reconstruction and forecaster kinds.
	Calibration *Calibration `json:"calibration,omitempty"`
	// Health is the forecaster's failure limit for time to failure.
	Health *Health `json:"health,omitempty"`
	// Training describes the data the model was trained on.
	Training Training `json:"training"`
	// Metrics are validation results (name → value).
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// SHA256 is the hex digest of the artifact as Sum encodes it, with this
	// field empty (the rule is in the package documentation).
	SHA256 string `json:"sha256"`
	// Signature, when set, is an ed25519 signature of the canonical bytes
	// (see Sign); neither the checksum nor the signature covers it.
	Signature *Signature `json:"signature,omitempty"`
}

// Architecture mirrors nn.Spec with activations by name.
type Architecture struct {
	Sizes       []int    `json:"sizes"`
	Activations []string `json:"activations"`
}

// Calibration turns a raw error e into evidence z = (ln e − LogMean)/LogStd
// and a score anomaly.Score(z) (Student's t with three degrees of freedom),
// under the error distribution seen on normal data the model did not train
// on. The raw error is the sum over features of each feature's smoothed
// mean squared error over the window. Alert levels are not the model's:
// they belong to the decision (pdmkit/monitor), the same for every model.
type Calibration struct {
	LogMean float64 `json:"log_mean"`
	LogStd  float64 `json:"log_std"`
	// Smoothing is the weight of the newest error in the exponential
	// moving average of each feature's error (1 = no smoothing).
	Smoothing float64 `json:"smoothing"`
	// Active, when set, calibrates the readings taken while the machine
	// moves: those whose window change (the largest difference, over the
	// scaled features, between the window's newest and oldest reading,
	// smoothed like the errors) is above Active.Cut.
	Active *Band `json:"active,omitempty"`
}

// Band is the calibration of the readings above a level of change.
type Band struct {
	Cut     float64 `json:"cut"`
	LogMean float64 `json:"log_mean"`
	LogStd  float64 `json:"log_std"`
}

// Health says when a forecaster's health indicator (the calibrated score)
// counts as failed, and how many seconds one step is.
type Health struct {
	Limit       float64 `json:"limit"`
	StepSeconds float64 `json:"step_seconds"`
}

// Training is the data window a model learned from.
type Training struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	Rows int       `json:"rows"`
	Seed uint64    `json:"seed"`
	// The lineage of a trained model: the assets whose history it learnt,
	// the hash of that data (trainer/internal/history's Series.Hash, in
	// asset order), the trainer's job and the trainer's build.
	Assets   []string `json:"assets,omitempty"`
	DataHash string   `json:"data_hash,omitempty"`
	Job      string   `json:"job,omitempty"`
	Trainer  string   `json:"trainer,omitempty"`
}

// Spec converts the architecture for nn.
func (a *Artifact) Spec() (nn.Spec, error) {
	s := nn.Spec{Sizes: a.Architecture.Sizes}
	for _, name := range a.Architecture.Activations {
		act, err := nn.ParseActivation(name)
		if err != nil {
			return nn.Spec{}, err
		}
		s.Acts = append(s.Acts, act)
	}
	return s, s.Validate()
}

// SpecArchitecture converts an nn.Spec for storage.
func SpecArchitecture(s nn.Spec) Architecture {
	a := Architecture{Sizes: append([]int(nil), s.Sizes...)}
	for _, act := range s.Acts {
		a.Activations = append(a.Activations, act.String())
	}
	return a
}

// Network builds the network the artifact describes.
func (a *Artifact) Network() (*nn.Network, error) {
	s, err := a.Spec()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	n, err := nn.FromParams(s, a.Weights)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return n, nil
}

// Canonical returns the artifact's canonical bytes: the encoding the
// checksum and the signature cover, with "sha256" set to "" and
// "signature" left out (the rule is in the package documentation).
func (a *Artifact) Canonical() ([]byte, error) {
	c := *a
	c.SHA256, c.Signature = "", nil
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("model: encode: %w", err)
	}
	return b, nil
}

// Sum computes the checksum of the artifact's content: the hex SHA-256 of
// Canonical.
func (a *Artifact) Sum() (string, error) {
	b, err := a.Canonical()
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), nil
}

// Validate checks the artifact's internal consistency.
func (a *Artifact) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if a.Format != Format || a.FormatVersion != FormatVersion {
		return fmt.Errorf("%w: format %q version %d (this build reads %q version %d)", ErrFormat, a.Format, a.FormatVersion, Format, FormatVersion)
	}
	switch a.Kind {
	case Reconstruction, Forecaster, RUL:
	default:
		return bad("unknown kind %q", a.Kind)
	}
	if a.Name == "" || a.Version == "" {
		return bad("name %q and version %q must both be set", a.Name, a.Version)
	}
	if len(a.Features) == 0 {
		return bad("no features")
	}
	seen := make(map[string]bool, len(a.Features))
	for _, f := range a.Features {
		if f == "" || seen[f] {
			return bad("feature name %q empty or repeated", f)
		}
		seen[f] = true
	}
	if !(a.InputSmoothing >= 0 && a.InputSmoothing <= 1) {
		return bad("input smoothing %v must be in [0, 1]", a.InputSmoothing)
	}
	if a.Window < 1 || a.Window > 10000 {
		return bad("window %d out of range [1, 10000]", a.Window)
	}
	for _, c := range a.Centred {
		if !seen[c] {
			return bad("centred feature %q is not a feature", c)
		}
	}
	if err := a.Scaler.Validate(len(a.Features)); err != nil {
		return bad("%v", err)
	}
	spec, err := a.Spec()
	if err != nil {
		return bad("%v", err)
	}
	d := len(a.Features)
	if want := a.Window * d; spec.Sizes[0] != want {
		return bad("network input %d, but window %d × %d features = %d", spec.Sizes[0], a.Window, d, want)
	}
	out := spec.Sizes[len(spec.Sizes)-1]
	switch a.Kind {
	case Reconstruction:
		if out != spec.Sizes[0] {
			return bad("reconstruction output %d must equal input %d", out, spec.Sizes[0])
		}
	case Forecaster:
		if a.Horizon < 1 || out != a.Horizon*d {
			return bad("forecaster output %d, but horizon %d × %d features", out, a.Horizon, d)
		}
	case RUL:
		if out != 1 {
			return bad("rul output %d, want 1", out)
		}
	}
	if len(a.Weights) != spec.NumParams() {
		return bad("%d weights for an architecture with %d parameters (truncated?)", len(a.Weights), spec.NumParams())
	}
	for i, w := range a.Weights {
		if math.IsNaN(w) || math.IsInf(w, 0) {
			return bad("weight %d is not finite", i)
		}
	}
	if a.Kind != RUL {
		c := a.Calibration
		if c == nil {
			return bad("%s model without calibration", a.Kind)
		}
		if !finite(c.LogMean) || !(c.LogStd > 0) || !finite(c.LogStd) {
			return bad("calibration log_mean %v log_std %v", c.LogMean, c.LogStd)
		}
		if !(c.Smoothing > 0 && c.Smoothing <= 1) {
			return bad("calibration smoothing %v must be in (0, 1]", c.Smoothing)
		}
		if b := c.Active; b != nil && (!finite(b.Cut) || b.Cut < 0 || !finite(b.LogMean) || !(b.LogStd > 0) || !finite(b.LogStd)) {
			return bad("calibration active band cut %v log_mean %v log_std %v", b.Cut, b.LogMean, b.LogStd)
		}
	}
	if a.Health != nil && (!(a.Health.Limit > 0 && a.Health.Limit < 1) || !(a.Health.StepSeconds > 0) || !finite(a.Health.StepSeconds)) {
		return bad("health limit %v step %v s", a.Health.Limit, a.Health.StepSeconds)
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Seal validates the artifact and sets its checksum.
func (a *Artifact) Seal() error {
	if a.Format == "" {
		a.Format, a.FormatVersion = Format, FormatVersion
	}
	if err := a.Validate(); err != nil {
		return err
	}
	s, err := a.Sum()
	if err != nil {
		return err
	}
	a.SHA256 = s
	return nil
}

// Write seals the artifact and writes it as indented JSON.
func (a *Artifact) Write(w io.Writer) error {
	if err := a.Seal(); err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(a)
}

// WriteFile writes the artifact to a new file at path (see Write).
func (a *Artifact) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	if err := a.Write(f); err != nil {
		f.Close()
		return fmt.Errorf("model: %s: %w", path, err)
	}
	return f.Close()
}

// LoadFile loads the artifact in the file at path (see Load).
func LoadFile(path string) (*Artifact, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	defer f.Close()
	a, err := Load(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// Load reads, verifies and validates an artifact. Every failure is an error
// wrapping one of the sentinels above.
func Load(r io.Reader) (*Artifact, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("model: read: %w", err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, MaxSize)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrFormat)
	}
	var a Artifact
	if err := strictjson.Unmarshal(b, &a); errors.Is(err, strictjson.ErrTrailing) {
		return nil, fmt.Errorf("%w: trailing data after the artifact", ErrFormat)
	} else if err != nil {
		return nil, fmt.Errorf("%w: decode (truncated or corrupted?): %v", ErrFormat, err)
	}
	if a.Format != Format || a.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("%w: format %q version %d (this build reads %q version %d)", ErrFormat, a.Format, a.FormatVersion, Format, FormatVersion)
	}
	sum, err := a.Sum()
	if err != nil {
		return nil, err
	}
	if a.SHA256 != sum {
		return nil, fmt.Errorf("%w: stored %q, content hashes to %q", ErrChecksum, a.SHA256, sum)
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return &a, nil
}

// CheckFeatures reports whether have (the asset's sensors) covers the
// artifact's features; scorers refuse a model whose features an asset lacks.
func (a *Artifact) CheckFeatures(have []string) error {
	set := make(map[string]bool, len(have))
	for _, h := range have {
		set[h] = true
	}
	var missing []string
	for _, f := range a.Features {
		if !set[f] {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: asset lacks %v needed by %s %s", ErrFeatures, missing, a.Name, a.Version)
	}
	return nil
}
