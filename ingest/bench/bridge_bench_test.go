package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// readingsPerRun is the load of one benchmark iteration: several seconds of
// work, so that one hiccup of the shared machine moves a rate little.
const readingsPerRun = 400_000

// messages is the number of MQTT messages of one iteration at batch readings
// per message.
func messages(batch int) int { return readingsPerRun / batch }

// BenchmarkBridgeThroughput publishes the same load twice, once to a bare
// subscriber and once through the bridge process, and reports both rates in
// readings per second, their ratio, and the bridge's peak resident memory.
func BenchmarkBridgeThroughput(b *testing.B) {
	bin := buildIngest(b)
	for _, batch := range []int{1, 20} {
		// GOMAXPROCS=1 is how docker-compose.yml and the demo run the
		// bridge; the machine's default is measured beside it.
		for _, procs := range []int{runtime.NumCPU(), 1} {
			b.Run(fmt.Sprintf("batch=%d/gomaxprocs=%d", batch, procs), func(b *testing.B) {
				throughput(b, bin, batch, procs)
			})
		}
	}
}

// throughput measures one load shape against one bridge process.
func throughput(b *testing.B, bin string, batch, procs int) {
	site := stacktest.Unique("bx")
	topic := stacktest.Topic(b, "bench-readings", 6)
	br := startBridge(b, bin, site, topic, "GOMAXPROCS="+strconv.Itoa(procs))
	pub := connect(b, "pub")
	var baseRate, bridgeRate float64
	dropped := stacktest.MQTTDropped(b, stacktest.MQTTOptions(b))
	for b.Loop() {
		baseRate += baseline(b, pub, batch)
		if prof := os.Getenv("PDM_BENCH_PROFILE"); prof != "" {
			go saveProfile(br.admin, fmt.Sprintf("%s.batch%d.procs%d", prof, batch, procs))
		}
		bridgeRate += throughBridge(b, pub, site, topic, batch)
	}
	baseRate /= float64(b.N)
	bridgeRate /= float64(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(baseRate, "baseline-readings/s")
	b.ReportMetric(bridgeRate, "bridge-readings/s")
	b.ReportMetric(bridgeRate/baseRate, "ratio")
	b.ReportMetric(peakRSS(b, br.Cmd.Process.Pid)/(1<<20), "bridge-peak-MiB")
	b.ReportMetric(float64(stacktest.MQTTDropped(b, stacktest.MQTTOptions(b))-dropped), "mqtt-dropped")
}

// BenchmarkBridgeLatency publishes single readings at a steady 2,000 per
// second and reports the time from publish to Kafka's append (the topic uses
// LogAppendTime), p50 and p99.
func BenchmarkBridgeLatency(b *testing.B) {
	bin := buildIngest(b)
	site := stacktest.Unique("bl")
	topic := stacktest.Unique("bench-latency")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := stacktest.CreateTopic(ctx, stacktest.KafkaConn(b), topic, 6, map[string]string{"message.timestamp.type": "LogAppendTime"}); err != nil {
		b.Fatal(err)
	}
	startBridge(b, bin, site, topic, "GOMAXPROCS=1") // as deployed
	pub := connect(b, "pub")
	const rate, n = 2000, 10_000
	var lat []time.Duration
	for b.Loop() {
		before := endOffsets(b, topic)
		tick := time.NewTicker(time.Second / rate)
		for i := 0; i < n; i++ {
			<-tick.C
			r := wire.Reading{Site: site, Asset: fmt.Sprintf("a%d", i%20), Seq: uint64(i + 1), Time: time.Now(),
				Sensors: map[string]float64{"vibration_rms": 1}}
			p, _ := r.MarshalJSON()
			pub.Publish(wire.ReadingsTopic(site, r.Asset), 1, false, p)
		}
		tick.Stop()
		msgs := stacktest.ReadN(b, topic, int(before)+n, time.Minute)
		for _, m := range msgs[before:] {
			var r wire.Reading
			if err := r.UnmarshalJSON(m.Value); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, m.Time.Sub(r.Time))
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// baseline publishes the load to a bare counting subscriber and returns the
// readings per second it received.
func baseline(b *testing.B, pub mqtt.Client, batch int) float64 {
	site := stacktest.Unique("bb")
	var got atomic.Int64
	done := make(chan struct{})
	sub := connect(b, "baseline")
	defer sub.Disconnect(100)
	handler := func(mqtt.Client, mqtt.Message) {
		if got.Add(1) == int64(messages(batch)) {
			close(done)
		}
	}
	if t := sub.Subscribe("$share/"+site+"/pdm/v1/"+site+"/+/readings", 1, handler); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		b.Fatalf("subscribe: %v", t.Error())
	}
	start := time.Now()
	load(b, pub, site, batch)
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("baseline received %d of %d messages", got.Load(), messages(batch))
	}
	return readingsPerRun / time.Since(start).Seconds()
}

// throughBridge publishes the load to the bridge and returns the readings
// per second Kafka acknowledged, waiting until every reading is there. The
// bridge writes each valid message as one record, single or batch.
func throughBridge(b *testing.B, pub mqtt.Client, site, topic string, batch int) float64 {
	before := endOffsets(b, topic)
	want := before + int64(messages(batch))
	start := time.Now()
	load(b, pub, site, batch)
	deadline := time.Now().Add(3 * time.Minute)
	for endOffsets(b, topic) < want {
		if time.Now().After(deadline) {
			b.Fatalf("kafka has %d of %d readings", endOffsets(b, topic)-before, want-before)
		}
		// Each poll is a request to the broker under test: often enough to
		// end the clock within 1% of a run, rarely enough not to load it.
		time.Sleep(20 * time.Millisecond)
	}
	return readingsPerRun / time.Since(start).Seconds()
}

// load publishes messages(batch) messages of batch readings each, spread over
// 50 assets, keeping a window of QoS 1 publishes in flight.
func load(b *testing.B, pub mqtt.Client, site string, batch int) {
	const assets, window = 50, 2000
	seq := make([]uint64, assets)
	sensors := map[string]float64{"vibration_rms": 2.1, "bearing_temp": 61.5, "motor_current": 12.3, "flow": 118.2}
	payloads := make([][]byte, assets)
	inflight := make(chan mqtt.Token, window)
	for i := range messages(batch) {
		a := i % assets
		rs := make([]wire.Reading, batch)
		for j := range rs {
			seq[a]++
			rs[j] = wire.Reading{Site: site, Asset: "asset-" + strconv.Itoa(a), Seq: seq[a], Time: time.Now(), Sensors: sensors}
		}
		var err error
		if batch == 1 {
			payloads[a], err = rs[0].MarshalJSON()
		} else {
			payloads[a], err = wire.EncodeBatch(rs)
		}
		if err != nil {
			b.Fatal(err)
		}
		if len(inflight) == window {
			if t := <-inflight; !t.WaitTimeout(time.Minute) || t.Error() != nil {
				b.Fatalf("publish: %v", t.Error())
			}
		}
		inflight <- pub.Publish(wire.ReadingsTopic(site, rs[0].Asset), 1, false, payloads[a])
	}
	for len(inflight) > 0 {
		if t := <-inflight; !t.WaitTimeout(time.Minute) || t.Error() != nil {
			b.Fatalf("publish: %v", t.Error())
		}
	}
}

func connect(b *testing.B, name string) mqtt.Client {
	b.Helper()
	c := mqtt.NewClient(stacktest.MQTTOptions(b).SetClientID(stacktest.Unique(name)).
		SetMaxResumePubInFlight(2000))
	if t := c.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		b.Fatalf("connect: %v", t.Error())
	}
	b.Cleanup(func() { c.Disconnect(100) })
	return c
}

