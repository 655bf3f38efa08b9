package cmapss

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/model/modeltest"
	"github.com/pdmstream/pdm/pdmkit/rul"
)

// line is one C-MAPSS row of unit at cycle whose sensor s2 wears with
// left cycles of life remaining; the other sensors are flat.
func line(unit, cycle, left int) string {
	f := []string{fmt.Sprint(unit), fmt.Sprint(cycle), "-0.0007", "-0.0004", "100.0"}
	for i := 1; i <= 21; i++ {
		v := 1.5
		if i == 2 {
			v = 640 + 5*math.Exp(-float64(left)/30) + 0.01*float64((cycle*7+unit)%5)
		}
		f = append(f, fmt.Sprint(v))
	}
	return strings.Join(f, " ") + "  \n"
}

// fleet writes the subset "FD900" into dir: train units run to failure,
// test units stop leftAt cycles before theirs.
func fleet(t *testing.T, dir string, train, test int) {
	t.Helper()
	var tr, te, truth strings.Builder
	for u := 1; u <= train; u++ {
		life := 100 + 7*u%60
		for c := 1; c <= life; c++ {
			tr.WriteString(line(u, c, life-c))
		}
	}
	for u := 1; u <= test; u++ {
		life, left := 110+5*u%50, 10+3*u%40
		for c := 1; c <= life-left; c++ {
			te.WriteString(line(u, c, life-c))
		}
		fmt.Fprintf(&truth, "%d\n", left)
	}
	for name, s := range map[string]string{"train_FD900.txt": tr.String(), "test_FD900.txt": te.String(), "RUL_FD900.txt": truth.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.txt")
	if err := os.WriteFile(path, []byte(line(1, 1, 5)+line(1, 2, 4)+line(2, 1, 9)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 2 || s[0].Asset != "1" || s[0].Rows != 2 || s[1].Rows != 1 || len(s[0].Sensors) != len(Columns)-1 || s[0].Sensors[0] != "cycle" {
		t.Fatalf("%+v", s)
	}
	if got := s[0].Segments[0].Row(1)[0]; got != 2 {
		t.Fatalf("cycle of the second row: %v", got)
	}
	for name, in := range map[string]string{"short line": "1 1 2\n", "text": strings.Replace(line(1, 1, 5), "1.5", "x", 1)} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "bad.txt")
			if err := os.WriteFile(p, []byte(in), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := ReadFile(p); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func TestScore(t *testing.T) {
	rmse, phm := Score([]float64{10, 20}, []float64{20, 10})
	want := math.Exp(10.0/13) - 1 + math.Exp(10.0/10) - 1
	if rmse != 10 || math.Abs(phm-want) > 1e-12 {
		t.Fatalf("rmse %v phm %v, want 10 and %v", rmse, phm, want)
	}
	r, err := parseRUL(strings.NewReader("112 \n98\n\n"))
	if err != nil || len(r) != 2 || r[1] != 98 {
		t.Fatalf("%v %v", r, err)
	}
}

// The benchmark trains as a job does and scores through the live
// detector; a model written (signed) by one run and loaded by another
// scores the same.
func TestRunTrainsAndScoresThroughTheLiveDetector(t *testing.T) {
	dir := t.TempDir()
	fleet(t, dir, 24, 12)
	out := filepath.Join(dir, "model.json")
	cfg := rul.Config{Window: 10, Epochs: 40, Hidden: []int{16}, L2: 1e-4, Members: 2}
	res, err := Run(context.Background(), Options{Dir: dir, Subset: "FD900", RUL: cfg, Out: out, Key: modeltest.Private})
	if err != nil {
		t.Fatal(err)
	}
	written, err := model.LoadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := modeltest.Trust().Verify(written); err != nil {
		t.Fatalf("the written artifact: %v", err)
	}
	if res.Engines != 12 || res.Artifact.Metrics["members"] != 2 || res.TrainTime <= 0 {
		t.Fatalf("%+v", res)
	}
	t.Logf("RMSE %.2f over %d engines, trained in %v", res.RMSE, res.Engines, res.TrainTime)
	if res.RMSE > 10 {
		t.Fatalf("RMSE %.2f on a fleet whose one sensor tells the remaining life, want ≤ 10", res.RMSE)
	}
	loaded, err := Run(context.Background(), Options{Dir: dir, Subset: "FD900", Model: out})
	if err != nil {
		t.Fatal(err)
	}
	if loaded.RMSE != res.RMSE || loaded.TrainTime != 0 {
		t.Fatalf("loaded model RMSE %v, trained %v", loaded.RMSE, res.RMSE)
	}
	if _, err := Run(context.Background(), Options{Dir: t.TempDir(), Subset: "FD900"}); err == nil {
		t.Fatal("a folder without the files: want an error")
	}
}

// Cross-validation cuts each held-out training engine as the test file
// cuts test engines and scores the cuts through the live detector: on a
// fleet whose one sensor tells the remaining life the error is small, and
// too few folds or engines too short to cut are refused.
func TestCrossValidate(t *testing.T) {
	dir := t.TempDir()
	fleet(t, dir, 24, 1)
	runs, err := ReadFile(filepath.Join(dir, "train_FD900.txt"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := rul.Config{Window: 10, Epochs: 40, Hidden: []int{16}, L2: 1e-4}
	rmse, cuts, err := CrossValidate(context.Background(), runs, 4, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, s := range runs {
		for r := cutStep / 2; r <= cutMax && s.Rows-r >= minCycles; r += cutStep {
			want++
		}
	}
	t.Logf("RMSE %.2f over %d cuts", rmse, cuts)
	if cuts != want || !(rmse <= 12) {
		t.Fatalf("RMSE %.2f over %d cuts, want ≤ 12 over %d", rmse, cuts, want)
	}
	if _, _, err := CrossValidate(context.Background(), runs, 1, cfg); err == nil {
		t.Fatal("one fold: want an error")
	}
}
