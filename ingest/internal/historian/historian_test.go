package historian

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/ingest/internal/config"
	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/tlsconf"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

func testConfig(t *testing.T) config.Config {
	t.Helper()
	cfg := config.Default(config.Historian)
	stacktest.FromEnv(t, &cfg)
	cfg.Kafka.Readings = stacktest.Topic(t, "readings", 6)
	cfg.Kafka.DeadLetters = stacktest.Topic(t, "dlq", 1)
	cfg.Kafka.Group = stacktest.Unique("historian")
	cfg.Influx.Bucket = stacktest.InfluxBucket(t)
	cfg.Influx.FlushInterval = 200 * time.Millisecond
	return cfg
}

func startHistorian(t *testing.T, cfg config.Config) *Historian {
	t.Helper()
	h, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) }) // after the historian stops
	stacktest.Run(t, "historian", h.Run)
	return h
}

// produce writes the readings (and any extra raw values) to the topic.
func produce(t *testing.T, cfg config.Config, rs []wire.Reading, raw ...[]byte) {
	t.Helper()
	kc, err := kafkaconn.New(cfg.Kafka.Brokers, cfg.Kafka.TLS, cfg.Kafka.SASL)
	if err != nil {
		t.Fatal(err)
	}
	w := &kafka.Writer{Addr: kafka.TCP(cfg.Kafka.Brokers...), Transport: kc.Transport(), Topic: cfg.Kafka.Readings, RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond, Balancer: &kafka.Murmur2Balancer{}}
	defer w.Close()
	var msgs []kafka.Message
	for _, r := range rs {
		b, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, kafka.Message{Key: []byte(r.Asset), Value: b})
	}
	for _, b := range raw {
		msgs = append(msgs, kafka.Message{Key: []byte("junk"), Value: b})
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

func readings(site string, assets []string, n int, start time.Time) []wire.Reading {
	var rs []wire.Reading
	for _, a := range assets {
		for i := 1; i <= n; i++ {
			rs = append(rs, wire.Reading{Site: site, Asset: a, Seq: uint64(i), Time: start.Add(time.Duration(i) * 100 * time.Millisecond),
				Sensors: map[string]float64{"vibration_rms": float64(i) / 8, "bearing_temp": 50}})
		}
	}
	return rs
}

// countByAsset returns the number of points per asset in the bucket.
func countByAsset(t *testing.T, cfg config.Config) map[string]int64 {
	t.Helper()
	client := influxdb2.NewClient(cfg.Influx.URL, cfg.Influx.Token)
	defer client.Close()
	q := fmt.Sprintf(`from(bucket: %q) |> range(start: -1d)
		|> filter(fn: (r) => r._measurement == %q and r._field == "seq")
		|> group(columns: ["asset"]) |> count()`, cfg.Influx.Bucket, Measurement)
	res, err := client.QueryAPI(cfg.Influx.Org).Query(context.Background(), q)
	if err != nil {
		t.Logf("flux: %v", err)
		return nil
	}
	out := map[string]int64{}
	for res.Next() {
		out[res.Record().ValueByKey("asset").(string)] = res.Record().Value().(int64)
	}
	return out
}

// TestHistorianWritesEveryReadingOnce produces readings for several assets,
// some of them twice, plus a broken record, and checks InfluxDB holds each
// reading exactly once with its values, the broken record is in the
// dead-letter topic, and the group's offsets were committed.
func TestHistorianWritesEveryReadingOnce(t *testing.T) {
	cfg := testConfig(t)
	start := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	assets := []string{"pump-1", "pump-2", "motor-1"}
	const n = 400
	rs := readings("s1", assets, n, start)
	produce(t, cfg, rs, []byte(`{"v":1,"broken":`))
	produce(t, cfg, rs[:50]) // a replay: the same readings again
	h := startHistorian(t, cfg)

	stacktest.Eventually(t, 60*time.Second, func() bool {
		c := countByAsset(t, cfg)
		return c["pump-1"] == n && c["pump-2"] == n && c["motor-1"] == n
	}, "InfluxDB does not hold %d points per asset: %v", n, func() any { return countByAsset(t, cfg) })
	// The replayed 50 were written again and overwrote their points.
	stacktest.Eventually(t, 10*time.Second, func() bool { return testutil.ToFloat64(h.metrics.Points) == float64(len(rs)+50) },
		"points written %v, want %d", testutil.ToFloat64(h.metrics.Points), len(rs)+50)

	client := influxdb2.NewClient(cfg.Influx.URL, cfg.Influx.Token)
	defer client.Close()
	res, err := client.QueryAPI("").Query(context.Background(), fmt.Sprintf(`from(bucket: %q) |> range(start: -1d)
		|> filter(fn: (r) => r._measurement == "readings" and r.asset == "pump-2" and r._field == "vibration_rms")
		|> filter(fn: (r) => r._time == %s)`, cfg.Influx.Bucket, rs[n+7].Time.Format(time.RFC3339Nano)))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Next() || res.Record().Value().(float64) != rs[n+7].Sensors["vibration_rms"] || !res.Record().Time().Equal(rs[n+7].Time) {
		t.Fatalf("pump-2 seq 8 not stored intact (err %v)", res.Err())
	}

	dead := stacktest.ReadN(t, cfg.Kafka.DeadLetters, 1, 20*time.Second)
	if len(dead) != 1 || string(dead[0].Value) != `{"v":1,"broken":` {
		t.Fatalf("dead letters: %v", dead)
	}

	stacktest.Eventually(t, 20*time.Second, func() bool { return committed(t, cfg) == int64(len(rs)+51) },
		"committed offsets %d, want %d", committed(t, cfg), len(rs)+51)
}

// committed sums the group's committed offsets over all partitions.
func committed(t *testing.T, cfg config.Config) int64 {
	t.Helper()
	kc, err := kafkaconn.New(cfg.Kafka.Brokers, cfg.Kafka.TLS, cfg.Kafka.SASL)
	if err != nil {
		t.Fatal(err)
	}
	client := kc.Client(5 * time.Second)
	resp, err := client.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: cfg.Kafka.Group,
		Topics: map[string][]int{cfg.Kafka.Readings: {0, 1, 2, 3, 4, 5}}})
	if err != nil {
		return -1
	}
	var sum int64
	for _, p := range resp.Topics[cfg.Kafka.Readings] {
		if p.CommittedOffset > 0 {
			sum += p.CommittedOffset
		}
	}
	return sum
}

