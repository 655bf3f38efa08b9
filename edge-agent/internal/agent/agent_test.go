package agent

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pdmstream/pdm/edge-agent/internal/config"
	"github.com/pdmstream/pdm/edge-agent/internal/mqtttest"
	"github.com/pdmstream/pdm/edge-agent/internal/sim"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

func testConfig(url, site string) config.Config {
	cfg := config.Default()
	cfg.Site = site
	cfg.AgentID = site + "-gw"
	cfg.MQTT.URL = url
	cfg.MQTT.MaxReconnectInterval = 300 * time.Millisecond
	cfg.HTTP.Addr = ""
	cfg.Rate = 0
	// No bridge runs in these tests: a reading is done at the broker's
	// PUBACK. confirm_test.go runs with confirmations.
	cfg.MQTT.Confirm = false
	return cfg
}

// stackConfig is testConfig for the shared stack's broker, with the
// environment's credentials and TLS.
func stackConfig(t *testing.T, site string) config.Config {
	t.Helper()
	env := config.Default()
	stacktest.FromEnv(t, &env)
	cfg := testConfig(stacktest.MQTTURL(t), site)
	cfg.MQTT.Username, cfg.MQTT.Password, cfg.MQTT.TLS = env.MQTT.Username, env.MQTT.Password, env.MQTT.TLS
	return cfg
}

// start runs an agent; the returned channel yields Run's result.
func start(t *testing.T, ctx context.Context, cfg config.Config) (*Agent, chan error) {
	t.Helper()
	a, err := New(cfg, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	return a, done
}

func waitDone(t *testing.T, done chan error, timeout time.Duration) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("agent: %v", err)
		}
	case <-time.After(timeout):
		t.Fatalf("agent did not finish within %s", timeout)
	}
}

// Publish a fixed number of readings of several assets to the shared
// stack's Mosquitto and check, with a separate subscriber, that exactly
// those arrive, in order per asset, with the simulator's values.
func TestPublishToStack(t *testing.T) {
	for _, batch := range []int{1, 7} {
		t.Run(map[int]string{1: "single", 7: "batch7"}[batch], func(t *testing.T) {
			site := stacktest.Unique("edge")
			sub := mqtttest.Subscribe(t, stacktest.MQTTOptions(t), site)
			cfg := stackConfig(t, site)
			cfg.Assets = "pump-1=pump,motor-1=motor,pump-2=pump"
			cfg.Degrade = "pump-2=cavitation@1h"
			cfg.Batch, cfg.Limit, cfg.Seed = batch, 500, 42
			_, done := start(t, context.Background(), cfg)
			waitDone(t, done, 30*time.Second)
			assets := []string{"pump-1", "motor-1", "pump-2"}
			stacktest.Eventually(t, 10*time.Second, func() bool {
				d := sub.Distinct()
				return d["pump-1"] == 500 && d["motor-1"] == 500 && d["pump-2"] == 500
			}, "subscriber has %v", func() any { return sub.Distinct() })
			first := sub.CheckComplete(t, assets, 500)
			if sub.Invalid() > 0 {
				t.Errorf("%d invalid readings arrived", sub.Invalid())
			}
			// Values intact: a twin simulator with the same seed and step
			// gives exactly what arrived.
			parsed, _ := config.ParseAssets(cfg.Assets)
			for _, as := range parsed {
				twin, _ := sim.New(as.ID, as.Kind, sim.Options{Seed: 42, Step: simStep(cfg), TimeScale: cfg.TimeScale}, nil)
				if as.ID == "pump-2" {
					twin.Schedule(sim.Cavitation, time.Hour, 0)
				}
				for i, g := range first[as.ID] {
					want := twin.Next(time.Now())
					for k, v := range want {
						if g.Sensors[k] != v {
							t.Fatalf("%s seq %d sensor %s: got %v, want %v", as.ID, g.Seq, k, g.Sensors[k], v)
						}
					}
					if len(g.Sensors) != len(want) {
						t.Fatalf("%s reading %d: %d sensors, want %d", as.ID, i, len(g.Sensors), len(want))
					}
				}
			}
		})
	}
}

