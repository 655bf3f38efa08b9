package anomaly

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/nn"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// pump simulates three coupled sensors and a slowly drifting temperature;
// from shiftAt on, "flow" drops by shift standard deviations.
func pump(n, shiftAt int, shift float64, seed uint64) []map[string]float64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]map[string]float64, n)
	for i := range out {
		base := math.Sin(float64(i) / 3)
		flow := 32 + base + 0.3*rng.NormFloat64()
		if i >= shiftAt {
			flow -= shift * 0.3
		}
		out[i] = map[string]float64{
			"flow":        flow,
			"current":     2 + 0.5*base + 0.1*rng.NormFloat64(),
			"pressure":    1 - 0.3*base + 0.05*rng.NormFloat64(),
			"temperature": 70 + 0.01*float64(i) + 0.01*rng.NormFloat64(),
		}
	}
	return out
}

func run(t *testing.T, d Detector, rows []map[string]float64) []Result {
	t.Helper()
	out := make([]Result, len(rows))
	for i, r := range rows {
		res, err := d.Observe(t0.Add(time.Duration(i)*time.Second), r)
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		if res.Score < 0 || res.Score > 1 || math.IsNaN(res.Score) {
			t.Fatalf("row %d: score %v outside [0, 1]", i, res.Score)
		}
		out[i] = res
	}
	return out
}

// openZ is the evidence at which pdmkit/monitor's default lifecycle opens
// an alert; these tests check the detectors' scores against it.
const openZ = 4

// alertShare is the share of results at or above the opening level.
func alertShare(rs []Result) float64 {
	n := 0
	for _, r := range rs {
		if r.Evidence >= openZ {
			n++
		}
	}
	return float64(n) / float64(len(rs))
}

func TestOnlineDetectsShiftAndExplainsIt(t *testing.T) {
	rows := pump(1200, 800, 4, 1)
	d, err := NewOnline(OnlineConfig{WarmupRows: 300})
	if err != nil {
		t.Fatal(err)
	}
	rs := run(t, d, rows)
	for i := 0; i < 300; i++ {
		if !rs[i].WarmingUp || rs[i].Score != 0 {
			t.Fatalf("row %d during warm-up: %+v", i, rs[i])
		}
	}
	if fa := alertShare(rs[320:800]); fa > 0.05 {
		t.Errorf("alerting on %.0f%% of normal rows", 100*fa)
	}
	if hit := alertShare(rs[850:]); hit < 0.9 {
		t.Errorf("alerting on only %.0f%% of shifted rows", 100*hit)
	}
	last := rs[len(rs)-1]
	if len(last.Contributions) == 0 || last.Contributions[0].Sensor != "flow" {
		t.Fatalf("top contribution %+v, want flow", last.Contributions)
	}
	sum := 0.0
	for _, c := range last.Contributions {
		sum += c.Share
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("shares sum to %v", sum)
	}
	if last.Model != "online-ae" || last.Version == "" {
		t.Errorf("model %q version %q", last.Model, last.Version)
	}
}

// TestOnlineReplayIsDeterministic: the scorer rebuilds a detector after a
// rebalance by replaying readings; the rebuilt one must say the same.
func TestOnlineReplayIsDeterministic(t *testing.T) {
	rows := pump(900, 600, 3, 2)
	cfg := OnlineConfig{WarmupRows: 200, RetrainEvery: 150}
	a, _ := NewOnline(cfg)
	b, _ := NewOnline(cfg)
	ra, rb := run(t, a, rows), run(t, b, rows)
	for i := range ra {
		if ra[i].Score != rb[i].Score || ra[i].Evidence != rb[i].Evidence || ra[i].Version != rb[i].Version {
			t.Fatalf("row %d: %+v vs %+v", i, ra[i], rb[i])
		}
	}
	if ra[len(ra)-1].Version == "online-1" {
		t.Errorf("never retrained: version %s", ra[len(ra)-1].Version)
	}
}

