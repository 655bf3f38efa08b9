package bridge

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/ingest/internal/config"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// testConfig is a bridge config for one test: its own site filter, share
// group, client id and topics, so tests sharing the stack do not see each
// other.
func testConfig(t *testing.T, site string) config.Config {
	t.Helper()
	cfg := config.Default(config.Bridge)
	stacktest.FromEnv(t, &cfg)
	cfg.MQTT.Filter = "pdm/v1/" + site + "/+/readings"
	cfg.MQTT.ShareGroup = stacktest.Unique("g")
	cfg.MQTT.ClientID = stacktest.Unique("bridge")
	// As deployments/kafka/topics.txt configures the real topics.
	cfg.Kafka.Readings = stacktest.Topic(t, "readings", 6, "max.message.bytes=4194304")
	cfg.Kafka.DeadLetters = stacktest.Topic(t, "dlq", 1, "max.message.bytes=4194304")
	return cfg
}

// startBridge runs a bridge with cfg until the test ends.
func startBridge(t *testing.T, cfg config.Config) *Bridge {
	t.Helper()
	b, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stacktest.ForgetSession(t, cfg.MQTT.ClientID) }) // after the bridge stops
	stacktest.Run(t, "bridge", b.Run)
	stacktest.Eventually(t, 20*time.Second, func() bool { return b.Ready(context.Background()) == nil }, "bridge not connected")
	return b
}

func publisher(t *testing.T) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(stacktest.MQTTOptions(t).SetClientID(stacktest.Unique("pub")))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// publishReadings publishes readings 1..n of site, one per message, spread
// over assets a0..a{assets-1}; a reading's seq is its number.
func publishReadings(t *testing.T, pub mqtt.Client, site string, n, assets int) {
	t.Helper()
	now := time.Now()
	for i := 1; i <= n; i++ {
		asset := fmt.Sprintf("a%d", i%assets)
		r := wire.Reading{Site: site, Asset: asset, Seq: uint64(i), Time: now, Sensors: map[string]float64{"x": float64(i)}}
		payload, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		publish(t, pub, wire.ReadingsTopic(site, asset), payload)
	}
}

func publish(t *testing.T, c mqtt.Client, topic string, payload []byte) {
	t.Helper()
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
}