// TestHistorianRetriesWhileInfluxIsDown points the historian at a port where
// InfluxDB is not yet reachable, checks it retries without committing, then
// opens a proxy to the real InfluxDB on that port and checks every reading
// arrives.
func TestHistorianRetriesWhileInfluxIsDown(t *testing.T) {
	cfg := testConfig(t)
	target := cfg.Influx.URL[len("http://"):]
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens here until the proxy starts
	cfg.Influx.URL = "http://" + addr

	rs := readings("s1", []string{"pump-9"}, 200, time.Now().Add(-time.Minute))
	produce(t, cfg, rs)
	h := startHistorian(t, cfg)
	stacktest.Eventually(t, 30*time.Second, func() bool { return testutil.ToFloat64(h.metrics.WriteErrors) >= 2 },
		"historian did not retry")
	if c := committed(t, cfg); c > 0 {
		t.Fatalf("committed %d offsets before any write succeeded", c)
	}

	stacktest.Proxy(t, addr, target)
	stacktest.Eventually(t, 60*time.Second, func() bool { return countByAsset(t, cfg)["pump-9"] == 200 },
		"readings did not arrive after InfluxDB came back: %v", countByAsset(t, cfg))
	stacktest.Eventually(t, 20*time.Second, func() bool { return committed(t, cfg) == 200 }, "offsets not committed")
}

