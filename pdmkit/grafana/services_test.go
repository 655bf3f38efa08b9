package grafana_test

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/pdmkit/grafana"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// optionalFields are, by measurement, the fields the scorer writes only in
// a state this test does not reach: a shadow version beside the active
// one. The scorer's sink test (scorer/internal/sink) checks the
// dashboards' use of them against the points it writes.
var optionalFields = map[string][]string{"scores": {"shadow_score"}}

// TestDashboardsQueryWhatTheServicesWrite runs every service as deployed
// (edge-agent simulator → bridge → Kafka → historian and scorer →
// InfluxDB, the trainer beside them) on the local stack, wears one pump's
// bearing until it alerts, and then holds every dashboard query to what
// the services really produced: each metric a Prometheus query selects is
// in some service's /metrics, and each Flux query runs on the InfluxDB the
// historian and the scorer wrote, reads only tags and fields they wrote,
// and returns data.
func TestDashboardsQueryWhatTheServicesWrite(t *testing.T) {
	brokers := stacktest.KafkaBrokers(t) // skips under -short before the build
	mqttURL := stacktest.MQTTURL(t)
	influxURL := stacktest.InfluxURL(t)
	p := load(t)
	bins := stacktest.Build(t, "github.com/pdmstream/pdm/edge-agent/cmd/edge-agent", "github.com/pdmstream/pdm/ingest/cmd/ingest",
		"github.com/pdmstream/pdm/scorer/cmd/scorer", "github.com/pdmstream/pdm/trainer/cmd/trainer")
	agentBin, ingestBin, scorerBin, trainerBin := bins[0], bins[1], bins[2], bins[3]
	start := time.Now()

	site := stacktest.Unique("gf")
	kafkaAddrs := strings.Join(brokers, ",")
	readings := stacktest.Topic(t, "gf-readings", 3)
	dlq := stacktest.Topic(t, "gf-dlq", 1)
	retrain := stacktest.Topic(t, "gf-retrain", 1)
	bucket := stacktest.InfluxBucket(t)
	db, _, _ := strings.Cut(bucket, "/")
	bridgeID := stacktest.Unique("gf-bridge")
	t.Cleanup(func() { stacktest.ForgetSession(t, bridgeID) })

	admin := map[string]string{}
	for _, s := range []string{"bridge", "historian", "scorer", "trainer", "edge-agent"} {
		admin[s] = stacktest.FreeAddr(t)
	}
	ingestArgs := func(role string) []string {
		return []string{role, "-http.addr", admin[role], "-log.level", "warn", "-kafka.brokers", kafkaAddrs,
			"-kafka.readings", readings, "-kafka.dead-letters", dlq}
	}
	stacktest.Start(t, nil, ingestBin, append(ingestArgs("bridge"), "-mqtt.url", mqttURL, "-mqtt.filter", "pdm/v1/"+site+"/+/readings",
		"-mqtt.share-group", site, "-mqtt.client-id", bridgeID)...)
	stacktest.Start(t, nil, ingestBin, append(ingestArgs("historian"), "-kafka.group", stacktest.Unique("gf-historian"),
		"-influx.url", influxURL, "-influx.bucket", bucket, "-influx.flush-interval", "200ms")...)
	stacktest.WaitReady(t, "http://"+admin["bridge"]+"/readyz")
	stacktest.WaitReady(t, "http://"+admin["historian"]+"/readyz")

	// A failure level, so the scorer forecasts the time to failure while
	// the worn bearing's deviation rises; no new normal learnt without an
	// operator, so the failed pump's alert stays open while the queries
	// run.
	stacktest.Start(t, []string{"PDM_API_TOKEN=gf"}, scorerBin, "serve", "-log.level", "warn", "-kafka.brokers", kafkaAddrs,
		"-kafka.group", stacktest.Unique("gf-scorer"), "-kafka.readings", readings,
		"-kafka.scores", stacktest.Topic(t, "gf-scores", 1), "-kafka.alerts", stacktest.Topic(t, "gf-alerts", 1),
		"-kafka.models", stacktest.Topic(t, "gf-models", 1, "cleanup.policy=compact"), "-kafka.retrain", retrain,
		"-mqtt.url", "", "-influx.url", influxURL, "-influx.bucket", bucket, "-http.addr", admin["scorer"],
		"-alert.failure-score", "0.9999", "-alert.new-normal.off", "true")
	stacktest.WaitReady(t, "http://"+admin["scorer"]+"/v2/health/ready")

	stacktest.Start(t, []string{"PDM_API_TOKEN=gf"}, trainerBin, "serve", "-log.level", "warn", "-kafka.brokers", kafkaAddrs,
		"-kafka.retrain", retrain, "-kafka.group", stacktest.Unique("gf-trainer"), "-influx.url", influxURL, "-influx.bucket", bucket,
		"-scorer.url", "http://"+admin["scorer"], "-http.addr", admin["trainer"], "-data-dir", t.TempDir(), "-job.site", site)
	stacktest.WaitReady(t, "http://"+admin["trainer"]+"/readyz")

	// One simulated hour per real second, 50 readings a second per asset.
	stacktest.Start(t, []string{"PDM_AGENT_TOKEN=gf"}, agentBin, "-site", site, "-agent-id", stacktest.Unique("gw"), "-assets", "worn=pump,healthy=motor",
		"-rate", "50", "-time-scale", "3600", "-mqtt.url", mqttURL, "-spool.dir", t.TempDir(), "-http.addr", admin["edge-agent"], "-log.level", "warn")
	stacktest.WaitReady(t, "http://"+admin["edge-agent"]+"/healthz")

	// A training request for an asset with no history: a job that ends
	// (no_data), so the trainer's job metrics have a sample.
	kc := stacktest.KafkaConn(t)
	w := &kafka.Writer{Addr: kafka.TCP(kc.Brokers...), Transport: kc.Transport(), Topic: retrain}
	b, _ := json.Marshal(wire.TrainingRequest{Site: site, Asset: "unheard", Reason: wire.ReasonManual, By: "test", At: time.Now().UTC()})
	if err := w.WriteMessages(context.Background(), kafka.Message{Key: []byte("unheard"), Value: b}); err != nil {
		t.Fatal(err)
	}
	w.Close()

	// The online learner learns normal, then the bearing wears: failure
	// in 6 simulated hours, a few seconds of real time.
	stacktest.Eventually(t, 2*time.Minute, func() bool { return count(t, influxURL, db, "scores", site, "") >= 2*500 },
		"%v scores in InfluxDB", func() any { return count(t, influxURL, db, "scores", site, "") })
	req, err := http.NewRequest("POST", "http://"+admin["edge-agent"]+"/v1/assets/worn/degrade?mode=bearing_wear&ttf=6h", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer gf")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("degrade: %s", resp.Status)
	}
	t.Logf("services started and the learner warmed up after %s", time.Since(start).Round(time.Second))
	stacktest.Eventually(t, 2*time.Minute, func() bool { return count(t, influxURL, db, "alerts", site, "worn") > 0 },
		"no alert for the worn pump in InfluxDB")
	t.Logf("an alert in InfluxDB after %s", time.Since(start).Round(time.Second))

	t.Run("prometheus", func(t *testing.T) {
		qs, err := p.Queries("prometheus")
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][]string{} // metric → where it is queried
		for _, q := range qs {
			ms, err := grafana.PromMetrics(q.Text)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				want[m] = append(want[m], q.Where)
			}
		}
		var missing []string
		check := func() bool {
			families := map[string]string{}
			for _, addr := range admin {
				for name, typ := range scrape(t, addr) {
					families[name] = typ
				}
			}
			missing = missing[:0]
			for m := range want {
				if !exported(families, m) {
					missing = append(missing, m)
				}
			}
			sort.Strings(missing)
			return len(missing) == 0
		}
		stacktest.Eventually(t, time.Minute, check, "metrics no service exports: %v (queried at %v)",
			func() any { return missing }, func() any {
				var where []string
				for _, m := range missing {
					where = append(where, want[m]...)
				}
				return where
			})
		t.Logf("%d metrics of %d queries, each in a service's /metrics", len(want), len(qs))
		if len(want) < 20 {
			t.Errorf("only %d metrics queried: the extraction is broken", len(want))
		}
	})

	t.Run("influxdb", func(t *testing.T) {
		qs, err := p.Queries("influxdb")
		if err != nil {
			t.Fatal(err)
		}
		// The forecast fields come with the rising deviation, a moment
		// after the alert opens.
		stacktest.Eventually(t, time.Minute, func() bool { return schema(t, influxURL, db, "scores").Fields["ttf_seconds"] },
			"the scorer wrote no forecast (ttf_seconds)")
		schemas := map[string]grafana.Measurement{}
		for _, m := range []string{"readings", "scores", "alerts"} {
			schemas[m] = schema(t, influxURL, db, m)
			for _, f := range optionalFields[m] {
				schemas[m].Fields[f] = true
			}
		}
		vars := map[string]string{"${bucket}": bucket, "${site}": site, "${asset}": "worn",
			"v.timeRangeStart": "-1h", "v.timeRangeStop": "now()", "v.windowPeriod": "10s"}
		for _, q := range qs {
			ref, err := grafana.FluxRefs(q.Text)
			if err != nil {
				t.Errorf("%s: %v", q.Where, err)
				continue
			}
			s, ok := schemas[ref.Measurement]
			if !ok {
				t.Errorf("%s: measurement %s is not one the historian or the scorer writes", q.Where, ref.Measurement)
				continue
			}
			if err := ref.Check(s); err != nil {
				t.Errorf("%s: %v", q.Where, err)
			}
			text := q.Text
			for k, v := range vars {
				text = strings.ReplaceAll(text, k, v)
			}
			// The scorer writes to InfluxDB off its scoring path and the
			// alert moves on (updated, a new severity): a query may need
			// a moment to see its data.
			var rows []map[string]string
			var qerr error
			stacktest.Eventually(t, 30*time.Second, func() bool {
				rows, qerr = flux(t, influxURL, text)
				return qerr != nil || len(rows) > 0
			}, "%s: no data from the running services\n%s", q.Where, text)
			if qerr != nil {
				t.Errorf("%s: %v\n%s", q.Where, qerr, text)
				continue
			}
			t.Logf("%s: %s, %d rows", q.Where, ref.Measurement, len(rows))
			if strings.Contains(q.Where, "variable site") && !slices.ContainsFunc(rows, func(r map[string]string) bool { return r["_value"] == site }) {
				t.Errorf("%s: %s not among %v", q.Where, site, rows)
			}
			if strings.Contains(q.Where, "variable asset") && len(rows) != 2 {
				t.Errorf("%s: want the two assets, got %v", q.Where, rows)
			}
		}
	})
}