// TestBridgeRoutesGoodAndBadInput publishes valid readings (single and
// batched) for several assets mixed with malformed payloads, and checks that
// exactly the valid readings reach the readings topic, in order per asset,
// and every refused input reaches the dead-letter topic with its reason.
func TestBridgeRoutesGoodAndBadInput(t *testing.T) {
	site := stacktest.Unique("site")
	cfg := testConfig(t, site)
	b := startBridge(t, cfg)
	pub := publisher(t)
	now := time.Now()
	assets := []string{"pump-1", "pump-2", "motor-1"}
	want := map[string]bool{}
	seqs := map[string]uint64{}
	marks := map[string]string{"bearing_temp": "UncertainLastUsableValue", "flow": "BadSensorFailure"}
	next := func(asset string) wire.Reading {
		seqs[asset]++
		r := wire.Reading{Site: site, Asset: asset, Seq: seqs[asset], Time: now.Add(time.Duration(seqs[asset]) * time.Millisecond),
			Sensors: map[string]float64{"vibration_rms": float64(seqs[asset]) / 10, "bearing_temp": 40 + float64(seqs[asset])}}
		if asset == "motor-1" && r.Seq%4 == 0 {
			r.Quality = marks // an edge source's quality marks, which must reach Kafka
		}
		want[fmt.Sprintf("%s/%d", asset, r.Seq)] = true
		return r
	}
	ts := now.Format(wire.TimeLayout)
	bad := []struct{ asset, payload, code, topic string }{
		{"pump-1", "not json", "malformed", ""},
		{"pump-1", `{"v":1,"site":"` + site + `","asset":"pump-1","ts":"` + ts + `","seq":99,"sensors":{"x":NaN}}`, "malformed", ""},
		{"pump-2", `{"v":1,"site":"` + site + `","asset":"pump-2","ts":"` + ts + `","seq":99,"sensors":{"x":"hot"}}`, "bad_value", ""},
		{"pump-2", `{"v":2,"site":"` + site + `","asset":"pump-2","ts":"` + ts + `","seq":99,"sensors":{"x":1}}`, "version", ""},
		{"motor-1", `{"v":1,"site":"` + site + `","asset":"motor-1","ts":"2001-01-01T00:00:00Z","seq":99,"sensors":{"x":1}}`, "bad_timestamp", ""},
		{"motor-1", `{"v":1,"site":"` + site + `","asset":"motor-1","ts":"` + ts + `","seq":99,"sensors":{}}`, "bad_sensors", ""},
		{"motor-1", `{"v":1,"site":"` + site + `","asset":"pump-1","ts":"` + ts + `","seq":99,"sensors":{"x":1}}`, "topic_mismatch", ""},
		{"motor-1", `{"v":1,"site":"` + site + `","asset":"motor-1","ts":"` + ts + `","seq":99,"sensors":{"x":1},"quality":{"x":"bad"}}`, "bad_quality", ""},
		{"motor-1", `{"v":1,"pad":"` + strings.Repeat("x", 3<<20) + `"}`, "oversize", ""},
		// InfluxDB and most JSON readers hold integers up to 2^63−1.
		{"pump-1", `{"v":1,"site":"` + site + `","asset":"pump-1","ts":"` + ts + `","seq":18446744073709551615,"sensors":{"x":1}}`, "bad_seq", ""},
		// A reader that keeps the first of two keys would see other values.
		{"pump-2", `{"v":1,"site":"` + site + `","asset":"pump-2","ts":"` + ts + `","seq":99,"sensors":{"x":1,"x":1e6}}`, "malformed", ""},
		// A topic with an extra level is taken and refused, not left unseen.
		{"pump-1", `{"v":1,"site":"` + site + `","asset":"pump-1","ts":"` + ts + `","seq":99,"sensors":{"x":1}}`, "topic_mismatch",
			"pdm/v1/" + site + "/line-2/pump-1/readings"},
	}
	for round := 0; round < 20; round++ {
		for _, a := range assets {
			r := next(a)
			payload, err := r.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			publish(t, pub, wire.ReadingsTopic(site, a), payload)
		}
		if round%5 == 0 {
			batch, err := wire.EncodeBatch([]wire.Reading{next("pump-1"), next("pump-1"), next("pump-1")})
			if err != nil {
				t.Fatal(err)
			}
			publish(t, pub, wire.ReadingsTopic(site, "pump-1"), batch)
		}
		if round < len(bad) {
			topic := cmp.Or(bad[round].topic, wire.ReadingsTopic(site, bad[round].asset))
			publish(t, pub, topic, []byte(bad[round].payload))
		}
	}

	// Every single reading is a record and each batch is one record.
	records := len(want) - 4*2
	got := stacktest.ReadN(t, cfg.Kafka.Readings, records, 30*time.Second)
	if len(got) != records {
		t.Fatalf("readings topic has %d records, want %d", len(got), records)
	}
	for _, m := range got {
		// Where a Java client would put the key, stamped with the bridge's
		// clock (retention works on it).
		if p := (&kafka.Murmur2Balancer{}).Balance(m, 0, 1, 2, 3, 4, 5); p != m.Partition {
			t.Errorf("record of %s in partition %d, want %d", m.Key, m.Partition, p)
		}
		if m.Time.Before(now.Add(-time.Second)) || m.Time.After(time.Now().Add(time.Second)) {
			t.Errorf("record at %d/%d has timestamp %v, want the time it was written", m.Partition, m.Offset, m.Time)
		}
	}
	last := map[string]uint64{}
	total := 0
	for _, r := range decodeAll(t, got) {
		total++
		k := fmt.Sprintf("%s/%d", r.Asset, r.Seq)
		if !want[k] {
			t.Errorf("unexpected or duplicate reading %s", k)
		}
		delete(want, k)
		if r.Seq <= last[r.Asset] {
			t.Errorf("asset %s out of order: seq %d after %d", r.Asset, r.Seq, last[r.Asset])
		}
		last[r.Asset] = r.Seq
		if v := r.Sensors["vibration_rms"]; math.Abs(v-float64(r.Seq)/10) > 1e-12 {
			t.Errorf("reading %s: vibration_rms %v, want %v", k, v, float64(r.Seq)/10)
		}
		if wantMarks := r.Asset == "motor-1" && r.Seq%4 == 0; wantMarks != maps.Equal(r.Quality, marks) || !wantMarks && r.Quality != nil {
			t.Errorf("reading %s: quality %v", k, r.Quality)
		}
	}

	dead := stacktest.ReadN(t, cfg.Kafka.DeadLetters, len(bad), 30*time.Second)
	if len(dead) != len(bad) {
		t.Fatalf("dead-letter topic has %d records, want %d", len(dead), len(bad))
	}
	var codes, wantCodes []string
	for _, m := range dead {
		h := map[string]string{}
		for _, kv := range m.Headers {
			h[kv.Key] = string(kv.Value)
		}
		codes = append(codes, h[wire.HeaderErrorCode])
		if h[wire.HeaderErrorReason] == "" || !strings.HasPrefix(h[wire.HeaderSource], "pdm/v1/"+site+"/") {
			t.Errorf("dead letter without reason or source: %v", h)
		}
		found := false
		for _, bd := range bad {
			if h[wire.HeaderErrorCode] == "oversize" {
				// Kept up to the payload limit, with the original length.
				found = found || (strings.HasPrefix(bd.payload, string(m.Value)) && len(m.Value) == 1<<20 && h[wire.HeaderTruncatedFrom] == fmt.Sprint(len(bd.payload)))
				continue
			}
			found = found || bd.payload == string(m.Value)
		}
		if !found {
			t.Errorf("dead letter payload changed: %.100q (headers %v)", m.Value, h)
		}
	}
	for _, bd := range bad {
		wantCodes = append(wantCodes, bd.code)
	}
	sort.Strings(codes)
	sort.Strings(wantCodes)
	if strings.Join(codes, ",") != strings.Join(wantCodes, ",") {
		t.Errorf("dead-letter codes %v, want %v", codes, wantCodes)
	}
	for _, code := range []string{"malformed", "bad_value", "topic_mismatch", "bad_seq"} {
		n := 0
		for _, c := range wantCodes {
			if c == code {
				n++
			}
		}
		if got := testutil.ToFloat64(b.metrics.Rejected.WithLabelValues(code)); int(got) != n {
			t.Errorf("rejected{code=%s} = %v, want %d", code, got, n)
		}
	}
	if n := testutil.ToFloat64(b.metrics.Readings); int(n) != total {
		t.Errorf("readings counter %v, want %d", n, total)
	}
}

