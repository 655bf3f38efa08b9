package monitor

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// scripted is a detector whose deviation (the square root of its error)
// is given per reading; its score is the deviation's Student-t score, as
// a calibrated detector's would be.
type scripted struct {
	dev func(i int) float64
	i   int
}

func (s *scripted) Observe(time.Time, map[string]float64) (anomaly.Result, error) {
	d := s.dev(s.i)
	s.i++
	return anomaly.Result{Score: anomaly.Score(d), Error: d * d}, nil
}

// drifts runs n readings a minute apart and returns the rows that reported
// a drift, the row each said its shift began, and whether any alert
// opened.
func drifts(t *testing.T, n int, dev func(i int) float64) (rows, since []int, alerted bool) {
	t.Helper()
	m, err := New(&scripted{dev: dev}, Config{NewNormal: Horizon{Readings: 300, Duration: 5 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		r := wire.Reading{Site: "s", Asset: "a", Seq: uint64(i + 1), Time: start.Add(time.Duration(i) * time.Minute), Sensors: map[string]float64{"x": 0}}
		d, err := m.Observe(&r)
		if err != nil {
			t.Fatal(err)
		}
		if d.Drift {
			rows = append(rows, i)
			since = append(since, int(d.Since.Sub(start)/time.Minute))
		}
		alerted = alerted || d.Open
	}
	return rows, since, alerted
}

// noisy is |N(0,1)| deviations, smoothed like a detector's moving error.
func noisy(seed uint64) func(int) float64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	avg := 0.8
	return func(int) float64 {
		avg += 0.13 * (math.Abs(rng.NormFloat64()) - avg)
		return avg
	}
}

// TestDriftOnAQuietStep: the deviation steps up to a level the detector
// still finds plausible (no alert); the shift is reported once, two to
// three windows (of 300 readings and 5 h here) after the step, and not
// again while the level holds.
func TestDriftOnAQuietStep(t *testing.T) {
	for seed := range uint64(10) {
		base := noisy(seed)
		rows, since, alerted := drifts(t, 3000, func(i int) float64 {
			if i >= 1000 {
				return base(i) + 0.9
			}
			return base(i)
		})
		if alerted {
			t.Fatalf("seed %d: the step opened an alert; the test wants a quiet shift", seed)
		}
		if len(rows) != 1 || rows[0] < 1000 || rows[0] > 1000+3*300 {
			t.Fatalf("seed %d: drift at rows %v, want once within three windows after the step at 1000", seed, rows)
		}
		if since[0] < 1000-25 || since[0] > 1000+50 {
			t.Fatalf("seed %d: the shift began at row %d by the drift, the step was at 1000", seed, since[0])
		}
	}
}

// TestNoDriftWhenStationary: stationary deviations never report a drift.
func TestNoDriftWhenStationary(t *testing.T) {
	for seed := range uint64(10) {
		if rows, _, _ := drifts(t, 5000, noisy(seed)); len(rows) > 0 {
			t.Fatalf("seed %d: drift at rows %v on stationary scores", seed, rows)
		}
	}
}

// TestNoDriftOnARise: a deviation that keeps rising (a degradation, still
// below the alert for most of the run) is not a new normal to train on. It
// rises by 0.3 per window, above MaxRise (0.2): slower growth cannot be
// told from a settled level.
func TestNoDriftOnARise(t *testing.T) {
	for seed := range uint64(10) {
		base := noisy(seed)
		rows, _, _ := drifts(t, 3000, func(i int) float64 {
			return base(i) + 0.3*math.Max(0, float64(i-1000))/300
		})
		if len(rows) > 0 {
			t.Fatalf("seed %d: drift at rows %v on a rising deviation", seed, rows)
		}
	}
}
