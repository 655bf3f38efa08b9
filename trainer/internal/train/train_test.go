package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/rul"
	"github.com/pdmstream/pdm/trainer/internal/history"
)

var sensors = []string{"current", "flow", "pressure"}

// rowsOf is n rows of three coupled sensors around level.
func rowsOf(n int, level float64, phase int) [][]float64 {
	out := make([][]float64, n)
	for i := range out {
		b := math.Sin(float64(i+phase) / 3)
		w := math.Cos(float64(7*i+phase) / 5)
		out[i] = []float64{level + 2 + 0.5*b + 0.05*w, level + 32 + b, level + 1 - 0.3*b + 0.1*w}
	}
	return out
}

// table writes rows as a CSV with a Unix-seconds time column, one asset
// per block; skip marks times (seconds) left out, nan rows with an empty
// flow cell.
func table(t *testing.T, assets map[string][][]float64, order []string, skip func(i int) bool, nan func(i int) bool) []*history.Series {
	t.Helper()
	var b strings.Builder
	b.WriteString("asset,time,current,flow,pressure\n")
	for _, a := range order {
		for i, r := range assets[a] {
			if skip != nil && skip(i) {
				continue
			}
			flow := fmt.Sprint(r[1])
			if nan != nil && nan(i) {
				flow = ""
			}
			fmt.Fprintf(&b, "%s,%d,%v,%s,%v\n", a, 1_700_000_000+i, r[0], flow, r[2])
		}
	}
	s, err := history.ReadTable(strings.NewReader(b.String()), history.FileOptions{AssetCol: "asset", Sensors: sensors})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func at(i int) time.Time { return time.Unix(int64(1_700_000_000+i), 0).UTC() }

// TestFitIsTheTrainingPath: a reconstruction fitted on a series is the
// model anomaly.TrainReconstruction fits on its oldest 80 %, and the
// newest 20 % comes back as the hold-out.
func TestFitIsTheTrainingPath(t *testing.T) {
	rows := rowsOf(500, 0, 0)
	data := table(t, map[string][][]float64{"p1": rows}, []string{"p1"}, nil, nil)
	res, err := Fit(context.Background(), data, Spec{Kind: model.Reconstruction, Name: "pump", Version: "3"})
	if err != nil {
		t.Fatal(err)
	}
	if res.TrainRows != 400 || res.HoldOutRows != 100 || res.Segments != 1 || !res.From.Equal(at(0)) || !res.To.Equal(at(399)) {
		t.Fatalf("rows %d/%d, segments %d, window %s–%s", res.TrainRows, res.HoldOutRows, res.Segments, res.From, res.To)
	}
	h := res.HoldOut[0]
	if h == nil || h.Rows != 100 || len(h.Segments) != 1 || !h.Segments[0].Start.Equal(at(400)) || h.Segments[0].Row(0)[1] != rows[400][1] {
		t.Fatalf("hold-out %+v", h)
	}
	want, err := anomaly.TrainReconstruction([][][]float64{rows[:400]}, at(0), at(399), sensors, anomaly.ReconstructionConfig{Name: "pump", Version: "3"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Artifact.SHA256 != want.Artifact.SHA256 || len(res.Curve) != len(want.Curve) || len(res.Curve) == 0 {
		t.Fatalf("Fit trained %s (%d epochs), TrainReconstruction %s (%d)", res.Artifact.SHA256, len(res.Curve), want.Artifact.SHA256, len(want.Curve))
	}
	if _, err := anomaly.FromArtifact(res.Artifact); err != nil {
		t.Fatal(err)
	}
	again, _ := Fit(context.Background(), data, Spec{Kind: model.Reconstruction, Name: "pump", Version: "3"})
	if again.Artifact.SHA256 != res.Artifact.SHA256 {
		t.Error("the same data and spec trained different artifacts")
	}
}

// TestFitPoolsAssetsAsSeparateSegments: two assets of a class train one
// model whose windows never span the two (their levels differ by 5, so a
// spanning window would be a jump), nor a gap, nor a row without a value.
func TestFitPoolsAssetsAsSeparateSegments(t *testing.T) {
	p1, p2 := rowsOf(300, 0, 0), rowsOf(260, 5, 11)
	data := table(t, map[string][][]float64{"p1": p1, "p2": p2}, []string{"p1", "p2"}, nil, nil)
	res, err := Fit(context.Background(), data, Spec{Kind: model.Reconstruction, Name: "class", Version: "1", HoldOut: -1})
	if err != nil {
		t.Fatal(err)
	}
	want, err := anomaly.TrainReconstruction([][][]float64{p1, p2}, at(0), at(299), sensors, anomaly.ReconstructionConfig{Name: "class", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Segments != 2 || res.TrainRows != 560 || res.HoldOutRows != 0 || res.HoldOut[0] != nil || res.Artifact.SHA256 != want.Artifact.SHA256 {
		t.Fatalf("segments %d, rows %d/%d, artifact %s want %s", res.Segments, res.TrainRows, res.HoldOutRows, res.Artifact.SHA256, want.Artifact.SHA256)
	}
	// A gap (rows 100–104 missing) and a row without flow (200) split p1.
	data = table(t, map[string][][]float64{"p1": p1}, []string{"p1"},
		func(i int) bool { return i >= 100 && i < 105 }, func(i int) bool { return i == 200 })
	res, err = Fit(context.Background(), data, Spec{Kind: model.Reconstruction, HoldOut: -1})
	if err != nil {
		t.Fatal(err)
	}
	want, err = anomaly.TrainReconstruction([][][]float64{p1[:100], p1[105:200], p1[201:]}, at(0), at(299), sensors, anomaly.ReconstructionConfig{Name: "reconstruction", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Segments != 3 || res.Incomplete != 1 || res.TrainRows != 294 || res.Artifact.SHA256 != want.Artifact.SHA256 {
		t.Fatalf("segments %d, incomplete %d, rows %d", res.Segments, res.Incomplete, res.TrainRows)
	}
}

// TestFitHoldOutPerAsset: every asset keeps its own newest share back,
// split where it falls in a segment.
func TestFitHoldOutPerAsset(t *testing.T) {
	data := table(t, map[string][][]float64{"p1": rowsOf(400, 0, 0), "p2": rowsOf(300, 1, 3)}, []string{"p1", "p2"},
		func(i int) bool { return i >= 340 && i < 350 }, nil)
	res, err := Fit(context.Background(), data, Spec{Kind: model.Forecaster, HoldOut: 0.25, Forecaster: anomaly.ForecasterConfig{Epochs: 3}})
	if err != nil {
		t.Fatal(err)
	}
	// p1 has 390 rows (97.5 → 98 held out: rows 292–339 and 350–399), p2 300 (75).
	h1, h2 := res.HoldOut[0], res.HoldOut[1]
	if h1.Rows != 98 || len(h1.Segments) != 2 || !h1.Segments[0].Start.Equal(at(292)) || len(h1.Gaps) != 1 || h2.Rows != 75 || !h2.From.Equal(at(225)) {
		t.Fatalf("hold-outs %+v / %+v", h1, h2)
	}
	if res.TrainRows != 390-98+300-75 || res.HoldOutRows != 98+75 || !res.To.Equal(at(291)) {
		t.Fatalf("rows %d/%d, to %s", res.TrainRows, res.HoldOutRows, res.To)
	}
	if res.Artifact.Kind != model.Forecaster || len(res.Curve) == 0 {
		t.Fatalf("artifact %s, curve %d", res.Artifact.Kind, len(res.Curve))
	}
}

// TestFitHoldOutOfANewNormal: an asset whose new normal began at row 600
// holds out the newest 20 % of the 400 rows since then (80), not of all
// its rows (200, which would keep the whole new normal from training);
// the other asset keeps the plain newest share.
func TestFitHoldOutOfANewNormal(t *testing.T) {
	data := table(t, map[string][][]float64{"p1": rowsOf(1000, 0, 0), "p2": rowsOf(500, 1, 3)}, []string{"p1", "p2"}, nil, nil)
	res, err := Fit(context.Background(), data, Spec{Kind: model.Reconstruction, Reconstruction: anomaly.ReconstructionConfig{Epochs: 3},
		NewNormal: map[string]time.Time{"p1": at(600)}})
	if err != nil {
		t.Fatal(err)
	}
	h1, h2 := res.HoldOut[0], res.HoldOut[1]
	if h1.Rows != 80 || !h1.From.Equal(at(920)) || h2.Rows != 100 || !h2.From.Equal(at(400)) || res.TrainRows != 920+400 {
		t.Fatalf("hold-outs %d from %s / %d from %s, %d rows trained", h1.Rows, h1.From, h2.Rows, h2.From, res.TrainRows)
	}
}

// TestFitRUL: every series is a run to failure; the newest 20 % of the
// runs are held out whole, the rest train a RUL artifact whose live
// detector builds, and the same runs train the same artifact.
func TestFitRUL(t *testing.T) {
	runs := map[string][][]float64{}
	var order []string
	for u := range 10 {
		life := 150 + 13*u
		rows := make([][]float64, life)
		for i := range rows {
			wear := math.Exp(-float64(life-1-i) / 40)
			rows[i] = []float64{wear + 0.01*math.Sin(float64(i)), 1 + 0.1*math.Cos(float64(3*i)), 5 + 2*wear}
		}
		name := fmt.Sprintf("u%02d", u)
		runs[name], order = rows, append(order, name)
	}
	data := table(t, runs, order, nil, nil)
	spec := Spec{Kind: model.RUL, Name: "fleet", Version: "1", RUL: rul.Config{Window: 10, Epochs: 20, Hidden: []int{8}}}
	res, err := Fit(context.Background(), data, spec)
	if err != nil {
		t.Fatal(err)
	}
	if res.HoldOut[8] == nil || res.HoldOut[9] == nil || res.HoldOut[7] != nil || res.Segments != 8 || res.HoldOutRows != 150+13*8+150+13*9 {
		t.Fatalf("runs %d, held out %d rows: %v", res.Segments, res.HoldOutRows, res.HoldOut)
	}
	if res.Artifact.Kind != model.RUL || len(res.Curve) == 0 || !res.Artifact.CreatedAt.Equal(res.To) {
		t.Fatalf("artifact %s created %s (data to %s), curve %d", res.Artifact.Kind, res.Artifact.CreatedAt, res.To, len(res.Curve))
	}
	if _, err := rul.NewDetector(res.Artifact); err != nil {
		t.Fatal(err)
	}
	again, _ := Fit(context.Background(), data, spec)
	if again.Artifact.SHA256 != res.Artifact.SHA256 {
		t.Error("the same runs trained different artifacts")
	}
}

func TestFitRefuses(t *testing.T) {
	data := table(t, map[string][][]float64{"p1": rowsOf(300, 0, 0)}, []string{"p1"}, nil, nil)
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		data []*history.Series
		spec Spec
		is   error
	}{
		{"rul, one run", ctx, data, Spec{Kind: model.RUL}, history.ErrNoData},
		{"unknown kind", ctx, data, Spec{Kind: "svm"}, nil},
		{"no kind", ctx, data, Spec{}, nil},
		{"hold-out 1", ctx, data, Spec{Kind: model.Reconstruction, HoldOut: 1}, nil},
		{"repeated feature", ctx, data, Spec{Kind: model.Reconstruction, Features: []string{"flow", "flow"}}, nil},
		{"missing feature", ctx, data, Spec{Kind: model.Reconstruction, Features: []string{"flow", "speed"}}, nil},
		{"no data", ctx, nil, Spec{Kind: model.Reconstruction}, history.ErrNoData},
		{"too few rows", ctx, data, Spec{Kind: model.Reconstruction, HoldOut: 0.95}, nil},
		{"cancelled", cancelled, data, Spec{Kind: model.Reconstruction}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Fit(tc.ctx, tc.data, tc.spec)
			if err == nil || tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
		})
	}
}
