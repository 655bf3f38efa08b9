package agent

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pdmstream/pdm/edge-agent/internal/mqtttest"
	"github.com/pdmstream/pdm/edge-agent/internal/opcua"
	"github.com/pdmstream/pdm/edge-agent/internal/opcua/opcuatest"
	"github.com/pdmstream/pdm/edge-agent/internal/publish"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// markedSource yields values with quality marks in a fixed cycle, the
// last one contradicting itself (a bad mark on a value that is present).
type markedSource struct {
	n       int
	quality map[string]string
	closed  int
}

func (s *markedSource) Next(context.Context) (map[string]float64, error) {
	s.n++
	switch s.n % 4 {
	case 1:
		s.quality = nil
		return map[string]float64{"a": 1, "b": 2}, nil
	case 2:
		s.quality = map[string]string{"b": "BadSensorFailure"}
		return map[string]float64{"a": 1}, nil
	case 3:
		s.quality = map[string]string{"a": "UncertainLastUsableValue", "b": "stale"}
		return map[string]float64{"a": 1, "b": 2}, nil
	default:
		s.quality = map[string]string{"a": "bad"}
		return map[string]float64{"a": 1}, nil
	}
}

func (s *markedSource) Quality() map[string]string  { return s.quality }
func (s *markedSource) Close(context.Context) error { s.closed++; return nil }