// exported reports whether metric is a family in families (name → type
// from # TYPE lines) or a histogram's _bucket, _sum or _count series.
func exported(families map[string]string, metric string) bool {
	if _, ok := families[metric]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(metric, suffix); ok {
			switch families[base] {
			case "histogram":
				return true
			case "summary":
				return suffix != "_bucket"
			}
		}
	}
	return false
}

// scrape returns the metric families a service's /metrics lists, from its
// # TYPE lines: a family with labels is listed once it has a series.
func scrape(t *testing.T, addr string) map[string]string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Logf("scrape %s: %v", addr, err)
		return nil
	}
	defer resp.Body.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = f[3]
		}
	}
	return out
}

// influxQL runs a read-only InfluxQL statement on db and returns the
// first series' values.
func influxQL(t *testing.T, base, db, q string) [][]any {
	t.Helper()
	resp, err := stacktest.InfluxQuery(t, base, url.Values{"db": {db}, "q": {q}})
	if err != nil {
		t.Fatalf("influxql %q: %v", q, err)
	}
	defer resp.Body.Close()
	var r struct {
		Results []struct {
			Error  string `json:"error"`
			Series []struct {
				Values [][]any `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("influxql %q: %v", q, err)
	}
	if len(r.Results) == 0 {
		return nil
	}
	if r.Results[0].Error != "" {
		t.Fatalf("influxql %q: %s", q, r.Results[0].Error)
	}
	if len(r.Results[0].Series) == 0 {
		return nil
	}
	return r.Results[0].Series[0].Values
}

// count is the number of points of measurement for site (and asset).
func count(t *testing.T, base, db, measurement, site, asset string) int {
	t.Helper()
	q := fmt.Sprintf(`SELECT count(*) FROM %q WHERE site = '%s'`, measurement, site)
	if asset != "" {
		q += fmt.Sprintf(` AND asset = '%s'`, asset)
	}
	n := 0
	for _, row := range influxQL(t, base, db, q) {
		for _, v := range row[1:] {
			if f, ok := v.(float64); ok && int(f) > n {
				n = int(f)
			}
		}
	}
	return n
}

// schema is what was written to measurement: its tag and field keys.
func schema(t *testing.T, base, db, measurement string) grafana.Measurement {
	t.Helper()
	m := grafana.Measurement{Tags: map[string]bool{}, Fields: map[string]bool{}}
	for _, row := range influxQL(t, base, db, fmt.Sprintf("SHOW TAG KEYS FROM %q", measurement)) {
		m.Tags[row[0].(string)] = true
	}
	for _, row := range influxQL(t, base, db, fmt.Sprintf("SHOW FIELD KEYS FROM %q", measurement)) {
		m.Fields[row[0].(string)] = true
	}
	return m
}

// flux runs a Flux query and returns its rows, each column by name.
func flux(t *testing.T, base, q string) ([]map[string]string, error) {
	body, _ := json.Marshal(map[string]any{"query": q, "type": "flux"})
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v2/query", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/csv")
	if tok := stacktest.InfluxToken(t); tok != "" {
		req.Header.Set("Authorization", "Token "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("flux: %s: %s", resp.Status, raw)
	}
	// Annotated CSV: a header row per table, blank lines between tables.
	r := csv.NewReader(strings.NewReader(string(raw)))
	r.FieldsPerRecord = -1
	var rows []map[string]string
	var header []string
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("flux: csv: %w", err)
		}
		switch {
		case len(rec) == 0 || strings.HasPrefix(rec[0], "#"):
		case len(rec) > 1 && rec[1] == "error":
			header = nil
			if rec2, err := r.Read(); err == nil && len(rec2) > 1 && rec2[1] != "" {
				return nil, fmt.Errorf("flux: %s", rec2[1])
			}
		case len(rec) > 1 && rec[1] == "result":
			header = rec
		case header != nil:
			row := map[string]string{}
			for i, v := range rec {
				if i < len(header) {
					row[header[i]] = v
				}
			}
			rows = append(rows, row)
		}
	}
	return rows, nil
}