// The agent starts while the broker is down, the broker comes up, is
// stopped in mid-stream and comes up again: every reading arrives, in order.
func TestStoreAndForwardBrokerOutage(t *testing.T) {
	b := mqtttest.NewBroker(t)
	b.Start()
	site := stacktest.Unique("sf")
	sub := mqtttest.Subscribe(t, b.Options(), site) // persistent session, kept across restarts
	b.Stop()

	cfg := testConfig(b.URL(), site)
	cfg.Assets = "pump-1=pump,motor-1=motor"
	cfg.Spool.Dir = t.TempDir()
	cfg.Rate, cfg.Batch, cfg.Limit = 1500, 4, 3000
	a, done := start(t, context.Background(), cfg)

	// Broker down: readings go to the spool.
	stacktest.Eventually(t, 10*time.Second, func() bool {
		return testutil.ToFloat64(a.m.generated.WithLabelValues("pump-1")) >= 500
	}, "agent generated too little while the broker was down")
	if acked := testutil.ToFloat64(a.m.acked); acked != 0 {
		t.Fatalf("%v readings acked with the broker down", acked)
	}

	b.Start()
	stacktest.Eventually(t, 15*time.Second, func() bool {
		return sub.Distinct()["pump-1"] >= 800
	}, "spooled readings did not arrive after the broker came up: %v", func() any { return sub.Distinct() })
	b.Stop() // in mid-stream
	b.Start()

	waitDone(t, done, 30*time.Second)
	stacktest.Eventually(t, 15*time.Second, func() bool {
		d := sub.Distinct()
		return d["pump-1"] == 3000 && d["motor-1"] == 3000
	}, "subscriber has %v, want 3000 each; missing %v", func() any { return sub.Distinct() }, func() any { return sub.Missing(3000) })
	sub.CheckComplete(t, []string{"pump-1", "motor-1"}, 3000)
	if r := testutil.ToFloat64(a.m.reconnects); r < 1 {
		t.Errorf("reconnects %v, want >= 1", r)
	}
}

// A long outage, compressed: two assets at 1,000 readings/s each fill a
// 2 MiB spool (an hour of 1 Hz data each), and the newest readings are
// dropped and counted while the oldest are kept. When the broker returns the backlog
// drains in order while sampling goes on, and what is taken during the
// drain is kept and follows it: per asset one gap of dropped readings, seq
// order on arrival, nothing lost after the gap.
func TestLongOutageFillsSpoolAndDrainsInOrder(t *testing.T) {
	b := mqtttest.NewBroker(t)
	b.Start()
	site := stacktest.Unique("lo")
	sub := mqtttest.Subscribe(t, b.Options(), site)
	b.Stop()

	const limit, maxBytes = 16000, 2 << 20
	assets := []string{"pump-1", "motor-1"}
	cfg := testConfig(b.URL(), site)
	cfg.Assets = "pump-1=pump,motor-1=motor"
	cfg.Spool.Dir = t.TempDir()
	cfg.Spool.MaxBytes, cfg.Spool.SegmentBytes = maxBytes, 128<<10
	cfg.Rate, cfg.Batch, cfg.Limit = 1000, 10, limit
	a, done := start(t, context.Background(), cfg)

	full := func() float64 { return testutil.ToFloat64(a.m.dropped.WithLabelValues("spool_full")) }
	stacktest.Eventually(t, time.Minute, func() bool { return full() >= 2000 },
		"the spool did not fill: %v readings dropped as spool_full", func() any { return full() })
	if size := dirSize(t, cfg.Spool.Dir); size > maxBytes {
		t.Fatalf("spool holds %d bytes on disk, limit %d", size, maxBytes)
	}
	kept := sub.Distinct()
	if kept["pump-1"]+kept["motor-1"] != 0 {
		t.Fatalf("readings arrived with the broker down: %v", kept)
	}
	reconnect, backlog := time.Now(), a.peekSeq("pump-1")-1
	b.Start()
	stacktest.Eventually(t, time.Minute, func() bool { return sub.Distinct()["pump-1"] >= int(backlog)-int(full()/2) },
		"the backlog did not drain: %v", func() any { return sub.Distinct() })
	drained := time.Since(reconnect)

	waitDone(t, done, 2*time.Minute)
	dropped := full()
	stacktest.Eventually(t, 30*time.Second, func() bool {
		d := sub.Distinct()
		return float64(d["pump-1"]+d["motor-1"])+dropped == 2*limit
	}, "subscriber has %v, %v dropped, want %d in all", func() any { return sub.Distinct() }, dropped, 2*limit)

	first, _ := sub.FirstArrivals()
	for _, as := range assets {
		gs := first[as]
		for i := 1; i < len(gs); i++ {
			if gs[i].Seq <= gs[i-1].Seq {
				t.Fatalf("%s: seq %d arrived after %d", as, gs[i].Seq, gs[i-1].Seq)
			}
		}
		gaps := sub.Missing(limit)[as]
		if len(gaps) != 1 {
			t.Fatalf("%s: missing ranges %v, want one gap of dropped readings", as, gaps)
		}
		if gaps[0][0] == 1 || gaps[0][1] == limit {
			t.Fatalf("%s: gap %v: the oldest readings must be kept and those taken during the drain sent", as, gaps[0])
		}
		t.Logf("%s: %d readings kept, seq %d..%d dropped while the spool was full", as, len(gs), gaps[0][0], gaps[0][1])
	}
	t.Logf("%v readings dropped as spool_full; the backlog (pump-1 seq %d, both assets) sent %s after the broker returned, while sampling went on (2 cores)",
		dropped, backlog, drained.Round(10*time.Millisecond))
}

