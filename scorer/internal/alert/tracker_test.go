package alert

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var th = Thresholds{Open: 0.8, Resolve: 0.5, Major: 0.9, Critical: 0.95, MinDuration: 3 * time.Second}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// run feeds one reading per second with the given scores and returns the
// events as "seq:state:severity".
func run(tr *Tracker, scores []float64, fc func(i int) *Forecast) []string {
	var out []string
	for i, s := range scores {
		o := Observation{
			Site: "s1", Asset: "a1", Seq: uint64(i + 1), Time: t0.Add(time.Duration(i) * time.Second),
			Score: s, Sensors: []Sensor{{"bearing_temp", 0.6}, {"vibration", 0.3}, {"rpm", 0.07}, {"load", 0.03}},
			Model: "m", Version: "1",
		}
		if fc != nil {
			o.Forecast = fc(i)
		}
		if a, ok := tr.Observe(o); ok {
			out = append(out, fmt.Sprintf("%d:%s:%s", o.Seq, a.State, a.Severity))
		}
	}
	return out
}

func TestTrackerLifecycle(t *testing.T) {
	cases := []struct {
		name   string
		scores []float64
		want   string
	}{
		{"quiet", []float64{0.1, 0.2, 0.3, 0.79, 0.1}, ""},
		{"short spike never opens", []float64{0.1, 0.9, 0.95, 0.2, 0.1, 0.1}, ""},
		{"opens after min duration", []float64{0.1, 0.85, 0.85, 0.85, 0.85}, "5:opened:warning"},
		{"dip inside hysteresis keeps counting", []float64{0.85, 0.6, 0.85, 0.85, 0.1}, "4:opened:warning"},
		{"dip below resolve restarts", []float64{0.85, 0.85, 0.4, 0.85, 0.85, 0.85, 0.85}, "7:opened:warning"},
		{"severity escalates", []float64{0.85, 0.85, 0.85, 0.85, 0.92, 0.97}, "4:opened:warning 5:updated:major 6:updated:critical"},
		{"severity never falls while open", []float64{0.97, 0.97, 0.97, 0.97, 0.85, 0.85}, "4:opened:critical"},
		{"resolves after min duration below", []float64{0.85, 0.85, 0.85, 0.85, 0.4, 0.4, 0.4, 0.4, 0.4}, "4:opened:warning 8:resolved:warning"},
		{"flapping makes one alert", []float64{0.85, 0.85, 0.85, 0.85, 0.4, 0.9, 0.4, 0.85, 0.45, 0.85, 0.3, 0.81, 0.2}, "4:opened:warning 6:updated:major"},
		{"reopens as a new alert", []float64{0.85, 0.85, 0.85, 0.85, 0.1, 0.1, 0.1, 0.1, 0.85, 0.85, 0.85, 0.85}, "4:opened:warning 8:resolved:warning 12:opened:warning"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(run(NewTracker(KindAnomaly, th), tc.scores, nil), " ")
			if got != tc.want {
				t.Fatalf("events %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTrackerContentAndIDs(t *testing.T) {
	scores := []float64{0.1, 0.85, 0.85, 0.85, 0.85, 0.1, 0.1, 0.1, 0.1}
	var events []Alert
	tr := NewTracker(KindAnomaly, th)
	for i, s := range scores {
		o := Observation{Site: "s1", Asset: "a1", Seq: uint64(100 + i), Time: t0.Add(time.Duration(i) * time.Second), Score: s,
			Sensors:  []Sensor{{"bearing_temp", 0.6}, {"vibration", 0.3}, {"rpm", 0.07}, {"load", 0.03}},
			Forecast: &Forecast{TimeToFailure: 3600, Low: 3000, High: 4000}, Model: "m", Version: "7"}
		if a, ok := tr.Observe(o); ok {
			events = append(events, a)
		}
	}
	if len(events) != 2 {
		t.Fatalf("%d events, want opened and resolved", len(events))
	}
	op, rs := events[0], events[1]
	if op.ID != ID("a1", KindAnomaly, 101) || rs.ID != op.ID {
		t.Errorf("ids %s %s, want both %s", op.ID, rs.ID, ID("a1", KindAnomaly, 101))
	}
	if op.FirstSeq != 101 || !op.FirstTime.Equal(t0.Add(time.Second)) || op.LastSeq != 104 {
		t.Errorf("first/last %d %v %d", op.FirstSeq, op.FirstTime, op.LastSeq)
	}
	if len(op.TopSensors) != 3 || op.TopSensors[0].Name != "bearing_temp" {
		t.Errorf("top sensors %v", op.TopSensors)
	}
	if op.Forecast == nil || op.Forecast.Low != 3000 || op.Model != "m" || op.Version != "7" || op.Site != "s1" {
		t.Errorf("content %+v", op)
	}
	if rs.State != Resolved || rs.ResolvedAt == nil || rs.Revision != 2 || rs.EventID() == op.EventID() {
		t.Errorf("resolved %+v", rs)
	}
	// The same input gives the same events: replay is idempotent.
	again := run(NewTracker(KindAnomaly, th), scores, nil)
	first := run(NewTracker(KindAnomaly, th), scores, nil)
	if strings.Join(again, ",") != strings.Join(first, ",") {
		t.Errorf("replay differs: %v vs %v", again, first)
	}
}

func TestTrackerForecastUpdate(t *testing.T) {
	ttf := []float64{3600, 3500, 3400, 3300, 3200, 2000, 1900}
	got := run(NewTracker(KindAnomaly, th), []float64{0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85}, func(i int) *Forecast {
		return &Forecast{TimeToFailure: ttf[i], Low: ttf[i] * 0.8, High: ttf[i] * 1.2}
	})
	if want := "4:opened:warning 6:updated:warning"; strings.Join(got, " ") != want {
		t.Fatalf("events %v, want %s", got, want)
	}
}

func TestTrackerAckAndWarmup(t *testing.T) {
	tr := NewTracker(KindAnomaly, th)
	var id string
	for i := range 5 {
		if a, ok := tr.Observe(Observation{Asset: "a", Seq: uint64(i + 1), Time: t0.Add(time.Duration(i) * time.Second), Score: 0.9}); ok {
			id = a.ID
		}
	}
	if _, ok := tr.Ack("other", "op", t0); ok {
		t.Error("ack of an unknown id succeeded")
	}
	ev, ok := tr.Ack(id, "op", t0)
	if !ok || ev.State != Updated || ev.Revision != 2 {
		t.Fatalf("ack of the open alert: %v %+v", ok, ev)
	}
	if a, _ := tr.Current(); !a.Acked || a.AckedBy != "op" {
		t.Errorf("ack not recorded: %+v", a)
	}
	if again, _ := tr.Ack(id, "op", t0); again.Revision != 2 {
		t.Errorf("second ack made a new event: %+v", again)
	}
	warm := NewTracker(KindAnomaly, th)
	for i := range 10 {
		if _, ok := warm.Observe(Observation{Asset: "a", Seq: uint64(i + 1), Time: t0.Add(time.Duration(i) * time.Second), Score: 0.99, WarmingUp: true}); ok {
			t.Fatal("a warming detector opened an alert")
		}
	}
}