// TestOnlineGuardDoesNotLearnSlowFailure: a slow drift in flow must keep
// alerting rather than be absorbed by continuous learning.
func TestOnlineGuardDoesNotLearnSlowFailure(t *testing.T) {
	rows := pump(2000, 2000, 0, 3)
	for i := 600; i < len(rows); i++ {
		rows[i]["flow"] -= 0.004 * float64(i-600) // 5.6σ after 1400 rows
	}
	d, _ := NewOnline(OnlineConfig{WarmupRows: 300, RetrainEvery: 100})
	rs := run(t, d, rows)
	if hit := alertShare(rs[1700:]); hit < 0.9 {
		t.Fatalf("slow failure learned as normal: alerting on %.0f%% of the last rows", 100*hit)
	}
}

func TestOnlineBadReadings(t *testing.T) {
	cases := []struct {
		name    string
		reading map[string]float64
	}{
		{"missing", map[string]float64{"a": 1}},
		{"nan", map[string]float64{"a": 1, "b": math.NaN()}},
		{"inf", map[string]float64{"a": math.Inf(1), "b": 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := NewOnline(OnlineConfig{Features: []string{"a", "b"}})
			if _, err := d.Observe(t0, tc.reading); !errors.Is(err, ErrFeatures) {
				t.Fatalf("got %v", err)
			}
		})
	}
	d, _ := NewOnline(OnlineConfig{})
	if _, err := d.Observe(t0, map[string]float64{}); !errors.Is(err, ErrFeatures) {
		t.Fatalf("empty reading: %v", err)
	}
}

func TestOnlineConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  OnlineConfig
	}{
		{"warmup below window", OnlineConfig{WarmupRows: 12, Window: 8}},
		{"smoothing", OnlineConfig{Smoothing: 2}},
		{"history below window", OnlineConfig{HistoryRows: 2}},
		{"retrain too often", OnlineConfig{RetrainEvery: 5}},
		{"duplicate feature", OnlineConfig{Features: []string{"a", "a"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewOnline(tc.cfg); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

// TestConstantSensor: a sensor constant during warm-up neither breaks
// training nor produces non-finite scores when it later moves.
func TestConstantSensor(t *testing.T) {
	rows := pump(700, 700, 0, 4)
	for i, r := range rows {
		r["valve"] = 1
		if i > 500 {
			r["valve"] = 1.5
		}
	}
	d, _ := NewOnline(OnlineConfig{WarmupRows: 300})
	rs := run(t, d, rows)
	if alertShare(rs[520:]) < 0.9 {
		t.Errorf("a constant sensor that moved did not alert")
	}
}

func TestAllConstantNeverAlerts(t *testing.T) {
	rows := make([]map[string]float64, 600)
	for i := range rows {
		rows[i] = map[string]float64{"a": 3, "b": -1}
	}
	d, _ := NewOnline(OnlineConfig{WarmupRows: 200})
	if a := alertShare(run(t, d, rows)); a != 0 {
		t.Fatalf("alerting on %.0f%% of constant rows", 100*a)
	}
}

// TestArtifactReproducesOnline: the online learner's network exported as
// an artifact scores like the online learner itself once the moving
// averages have forgotten where each started.
func TestArtifactReproducesOnline(t *testing.T) {
	rows := pump(900, 700, 4, 5)
	on, _ := NewOnline(OnlineConfig{WarmupRows: 300, Frozen: true})
	run(t, on, rows[:300])
	a, err := on.Artifact("pump", "v1", "", t0)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := a.Write(&buf); err != nil {
		t.Fatal(err)
	}
	loaded, err := model.Load(&buf)
	if err != nil {
		t.Fatal(err)
	}
	md, err := FromArtifact(loaded)
	if err != nil {
		t.Fatal(err)
	}
	ro, rm := run(t, on, rows[300:]), run(t, md, rows[300:])
	for i := 200; i < len(ro); i++ {
		if math.Abs(ro[i].Score-rm[i].Score) > 1e-6 {
			t.Fatalf("row %d: online %v, artifact %v", i, ro[i].Score, rm[i].Score)
		}
	}
	if rm[len(rm)-1].Evidence < openZ || rm[len(rm)-1].Version != "v1" {
		t.Errorf("artifact detector: %+v", rm[len(rm)-1])
	}
}

func TestForecasterScoresAndForecasts(t *testing.T) {
	features := []string{"current", "flow", "pressure", "temperature"}
	normal := pump(800, 800, 0, 6)
	rows, times := toRows(normal, features)
	a, err := TrainForecaster(rows, times, features, ForecasterConfig{Name: "pump-fc", Epochs: 40})
	if err != nil {
		t.Fatal(err)
	}
	if a.Kind != model.Forecaster || a.Health != nil {
		t.Fatalf("artifact %+v", a)
	}
	d, err := FromArtifact(a)
	if err != nil {
		t.Fatal(err)
	}
	// Fresh data: normal, then a slowly growing fault on flow.
	test := pump(1500, 1500, 0, 7)
	for i := 600; i < len(test); i++ {
		test[i]["flow"] += 0.0025 * float64(i-600) * math.Sin(float64(i)) // growing oscillation
	}
	rs := run(t, d, test)
	if fa := alertShare(rs[50:600]); fa > 0.05 {
		t.Errorf("forecaster alerting on %.0f%% of normal rows", 100*fa)
	}
	if hit := alertShare(rs[1300:]); hit < 0.9 {
		t.Errorf("forecaster alerting on only %.0f%% of faulty rows", 100*hit)
	}
}

func toRows(ms []map[string]float64, features []string) ([][]float64, []time.Time) {
	rows := make([][]float64, len(ms))
	times := make([]time.Time, len(ms))
	for i, m := range ms {
		for _, f := range features {
			rows[i] = append(rows[i], m[f])
		}
		times[i] = t0.Add(time.Duration(i) * time.Second)
	}
	return rows, times
}

func TestCalibrator(t *testing.T) {
	c := fitCalibrator([]float64{1, 2, 3, 4, 5, 6, 7, 8})
	prev := -1.0
	for _, e := range []float64{0, 1e-9, 1, 4, 10, 1e6, 1e300} {
		s := Score(c.evidence(e))
		if s < 0 || s >= 1 || s < prev {
			t.Fatalf("score(%v) = %v after %v", e, s, prev)
		}
		prev = s
	}
	if s := Score(c.evidence(math.Exp(c.logMean))); math.Abs(s-0.5) > 1e-9 {
		t.Errorf("median error scores %v, want 0.5", s)
	}
}

// TestCalibrationCeiling: normal data with rare large errors (the switches
// of a duty cycle) puts its worst error at the ceiling, below the opening
// level, instead of thousands of deviations above a band fitted to the
// quiet part.
func TestCalibrationCeiling(t *testing.T) {
	errs := make([]float64, 400)
	for i := range errs {
		errs[i] = 1e-4
		if i%100 == 0 {
			errs[i] = 5 // a switch
		}
	}
	c := fitCalibrator(errs)
	if z := c.evidence(5); math.Abs(z-ceilingZ) > 1e-9 {
		t.Fatalf("worst normal error at evidence %v, want %v", z, ceilingZ)
	}
	if z := c.evidence(500); z < openZ {
		t.Errorf("an error 100× the worst normal one has evidence %v, below %v", z, openZ)
	}
}

// TestScoreRanks: the score rises strictly with the evidence, stays below
// 1 even far out, and Evidence inverts it.
func TestScoreRanks(t *testing.T) {
	prev := Score(-1e6)
	for z := -50.0; z <= 1e4; z += max(0.1, math.Abs(z)/20) {
		s := Score(z)
		if !(s > prev) || s >= 1 {
			t.Fatalf("Score(%v) = %v after %v", z, s, prev)
		}
		if back := Evidence(s); z < 100 && math.Abs(back-z) > 1e-6*math.Max(1, math.Abs(z)) {
			t.Fatalf("Evidence(Score(%v)) = %v", z, back)
		}
		prev = s
	}
	if Score(0) != 0.5 || Score(math.NaN()) != 0 {
		t.Errorf("Score(0) = %v, Score(NaN) = %v", Score(0), Score(math.NaN()))
	}
}

// TestScalingCompressesTails: scaled values beyond clipZ grow slowly but
// strictly, so a wild sensor cannot overflow the error yet bigger
// excursions still score higher.
func TestScalingCompressesTails(t *testing.T) {
	s := &nn.Scaler{Mean: []float64{0}, Std: []float64{1}}
	dst := []float64{0}
	prev := math.Inf(-1)
	for _, v := range []float64{-1e9, -1000, -100, 0, 99, 100, 101, 1000, 1e9} {
		scaleInto(dst, s, []float64{v})
		if !(dst[0] > prev) || math.Abs(dst[0]) > clipZ+30 {
			t.Fatalf("scaled %v to %v after %v", v, dst[0], prev)
		}
		prev = dst[0]
	}
}

// TestLearnRecentTakesNewLevel: after a persistent shift, learning the
// recent readings makes the new level score as normal, for the online
// learner (retrained) and a trained model (widened calibration).
func TestLearnRecentTakesNewLevel(t *testing.T) {
	rows := pump(1400, 600, 10, 9)
	on, _ := NewOnline(OnlineConfig{WarmupRows: 300, Frozen: true})
	rs := run(t, on, rows[:900])
	if alertShare(rs[650:900]) < 0.9 {
		t.Fatal("the shift did not score as abnormal before learning")
	}
	a, err := on.Artifact("pump", "v1", "", t0)
	if err != nil {
		t.Fatal(err)
	}
	md, err := FromArtifact(a)
	if err != nil {
		t.Fatal(err)
	}
	run(t, md, rows[:900])
	for _, d := range []Learner{on, md} {
		if err := d.LearnRecent(200); err != nil {
			t.Fatal(err)
		}
		after := run(t, d, rows[900:])
		if share := alertShare(after); share > 0.02 {
			t.Errorf("%T: %.0f%% of the learnt level still at the opening level", d, 100*share)
		}
	}
}

// BenchmarkObserve is the scorer's per-reading cost with the default online
// detector after warm-up (8 sensors).
func BenchmarkObserve(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	d, _ := NewOnline(OnlineConfig{Features: names, WarmupRows: 200, Frozen: true})
	r := map[string]float64{}
	for i := 0; i < 200; i++ {
		for _, n := range names {
			r[n] = rng.NormFloat64()
		}
		if _, err := d.Observe(t0, r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Observe(t0, r); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTrainReconstructionScoresLikeTheOnlineLearner: a model trained on
// stored history with TrainReconstruction is the online learner's model
// trained on the same rows: same weights, same calibration, same scores.
func TestTrainReconstructionScoresLikeTheOnlineLearner(t *testing.T) {
	features := []string{"current", "flow", "pressure", "temperature"}
	rows, times := toRows(pump(700, 700, 0, 12), features)
	on, _ := NewOnline(OnlineConfig{WarmupRows: 400, Features: features, Frozen: true})
	for i, r := range rows[:400] {
		m := map[string]float64{}
		for j, f := range features {
			m[f] = r[j]
		}
		if _, err := on.Observe(times[i], m); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := TrainReconstruction([][][]float64{rows[:400]}, times[0], times[399], features, ReconstructionConfig{Name: "pump", Version: "1", DriftRatio: 0.6})
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Curve) == 0 || tr.Artifact.Training.Rows != 400 || tr.Artifact.Kind != model.Reconstruction {
		t.Fatalf("trained %+v, curve %d epochs", tr.Artifact.Training, len(tr.Curve))
	}
	want, _ := on.Artifact("pump", "1", "", times[399])
	if !slices.Equal(tr.Artifact.Weights, want.Weights) || tr.Artifact.Calibration.LogStd != want.Calibration.LogStd {
		t.Fatal("TrainReconstruction and the online learner trained different models on the same rows")
	}
	if _, err := TrainReconstruction([][][]float64{rows[:20]}, times[0], times[19], features, ReconstructionConfig{}); err == nil {
		t.Error("20 rows trained a model")
	}
}

// TestTrainForecasterSegments: one segment trains exactly TrainForecaster's
// model; several segments train without a window spanning two of them
// (each is a different level, so a spanning pair would be a jump the
// network has to learn) and report the learning curve.
func TestTrainForecasterSegments(t *testing.T) {
	features := []string{"current", "flow", "pressure", "temperature"}
	rows, times := toRows(pump(600, 600, 0, 21), features)
	cfg := ForecasterConfig{Name: "fc", Epochs: 10}
	one, err := TrainForecaster(rows, times, features, cfg)
	if err != nil {
		t.Fatal(err)
	}
	seg, err := TrainForecasterSegments([][][]float64{rows}, times[0], times[len(times)-1], features, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if seg.Artifact.SHA256 != one.SHA256 || len(seg.Curve) == 0 {
		t.Fatalf("one segment: %s vs %s, curve %d", seg.Artifact.SHA256, one.SHA256, len(seg.Curve))
	}
	a, b := rows[:300], rows[300:]
	two, err := TrainForecasterSegments([][][]float64{a, b}, times[0], times[len(times)-1], features, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if two.Artifact.Training.Rows != 600 || two.Artifact.SHA256 == one.SHA256 {
		t.Fatalf("two segments: %+v", two.Artifact.Training)
	}
	if _, err := TrainForecasterSegments([][][]float64{rows[:20], rows[20:40], rows[40:60], rows[60:80], rows[80:100]}, times[0], times[99], features, cfg); err == nil {
		t.Error("segments too short to calibrate trained a model")
	}
}

// TestAverageNetworks: the merged network's output is the mean of its
// members' outputs, to rounding.
func TestAverageNetworks(t *testing.T) {
	spec := nn.Spec{Sizes: []int{6, 4, 3}, Acts: []nn.Activation{nn.Tanh, nn.Linear}}
	var nets []*nn.Network
	for seed := range uint64(3) {
		n, err := nn.New(spec, seed+1)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n.Params {
			n.Params[i] += 0.1 * math.Sin(float64(i)+float64(seed)) // non-zero biases too
		}
		nets = append(nets, n)
	}
	avg, err := averageNetworks(nets)
	if err != nil {
		t.Fatal(err)
	}
	if avg.Spec.Sizes[1] != 12 {
		t.Fatalf("hidden %d, want 12", avg.Spec.Sizes[1])
	}
	x := []float64{0.3, -1, 2, 0.5, -0.2, 1.1}
	want := make([]float64, 3)
	for _, n := range nets {
		for o, v := range n.Forward(x) {
			want[o] += v / 3
		}
	}
	for o, v := range avg.Forward(x) {
		if math.Abs(v-want[o]) > 1e-12 {
			t.Fatalf("output %d: %v, want %v", o, v, want[o])
		}
	}
	deep := nn.Spec{Sizes: []int{6, 4, 4, 3}, Acts: []nn.Activation{nn.Tanh, nn.Tanh, nn.Linear}}
	d, _ := nn.New(deep, 1)
	if _, err := averageNetworks([]*nn.Network{d, d}); err == nil {
		t.Error("three-layer networks averaged into one")
	}
}

// TestForecasterOptions: an ensemble, calibration on folds and residual
// scaling give an artifact the scorer loads and runs, whose normal
// readings stay quiet and whose fault is heard; bad settings are refused.
func TestForecasterOptions(t *testing.T) {
	features := []string{"current", "flow", "pressure", "temperature"}
	rows, times := toRows(pump(800, 800, 0, 6), features)
	cfg := ForecasterConfig{Name: "pump-fc", Epochs: 30, Window: 8, Horizon: 1, Members: 3, CalibrationFolds: 2, ResidualScale: true}
	a, err := TrainForecaster(rows, times, features, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := a.Write(&buf); err != nil {
		t.Fatal(err)
	}
	loaded, err := model.Load(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Architecture.Sizes[1] != 3*8 {
		t.Fatalf("ensemble of 3 with hidden 8 stored as %v", loaded.Architecture.Sizes)
	}
	d, err := FromArtifact(loaded)
	if err != nil {
		t.Fatal(err)
	}
	test := pump(1200, 700, 20, 7)
	rs := run(t, d, test)
	if fa := alertShare(rs[50:700]); fa > 0.02 {
		t.Errorf("alerting on %.1f%% of normal rows", 100*fa)
	}
	if hit := alertShare(rs[700:800]); hit < 0.5 {
		t.Errorf("a drop in flow of 20 noise deviations alerts on %.0f%% of its rows", 100*hit)
	}
	for _, bad := range []ForecasterConfig{{CalibrationFolds: 1}, {CalibrationFolds: 9}, {Members: -1}, {L2: -1}, {Smoothing: 2}, {ResidualFloor: 2}} {
		if _, err := TrainForecaster(rows, times, features, bad); err == nil {
			t.Errorf("%+v trained", bad)
		}
	}
}

// TestReconstructionOptions: an ensemble with residual scaling trains on
// stored history into an artifact the scorer runs; the scale of a feature
// the others explain well shrinks, normal readings stay quiet and a shift
// is heard.
func TestReconstructionOptions(t *testing.T) {
	features := []string{"current", "flow", "pressure", "temperature"}
	rows, times := toRows(pump(600, 600, 0, 12), features)
	plain, err := TrainReconstruction([][][]float64{rows}, times[0], times[599], features, ReconstructionConfig{Name: "p", Version: "1", DriftRatio: 0.6})
	if err != nil {
		t.Fatal(err)
	}
	// The temperature drifts beyond its training range: centred.
	tr, err := TrainReconstruction([][][]float64{rows}, times[0], times[599], features, ReconstructionConfig{Name: "p", Version: "2", Members: 3, ResidualScale: true, DriftRatio: 0.6})
	if err != nil {
		t.Fatal(err)
	}
	a := tr.Artifact
	if a.Architecture.Sizes[1] != 3*plain.Artifact.Architecture.Sizes[1] {
		t.Fatalf("ensemble of 3 stored as %v (one member %v)", a.Architecture.Sizes, plain.Artifact.Architecture.Sizes)
	}
	for j, f := range features {
		centred := slices.Contains(a.Centred, f)
		if ratio := a.Scaler.Std[j] / plain.Artifact.Scaler.Std[j]; centred && ratio != 1 || !centred && !(ratio < 1) {
			t.Errorf("%s (centred %v): scale changed by %v", f, centred, ratio)
		}
	}
	d, err := FromArtifact(a)
	if err != nil {
		t.Fatal(err)
	}
	rs := run(t, d, pump(1200, 800, 6, 13))
	if fa := alertShare(rs[50:800]); fa > 0.02 {
		t.Errorf("alerting on %.1f%% of normal rows", 100*fa)
	}
	if hit := alertShare(rs[900:]); hit < 0.9 {
		t.Errorf("a drop in flow of 6 noise deviations alerts on %.0f%% of its rows", 100*hit)
	}
	for _, bad := range []ReconstructionConfig{{Name: "p", Version: "1", Members: -1}, {Name: "p", Version: "1", ResidualFloor: 2}} {
		if _, err := TrainReconstruction([][][]float64{rows}, times[0], times[599], features, bad); err == nil {
			t.Errorf("%+v trained", bad)
		}
	}
}