// dirSize is the bytes of the regular files in dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range es {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n
}

// An agent stopped with readings still spooled sends them after its
// restart, and its sequence numbers continue where they stopped.
func TestRestartSendsSpool(t *testing.T) {
	b := mqtttest.NewBroker(t)
	site := stacktest.Unique("rs")
	cfg := testConfig(b.URL(), site)
	cfg.Assets = "pump-1=pump,motor-1=motor"
	cfg.Spool.Dir = t.TempDir()
	cfg.Limit, cfg.Batch = 200, 3

	// First run: broker down, every reading spooled, then stopped.
	ctx, cancel := context.WithCancel(context.Background())
	a, done := start(t, ctx, cfg)
	stacktest.Eventually(t, 10*time.Second, func() bool {
		return testutil.ToFloat64(a.m.generated.WithLabelValues("motor-1")) == 200
	}, "first run did not generate 200 readings")
	cancel()
	waitDone(t, done, 10*time.Second)

	b.Start()
	sub := mqtttest.Subscribe(t, b.Options(), site)
	cfg.Limit = 300
	_, done = start(t, context.Background(), cfg)
	waitDone(t, done, 30*time.Second)
	stacktest.Eventually(t, 10*time.Second, func() bool {
		d := sub.Distinct()
		return d["pump-1"] == 500 && d["motor-1"] == 500
	}, "subscriber has %v, want 500 each", func() any { return sub.Distinct() })
	sub.CheckComplete(t, []string{"pump-1", "motor-1"}, 500)
}

// nanSource yields a NaN on every third reading.
type nanSource struct{ n int }

func (s *nanSource) Next(context.Context) (map[string]float64, error) {
	s.n++
	if s.n%3 == 0 {
		return map[string]float64{"x": math.NaN()}, nil
	}
	return map[string]float64{"x": float64(s.n)}, nil
}

type memSpool struct{ recs [][]byte }

func (m *memSpool) Append(b []byte) error { m.recs = append(m.recs, b); return nil }
func (m *memSpool) Unread() uint64        { return 0 }

