// Package e2e runs the pipeline's binaries as separate processes against the
// real local stack: edge-agent → Mosquitto → ingest bridge → Kafka → ingest
// historian → InfluxDB, and counts readings at every hop.
package e2e

import (
	"context"
	"fmt"
	"math"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	influxdb2 "github.com/influxdata/influxdb-client-go/v2"

	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// binaries builds edge-agent and ingest for one test.
func binaries(t *testing.T) (agent, ingest string) {
	t.Helper()
	bins := stacktest.Build(t, "github.com/pdmstream/pdm/edge-agent/cmd/edge-agent", "github.com/pdmstream/pdm/ingest/cmd/ingest")
	return bins[0], bins[1]
}

// pipeline is one isolated instance of the pipeline: its own site, topics,
// consumer group and database.
type pipeline struct {
	site, topic, dlq, bucket, group, bridgeID string
	mqttURL, brokers, influxURL               string
}

func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	p := &pipeline{
		site:      stacktest.Unique("e2e"),
		topic:     stacktest.Topic(t, "e2e-readings", 6),
		dlq:       stacktest.Topic(t, "e2e-dlq", 1),
		bucket:    stacktest.InfluxBucket(t),
		group:     stacktest.Unique("e2e-historian"),
		bridgeID:  stacktest.Unique("e2e-bridge"),
		mqttURL:   stacktest.MQTTURL(t),
		brokers:   strings.Join(stacktest.KafkaBrokers(t), ","),
		influxURL: stacktest.InfluxURL(t),
	}
	// Registered first, so it runs after the bridges have stopped.
	t.Cleanup(func() { stacktest.ForgetSession(t, p.bridgeID) })
	return p
}

// service is a running ingest process.
type service struct {
	*stacktest.Proc
	admin string
}

func (p *pipeline) start(t *testing.T, bin, role string) *service {
	t.Helper()
	s := p.launch(t, nil, bin, role)
	stacktest.WaitReady(t, "http://"+s.admin+"/readyz")
	return s
}

// launch starts an ingest role with env added to its environment and does
// not wait for it to be ready.
func (p *pipeline) launch(t *testing.T, env []string, bin, role string) *service {
	t.Helper()
	admin := stacktest.FreeAddr(t)
	args := []string{role, "-http.addr", admin, "-log.level", "warn", "-kafka.brokers", p.brokers,
		"-kafka.readings", p.topic, "-kafka.dead-letters", p.dlq}
	if role == "bridge" {
		args = append(args, "-mqtt.url", p.mqttURL, "-mqtt.filter", "pdm/v1/"+p.site+"/+/readings",
			"-mqtt.share-group", p.site, "-mqtt.client-id", p.bridgeID)
	} else {
		args = append(args, "-kafka.group", p.group, "-influx.url", p.influxURL, "-influx.bucket", p.bucket,
			"-influx.flush-interval", "200ms")
	}
	return &service{Proc: stacktest.Start(t, env, bin, args...), admin: admin}
}

