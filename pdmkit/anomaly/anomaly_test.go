package anomaly

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/model"
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

func alertShare(rs []Result) float64 {
	n := 0
	for _, r := range rs {
		if r.Alert {
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
		if ra[i].Score != rb[i].Score || ra[i].Alert != rb[i].Alert || ra[i].Version != rb[i].Version {
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
		{"exit above enter", OnlineConfig{Enter: 0.9, Exit: 0.95}},
		{"enter 1", OnlineConfig{Enter: 1}},
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
	if !rm[len(rm)-1].Alert || rm[len(rm)-1].Version != "v1" {
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
	if a.Kind != model.Forecaster || a.Health == nil || a.Health.StepSeconds != 1 {
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
	forecasts := 0
	for _, r := range rs[600:1300] {
		if f := r.Forecast; f != nil {
			forecasts++
			if !(f.Low <= f.TimeToFailure && f.TimeToFailure <= f.High) || f.Low <= 0 {
				t.Fatalf("forecast range %+v", f)
			}
		}
	}
	if forecasts == 0 {
		t.Error("no time-to-failure forecast while the fault grew")
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

func TestTrendExtrapolates(t *testing.T) {
	tr := newTrend(50, 0.9)
	for i := 0; i < 50; i++ {
		tr.add(t0.Add(time.Duration(i)*time.Minute), 0.4+0.005*float64(i)) // +0.005 per minute
	}
	f := tr.forecast()
	if f == nil {
		t.Fatal("no forecast for a rising indicator")
	}
	// At 0.645 now, 0.255 to go at 0.005/min: 51 minutes.
	if got := f.TimeToFailure.Minutes(); math.Abs(got-51) > 1 {
		t.Errorf("time to failure %.1f min, want 51", got)
	}
	tr.reset()
	for i := 0; i < 50; i++ {
		tr.add(t0.Add(time.Duration(i)*time.Minute), 0.5)
	}
	if f := tr.forecast(); f != nil {
		t.Errorf("flat indicator forecast %+v", f)
	}
}

func TestHysteresis(t *testing.T) {
	cases := []struct {
		name   string
		scores []float64
		want   []bool
	}{
		{"one spike opens nothing", []float64{0.1, 0.999, 0.1, 0.1}, []bool{false, false, false, false}},
		{"sustained opens", []float64{0.999, 0.999, 0.999, 0.5}, []bool{false, false, true, true}},
		{"one dip closes nothing", []float64{0.999, 0.999, 0.999, 0.1, 0.97, 0.1, 0.1, 0.1}, []bool{false, false, true, true, true, true, true, false}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := Hysteresis{Enter: 0.99, Exit: 0.95, MinDuration: 3}
			for i, s := range tc.scores {
				if got := h.Update(s); got != tc.want[i] {
					t.Fatalf("step %d (score %v): alert %v, want %v", i, s, got, tc.want[i])
				}
			}
		})
	}
}

func TestCalibrator(t *testing.T) {
	c := fitCalibrator([]float64{1, 2, 3, 4, 5, 6, 7, 8})
	prev := -1.0
	for _, e := range []float64{0, 1e-9, 1, 4, 10, 1e6, math.Inf(1)} {
		s := c.score(e)
		if s < 0 || s > 1 || s < prev {
			t.Fatalf("score(%v) = %v after %v", e, s, prev)
		}
		prev = s
	}
	if s := c.score(math.Exp(c.logMean)); math.Abs(s-0.5) > 1e-9 {
		t.Errorf("median error scores %v, want 0.5", s)
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

// TestSnapshotRestore: a restored detector continues exactly like the one
// that never stopped, retrains included.
func TestSnapshotRestore(t *testing.T) {
	rows := pump(1000, 700, 4, 8)
	cfg := OnlineConfig{WarmupRows: 200, RetrainEvery: 150}
	for _, cut := range []int{0, 100, 450} {
		a, _ := NewOnline(cfg)
		b, _ := NewOnline(cfg)
		run(t, a, rows[:cut])
		run(t, b, rows[:cut])
		snap, err := b.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		c, err := RestoreOnline(snap)
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		for i := cut; i < len(rows); i++ {
			ts := t0.Add(time.Duration(i) * time.Second)
			ra, _ := a.Observe(ts, rows[i])
			rc, err := c.Observe(ts, rows[i])
			if err != nil {
				t.Fatal(err)
			}
			if ra.Score != rc.Score || ra.Alert != rc.Alert || ra.Version != rc.Version || (ra.Forecast == nil) != (rc.Forecast == nil) {
				t.Fatalf("cut %d row %d: %+v vs %+v", cut, i, ra, rc)
			}
		}
	}
	for _, bad := range []string{"", "{}", `{"format":"pdm-online-snapshot-1","features":["a"],"warm":[[1,2]]}`} {
		if _, err := RestoreOnline([]byte(bad)); err == nil {
			t.Errorf("snapshot %q restored", bad)
		}
	}
}
