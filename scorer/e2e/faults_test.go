package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// TestFaults runs the whole pipeline — edge agent → Mosquitto → bridge →
// Kafka → historian → InfluxDB, and Kafka → scorer → alerts on Kafka and
// on the floor's MQTT broker — through each fault of the servers around
// it in turn, mid-stream: Mosquitto stopped, and killed with the bridge
// connected and away (back before the broker and after it); Kafka killed
// and restarted; InfluxDB down; the floor broker down. The brokers are
// the test's own and InfluxDB is reached through a proxy, so the faults
// leave the shared stack alone.
//
// No service may exit; after each fault every one is ready again and
// readings reach InfluxDB and the scores within two minutes (its
// recovery time). While InfluxDB or the floor broker is down the scorer
// keeps scoring. Then a pump's bearing wears and its alert must still
// arrive on both alert outputs. At the end every reading published is in
// Kafka, in InfluxDB and scored; duplicates in Kafka are counted. The report (a table, also written to PDM_FAULT_REPORT
// when set) is what `make test-faults` prints.
func TestFaults(t *testing.T) {
	influxURL := stacktest.InfluxURL(t) // skips under -short before the build
	agentBin, ingestBin, scorerBin := binaries(t)
	edge := stacktest.StartMosquitto(t)
	floor := stacktest.StartMosquitto(t)
	cluster := stacktest.StartKafka(t, 1)
	bucket := stacktest.InfluxBucket(t)
	db, _, _ := strings.Cut(bucket, "/")
	influxAddr := stacktest.FreeAddr(t)
	influxTarget := strings.TrimPrefix(influxURL, "http://")
	stopInflux := stacktest.Proxy(t, influxAddr, influxTarget)

	site := stacktest.Unique("faults")
	readings, dlq := cluster.Topic("f-readings", 3), cluster.Topic("f-dlq", 1)
	scores, alerts := cluster.Topic("f-scores", 3), cluster.Topic("f-alerts", 1)
	models, retrain := cluster.Topic("f-models", 1), cluster.Topic("f-retrain", 1)
	// The test's brokers are open: no MQTT credentials or TLS, whatever
	// the shared stack's environment holds.
	env := append(cluster.Env("admin"), "PDM_MQTT_USERNAME=", "PDM_MQTT_PASSWORD=", "PDM_MQTT_TLS_CA_FILE=", "PDM_AGENT_TOKEN="+agentToken)
	kafka := []string{"-log.level", "warn", "-kafka.brokers", strings.Join(cluster.Brokers(), ",")}
	influx := []string{"-influx.url", "http://" + influxAddr, "-influx.bucket", bucket}

	type service struct {
		name, addr string
		args       []string
		proc       *stacktest.Proc
	}
	launch := func(name, bin string, args ...string) *service {
		addr := stacktest.FreeAddr(t)
		s := &service{name: name, addr: addr, args: append(args, "-http.addr", addr)}
		s.proc = stacktest.Start(t, env, bin, s.args...)
		return s
	}
	bridge := launch("bridge", ingestBin, append(append([]string{"bridge"}, kafka...),
		"-kafka.readings", readings, "-kafka.dead-letters", dlq, "-mqtt.url", edge.URL(), "-mqtt.filter", "pdm/v1/"+site+"/+/readings",
		"-mqtt.share-group", site, "-mqtt.client-id", stacktest.Unique("f-bridge"))...)
	stopBridge := func() { bridge.proc.Stop(t) }
	startBridge := func() { bridge.proc = stacktest.Start(t, env, ingestBin, bridge.args...) }
	historian := launch("historian", ingestBin, append(append(append([]string{"historian"}, kafka...), influx...),
		"-kafka.readings", readings, "-kafka.dead-letters", dlq, "-kafka.group", stacktest.Unique("f-historian"),
		"-influx.flush-interval", "200ms")...)
	scorer := launch("scorer", scorerBin, append(append(append([]string{"serve"}, kafka...), influx...),
		"-kafka.group", stacktest.Unique("f-scorer"), "-kafka.readings", readings, "-kafka.scores", scores,
		"-kafka.alerts", alerts, "-kafka.models", models, "-kafka.retrain", retrain, "-mqtt.url", floor.URL(),
		"-alert.min-duration", "3s")...)

	// Three machines at 20 readings/s each, one simulated hour per real
	// second, for 240 s: long enough for every fault and the alert on a
	// loaded machine.
	const rate, perAsset = 20, 4800
	assets := []string{"worn", "pump-2", "motor-1"}
	agent := launch("edge-agent", agentBin, "-site", site, "-agent-id", stacktest.Unique("gw"),
		"-assets", "worn=pump,pump-2=pump,motor-1=motor", "-rate", fmt.Sprint(rate), "-limit", fmt.Sprint(perAsset),
		"-time-scale", "3600", "-mqtt.url", edge.URL(), "-spool.dir", t.TempDir(), "-log.level", "warn")
	began := time.Now()
	services := []*service{bridge, historian, scorer, agent}
	for _, s := range services {
		stacktest.WaitReady(t, "http://"+s.addr+"/readyz")
	}

	// The floor's view of the alerts, across the floor broker's outage.
	var mu sync.Mutex
	var floorAlerts []alert.Alert
	fc := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(floor.URL()).SetClientID(stacktest.Unique("f-floor")).
		SetOnConnectHandler(func(c mqtt.Client) {
			c.Subscribe(wire.AlertsTopic(site, "+"), 1, func(_ mqtt.Client, m mqtt.Message) {
				var a alert.Alert
				if json.Unmarshal(m.Payload(), &a) == nil {
					mu.Lock()
					floorAlerts = append(floorAlerts, a)
					mu.Unlock()
				}
			})
		}).SetConnectRetry(true).SetMaxReconnectInterval(time.Second))
	if tok := fc.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("floor client: %v", tok.Error())
	}
	t.Cleanup(func() { fc.Disconnect(100) })

	points := func() float64 { return metricSum(historian.addr, "pdm_historian_points_total") }
	scoredNow := func() float64 { return metricSum(scorer.addr, "pdm_scorer_readings_scored_total") }
	ready := func(s *service) bool {
		resp, err := http.Get("http://" + s.addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}

	type row struct {
		fault      string
		outage     time.Duration
		recovery   time.Duration // until all of the below
		stored     time.Duration // until the historian wrote points again
		scored     time.Duration // until the scorer scored again
		storedDown float64       // points written while the server was down
		scoredDown float64       // readings scored while the server was down
	}
	var report []row
	// fault injects, holds the outage, restores, and measures the time
	// until every service is ready and readings reach InfluxDB and the
	// scores again.
	fault := func(name string, hold time.Duration, inject, restore func()) row {
		t.Helper()
		start := time.Now()
		inject()
		storedAtDown, scoredAtDown := points(), scoredNow()
		time.Sleep(hold)
		r := row{fault: name, storedDown: points() - storedAtDown, scoredDown: scoredNow() - scoredAtDown}
		restore()
		r.outage = time.Since(start)
		restored := time.Now()
		p0, s0 := points(), scoredNow()
		stacktest.Eventually(t, 2*time.Minute, func() bool {
			if r.stored == 0 && points() > p0 {
				r.stored = time.Since(restored)
			}
			if r.scored == 0 && scoredNow() > s0 {
				r.scored = time.Since(restored)
			}
			for _, s := range services {
				if s.proc.Exited() {
					t.Fatalf("%s: the %s exited:\n%s", name, s.name, s.proc.Log())
				}
				if !ready(s) {
					return false
				}
			}
			return r.stored > 0 && r.scored > 0
		}, "%s: the pipeline did not recover within 2 minutes", name)
		r.recovery = time.Since(restored)
		t.Logf("%s: down %s, recovered %s after restore (stored again %s, scored %s)", name, r.outage.Round(100*time.Millisecond),
			r.recovery.Round(100*time.Millisecond), r.stored.Round(100*time.Millisecond), r.scored.Round(100*time.Millisecond))
		report = append(report, r)
		return r
	}
	// Let the scorer learn normal before the faults (600 readings each).
	stacktest.Eventually(t, 2*time.Minute, func() bool { return scoredNow() >= 600*3 }, "the scorer has %v scores", scoredNow())

	fault("Mosquitto stopped (SIGTERM) and restarted", 0, edge.Stop, edge.Restart)
	fault("Mosquitto killed (SIGKILL), bridge connected", 0, edge.Kill, edge.Restart)
	fault("Mosquitto killed with the bridge away; broker back first", 0, func() {
		stopBridge()
		time.Sleep(2 * time.Second) // readings queue for the bridge's session
		edge.Kill()
	}, func() {
		edge.Restart()
		time.Sleep(2 * time.Second) // the agent is back; no bridge subscribed
		startBridge()
	})
	fault("Mosquitto killed with the bridge away; bridge back first", 0, func() {
		stopBridge()
		time.Sleep(2 * time.Second)
		edge.Kill()
		startBridge()
		time.Sleep(2 * time.Second) // the bridge retries against no broker
	}, edge.Restart)
	fault("Kafka killed, restarted after 15 s", 15*time.Second, func() { cluster.Kill(0) }, func() { cluster.Restart(0) })
	influxDown := fault("InfluxDB unreachable for 20 s", 20*time.Second, func() { stopInflux() }, func() {
		stopInflux = stacktest.Proxy(t, influxAddr, influxTarget)
	})
	if influxDown.scoredDown <= 0 {
		t.Errorf("the scorer scored nothing while InfluxDB was down")
	}
	floorDown := fault("floor MQTT broker killed for 10 s", 10*time.Second, floor.Kill, floor.Restart)
	if floorDown.scoredDown <= 0 {
		t.Errorf("the scorer scored nothing while the floor broker was down")
	}

	// Alerts still arrive: the worn pump's bearing fails 48 simulated
	// hours (48 s) from now.
	if left := time.Duration(perAsset/rate)*time.Second - time.Since(began); left < 60*time.Second {
		t.Fatalf("the faults took too long: the agent stops publishing in %s, too soon for an alert", left.Round(time.Second))
	}
	post(t, "http://"+agent.addr+"/v1/assets/worn/degrade?mode=bearing_wear&ttf=48h")
	wearFrom := time.Now()
	kafkaAlert := func() *alert.Alert {
		for _, m := range readAll(t, cluster.Conn("admin"), alerts, 1, 1<<20, 2*time.Second) {
			var a alert.Alert
			if json.Unmarshal(m.Value, &a) == nil && a.Site == site && a.Asset == "worn" && a.State != alert.Resolved {
				return &a
			}
		}
		return nil
	}
	floorAlert := func() *alert.Alert {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range floorAlerts {
			if a.Asset == "worn" && a.State != alert.Resolved {
				return &a
			}
		}
		return nil
	}
	var opened *alert.Alert
	stacktest.Eventually(t, 90*time.Second, func() bool { opened = floorAlert(); return opened != nil && kafkaAlert() != nil },
		"no alert for the worn pump on both outputs after the faults (floor: %v)", func() any { return floorAlert() })
	alertAfter := time.Since(wearFrom)
	t.Logf("alert %s %s for the worn pump %s after the wear began", opened.ID, opened.Severity, alertAfter.Round(100*time.Millisecond))

	// The agent ends once every reading is confirmed by the bridge.
	stacktest.Eventually(t, 4*time.Minute, func() bool { return agent.proc.Exited() }, "the agent did not see every reading confirmed")
	total := perAsset * len(assets)
	want := func(asset string, seq int) string { return fmt.Sprintf("%s/%d", asset, seq) }
	// Every record of the readings topic, counted per reading: a read of
	// the whole topic.
	var inKafka map[string]int
	stacktest.Eventually(t, time.Minute, func() bool {
		inKafka = map[string]int{}
		for _, m := range readAll(t, cluster.Conn("admin"), readings, 3, 1<<30, 10*time.Second) {
			items, err := wire.DefaultLimits().Decode(m.Value, time.Now())
			if err != nil {
				t.Fatalf("readings topic, record %d@%d: %v", m.Partition, m.Offset, err)
			}
			for _, it := range items {
				inKafka[want(it.Reading.Asset, int(it.Reading.Seq))]++
			}
		}
		return len(inKafka) >= total
	}, "%d of %d readings in Kafka", func() any { return len(inKafka) }, total)
	scoredIDs := map[string]bool{}
	stacktest.Eventually(t, 2*time.Minute, func() bool {
		for _, m := range readAll(t, cluster.Conn("admin"), scores, 3, 1<<30, 10*time.Second) {
			var s struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(m.Value, &s) == nil {
				scoredIDs[s.ID] = true
			}
		}
		return len(scoredIDs) >= total
	}, "%d of %d readings scored", func() any { return len(scoredIDs) }, total)
	var stored map[string]int
	stacktest.Eventually(t, time.Minute, func() bool {
		stored = influxCounts(t, influxURL, db, site, "readings", "seq")
		return sum(stored) >= total
	}, "InfluxDB per asset: %v, want %d each", func() any { return stored }, perAsset)
	dups, missing := 0, 0
	for _, a := range assets {
		for seq := 1; seq <= perAsset; seq++ {
			k := want(a, seq)
			if inKafka[k] == 0 {
				missing++
			}
			if !scoredIDs[k] {
				t.Errorf("%s was not scored", k)
			}
			dups += max(0, inKafka[k]-1)
		}
		if stored[a] != perAsset {
			t.Errorf("InfluxDB has %d readings of %s, want %d", stored[a], a, perAsset)
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d readings are missing from Kafka", missing, total)
	}
	for _, s := range services {
		if s == agent {
			continue
		}
		if s.proc.Exited() {
			t.Errorf("the %s exited:\n%s", s.name, s.proc.Log())
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "Faults injected mid-stream into the whole pipeline (scorer/e2e TestFaults), %d readings of %d machines at %d/s each:\n\n", total, len(assets), rate)
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "fault\tdown\trecovered after\tstored again\tscored again\tstored while down\tscored while down")
	for _, r := range report {
		d := func(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\n", r.fault, d(r.outage), d(r.recovery), d(r.stored), d(r.scored), r.storedDown, r.scoredDown)
	}
	w.Flush()
	fmt.Fprintf(&b, "\npublished %d; unique in Kafka %d (%d duplicates); in InfluxDB %d; scored %d; alert after the faults %s after the wear began; no service exited\n",
		total, len(inKafka), dups, sum(stored), len(scoredIDs), alertAfter.Round(100*time.Millisecond))
	t.Log("\n" + b.String())
	if path := os.Getenv("PDM_FAULT_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Errorf("report: %v", err)
		}
	}
}

// influxCounts is the number of points per asset of site in InfluxDB's
// measurement that hold field.
func influxCounts(t *testing.T, influxURL, db, site, measurement, field string) map[string]int {
	t.Helper()
	q := fmt.Sprintf(`SELECT count(%q) FROM %q WHERE "site" = '%s' GROUP BY "asset"`, field, measurement, site)
	resp, err := stacktest.InfluxQuery(t, influxURL, url.Values{"db": {db}, "q": {q}})
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var r struct {
		Results []struct {
			Series []struct {
				Tags   map[string]string `json:"tags"`
				Values [][]any           `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	out := map[string]int{}
	if json.NewDecoder(resp.Body).Decode(&r) != nil {
		return out
	}
	for _, res := range r.Results {
		for _, s := range res.Series {
			if len(s.Values) > 0 && len(s.Values[0]) > 1 {
				if v, ok := s.Values[0][1].(float64); ok {
					out[s.Tags["asset"]] = int(v)
				}
			}
		}
	}
	return out
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