// The marks a source gives go into the spooled readings and are counted by
// asset, sensor and class; a reading whose marks contradict its values is
// dropped as bad_quality; the source is closed when the stream ends.
func TestQualityMarksSpooledAndCounted(t *testing.T) {
	cfg := testConfig("tcp://127.0.0.1:1", "s")
	cfg.Limit = 6
	a, err := New(cfg, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	sp := &memSpool{}
	src := &markedSource{}
	a.generate(context.Background(), stream{asset: "dev-1", src: src, paced: true}, sp)
	var got []map[string]string
	for _, rec := range sp.recs {
		env, err := publish.DecodeEnvelope(rec)
		if err != nil {
			t.Fatal(err)
		}
		items, err := wire.DefaultLimits().Decode(env.Payload, time.Now())
		if err != nil || items[0].Err != nil {
			t.Fatalf("spooled reading: %v %v", err, items)
		}
		got = append(got, items[0].Reading.Quality)
	}
	want := []map[string]string{nil, {"b": "BadSensorFailure"}, {"a": "UncertainLastUsableValue", "b": "stale"}, nil, {"b": "BadSensorFailure"}, {"a": "UncertainLastUsableValue", "b": "stale"}}
	if len(got) != len(want) {
		t.Fatalf("%d readings spooled, want %d", len(got), len(want))
	}
	for i := range want {
		if !maps.Equal(got[i], want[i]) {
			t.Errorf("reading %d quality %v, want %v", i+1, got[i], want[i])
		}
	}
	for _, c := range []struct {
		sensor, class string
		want          float64
	}{{"b", "bad", 2}, {"a", "uncertain", 2}, {"b", "stale", 2}, {"a", "bad", 0}} {
		if v := testutil.ToFloat64(a.m.marked.WithLabelValues("dev-1", c.sensor, c.class)); v != c.want {
			t.Errorf("marked{sensor=%s,quality=%s} = %v, want %v", c.sensor, c.class, v, c.want)
		}
	}
	if v := testutil.ToFloat64(a.m.dropped.WithLabelValues("bad_quality")); v != 1 {
		t.Errorf("dropped bad_quality %v, want 1", v)
	}
	if src.closed != 1 {
		t.Errorf("source closed %d times, want 1", src.closed)
	}
}

// End to end: the agent with an OPC UA asset publishes through the
// shared Mosquitto; a separate subscriber sees the server's values under
// the configured sensor names, a Bad node left out and marked, an
// Uncertain one kept and marked; the OPC UA server restarts and values
// resume in the same sequence.
func TestOPCUAToStack(t *testing.T) {
	srv := opcuatest.New(t, opcuatest.Options{}, "Vib", "Temp", "Flow")
	site := stacktest.Unique("opcua")
	sub := mqtttest.Subscribe(t, stacktest.MQTTOptions(t), site)
	cfg := stackConfig(t, site)
	cfg.Assets = ""
	cfg.OPCUA.Endpoint = srv.Endpoint()
	cfg.OPCUA.PublishingInterval = 50 * time.Millisecond
	cfg.OPCUA.Timeout = 2 * time.Second
	cfg.OPCUA.MaxReconnectInterval = 300 * time.Millisecond
	cfg.OPCUA.Assets = []opcua.Asset{{ID: "pump-7", Items: []opcua.Item{
		{Node: opcuatest.NodeID("Vib"), Sensor: "vibration_rms"},
		{Node: opcuatest.NodeID("Temp"), Sensor: "bearing_temp", SamplingInterval: 100 * time.Millisecond},
		{Node: opcuatest.NodeID("Flow"), Sensor: "flow"},
	}}}
	ctx, cancel := context.WithCancel(context.Background())
	a, done := start(t, ctx, cfg)
	defer func() { cancel(); waitDone(t, done, 10*time.Second) }()
	if ids := a.AssetIDs(); len(ids) != 1 || ids[0] != "pump-7" {
		t.Fatalf("asset ids %v", ids)
	}

	// find waits for a reading that satisfies ok and returns it.
	find := func(what string, ok func(mqtttest.Got) bool) mqtttest.Got {
		t.Helper()
		var hit mqtttest.Got
		stacktest.Eventually(t, 15*time.Second, func() bool {
			first, _ := sub.FirstArrivals()
			for _, g := range first["pump-7"] {
				if ok(g) {
					hit = g
					return true
				}
			}
			return false
		}, "no reading with %s arrived; got %d readings", what, func() any { return sub.Distinct()["pump-7"] })
		return hit
	}
	srv.Set("Vib", 2.5)
	srv.Set("Temp", 61.25)
	srv.Set("Flow", 118)
	good := find("the set values", func(g mqtttest.Got) bool {
		return maps.Equal(g.Sensors, map[string]float64{"vibration_rms": 2.5, "bearing_temp": 61.25, "flow": 118})
	})
	if good.Quality != nil {
		t.Errorf("good values arrived marked %v", good.Quality)
	}

	srv.SetStatus("Flow", ua.StatusBadSensorFailure, 0)
	srv.SetStatus("Temp", ua.StatusUncertainLastUsableValue, 61.5)
	marked := find("flow bad and temperature uncertain", func(g mqtttest.Got) bool {
		return g.Quality["flow"] != "" && g.Quality["bearing_temp"] != ""
	})
	if !maps.Equal(marked.Quality, map[string]string{"flow": "BadSensorFailure", "bearing_temp": "UncertainLastUsableValue"}) {
		t.Errorf("quality %v", marked.Quality)
	}
	if !maps.Equal(marked.Sensors, map[string]float64{"vibration_rms": 2.5, "bearing_temp": 61.5}) {
		t.Errorf("sensors %v: a bad value must not be published, an uncertain one must", marked.Sensors)
	}
	stacktest.Eventually(t, 5*time.Second, func() bool {
		return testutil.ToFloat64(a.m.marked.WithLabelValues("pump-7", "flow", "bad")) >= 1 &&
			testutil.ToFloat64(a.m.marked.WithLabelValues("pump-7", "bearing_temp", "uncertain")) >= 1
	}, "marks not counted")

	srv.Stop()
	stacktest.Eventually(t, 10*time.Second, func() bool {
		return testutil.ToFloat64(a.m.missed.WithLabelValues("pump-7")) >= 2
	}, "missed cycles while the OPC UA server is down: %v", func() any { return testutil.ToFloat64(a.m.missed.WithLabelValues("pump-7")) })
	srv.Set("Flow", 117)
	srv.Set("Temp", 60)
	srv.Start()
	resumed := find("the values after the server restart", func(g mqtttest.Got) bool {
		return maps.Equal(g.Sensors, map[string]float64{"vibration_rms": 2.5, "bearing_temp": 60, "flow": 117})
	})
	if resumed.Quality != nil {
		t.Errorf("recovered values arrived marked %v", resumed.Quality)
	}
	// One sequence across the restart: no gap, no duplicate.
	first, _ := sub.FirstArrivals()
	got := first["pump-7"]
	for i, g := range got {
		if g.Seq != uint64(i+1) {
			t.Fatalf("reading %d has seq %d: the sequence has a gap", i, g.Seq)
		}
	}
	if sub.Invalid() > 0 {
		t.Errorf("%d invalid readings arrived", sub.Invalid())
	}
	t.Logf("%d readings of pump-7, %v missed cycles during the restart", len(got), testutil.ToFloat64(a.m.missed.WithLabelValues("pump-7")))
}
