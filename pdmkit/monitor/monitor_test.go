package monitor

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/corpus"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// replay feeds a corpus stream to a Monitor over a fresh online learner,
// as the scorer does for a new asset, and returns every decision.
func replay(t testing.TB, s corpus.Stream, cfg Config) []Decision {
	t.Helper()
	det, err := anomaly.NewOnline(anomaly.OnlineConfig{WarmupRows: s.Warmup, Features: s.Sensors})
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(det, cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]Decision, len(s.Rows))
	for i, row := range s.Rows {
		r := reading(s, i, row)
		d, err := m.Observe(&r)
		if err != nil {
			t.Fatalf("%s row %d: %v", s.Name, i, err)
		}
		out[i] = d
	}
	return out
}

func reading(s corpus.Stream, i int, row []float64) wire.Reading {
	r := wire.Reading{Site: "test", Asset: "a", Seq: uint64(i + 1), Time: s.Times[i], Sensors: make(map[string]float64, len(row))}
	for j, k := range s.Sensors {
		r.Sensors[k] = row[j]
	}
	return r
}

// events lists the alert events as "row:state[:resolution]".
func events(ds []Decision) []string {
	var out []string
	for i, d := range ds {
		if e := d.Event; e != nil {
			s := fmt.Sprintf("%d:%s", i, e.State)
			if e.Resolution != "" {
				s += ":" + e.Resolution
			}
			out = append(out, s)
		}
	}
	return out
}

// TestHealthyCorpusIsQuiet is the false-alarm budget: after its warm-up, no
// healthy stream of the corpus — noise, daily cycles, duty cycles with and
// without noise (also longer than the warm-up), slow bounded walks and
// multi-sensor mixes, at five minutes and one second — raises a single
// alert event.
func TestHealthyCorpusIsQuiet(t *testing.T) {
	for _, s := range corpus.Healthy() {
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			ds := replay(t, s, Config{FailureScore: 0.999})
			if ev := events(ds); len(ev) > 0 {
				t.Fatalf("%d alert events on a healthy stream: %v", len(ev), ev)
			}
			for i, d := range ds[s.Warmup:] {
				if d.Forecast != nil {
					t.Fatalf("row %d: a forecast on a healthy stream: %+v", s.Warmup+i, d.Forecast)
				}
			}
		})
	}
}

// TestSetPointIsLearnt: after a persistent change of operating point, at
// most one alert opens, near the change; it resolves as the new normal
// within the horizon (300 readings or one day, whichever comes first), and
// nothing opens after it.
func TestSetPointIsLearnt(t *testing.T) {
	cfg := DefaultConfig()
	for _, s := range corpus.SetPoints() {
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			ds := replay(t, s, cfg)
			ev := events(ds)
			opened, resolved := -1, -1
			for i, d := range ds {
				if d.Event == nil {
					continue
				}
				switch {
				case d.Event.State == alert.Opened && opened < 0:
					opened = i
				case d.Event.State == alert.Opened:
					t.Fatalf("a second alert opened at row %d: %v", i, ev)
				case d.Event.State == alert.Resolved:
					if d.Event.Resolution != alert.NewNormal {
						t.Fatalf("resolved as %q, want %q: %v", d.Event.Resolution, alert.NewNormal, ev)
					}
					resolved = i
				}
			}
			if opened < 0 {
				return // the change was learnt without an alert: also right
			}
			if opened < s.Change-20 || opened > s.Change+10 {
				t.Fatalf("alert opened at row %d, not near the change at %d", opened, s.Change)
			}
			limit := min(cfg.NewNormal.Readings, int(cfg.NewNormal.Duration/s.Step))
			if resolved < 0 || resolved-s.Change > limit {
				t.Fatalf("resolved at row %d, %d readings after the change; the horizon is %d: %v", resolved, resolved-s.Change, limit, ev)
			}
			for i := resolved + 1; i < len(ds); i++ {
				if ds[i].Open || ds[i].Score >= cfg.Alert.Open {
					t.Fatalf("row %d after the new normal: score %v open %v", i, ds[i].Score, ds[i].Open)
				}
			}
			t.Logf("opened at +%d, resolved as the new normal at +%d readings", opened-s.Change, resolved-s.Change)
		})
	}
}