// TestHistorianDeadLettersWhatInfluxRefuses: a record InfluxDB refuses for
// its content (a field whose type another writer fixed first) goes to the
// dead-letter topic with InfluxDB's reason, and the readings before and
// after it in the same partition are written and committed.
func TestHistorianDeadLettersWhatInfluxRefuses(t *testing.T) {
	cfg := testConfig(t)
	start := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	// Another writer made "mode" a string field of the measurement.
	stacktest.InfluxWrite(t, cfg.Influx.URL, cfg.Influx.Bucket,
		[]string{fmt.Sprintf(`%s,site=s0,asset=other mode="auto" %d`, Measurement, start.UnixMilli())})
	rs := readings("s1", []string{"pump-1"}, 100, start)
	bad := rs[49]
	bad.Seq, bad.Sensors = 1000, map[string]float64{"mode": 2, "bearing_temp": 50}
	produce(t, cfg, append(append(slices.Clone(rs[:50]), bad), rs[50:]...)) // one partition, in this order
	h := startHistorian(t, cfg)

	stacktest.Eventually(t, 60*time.Second, func() bool { return countByAsset(t, cfg)["pump-1"] == 100 },
		"InfluxDB does not hold the 100 good readings: %v", countByAsset(t, cfg))
	dead := stacktest.ReadN(t, cfg.Kafka.DeadLetters, 1, 20*time.Second)
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	want, _ := bad.MarshalJSON()
	headers := map[string]string{}
	for _, hd := range dead[0].Headers {
		headers[hd.Key] = string(hd.Value)
	}
	if string(dead[0].Value) != string(want) || headers[wire.HeaderErrorCode] != string(codeRefused) ||
		!strings.Contains(headers[wire.HeaderErrorReason], "field type conflict") {
		t.Fatalf("dead letter %s with headers %v", dead[0].Value, headers)
	}
	if got := testutil.ToFloat64(h.metrics.Rejected.WithLabelValues(string(codeRefused))); got != 1 {
		t.Fatalf("rejected{code=%s} = %v, want 1", codeRefused, got)
	}
	stacktest.Eventually(t, 20*time.Second, func() bool { return committed(t, cfg) == 101 },
		"committed offsets %d, want 101", committed(t, cfg))
}

// TestHistorianWaitsOutAKafkaOutage: with its Kafka broker killed for 20 s
// the historian neither exits nor loses anything; readiness says it is
// waiting for Kafka, and once the broker is back the readings of before
// and after the outage are all in InfluxDB.
func TestHistorianWaitsOutAKafkaOutage(t *testing.T) {
	cluster := stacktest.StartKafka(t, 1)
	cfg := testConfig(t)
	cfg.Kafka.Brokers, cfg.Kafka.TLS, cfg.Kafka.SASL = cluster.Brokers(), tlsconf.Config{}, kafkaconn.SASL{} // the cluster is open
	cfg.Kafka.Readings = cluster.Topic("readings", 3)
	cfg.Kafka.DeadLetters = cluster.Topic("dlq", 1)
	h, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	defer func() { cancel(); <-done }()

	start := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	rs := readings("s1", []string{"pump-1", "pump-2"}, 200, start)
	produce(t, cfg, rs[:100])
	produce(t, cfg, rs[200:300])
	stacktest.Eventually(t, 60*time.Second, func() bool {
		c := countByAsset(t, cfg)
		return c["pump-1"] == 100 && c["pump-2"] == 100
	}, "readings before the outage not written: %v", func() any { return countByAsset(t, cfg) })

	cluster.Kill(0)
	stacktest.Eventually(t, 10*time.Second, func() bool {
		err := h.Ready(context.Background())
		return err != nil && strings.Contains(err.Error(), "kafka")
	}, "readiness does not say the historian waits for Kafka")
	select {
	case err := <-done:
		t.Fatalf("the historian stopped while Kafka was away: %v", err)
	case <-time.After(20 * time.Second):
	}
	cluster.Restart(0)
	produce(t, cfg, rs[100:200])
	produce(t, cfg, rs[300:])
	stacktest.Eventually(t, 2*time.Minute, func() bool {
		c := countByAsset(t, cfg)
		return c["pump-1"] == 200 && c["pump-2"] == 200
	}, "readings after the outage not written: %v", func() any { return countByAsset(t, cfg) })
	if err := h.Ready(context.Background()); err != nil {
		t.Fatalf("not ready after the outage: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("the historian stopped: %v", err)
	default:
	}
}