// capture subscribes to the site's readings (a plain, non-shared
// subscription gets its own copy of every message) and records every
// reading the agent published, keyed by asset/seq.
func capture(t *testing.T, p *pipeline) func() map[string]wire.Reading {
	t.Helper()
	var mu sync.Mutex
	got := map[string]wire.Reading{}
	c := mqtt.NewClient(stacktest.MQTTOptions(t).SetClientID(stacktest.Unique("capture")))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("capture connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	tok := c.Subscribe("pdm/v1/"+p.site+"/+/readings", 1, func(_ mqtt.Client, m mqtt.Message) {
		items, err := wire.DefaultLimits().Decode(m.Payload(), time.Now())
		if err != nil {
			t.Errorf("agent published an invalid message: %v", err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, it := range items {
			got[fmt.Sprintf("%s/%d", it.Reading.Asset, it.Reading.Seq)] = it.Reading
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("capture subscribe: %v", tok.Error())
	}
	return func() map[string]wire.Reading {
		mu.Lock()
		defer mu.Unlock()
		out := make(map[string]wire.Reading, len(got))
		for k, v := range got {
			out[k] = v
		}
		return out
	}
}

// runAgent runs edge-agent until it has published limit readings per asset
// and exits.
func runAgent(t *testing.T, bin string, p *pipeline, assets string, limit, batch, rate int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-site", p.site, "-agent-id", stacktest.Unique("gw"), "-assets", assets,
		"-limit", fmt.Sprint(limit), "-batch", fmt.Sprint(batch), "-rate", fmt.Sprint(rate),
		"-mqtt.url", p.mqttURL, "-spool.dir", t.TempDir(), "-http.addr", "", "-log.level", "warn")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("edge-agent: %v\n%s", err, out)
	}
}

// readKafka returns every reading in the topic, in partition order, after
// at least want readings have arrived.
func readKafka(t *testing.T, p *pipeline, want int) []wire.Reading {
	t.Helper()
	var out []wire.Reading
	deadline := time.Now().Add(time.Minute)
	for len(out) < want && time.Now().Before(deadline) {
		out = out[:0]
		msgs := stacktest.ReadN(t, p.topic, 1, 10*time.Second)
		for _, m := range msgs {
			items, err := wire.DefaultLimits().Decode(m.Value, time.Now())
			if err != nil {
				t.Fatalf("record %d@%d: %v", m.Partition, m.Offset, err)
			}
			for _, it := range items {
				if it.Err != nil {
					t.Fatalf("record %d@%d: %v", m.Partition, m.Offset, it.Err)
				}
				if string(m.Key) != it.Reading.Asset {
					t.Fatalf("record %d@%d: key %q for asset %s", m.Partition, m.Offset, m.Key, it.Reading.Asset)
				}
				out = append(out, it.Reading)
			}
		}
	}
	return out
}

// influxStats returns, per asset, the number of points and the sum of one
// sensor's values.
func influxStats(t *testing.T, p *pipeline, sensor string) (count map[string]int64, sum map[string]float64) {
	t.Helper()
	client := influxdb2.NewClient(p.influxURL, stacktest.InfluxToken(t))
	defer client.Close()
	count, sum = map[string]int64{}, map[string]float64{}
	for fn, field := range map[string]string{"count": "seq", "sum": sensor} {
		q := fmt.Sprintf(`from(bucket: %q) |> range(start: -2d, stop: 1h)
			|> filter(fn: (r) => r._measurement == "readings" and r.site == %q and r._field == %q)
			|> group(columns: ["asset"]) |> %s()`, p.bucket, p.site, field, fn)
		res, err := client.QueryAPI("").Query(context.Background(), q)
		if err != nil {
			t.Logf("flux: %v", err)
			return nil, nil
		}
		for res.Next() {
			asset := res.Record().ValueByKey("asset").(string)
			switch v := res.Record().Value().(type) {
			case int64:
				count[asset] = v
			case float64:
				sum[asset] = v
			}
		}
	}
	return count, sum
}

// TestPipeline publishes N readings for several assets from the real agent
// binary, single and batched, and checks that exactly those readings, by
// asset and sequence, with the values the agent published, are in Kafka in
// per-asset order and in InfluxDB.
func TestPipeline(t *testing.T) {
	agentBin, ingestBin := binaries(t)
	for _, batch := range []int{1, 10} {
		t.Run(fmt.Sprintf("batch=%d", batch), func(t *testing.T) {
			p := newPipeline(t)
			dropped := stacktest.MQTTDropped(t, stacktest.MQTTOptions(t))
			p.start(t, ingestBin, "bridge")
			p.start(t, ingestBin, "historian")
			published := capture(t, p)
			const n = 300
			assets := []string{"pump-1", "pump-2", "motor-1", "motor-2"}
			runAgent(t, agentBin, p, "pump-1=pump,pump-2=pump,motor-1=motor,motor-2=motor", n, batch, 200)

			stacktest.Eventually(t, 30*time.Second, func() bool { return len(published()) == n*len(assets) },
				"captured %d of %d published readings", len(published()), n*len(assets))
			want := published()

			got := readKafka(t, p, len(want))
			seen := map[string]bool{}
			last := map[string]uint64{}
			for _, r := range got {
				k := fmt.Sprintf("%s/%d", r.Asset, r.Seq)
				w, ok := want[k]
				switch {
				case !ok:
					t.Errorf("Kafka has %s, which the agent did not publish", k)
				case seen[k]:
					t.Errorf("Kafka has %s twice", k)
				case !sameReading(r, w):
					t.Errorf("%s changed on the way: published %+v, in Kafka %+v", k, w, r)
				}
				seen[k] = true
				if r.Seq <= last[r.Asset] {
					t.Errorf("asset %s out of order in Kafka: seq %d after %d", r.Asset, r.Seq, last[r.Asset])
				}
				last[r.Asset] = r.Seq
			}
			if len(seen) != len(want) {
				t.Fatalf("Kafka has %d distinct readings, the agent published %d", len(seen), len(want))
			}

			wantSum := map[string]float64{}
			for _, r := range want {
				wantSum[r.Asset] += r.Sensors["vibration_rms"]
			}
			waitPoints(t, p, assets, n)
			_, sum := influxStats(t, p, "vibration_rms")
			for _, a := range assets {
				if math.Abs(sum[a]-wantSum[a]) > 1e-9*math.Max(1, math.Abs(wantSum[a])) {
					t.Errorf("asset %s: sum of vibration_rms in InfluxDB %v, published %v", a, sum[a], wantSum[a])
				}
			}
			if d := stacktest.MQTTDropped(t, stacktest.MQTTOptions(t)); d != dropped {
				t.Errorf("Mosquitto dropped %d messages during the run", d-dropped)
			}
			t.Logf("batch=%d: %d readings published = in Kafka = in InfluxDB; Mosquitto dropped none", batch, len(want))
		})
	}
}

// waitPoints waits until InfluxDB holds exactly n points of every asset.
func waitPoints(t *testing.T, p *pipeline, assets []string, n int64) {
	t.Helper()
	stacktest.Eventually(t, time.Minute, func() bool {
		count, _ := influxStats(t, p, "vibration_rms")
		for _, a := range assets {
			if count[a] != n {
				return false
			}
		}
		return true
	}, "InfluxDB does not hold %d points for every asset of %v", n, assets)
}

func sameReading(a, b wire.Reading) bool {
	if a.Site != b.Site || a.Asset != b.Asset || a.Seq != b.Seq || !a.Time.Equal(b.Time) || len(a.Sensors) != len(b.Sensors) {
		return false
	}
	for k, v := range a.Sensors {
		if w, ok := b.Sensors[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestKillAndRestart kills the bridge and the historian with SIGKILL while
// the agent streams, restarts them, and checks that no reading is lost:
// Kafka holds every published reading at least once (the bridge's MQTT
// session keeps what it had not acknowledged) and InfluxDB holds each
// exactly once.
func TestKillAndRestart(t *testing.T) {
	agentBin, ingestBin := binaries(t)
	p := newPipeline(t)
	bridge := p.start(t, ingestBin, "bridge")
	historian := p.start(t, ingestBin, "historian")
	published := capture(t, p)
	const n, rate = 600, 100
	assets := []string{"pump-1", "motor-1", "pump-2"}

	agentDone := make(chan struct{})
	go func() {
		defer close(agentDone)
		runAgent(t, agentBin, p, "pump-1=pump,motor-1=motor,pump-2=pump", n, 1, rate)
	}()
	// Kill each service once readings are flowing through it.
	stacktest.Eventually(t, 30*time.Second, func() bool { return len(published()) > 300 }, "agent did not start publishing")
	bridge.Kill(t)
	stacktest.Eventually(t, 30*time.Second, func() bool { return len(published()) > 900 }, "agent stopped publishing")
	p.start(t, ingestBin, "bridge")
	historian.Kill(t)
	p.start(t, ingestBin, "historian")
	<-agentDone

	stacktest.Eventually(t, 30*time.Second, func() bool { return len(published()) == n*len(assets) },
		"captured %d of %d published readings", len(published()), n*len(assets))
	want := published()
	got := readKafka(t, p, len(want))
	seen := map[string]int{}
	for _, r := range got {
		seen[fmt.Sprintf("%s/%d", r.Asset, r.Seq)]++
	}
	dups := 0
	for k := range want {
		if seen[k] == 0 {
			t.Errorf("reading %s is missing from Kafka", k)
		}
		dups += max(0, seen[k]-1)
	}
	waitPoints(t, p, assets, n)
	t.Logf("%d readings published; Kafka holds all of them (%d redelivered duplicates); InfluxDB holds each once", len(want), dups)
}
