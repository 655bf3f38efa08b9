package tep

import (
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/trainer/internal/train"
)

// braatz writes n samples as the Braatz files store them: one sample a
// line, or transposed (one variable a line); value of variable j in
// sample k is j + k/1000.
func braatz(t *testing.T, n int, transposed bool) string {
	t.Helper()
	var b strings.Builder
	d := len(Variables)
	val := func(k, j int) float64 { return float64(j) + float64(k)/1000 }
	if transposed {
		for j := range d {
			for k := range n {
				b.WriteString("  " + formatE(val(k, j)))
			}
			b.WriteString("\n")
		}
	} else {
		for k := range n {
			for j := range d {
				b.WriteString("  " + formatE(val(k, j)))
			}
			b.WriteString("\n")
		}
	}
	path := filepath.Join(t.TempDir(), "d00.dat")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func formatE(v float64) string { return strconv.FormatFloat(v, 'e', 7, 64) }

func TestReadFile(t *testing.T) {
	for _, transposed := range []bool{false, true} {
		for _, n := range []int{5, 60} {
			s, err := ReadFile(braatz(t, n, transposed))
			if err != nil {
				t.Fatalf("transposed %v, %d samples: %v", transposed, n, err)
			}
			if s.Rows != n || len(s.Segments) != 1 || s.Step != Step || !slices.Equal(s.Sensors, Variables) || s.Asset != "d00" {
				t.Fatalf("transposed %v: %d rows, %d segments, step %v, asset %s", transposed, s.Rows, len(s.Segments), s.Step, s.Asset)
			}
			for k := range n {
				for j := range Variables {
					if want := float64(j) + float64(k)/1000; math.Abs(s.Segments[0].Row(k)[j]-want) > 1e-12 {
						t.Fatalf("transposed %v: sample %d variable %d = %v, want %v", transposed, k, j, s.Segments[0].Row(k)[j], want)
					}
				}
			}
			if got := s.Segments[0].Time(2).Sub(s.Segments[0].Time(0)); got != 2*Step {
				t.Fatalf("rows %v apart", got/2)
			}
		}
	}
	bad := map[string]string{
		"empty":        "",
		"51 columns":   strings.Repeat("1 ", 51) + "\n",
		"ragged":       strings.Repeat(strings.Repeat("1 ", 10)+"\n", 51) + strings.Repeat("1 ", 9) + "\n",
		"not a number": strings.Repeat("1 ", 51) + "x\n",
	}
	for name, text := range bad {
		path := filepath.Join(t.TempDir(), "bad.dat")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadFile(path); err == nil {
			t.Errorf("%s: read without an error", name)
		}
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "missing.dat")); err == nil || !strings.Contains(err.Error(), "Braatz") {
		t.Errorf("a missing file: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	normal := make([]float64, 100)
	for i := range normal {
		normal[i] = float64(i + 1) // 1 … 100
	}
	normal[0] = math.NaN() // not scored
	thr := threshold5(normal)
	if got := above(normal, 0, thr); got > 0.05 || got < 0.04 {
		t.Errorf("threshold %v flags %v of the normal rows", thr, got)
	}
	if a := auc(normal, []float64{1000, 2000}); a != 1 {
		t.Errorf("separated AUC %v", a)
	}
	if a := auc(normal, []float64{math.NaN(), 1000}); a != 0.5 {
		t.Errorf("an unscored faulty row must count as missed: AUC %v", a)
	}
	if a := auc([]float64{1, 2}, []float64{1, 2}); a != 0.5 {
		t.Errorf("identical AUC %v", a)
	}
	if s := share([]bool{true, false, true, true}, 1); s != 2.0/3 {
		t.Errorf("share %v", s)
	}
	if f := firstFrom([]bool{true, false, false, true}, 1); f != 3 {
		t.Errorf("first %d", f)
	}
}

// TestPCA: rows on a plane of 5 variables plus small noise keep two
// components; a row off the plane has a large SPE, one far along it a large
// T² and a small SPE.
func TestPCA(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	a, b := []float64{1, 2, 0, -1, 1}, []float64{0, 1, 1, 1, -2}
	var rows [][]float64
	for range 400 {
		u, v := rng.NormFloat64(), rng.NormFloat64()
		r := make([]float64, 5)
		for j := range r {
			r[j] = 10 + u*a[j] + v*b[j] + 0.01*rng.NormFloat64()
		}
		rows = append(rows, r)
	}
	p, err := FitPCA(rows, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	if p.K != 2 || p.Explained < 0.99 {
		t.Fatalf("kept %d components explaining %v", p.K, p.Explained)
	}
	along := make([]float64, 5)
	off := make([]float64, 5)
	for j := range along {
		along[j] = 10 + 6*a[j]
		off[j] = 10
	}
	off[2] += 1 // against the plane's pattern
	t2, spe := p.Stats(along)
	if t2 < 20 || spe > 1 {
		t.Errorf("along the plane: T² %v SPE %v", t2, spe)
	}
	if _, spe := p.Stats(off); spe < 10*p.LimitSPE {
		t.Errorf("off the plane: SPE %v, limit %v", spe, p.LimitSPE)
	}
}

// dataDir is the public data folder, or "" with the reason it is missing.
func dataDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("PDM_DATASETS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "..", "shared", "datasets")
	}
	dir = filepath.Join(dir, "tep")
	if _, err := os.Stat(filepath.Join(dir, "d21_te.dat")); err != nil {
		t.Skipf("the Tennessee Eastman files are not in %s (set PDM_DATASETS to the folder holding tep/ with d00.dat … d21_te.dat): %v", dir, err)
	}
	return dir
}

// TestBenchmarkOnTheFiles runs the benchmark on the real files with a
// small, quick model and checks what does not depend on training: the PCA
// baseline reproduces the data set's published reference, and every
// figure is computed as its definition says.
func TestBenchmarkOnTheFiles(t *testing.T) {
	dir := dataDir(t)
	spec := train.Spec{Kind: model.Reconstruction, HoldOut: -1, Reconstruction: anomaly.ReconstructionConfig{Window: 1, Epochs: 10}}
	rep, err := Run(context.Background(), Options{Dir: dir, Spec: spec, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	near := func(name string, got, want, tol float64) {
		t.Helper()
		if math.Abs(got-want) > tol {
			t.Errorf("%s = %.3f, reference %.3f ± %.2f", name, got, want, tol)
		}
	}
	if rep.PCA.K != 31 {
		t.Errorf("PCA keeps %d components for 90 %% of the variance, reference 31", rep.PCA.K)
	}
	near("PCA T² mean FDR over 18 at 5 % FAR", rep.Mean18.At5[T2], 0.728, 0.02)
	near("PCA SPE mean FDR over 18 at 5 % FAR", rep.Mean18.At5[SPE], 0.785, 0.02)
	near("PCA T² FAR at the 99th-percentile limit", rep.Normal.Limit99[0], 0.075, 0.02)
	near("PCA SPE FAR at the 99th-percentile limit", rep.Normal.Limit99[1], 0.23, 0.02)
	if rep.Train.TrainRows != 500 || len(rep.Faults) != Faults {
		t.Fatalf("trained on %d rows, %d faults", rep.Train.TrainRows, len(rep.Faults))
	}
	for m := range methods {
		if far := rep.Normal.At5[m]; far > 0.05 || far < 0.04 {
			t.Errorf("%s: FAR at the 5 %% threshold is %.3f", MethodNames[m], far)
		}
	}
	var sum18, sum21 float64
	for i, r := range rep.Faults {
		if r.Fault != i+1 {
			t.Fatalf("row %d is fault %d", i, r.Fault)
		}
		for _, v := range []float64{r.Alerts, r.AlertsKept, r.At5[Ours], r.At5[T2], r.At5[SPE], r.AUC[Ours], r.AUC[T2], r.AUC[SPE]} {
			if !(v >= 0 && v <= 1) {
				t.Fatalf("fault %d: a share or AUC outside [0, 1]: %+v", r.Fault, r)
			}
		}
		if (r.AlertsKept > 0) != (r.FirstAlert >= 0) {
			t.Errorf("fault %d: alerts on %v of the rows, first alert at row %d", r.Fault, r.AlertsKept, r.FirstAlert)
		}
		sum21 += r.At5[SPE]
		if !slices.Contains(Undetectable, r.Fault) {
			sum18 += r.At5[SPE]
		}
	}
	near("mean over 18 recomputed", rep.Mean18.At5[SPE], sum18/18, 1e-12)
	near("mean over 21 recomputed", rep.Mean21.At5[SPE], sum21/21, 1e-12)
	if a, err := anomaly.FromArtifact(rep.Train.Artifact); err != nil || a == nil {
		t.Fatalf("the trained artifact does not build the scorer's detector: %v", err)
	}
}

// TestValidateOnD00: the cross-validation reads only d00 and gives shares
// in range for every synthetic fault.
func TestValidateOnD00(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the cross-validation trains 5 models and scores 1,560 streams (about 10 s on 2 cores)")
	}
	dir := dataDir(t)
	spec := train.Spec{Kind: model.Reconstruction, Reconstruction: anomaly.ReconstructionConfig{Window: 1, Epochs: 5}}
	v, err := ValidateDir(context.Background(), dir, spec, 5)
	if err != nil {
		t.Fatal(err)
	}
	if v.Rows != 500-validateContext || len(v.Detect) != len(Synthetic) {
		t.Fatalf("%d clean rows, %d faults", v.Rows, len(v.Detect))
	}
	for k, name := range Synthetic {
		if !(v.Detect[k] >= 0 && v.Detect[k] <= 1 && v.AUC[k] >= 0 && v.AUC[k] <= 1) {
			t.Errorf("%s: detect %v AUC %v", name, v.Detect[k], v.AUC[k])
		}
	}
	if _, err := ValidateDir(context.Background(), dir, spec, 1); err == nil {
		t.Error("one fold validated")
	}
}
