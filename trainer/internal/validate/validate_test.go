package validate

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/monitor"
	"github.com/pdmstream/pdm/trainer/internal/history"
)

var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// pump is n rows a minute apart: a load with a daily cycle, a flow and a
// vibration that follow it; from faultFrom on (if ≥ 0) the vibration
// carries a fault of the given size.
func pump(n, faultFrom int, fault float64, seed uint64) (rows [][]float64, s *history.Series) {
	rng := rand.New(rand.NewPCG(seed, 9))
	vals := make([]float64, 0, 3*n)
	for i := range n {
		load := 60 + 10*math.Sin(2*math.Pi*float64(i)/1440) + 0.5*rng.NormFloat64()
		vib := 1 + 0.01*load + 0.02*rng.NormFloat64()
		if faultFrom >= 0 && i >= faultFrom {
			vib += fault
		}
		r := []float64{2*load + rng.NormFloat64(), load, vib}
		rows = append(rows, r)
		vals = append(vals, r...)
	}
	s = &history.Series{Site: "s", Asset: "p", Step: time.Minute, From: t0, To: t0.Add(time.Duration(n-1) * time.Minute),
		Sensors: []string{"flow", "load", "vibration"}, Rows: n, Present: []int{n, n, n},
		Segments: []history.Segment{{Start: t0, Step: time.Minute, N: n, Values: vals}}}
	return rows, s
}

func trained(t *testing.T, rows [][]float64) *model.Artifact {
	t.Helper()
	tr, err := anomaly.TrainReconstruction([][][]float64{rows}, t0, t0.Add(time.Duration(len(rows)-1)*time.Minute),
		[]string{"flow", "load", "vibration"}, anomaly.ReconstructionConfig{Name: "p", Version: "1", Epochs: 60})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Artifact
}

// TestBacktestTellsAModelThatLearntAFault: on the same held-out normal
// history, a model trained on normal operation is quiet and detects most
// injected ramps; one trained on history whose vibration carried a fault
// (and so learnt a wide vibration) misses more of them.
func TestBacktestTellsAModelThatLearntAFault(t *testing.T) {
	clean, _ := pump(2000, -1, 0, 1)
	faulty, _ := pump(2000, 500, 0.3, 1)
	_, held := pump(600, -1, 0, 2)
	good, _, err := Backtest(trained(t, clean), []*history.Series{held}, monitor.DefaultConfig(), Faults{})
	if err != nil {
		t.Fatal(err)
	}
	bad, _, err := Backtest(trained(t, faulty), []*history.Series{held}, monitor.DefaultConfig(), Faults{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("clean model %+v\nfault-trained model %+v", good, bad)
	if good.FalseAlarms != 0 || good.Injected != 12 || good.Detection < 0.5 {
		t.Fatalf("the clean model: %+v", good)
	}
	if !(bad.BySensor["vibration"] < good.BySensor["vibration"]) {
		t.Fatalf("vibration faults: detected %.2f by the fault-trained model, %.2f by the clean one", bad.BySensor["vibration"], good.BySensor["vibration"])
	}
	if ok, why := Decide(bad, &good, Rule{MinDetection: 0.5, Tolerance: 0.05}); ok {
		t.Fatalf("the fault-trained model would replace the clean one: %s", why)
	}
}

func TestDecide(t *testing.T) {
	r := Rule{MaxFalseAlarms: 0, MinDetection: 0.5, Tolerance: 0.05}
	m := func(fa int, det, weakest float64) Metrics {
		return Metrics{Rows: 500, FalseAlarms: fa, Injected: 20, Detected: int(20 * det), Detection: det, Weakest: weakest}
	}
	p := func(x Metrics) *Metrics { return &x }
	cases := []struct {
		name        string
		cand        Metrics
		active      *Metrics
		promote     bool
		reasonHolds string
	}{
		{"cold start, good", m(0, 0.8, 0.5), nil, true, "no active version"},
		{"cold start, false alarm", m(1, 0.8, 0.5), nil, false, "false alarms"},
		{"cold start, blind", m(0, 0.3, 0), nil, false, "needs 50%"},
		{"as many false alarms as the active", m(2, 0.8, 0.5), p(m(2, 0.8, 0.5)), true, "not worse"},
		{"more false alarms than the active", m(2, 0.8, 0.5), p(m(1, 0.8, 0.5)), false, "false alarms"},
		{"detects less", m(0, 0.5, 0.5), p(m(0, 0.8, 0.5)), false, "the active version 16 of 20 (80%)"},
		{"both weak, apart by chance", Metrics{Rows: 100, Injected: 24, Detected: 3, Detection: 0.125, Weakest: 0},
			&Metrics{Rows: 100, Injected: 24, Detected: 5, Detection: 0.21, Weakest: 0}, true, "not worse"},
		{"within tolerance", m(0, 0.77, 0.5), p(m(0, 0.8, 0.5)), true, "not worse"},
		{"below the floor, the active too", m(0, 0.4, 0.25), p(m(0, 0.4, 0.25)), true, "not worse"},
		{"below the floor, the active above it", m(0, 0.45, 0.25), p(m(0, 0.5, 0.25)), false, "needs 50%"},
		{"blind on one sensor", m(0, 0.8, 0), p(m(0, 0.8, 0.5)), false, "weakest sensor"},
	}
	for _, c := range cases {
		ok, why := Decide(c.cand, c.active, r)
		if ok != c.promote || !strings.Contains(why, c.reasonHolds) {
			t.Errorf("%s: promote %v (%s), want %v with %q", c.name, ok, why, c.promote, c.reasonHolds)
		}
	}
}

// TestBacktestSkipsRowsWithGaps: a held-out history whose feature has no
// value on some rows (a gap the resampling left) is backtested: those
// rows are not scored, as the live scorer refuses such a reading, and
// are counted.
func TestBacktestSkipsRowsWithGaps(t *testing.T) {
	clean, _ := pump(2000, -1, 0, 1)
	_, held := pump(600, -1, 0, 2)
	w := len(held.Sensors)
	gaps := []int{5, 111, 112, 300, 599}
	for _, i := range gaps {
		held.Segments[0].Values[i*w+2] = math.NaN() // vibration
	}
	m, _, err := Backtest(trained(t, clean), []*history.Series{held}, monitor.DefaultConfig(), Faults{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Skipped != len(gaps) || m.FalseAlarms != 0 || m.Injected == 0 {
		t.Fatalf("skipped %d rows (want %d), %d false alarms, %d faults: %+v", m.Skipped, len(gaps), m.FalseAlarms, m.Injected, m)
	}
}
