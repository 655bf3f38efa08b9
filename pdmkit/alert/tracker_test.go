package alert

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// th needs three readings and three seconds past a level: at one reading
// per second, the fourth reading changes the state.
var th = Thresholds{Open: 0.8, Resolve: 0.5, Major: 0.9, Critical: 0.95, MinReadings: 3, MinDuration: 3 * time.Second}

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
		{"dip below open restarts", []float64{0.85, 0.85, 0.6, 0.85, 0.85, 0.85, 0.85}, "7:opened:warning"},
		{"severity escalates", []float64{0.85, 0.85, 0.85, 0.85, 0.92, 0.97}, "4:opened:warning 5:updated:major 6:updated:critical"},
		{"severity never falls while open", []float64{0.97, 0.97, 0.97, 0.97, 0.85, 0.85}, "4:opened:critical"},
		{"resolves after min duration below", []float64{0.85, 0.85, 0.85, 0.85, 0.4, 0.4, 0.4, 0.4, 0.4}, "4:opened:warning 8:resolved:warning"},
		{"flapping makes one alert", []float64{0.85, 0.85, 0.85, 0.85, 0.4, 0.9, 0.4, 0.85, 0.45, 0.85, 0.3, 0.81, 0.2}, "4:opened:warning 6:updated:major"},
		{"a dip inside hysteresis keeps it open", []float64{0.85, 0.85, 0.85, 0.85, 0.6, 0.6, 0.6, 0.6, 0.6}, "4:opened:warning"},
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
	if rs.State != Resolved || rs.ResolvedAt == nil || rs.Revision != 2 || rs.EventID() == op.EventID() || rs.Resolution != Recovered || rs.Forecast != nil {
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
		at := t0.Add(time.Duration(i)*time.Second + time.Duration(ttf[i])*time.Second)
		return &Forecast{TimeToFailure: ttf[i], Low: ttf[i] * 0.8, High: ttf[i] * 1.2, FailureAt: at}
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
	if _, ok := tr.Ack("other", "op", "", t0); ok {
		t.Error("ack of an unknown id succeeded")
	}
	ev, ok := tr.Ack(id, "op", "checked the pump", t0)
	if !ok || ev.State != Updated || ev.Revision != 2 {
		t.Fatalf("ack of the open alert: %v %+v", ok, ev)
	}
	if a, _ := tr.Current(); !a.Acked || a.AckedBy != "op" || a.Reason != "checked the pump" {
		t.Errorf("ack not recorded: %+v", a)
	}
	if again, _ := tr.Ack(id, "op", "", t0); again.Revision != 2 {
		t.Errorf("second ack made a new event: %+v", again)
	}
	warm := NewTracker(KindAnomaly, th)
	for i := range 10 {
		if _, ok := warm.Observe(Observation{Asset: "a", Seq: uint64(i + 1), Time: t0.Add(time.Duration(i) * time.Second), Score: 0.99, WarmingUp: true}); ok {
			t.Fatal("a warming detector opened an alert")
		}
	}
}

// TestTrackerReadingsAndTime: a change needs both MinReadings readings and
// MinDuration of reading time, so the same settings hold for fast and slow
// data.
func TestTrackerReadingsAndTime(t *testing.T) {
	cases := []struct {
		name string
		th   Thresholds
		step time.Duration
		want string // seq of the opening
	}{
		{"readings decide on slow data", Thresholds{MinReadings: 3, MinDuration: 10 * time.Second}, 5 * time.Minute, "3"},
		{"time decides on fast data", Thresholds{MinReadings: 3, MinDuration: 10 * time.Second}, time.Second, "11"},
		{"readings only", Thresholds{MinReadings: 5}, time.Hour, "5"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.th.Open, tc.th.Resolve, tc.th.Major, tc.th.Critical = 0.8, 0.5, 0.9, 0.95
			tr := NewTracker(KindAnomaly, tc.th)
			got := ""
			for i := range 20 {
				if a, ok := tr.Observe(Observation{Asset: "a", Seq: uint64(i + 1), Time: t0.Add(time.Duration(i) * tc.step), Score: 0.85}); ok {
					got = fmt.Sprint(a.LastSeq)
					break
				}
			}
			if got != tc.want {
				t.Fatalf("opened at reading %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTrackerResolveWithReason(t *testing.T) {
	tr := NewTracker(KindAnomaly, th)
	run(tr, []float64{0.9, 0.9, 0.9, 0.9}, nil)
	ev, ok := tr.Resolve(Observation{Asset: "a1", Seq: 9, Time: t0.Add(9 * time.Second), Score: 0.9}, NewNormal)
	if !ok || ev.State != Resolved || ev.Resolution != NewNormal || ev.LastSeq != 9 || tr.Open() {
		t.Fatalf("resolve: %v %+v", ok, ev)
	}
	if _, ok := tr.Resolve(Observation{}, NewNormal); ok {
		t.Error("resolving with no open alert made an event")
	}
}

func TestThresholdsValidate(t *testing.T) {
	good := Thresholds{Open: 0.99, Resolve: 0.9, Major: 0.995, Critical: 0.999}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, th := range map[string]Thresholds{
		"resolve above open": {Open: 0.9, Resolve: 0.95, Major: 0.99, Critical: 0.999},
		"open 1":             {Open: 1, Resolve: 0.9, Major: 1, Critical: 1},
		"major below open":   {Open: 0.99, Resolve: 0.9, Major: 0.95, Critical: 0.999},
		"negative readings":  {Open: 0.99, Resolve: 0.9, Major: 0.995, Critical: 0.999, MinReadings: -1},
	} {
		if err := th.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