// decodeAll decodes every reading of the records, in record order, and
// checks each record's key is its readings' asset.
func decodeAll(t *testing.T, msgs []kafka.Message) []wire.Reading {
	t.Helper()
	var out []wire.Reading
	for _, m := range msgs {
		items, err := wire.DefaultLimits().Decode(m.Value, time.Now())
		if err != nil {
			t.Fatalf("record at %d/%d: %v", m.Partition, m.Offset, err)
		}
		for _, it := range items {
			if it.Err != nil {
				t.Fatalf("record at %d/%d: %v", m.Partition, m.Offset, it.Err)
			}
			if string(m.Key) != it.Reading.Asset {
				t.Errorf("reading %s/%d has key %q", it.Reading.Asset, it.Reading.Seq, m.Key)
			}
			out = append(out, it.Reading)
		}
	}
	return out
}

// TestSharedSubscriptionSplitsLoad runs two bridges in one share group and
// checks that both take part and every reading reaches Kafka exactly once.
func TestSharedSubscriptionSplitsLoad(t *testing.T) {
	site := stacktest.Unique("site")
	cfg := testConfig(t, site)
	first := startBridge(t, cfg)
	cfg.MQTT.ClientID = stacktest.Unique("bridge")
	second := startBridge(t, cfg)
	pub := publisher(t)
	const n = 400
	publishReadings(t, pub, site, n, 8)
	got := decodeAll(t, stacktest.ReadN(t, cfg.Kafka.Readings, n, 30*time.Second))
	seen := map[uint64]bool{}
	for _, r := range got {
		if seen[r.Seq] {
			t.Errorf("reading %d twice in Kafka", r.Seq)
		}
		seen[r.Seq] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct readings in Kafka, want %d", len(seen), n)
	}
	a, b := testutil.ToFloat64(first.metrics.Readings), testutil.ToFloat64(second.metrics.Readings)
	if a == 0 || b == 0 || a+b != n {
		t.Fatalf("bridges forwarded %v and %v readings, want both > 0 and %d in all", a, b, n)
	}
	t.Logf("split %v / %v", a, b)
}