// buildIngest builds the ingest binary for one benchmark.
func buildIngest(b *testing.B) string {
	b.Helper()
	return stacktest.Build(b, "github.com/pdmstream/pdm/ingest/cmd/ingest")[0]
}

// bridgeProc is a bridge process and its admin address.
type bridgeProc struct {
	*stacktest.Proc
	admin string
}

// startBridge runs the bridge binary subscribed to site's readings and
// writing to topic, with env added to its environment, and waits until it
// is ready.
func startBridge(b *testing.B, bin, site, topic string, env ...string) bridgeProc {
	b.Helper()
	b.Cleanup(func() { stacktest.ForgetSession(b, site) }) // after the bridge stops
	admin := stacktest.FreeAddr(b)
	p := stacktest.Start(b, env, bin, "bridge", "-http.addr", admin, "-log.level", "warn",
		"-mqtt.url", stacktest.MQTTURL(b), "-kafka.brokers", strings.Join(stacktest.KafkaBrokers(b), ","),
		"-mqtt.filter", "pdm/v1/"+site+"/+/readings", "-mqtt.share-group", site, "-mqtt.client-id", site,
		"-kafka.readings", topic, "-kafka.dead-letters", topic+".dlq")
	stacktest.WaitReady(b, "http://"+admin+"/readyz")
	return bridgeProc{p, admin}
}

// endOffsets sums the end offsets of every partition of topic. A new
// topic's leaders may not be known to every broker at once: errors are
// retried for ten seconds.
func endOffsets(b *testing.B, topic string) int64 {
	b.Helper()
	client := stacktest.KafkaConn(b).Client(10 * time.Second)
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for p := 0; p < 6; p++ {
		req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(p))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		sum, err := listEnd(client, req, topic)
		if err == nil {
			return sum
		}
		if time.Now().After(deadline) {
			b.Fatalf("list offsets: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func listEnd(client *kafka.Client, req *kafka.ListOffsetsRequest, topic string) (int64, error) {
	resp, err := client.ListOffsets(context.Background(), req)
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return 0, p.Error
		}
		sum += p.LastOffset
	}
	return sum, nil
}

// peakRSS reads the peak resident set size (VmHWM) of a process, in bytes.
func peakRSS(b *testing.B, pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb * 1024
		}
	}
	b.Fatal("no VmHWM")
	return 0
}

// saveProfile writes a 2-second CPU profile of the bridge to path; set
// PDM_BENCH_PROFILE to see where the bridge spends its time under load.
func saveProfile(admin, path string) {
	resp, err := http.Get("http://" + admin + "/debug/pprof/profile?seconds=2")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
}