// TestDegradationIsNotLearnt: a degradation towards failure — accelerating
// wear, steady ramps, and wear that starts right after a set-point change
// — has an alert open before its failure, and that alert is not resolved
// (as the new normal or otherwise) before the failure, nor while the
// failed machine then holds its failure level (up to 732 readings, beyond
// the horizon).
func TestDegradationIsNotLearnt(t *testing.T) {
	for _, s := range []corpus.Stream{corpus.Wear(2500, 3500, -1), corpus.Wear(1500, 3900, -1), corpus.Ramp(2500, 3500, 10),
		corpus.Ramp(2000, 3900, 8), corpus.Wear(2100, 3300, 2000)} {
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			ds := replay(t, s, Config{})
			if !ds[s.Failure-1].Open {
				t.Fatalf("no alert open at the failure (row %d): %v", s.Failure, events(ds))
			}
			opened := s.Failure - 1
			for opened > s.Change && ds[opened-1].Open {
				opened--
			}
			lead := s.Failure - opened
			if lead < 100 {
				t.Fatalf("the alert open at the failure opened only %d readings before it: %v", lead, events(ds))
			}
			for i := s.Failure; i < len(ds); i++ {
				if !ds[i].Open {
					t.Fatalf("row %d, %d readings after the failure: the alert closed: %v", i, i-s.Failure, events(ds))
				}
			}
			t.Logf("alert open %d readings (%s) before the failure: %v", lead, time.Duration(lead)*s.Step, events(ds))
		})
	}
}

// TestStrongerFaultsScoreHigher: the score never saturates, so a stronger
// fault always has a strictly higher peak, up to faults hundreds of
// standard deviations strong.
func TestStrongerFaultsScoreHigher(t *testing.T) {
	prev := 0.0
	for _, k := range []float64{3, 5, 8, 12, 20, 40, 80, 200} {
		s := corpus.Fault(k, 2500, 30)
		peak := 0.0
		for _, d := range replay(t, s, Config{}) {
			peak = math.Max(peak, d.Score)
		}
		if !(peak > prev) || peak >= 1 {
			t.Fatalf("a %vσ fault peaks at %v, after %v for a weaker one", k, peak, prev)
		}
		prev = peak
	}
}

// TestForecastOnlyWhileRising: forecasts appear while a degradation grows
// and name a crossing of the failure level that the evidence then makes
// within the range; none is given while the score falls or an alert
// resolves.
func TestForecastOnlyWhileRising(t *testing.T) {
	s := corpus.Ramp(1000, 3000, 30)
	cfg := DefaultConfig()
	cfg.NewNormal.Off = true
	cfg.FailureScore = cfg.Alert.Critical
	ds := replay(t, s, cfg)
	limit := anomaly.Evidence(cfg.FailureScore)
	crossed := -1
	for i, d := range ds {
		if d.Evidence >= limit && crossed < 0 && i > s.Warmup {
			crossed = i
		}
	}
	if crossed < 0 {
		t.Fatal("the ramp never reached the failure level")
	}
	inside, given := 0, 0
	for i, d := range ds[:crossed] {
		f := d.Forecast
		if f == nil {
			continue
		}
		given++
		if d.Score < cfg.Alert.Resolve {
			t.Fatalf("row %d: a forecast at score %v, below the resolve level", i, d.Score)
		}
		if !(f.Low <= f.TimeToFailure && f.TimeToFailure <= f.High) {
			t.Fatalf("row %d: range %+v", i, f)
		}
		at := s.Times[crossed]
		if !at.Before(s.Times[i].Add(time.Duration(f.Low*float64(time.Second)))) && !at.After(s.Times[i].Add(time.Duration(f.High*float64(time.Second)))) {
			inside++
		}
	}
	if given == 0 || float64(inside) < 0.8*float64(given) {
		t.Fatalf("%d forecasts before the crossing at row %d, %d with the crossing inside their range", given, crossed, inside)
	}
	// After the failure the level holds: the evidence stops rising, and
	// the forecast goes.
	for i := s.Failure + cfg.TrendReadings; i < len(ds); i++ {
		if ds[i].Forecast != nil {
			t.Fatalf("row %d: a forecast on a level that no longer rises: %+v", i, ds[i].Forecast)
		}
	}
	t.Logf("%d forecasts before the crossing, %d hold it in their range", given, inside)
}

