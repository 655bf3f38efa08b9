package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// BenchmarkTelegraf drains the same backlog of QoS 1 messages (the load of
// BenchmarkBridgeThroughput: readingsPerRun readings, single or batched) from
// Mosquitto into Kafka (acks=all) twice per iteration: once with the
// bridge (GOMAXPROCS=1, as deployed) and once with Telegraf's mqtt_consumer
// → outputs.kafka (deployments/bench/telegraf-mqtt-kafka.conf, both
// cores). Each consumer has a persistent session on a site of its own; it
// is stopped, the backlog is published, and it is started again. The rate
// is readings per second from the first reading in Kafka to the last, so
// start-up time counts for neither. Telegraf writes one record per reading, the bridge
// one per message (a batch stays one record); both hold every reading.
// Set PDM_TELEGRAF to the binary (deployments/bench.sh builds it into
// .stack/bin).
func BenchmarkTelegraf(b *testing.B) {
	telegraf := telegrafBinary(b)
	bin := buildIngest(b)
	for _, batch := range []int{1, 20} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			ours := &drainer{site: stacktest.Unique("tgb"), records: messages(batch)}
			ours.start = func(b *testing.B, topic string) *stacktest.Proc {
				p := startBridge(b, bin, ours.site, topic, "GOMAXPROCS=1")
				ours.admin = p.admin
				return p.Proc
			}
			theirs := &drainer{site: stacktest.Unique("tgt"), records: readingsPerRun}
			theirs.start = func(b *testing.B, topic string) *stacktest.Proc {
				return startTelegraf(b, telegraf, theirs.site, topic, batch)
			}
			pub := connect(b, "pub")
			var bridgeRate, telegrafRate, bridgeMiB, telegrafMiB float64
			for b.Loop() {
				r, m := ours.drain(b, pub, batch)
				bridgeRate, bridgeMiB = bridgeRate+r, max(bridgeMiB, m)
				r, m = theirs.drain(b, pub, batch)
				telegrafRate, telegrafMiB = telegrafRate+r, max(telegrafMiB, m)
			}
			bridgeRate /= float64(b.N)
			telegrafRate /= float64(b.N)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(bridgeRate, "bridge-readings/s")
			b.ReportMetric(telegrafRate, "telegraf-readings/s")
			b.ReportMetric(bridgeRate/telegrafRate, "ratio")
			b.ReportMetric(bridgeMiB, "bridge-peak-MiB")
			b.ReportMetric(telegrafMiB, "telegraf-peak-MiB")
		})
	}
}

// drainer is one consumer under test: the site it subscribes to, how it
// starts against a topic, and how many Kafka records one drain writes.
type drainer struct {
	site    string
	records int
	start   func(b *testing.B, topic string) *stacktest.Proc
	admin   string // the bridge's admin address, for PDM_BENCH_PROFILE
}

// drain starts the consumer once to set up its session and stops it once a
// probe message has gone through, queues the backlog, starts it again and
// times the drain. It returns readings per second and the peak RSS (MiB).
func (d *drainer) drain(b *testing.B, pub mqtt.Client, batch int) (float64, float64) {
	b.Helper()
	topic := stacktest.Topic(b, "bench-drain", 6)
	p := d.start(b, topic)
	probe := wire.Reading{Site: d.site, Asset: "probe", Seq: 1, Time: time.Now(), Sensors: map[string]float64{"x": 1}}
	for i := 0; endOffsets(b, topic) == 0; i++ {
		if i%50 == 0 { // every second until the consumer has subscribed
			payload, _ := probe.MarshalJSON()
			if batch > 1 {
				payload, _ = wire.EncodeBatch([]wire.Reading{probe})
			}
			pub.Publish(wire.ReadingsTopic(d.site, probe.Asset), 1, false, payload).Wait()
			probe.Seq++
		}
		if i > 3000 {
			b.Fatalf("no probe reached Kafka in a minute:\n%s", p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second) // probes still in flight
	p.Stop(b)
	before := endOffsets(b, topic)
	load(b, pub, d.site, batch)

	p = d.start(b, topic)
	if prof := os.Getenv("PDM_BENCH_PROFILE"); prof != "" && d.admin != "" {
		go saveProfile(d.admin, fmt.Sprintf("%s.drain.batch%d", prof, batch))
	}
	want := before + int64(d.records)
	var first time.Time
	deadline := time.Now().Add(5 * time.Minute)
	for {
		n := endOffsets(b, topic)
		if first.IsZero() && n > before {
			first = time.Now()
		}
		if n >= want {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("kafka has %d of %d records:\n%s", n-before, d.records, p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	rate := readingsPerRun / time.Since(first).Seconds()
	mib := peakRSS(b, p.Cmd.Process.Pid) / (1 << 20)
	p.Stop(b)
	return rate, mib
}

// startTelegraf runs Telegraf on the bench configuration, subscribed to
// site's readings with a client id of its own per site, writing to topic.
func startTelegraf(b *testing.B, bin, site, topic string, batch int) *stacktest.Proc {
	b.Helper()
	id := site + "-telegraf"
	b.Cleanup(func() { stacktest.ForgetSession(b, id) })
	query := ""
	if batch > 1 {
		query = "readings"
	}
	var sec struct {
		MQTT  stacktest.MQTTSecurity
		Kafka stacktest.KafkaSecurity
	}
	stacktest.FromEnv(b, &sec.MQTT)
	stacktest.FromEnv(b, &sec.Kafka)
	env := []string{"TELEGRAF_MQTT_URL=" + stacktest.MQTTURL(b), "TELEGRAF_MQTT_TOPIC=pdm/v1/" + site + "/+/readings",
		"TELEGRAF_CLIENT_ID=" + id, "TELEGRAF_JSON_QUERY=" + query,
		"TELEGRAF_MQTT_USERNAME=" + sec.MQTT.Username, "TELEGRAF_MQTT_PASSWORD=" + sec.MQTT.Password,
		"TELEGRAF_MQTT_TLS_CA=" + sec.MQTT.TLS.CAFile,
		"TELEGRAF_KAFKA_BROKER=" + stacktest.KafkaBrokers(b)[0], "TELEGRAF_KAFKA_TOPIC=" + topic,
		"TELEGRAF_KAFKA_TLS=" + strconv.FormatBool(sec.Kafka.TLS.Enabled()), "TELEGRAF_KAFKA_TLS_CA=" + sec.Kafka.TLS.CAFile,
		"TELEGRAF_KAFKA_SASL_MECHANISM=" + sec.Kafka.SASL.Mechanism,
		"TELEGRAF_KAFKA_SASL_USERNAME=" + sec.Kafka.SASL.Username, "TELEGRAF_KAFKA_SASL_PASSWORD=" + sec.Kafka.SASL.Password}
	conf, err := filepath.Abs("../../deployments/bench/telegraf-mqtt-kafka.conf")
	if err != nil {
		b.Fatal(err)
	}
	return stacktest.Start(b, env, bin, "--strict-env-handling", "--quiet", "--config", conf)
}

// telegrafBinary is PDM_TELEGRAF, or the stack's build of it.
func telegrafBinary(b *testing.B) string {
	b.Helper()
	bin := stacktest.Env("PDM_TELEGRAF", "../../.stack/bin/telegraf")
	if _, err := os.Stat(bin); err != nil {
		b.Fatalf("no Telegraf at %s (deployments/bench.sh builds it): %v", bin, err)
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		b.Fatal(err)
	}
	return abs
}