// TestBridgeRetriesUntilKafkaTakesTheBatch starts the bridge before its
// readings topic exists: writes fail and are counted, readiness says the
// bridge waits for Kafka, and once the topic is there every reading
// arrives once, in order per asset, and the bridge is ready again.
func TestBridgeRetriesUntilKafkaTakesTheBatch(t *testing.T) {
	site := stacktest.Unique("site")
	cfg := testConfig(t, site)
	cfg.Kafka.Readings = stacktest.Unique("late")
	b := startBridge(t, cfg)
	pub := publisher(t)
	const n = 60
	publishReadings(t, pub, site, n, 3)
	stacktest.Eventually(t, 20*time.Second, func() bool { return testutil.ToFloat64(b.metrics.KafkaErrors) >= 2 }, "no failed writes counted")
	if got := testutil.ToFloat64(b.metrics.Readings); got != 0 {
		t.Fatalf("%v readings counted as written while Kafka refused them", got)
	}
	if err := b.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "waiting for kafka") {
		t.Fatalf("ready while every write fails: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := stacktest.CreateTopic(ctx, stacktest.KafkaConn(t), cfg.Kafka.Readings, 6, nil); err != nil {
		t.Fatal(err)
	}
	got := decodeAll(t, stacktest.ReadN(t, cfg.Kafka.Readings, n, 30*time.Second))
	last := map[string]uint64{}
	for _, r := range got {
		if r.Seq <= last[r.Asset] {
			t.Errorf("asset %s: seq %d after %d", r.Asset, r.Seq, last[r.Asset])
		}
		last[r.Asset] = r.Seq
	}
	if len(got) != n {
		t.Fatalf("%d readings in Kafka, want %d", len(got), n)
	}
	if c := testutil.ToFloat64(b.metrics.Readings); c != n {
		t.Fatalf("readings counter %v, want %d", c, n)
	}
	if err := b.Ready(context.Background()); err != nil {
		t.Fatalf("not ready once Kafka took the writes: %v", err)
	}
}

// TestRefusedPartitionIsRetriedAlone sends a batch where Kafka takes the
// readings but refuses the dead letter (its topic allows 1000 bytes): the
// dead letter is retried, and the readings, already written, are not
// written again.
func TestRefusedPartitionIsRetriedAlone(t *testing.T) {
	site := stacktest.Unique("site")
	cfg := testConfig(t, site)
	cfg.Kafka.DeadLetters = stacktest.Topic(t, "dlq-small", 1, "max.message.bytes=1000")
	cfg.Kafka.BatchTimeout = 200 * time.Millisecond // one batch for everything below
	b := startBridge(t, cfg)
	pub := publisher(t)
	const n = 30
	publishReadings(t, pub, site, n, 3)
	noise := make([]byte, 6000) // incompressible: lz4 must not bring it under the limit
	rand.Read(noise)
	publish(t, pub, wire.ReadingsTopic(site, "a1"), []byte(`{"junk":"`+base64.StdEncoding.EncodeToString(noise)+`"}`))

	stacktest.Eventually(t, 30*time.Second, func() bool { return testutil.ToFloat64(b.metrics.KafkaErrors) >= 3 }, "the dead letter was not retried")
	if got := stacktest.ReadN(t, cfg.Kafka.Readings, n, 30*time.Second); len(got) != n {
		t.Fatalf("%d readings in Kafka after %v failed writes, want %d, each once", len(got), testutil.ToFloat64(b.metrics.KafkaErrors), n)
	}
}

// TestLargeMessagesAreSplitAcrossRequests publishes four 900 KB messages
// within one batch timeout: in one request they would pass the 2.5 MiB a
// partition of the dead-letter topic accepts here, and Kafka would refuse
// them forever. The bridge's byte bound splits them.
func TestLargeMessagesAreSplitAcrossRequests(t *testing.T) {
	site := stacktest.Unique("site")
	cfg := testConfig(t, site)
	cfg.Kafka.DeadLetters = stacktest.Topic(t, "dlq-2m", 1, "max.message.bytes=2621440")
	cfg.Kafka.BatchTimeout = 500 * time.Millisecond
	b := startBridge(t, cfg)
	pub := publisher(t)
	const n = 4
	for range n {
		noise := make([]byte, 675_000) // incompressible, 900 KB in base64
		rand.Read(noise)
		publish(t, pub, wire.ReadingsTopic(site, "a1"), []byte(base64.StdEncoding.EncodeToString(noise)))
	}
	if got := stacktest.ReadN(t, cfg.Kafka.DeadLetters, n, 30*time.Second); len(got) != n {
		t.Fatalf("%d dead letters, want %d", len(got), n)
	}
	if e := testutil.ToFloat64(b.metrics.KafkaErrors); e != 0 {
		t.Errorf("%v failed Kafka writes, want 0", e)
	}
}