// TestOperatorNewNormal: an operator's "this is the new normal" resolves
// the alert at once, no alert opens while the new level is learnt, and the
// level is normal afterwards.
func TestOperatorNewNormal(t *testing.T) {
	s := corpus.SetPoints()[0]
	det, _ := anomaly.NewOnline(anomaly.OnlineConfig{WarmupRows: s.Warmup, Features: s.Sensors})
	cfg := DefaultConfig()
	cfg.NewNormal.Off = true // only the operator may re-baseline here
	m, err := New(det, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var id string
	var resolved *alert.Alert
	for i, row := range s.Rows {
		r := reading(s, i, row)
		d, err := m.Observe(&r)
		if err != nil {
			t.Fatal(err)
		}
		if d.Event != nil && d.Event.State == alert.Opened {
			if id != "" {
				t.Fatalf("row %d: a second alert opened", i)
			}
			id = d.Event.ID
		}
		if i == s.Change+20 {
			if id == "" {
				t.Fatal("no alert at the set-point change")
			}
			if _, ok := m.Ack("nope", "ana", alert.NewNormal, r.Time); ok {
				t.Fatal("acknowledged an unknown alert")
			}
			ev, ok := m.Ack(id, "ana", alert.NewNormal, r.Time)
			if !ok {
				t.Fatal("the new-normal acknowledgement was refused")
			}
			resolved = &ev
		}
		if i > s.Change+20 && (d.Open || (i > s.Change+20+cfg.NewNormal.Readings/2 && d.Score >= cfg.Alert.Open)) {
			t.Fatalf("row %d after the operator's new normal: score %v open %v learning %v", i, d.Score, d.Open, d.Learning)
		}
	}
	if resolved.State != alert.Resolved || resolved.Resolution != alert.Operator || !resolved.Acked || resolved.AckedBy != "ana" || resolved.Reason != alert.NewNormal {
		t.Fatalf("resolving event %+v", resolved)
	}
}

// TestReplayIsDeterministic: the scorer rebuilds state by replaying an
// asset's readings; the rebuilt Monitor makes the same decisions.
func TestReplayIsDeterministic(t *testing.T) {
	s := corpus.Wear(2100, 3300, 2000)
	a, b := replay(t, s, Config{}), replay(t, s, Config{})
	for i := range a {
		ea, eb := a[i].Event, b[i].Event
		if a[i].Score != b[i].Score || (ea == nil) != (eb == nil) || (ea != nil && (ea.ID != eb.ID || ea.Revision != eb.Revision)) {
			t.Fatalf("row %d differs: %+v vs %+v", i, a[i], b[i])
		}
	}
}

// TestSwapKeepsTheAlert: a new detector under an open alert keeps it open
// until the new detector's scores resolve it.
func TestSwapKeepsTheAlert(t *testing.T) {
	s := corpus.Fault(20, 1000, 400)
	det, _ := anomaly.NewOnline(anomaly.OnlineConfig{WarmupRows: s.Warmup, Features: s.Sensors})
	m, _ := New(det, Config{})
	for i, row := range s.Rows[:1100] {
		r := reading(s, i, row)
		if _, err := m.Observe(&r); err != nil {
			t.Fatal(err)
		}
	}
	before, ok := m.Current()
	if !ok {
		t.Fatal("no alert open in the fault")
	}
	other, _ := anomaly.NewOnline(anomaly.OnlineConfig{WarmupRows: 50, Features: s.Sensors})
	m.SetDetector(other)
	r := reading(s, 1100, s.Rows[1100])
	d, _ := m.Observe(&r)
	if after, ok := m.Current(); !ok || after.ID != before.ID || d.Event != nil {
		t.Fatalf("swap changed the alert: before %s, after %+v, event %+v", before.ID, after, d.Event)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	if DefaultConfig().FailureScore != 0 {
		t.Error("a failure level by default: forecasts would name a time to an arbitrary level")
	}
	bad := map[string]Config{
		"resolve above open": {Alert: alert.Thresholds{Open: 0.9, Resolve: 0.95, Major: 0.99, Critical: 0.999}},
		"short horizon":      {NewNormal: Horizon{Readings: 3}},
		"negative rise":      {MaxRise: -1},
		"failure score 1":    {FailureScore: 1},
		"negative failure":   {FailureScore: -0.5},
	}
	for name, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestSettingsAreTheDefaults: the services' alert section at its defaults
// is the decision's default configuration.
func TestSettingsAreTheDefaults(t *testing.T) {
	if got, want := DefaultSettings().Config().WithDefaults(), DefaultConfig(); got != want {
		t.Fatalf("settings give %+v, defaults are %+v", got, want)
	}
}