func TestInvalidReadingsDropped(t *testing.T) {
	cfg := testConfig("tcp://127.0.0.1:1", "s")
	cfg.Limit, cfg.Batch = 10, 4
	a, err := New(cfg, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	sp := &memSpool{}
	a.generate(context.Background(), stream{asset: "dev-1", src: &nanSource{}, paced: true}, sp)
	if got := testutil.ToFloat64(a.m.dropped.WithLabelValues(string(wire.CodeOf(&wire.RejectError{Kind: wire.ErrValue})))); got != 4 {
		t.Errorf("dropped %v NaN readings, want 4 (of 14 generated)", got)
	}
	if len(sp.recs) != 3 { // 4 + 4 + 2
		t.Fatalf("%d messages spooled, want 3", len(sp.recs))
	}
	if a.seqs["dev-1"] != 10 {
		t.Errorf("last seq %d, want 10: dropped readings take no sequence number", a.seqs["dev-1"])
	}
}

func TestControlAPI(t *testing.T) {
	cfg := testConfig("tcp://127.0.0.1:1", "s")
	cfg.Assets = "pump-1=pump,motor-1=motor"
	cfg.HTTP.Token, cfg.HTTP.ReadToken = "w-secret", "r-secret"
	a, err := New(cfg, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	call := func(method, path, token string) (int, string) {
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	post := func(path string) (int, string) { return call("POST", path, "w-secret") }
	// The control API's scopes: a write needs the write token, a read the
	// read (or the write) token; nothing changes on a refused write.
	for _, c := range []struct {
		method, path, token string
		want                int
	}{
		{"POST", "/v1/assets/pump-1/degrade?mode=bearing_wear", "", http.StatusUnauthorized},
		{"POST", "/v1/assets/pump-1/repair", "wrong", http.StatusUnauthorized},
		{"POST", "/v1/assets/pump-1/setpoint?load=0.5", "r-secret", http.StatusForbidden},
		{"GET", "/v1/assets", "", http.StatusUnauthorized},
		{"GET", "/v1/assets", "r-secret", http.StatusOK},
		{"GET", "/healthz", "", http.StatusOK},
	} {
		if code, body := call(c.method, c.path, c.token); code != c.want {
			t.Errorf("%s %s with token %q: %d %s, want %d", c.method, c.path, c.token, code, body, c.want)
		}
	}
	if len(a.byID["pump-1"].State().Active) != 0 {
		t.Fatal("a refused degrade degraded the pump")
	}
	if code, body := post("/v1/assets/pump-1/degrade?mode=bearing_wear&ttf=10h"); code != 200 || !strings.Contains(body, "failure_sim_s") {
		t.Fatalf("degrade: %d %s", code, body)
	}
	if code, _ := post("/v1/assets/pump-1/degrade?mode=bearing_wear"); code != http.StatusConflict {
		t.Errorf("second degrade: %d, want 409", code)
	}
	if code, _ := post("/v1/assets/motor-1/degrade?mode=cavitation"); code != http.StatusBadRequest {
		t.Errorf("cavitation on a motor: %d, want 400", code)
	}
	if code, _ := post("/v1/assets/nope/repair"); code != http.StatusNotFound {
		t.Errorf("unknown asset: %d, want 404", code)
	}
	code, body := call("GET", "/v1/assets", "w-secret")
	var states []sim.State
	if err := json.Unmarshal([]byte(body), &states); code != http.StatusOK || err != nil {
		t.Fatalf("GET /v1/assets: %d %v", code, err)
	}
	if len(states) != 2 || states[0].Asset != "pump-1" || len(states[0].Active) != 1 || states[0].Active[0].Mode != "bearing_wear" {
		t.Fatalf("states %+v", states)
	}
	if code, body := post("/v1/assets/pump-1/repair"); code != 200 || !strings.Contains(body, "repaired_at") {
		t.Fatalf("repair: %d %s", code, body)
	}
	if len(a.byID["pump-1"].State().Active) != 0 {
		t.Error("still degraded after repair")
	}
	if resp, _ := http.Get(srv.URL + "/readyz"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz without broker: %d", resp.StatusCode)
	}
}

// A CSV file replays as fast as possible; the NaN row is dropped and
// counted; the agent exits at the end of the file once all is acknowledged.
func TestCSVReplay(t *testing.T) {
	b := mqtttest.NewBroker(t)
	b.Start()
	site := stacktest.Unique("csv")
	sub := mqtttest.Subscribe(t, b.Options(), site)
	cfg := testConfig(b.URL(), site)
	cfg.Assets = ""
	cfg.CSV.File, cfg.CSV.Asset, cfg.CSV.Speed = "../csvsource/testdata/comma.csv", "line-3", 0
	a, done := start(t, context.Background(), cfg)
	waitDone(t, done, 20*time.Second)
	stacktest.Eventually(t, 10*time.Second, func() bool { return sub.Distinct()["line-3"] == 3 }, "got %v", sub.Distinct())
	first := sub.CheckComplete(t, []string{"line-3"}, 3)
	if v := first["line-3"][1].Sensors["Vibration_RMS__mm_s_"]; v != 1.25 {
		t.Errorf("second row vibration %v", v)
	}
	if d := testutil.ToFloat64(a.m.dropped.WithLabelValues("bad_value")); d != 1 {
		t.Errorf("dropped %v, want the NaN row", d)
	}
}