// TestRetireHandsTheShareBack: a stopped bridge's persistent session keeps
// taking its share of the readings; Retire bridges what it took and
// deletes it, after which the remaining bridge gets every reading.
func TestRetireHandsTheShareBack(t *testing.T) {
	site := stacktest.Unique("site")
	cfg := testConfig(t, site)
	gone := cfg
	gone.MQTT.ClientID = stacktest.Unique("gone")
	// The bridge to retire joins the group, then stops (its session stays).
	b, err := New(gone, slog.New(slog.NewTextHandler(io.Discard, nil)), NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	stacktest.Eventually(t, 20*time.Second, func() bool { return b.Ready(context.Background()) == nil }, "bridge not connected")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	stay := startBridge(t, cfg)
	pub := publisher(t)
	const n = 200
	publishReadings(t, pub, site, n, 8)
	stacktest.Eventually(t, 20*time.Second, func() bool { return testutil.ToFloat64(stay.metrics.Readings) > 0 }, "the live bridge got nothing")
	time.Sleep(time.Second)
	if got := testutil.ToFloat64(stay.metrics.Readings); got == n {
		t.Fatalf("the live bridge took all %d readings: the stopped one's session took no share", n)
	}

	r, err := New(gone, slog.New(slog.NewTextHandler(io.Discard, nil)), NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
	defer rcancel()
	if err := r.Retire(rctx, time.Second); err != nil {
		t.Fatal(err)
	}
	if got := decodeAll(t, stacktest.ReadN(t, cfg.Kafka.Readings, n, 30*time.Second)); len(got) != n {
		t.Fatalf("%d of %d readings in Kafka after the retire", len(got), n)
	}
	// Retired for good: every new reading goes to the live bridge.
	before := testutil.ToFloat64(stay.metrics.Readings)
	for i := n + 1; i <= n+40; i++ {
		r := wire.Reading{Site: site, Asset: fmt.Sprintf("a%d", i%8), Seq: uint64(i), Time: time.Now(), Sensors: map[string]float64{"x": 1}}
		payload, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		publish(t, pub, wire.ReadingsTopic(site, r.Asset), payload)
	}
	stacktest.Eventually(t, 20*time.Second, func() bool { return testutil.ToFloat64(stay.metrics.Readings)-before == 40 },
		"the live bridge got %v of 40 readings after the retire", testutil.ToFloat64(stay.metrics.Readings)-before)
}

// Against the secured broker (TLS, passwords, ACL) the bridge user bridges
// a gateway's readings; with a wrong password the bridge is not ready and
// logs why each connection attempt failed, without the password.
func TestBridgeOnSecuredMosquitto(t *testing.T) {
	mq := stacktest.StartSecureMosquitto(t)
	site := "plant1" // a gateway of deployments/mosquitto/gateways.txt
	cfg := testConfig(t, site)
	cfg.MQTT.URL, cfg.MQTT.TLS.CAFile = mq.URL(), mq.CAFile()
	cfg.MQTT.Username, cfg.MQTT.Password = "bridge", mq.Password("bridge")
	b, err := New(cfg, slog.New(slog.DiscardHandler), NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	stacktest.Run(t, "bridge", b.Run)
	stacktest.Eventually(t, 20*time.Second, func() bool { return b.Ready(context.Background()) == nil }, "bridge not connected to the secured broker")
	gw := mqtt.NewClient(mq.ClientOptions("gw-plant1").SetClientID(stacktest.Unique("gw")))
	if tok := gw.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("gateway connect: %v", tok.Error())
	}
	defer gw.Disconnect(100)
	publishReadings(t, gw, site, 20, 2)
	if got := decodeAll(t, stacktest.ReadN(t, cfg.Kafka.Readings, 20, 30*time.Second)); len(got) != 20 || got[0].Site != site {
		t.Fatalf("%d of 20 readings reached Kafka: %v", len(got), got)
	}

	var log strings.Builder
	var mu sync.Mutex
	bad := cfg
	bad.MQTT.ClientID, bad.MQTT.Password = stacktest.Unique("bad-bridge"), "not-the-bridge-password"
	wb, err := New(bad, slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return log.Write(p)
	}), nil)), NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	stacktest.Run(t, "bad bridge", wb.Run)
	text := func() string { mu.Lock(); defer mu.Unlock(); return log.String() }
	stacktest.Eventually(t, 20*time.Second, func() bool {
		return strings.Contains(text(), "mqtt connect failed") && strings.Contains(text(), "not Authorized")
	}, "the refused bridge does not log why:\n%s", func() any { return text() })
	if wb.Ready(context.Background()) == nil {
		t.Error("a bridge with a wrong password is ready")
	}
	if strings.Contains(text(), bad.MQTT.Password) || strings.Contains(text(), mq.Password("bridge")) {
		t.Errorf("the log holds a password:\n%s", text())
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
