package model

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/nn"
)

func sample(t testing.TB) *Artifact {
	t.Helper()
	spec := nn.Spec{Sizes: []int{4, 2, 4}, Acts: []nn.Activation{nn.Tanh, nn.Linear}}
	n, err := nn.New(spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	return &Artifact{
		Kind: Reconstruction, Name: "pump-7", Version: "v2", ParentVersion: "v1",
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Features:  []string{"current", "pressure"}, Window: 2,
		Architecture: SpecArchitecture(spec),
		Scaler:       nn.Scaler{Mean: []float64{1, 2}, Std: []float64{0.5, 3}},
		Weights:      n.Params,
		Calibration:  &Calibration{LogMean: -2, LogStd: 0.7, Smoothing: 0.2},
		Training:     Training{From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), Rows: 400, Seed: 1},
		Metrics:      map[string]float64{"val_mse": 0.01},
	}
}

func encode(t testing.TB, a *Artifact) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := a.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestRoundTrip(t *testing.T) {
	a := sample(t)
	b := encode(t, a)
	got, err := Load(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got.SHA256 != a.SHA256 || got.Version != "v2" || len(got.Weights) != len(a.Weights) {
		t.Fatalf("round trip lost data: %+v", got)
	}
	for i := range a.Weights {
		if a.Weights[i] != got.Weights[i] {
			t.Fatalf("weight %d: %v became %v", i, a.Weights[i], got.Weights[i])
		}
	}
	n, err := got.Network()
	if err != nil {
		t.Fatal(err)
	}
	if n.InputSize() != 4 {
		t.Fatalf("input %d", n.InputSize())
	}
	if err := got.CheckFeatures([]string{"pressure", "current", "extra"}); err != nil {
		t.Fatal(err)
	}
	if err := got.CheckFeatures([]string{"pressure"}); !errors.Is(err, ErrFeatures) {
		t.Fatalf("missing feature: %v", err)
	}
}

func TestFileRoundTrip(t *testing.T) {
	a := sample(t)
	path := filepath.Join(t.TempDir(), "a.json")
	if err := a.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.SHA256 != a.SHA256 || len(got.Weights) != len(a.Weights) {
		t.Fatalf("file round trip lost data: %+v", got)
	}
	if err := os.WriteFile(path, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = LoadFile(path)
	if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrChecksum) {
		t.Fatalf("an empty object: %v", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Fatalf("the error does not name the file: %v", err)
	}
	if _, err := LoadFile(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("a missing file: want an error")
	}
	if err := a.WriteFile(filepath.Join(t.TempDir(), "no", "such", "dir.json")); err == nil {
		t.Fatal("an impossible path: want an error")
	}
}

func TestLoadRefusesTampering(t *testing.T) {
	good := string(encode(t, sample(t)))
	reseal := func(mut func(*Artifact)) string {
		a := sample(t)
		mut(a)
		a.Format, a.FormatVersion = Format, FormatVersion
		s, err := a.Sum()
		if err != nil {
			t.Fatal(err)
		}
		a.SHA256 = s
		var b bytes.Buffer
		// Written without Seal so the invalid content reaches Load.
		if err := jsonEncode(&b, a); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	cases := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrFormat},
		{"not json", "hello", ErrFormat},
		{"truncated", good[:len(good)/2], ErrFormat},
		{"trailing", good + "{}", ErrFormat},
		{"unknown field", strings.Replace(good, `"kind"`, `"colour": 1, "kind"`, 1), ErrFormat},
		{"version", strings.Replace(good, `"format_version": 2`, `"format_version": 1`, 1), ErrFormat},
		{"edited name", strings.Replace(good, "pump-7", "pump-8", 1), ErrChecksum},
		{"edited feature", strings.Replace(good, `"pressure"`, `"volume"`, 1), ErrChecksum},
		{"edited checksum", strings.Replace(good, `"sha256": "`, `"sha256": "0`, 1), ErrChecksum},
		{"weights short", reseal(func(a *Artifact) { a.Weights = a.Weights[:3] }), ErrInvalid},
		{"window mismatch", reseal(func(a *Artifact) { a.Window = 3 }), ErrInvalid},
		{"kind", reseal(func(a *Artifact) { a.Kind = "oracle" }), ErrInvalid},
		{"duplicate feature", reseal(func(a *Artifact) { a.Features = []string{"a", "a"} }), ErrInvalid},
		{"scaler short", reseal(func(a *Artifact) { a.Scaler.Std = a.Scaler.Std[:1] }), ErrInvalid},
		{"zero std", reseal(func(a *Artifact) { a.Scaler.Std[0] = 0 }), ErrInvalid},
		{"no calibration", reseal(func(a *Artifact) { a.Calibration = nil }), ErrInvalid},
		{"smoothing above 1", reseal(func(a *Artifact) { a.Calibration.Smoothing = 2 }), ErrInvalid},
		{"centred unknown", reseal(func(a *Artifact) { a.Centred = []string{"flow"} }), ErrInvalid},
		{"activation", reseal(func(a *Artifact) { a.Architecture.Activations[0] = "swish" }), ErrInvalid},
		{"forecaster horizon", reseal(func(a *Artifact) { a.Kind = Forecaster }), ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(strings.NewReader(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestByteFlipsNeverLoad(t *testing.T) {
	good := encode(t, sample(t))
	for i := 0; i < len(good); i += 7 {
		b := append([]byte(nil), good...)
		b[i] ^= 0x01
		if a, err := Load(bytes.NewReader(b)); err == nil {
			// A flip inside insignificant whitespace still loads and must
			// then be the same content.
			if a.SHA256 != sample(t).mustSum(t) {
				t.Fatalf("flip at %d loaded different content", i)
			}
		}
	}
}

func (a *Artifact) mustSum(t *testing.T) string {
	t.Helper()
	a.Format, a.FormatVersion = Format, FormatVersion
	s, err := a.Sum()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSeedCorpus keeps testdata/valid.json loadable: the fuzz target starts
// from it.
func TestSeedCorpus(t *testing.T) {
	b, err := os.ReadFile("testdata/valid.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
}

func FuzzLoad(f *testing.F) {
	if b, err := os.ReadFile("testdata/valid.json"); err == nil {
		f.Add(b)
		f.Add(b[:len(b)/3])
	}
	f.Add([]byte(`{"format":"pdm-model","format_version":2}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Load(bytes.NewReader(b))
		if err != nil {
			return
		}
		// Whatever loads must build its network.
		if _, err := a.Network(); err != nil {
			t.Fatalf("loaded artifact does not build: %v", err)
		}
	})
}
