package bridge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/pdmstream/pdm/ingest/internal/config"
	"github.com/pdmstream/pdm/pdmkit/sparkplug/sparkplugpb"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// specEdge is a Sparkplug B 3.0 edge node written from the specification
// for these tests, apart from package sparkplug's encoder: NBIRTH with
// bdSeq and the rebirth control at seq 0, DBIRTH defining pdm/seq and the
// sensors with aliases, DDATA by alias, seq 0..255, NDEATH as the will.
type specEdge struct {
	t           *testing.T
	c           mqtt.Client
	group, node string
	seq         uint64 // of the last message
	// rebirths receives every NCMD asking for a rebirth.
	rebirths chan struct{}
}

// The aliases the test edge gives its metrics, on every device.
var specAliases = map[string]uint64{"pdm/seq": 1, "vibration_rms": 2, "bearing_temp": 3}

func newSpecEdge(t *testing.T, group, node string) *specEdge {
	t.Helper()
	e := &specEdge{t: t, group: group, node: node, rebirths: make(chan struct{}, 64)}
	will, _ := proto.Marshal(&sparkplugpb.Payload{Timestamp: now(), Metrics: []*sparkplugpb.Payload_Metric{
		{Name: proto.String("bdSeq"), Datatype: proto.Uint32(uint32(sparkplugpb.DataType_Int64)), Value: &sparkplugpb.Payload_Metric_LongValue{LongValue: 0}}}})
	e.c = mqtt.NewClient(stacktest.MQTTOptions(t).SetClientID(stacktest.Unique("edge")).
		SetCleanSession(true).SetBinaryWill("spBv1.0/"+group+"/NDEATH/"+node, will, 1, false))
	if tok := e.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("edge connect: %v", tok.Error())
	}
	t.Cleanup(func() { e.c.Disconnect(100) })
	tok := e.c.Subscribe("spBv1.0/"+group+"/NCMD/"+node, 1, func(_ mqtt.Client, m mqtt.Message) {
		var p sparkplugpb.Payload
		if proto.Unmarshal(m.Payload(), &p) != nil {
			return
		}
		for _, mt := range p.GetMetrics() {
			if mt.GetName() == "Node Control/Rebirth" && mt.GetBooleanValue() {
				e.rebirths <- struct{}{}
			}
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("edge subscribe: %v", tok.Error())
	}
	return e
}

func now() *uint64 { return proto.Uint64(uint64(time.Now().UnixMilli())) }

func (e *specEdge) send(kind, device string, p *sparkplugpb.Payload) []byte {
	e.t.Helper()
	topic := "spBv1.0/" + e.group + "/" + kind + "/" + e.node
	if device != "" {
		topic += "/" + device
	}
	b, err := proto.Marshal(p)
	if err != nil {
		e.t.Fatal(err)
	}
	publish(e.t, e.c, topic, b)
	return b
}

func (e *specEdge) next() *uint64 {
	e.seq = (e.seq + 1) % 256
	return proto.Uint64(e.seq)
}

func (e *specEdge) nbirth() {
	e.seq = 0
	e.send("NBIRTH", "", &sparkplugpb.Payload{Timestamp: now(), Seq: proto.Uint64(0), Metrics: []*sparkplugpb.Payload_Metric{
		{Name: proto.String("bdSeq"), Datatype: proto.Uint32(uint32(sparkplugpb.DataType_Int64)), Value: &sparkplugpb.Payload_Metric_LongValue{LongValue: 0}},
		{Name: proto.String("Node Control/Rebirth"), Datatype: proto.Uint32(uint32(sparkplugpb.DataType_Boolean)), Value: &sparkplugpb.Payload_Metric_BooleanValue{}},
	}})
}

func (e *specEdge) dbirth(device string) {
	p := &sparkplugpb.Payload{Timestamp: now(), Seq: e.next()}
	for _, name := range []string{"pdm/seq", "vibration_rms", "bearing_temp"} {
		typ := sparkplugpb.DataType_Double
		if name == "pdm/seq" {
			typ = sparkplugpb.DataType_UInt64
		}
		p.Metrics = append(p.Metrics, &sparkplugpb.Payload_Metric{Name: proto.String(name), Alias: proto.Uint64(specAliases[name]),
			Datatype: proto.Uint32(uint32(typ)), IsNull: proto.Bool(true)})
	}
	e.send("DBIRTH", device, p)
}

// ddata publishes rs, readings of device, in one DDATA, and returns its
// payload.
func (e *specEdge) ddata(device string, rs ...wire.Reading) []byte {
	return e.send("DDATA", device, e.dataPayload(e.next(), rs...))
}

func (e *specEdge) dataPayload(seq *uint64, rs ...wire.Reading) *sparkplugpb.Payload {
	p := &sparkplugpb.Payload{Timestamp: now(), Seq: seq}
	for _, r := range rs {
		ts := proto.Uint64(uint64(r.Time.UnixMilli()))
		p.Metrics = append(p.Metrics, &sparkplugpb.Payload_Metric{Alias: proto.Uint64(1), Timestamp: ts, Value: &sparkplugpb.Payload_Metric_LongValue{LongValue: r.Seq}})
		for name, v := range r.Sensors {
			p.Metrics = append(p.Metrics, &sparkplugpb.Payload_Metric{Alias: proto.Uint64(specAliases[name]), Timestamp: ts, Value: &sparkplugpb.Payload_Metric_DoubleValue{DoubleValue: v}})
		}
	}
	return p
}

func sparkplugConfig(t *testing.T, site string) config.Config {
	t.Helper()
	cfg := testConfig(t, site)
	cfg.MQTT.Sparkplug = true
	cfg.MQTT.SparkplugGroup = site
	return cfg
}

func specReading(site, asset string, seq uint64, at time.Time) wire.Reading {
	return wire.Reading{Site: site, Asset: asset, Seq: seq, Time: at.Add(time.Duration(seq) * time.Millisecond).Truncate(time.Millisecond),
		Sensors: map[string]float64{"vibration_rms": float64(seq) / 7, "bearing_temp": 40 + float64(seq)/3}}
}

func deadCodes(t *testing.T, msgs []kafka.Message) map[string]int {
	t.Helper()
	codes := map[string]int{}
	for _, m := range msgs {
		for _, h := range m.Headers {
			if h.Key == wire.HeaderErrorCode {
				codes[string(h.Value)]++
			}
		}
	}
	return codes
}

func waitRebirth(t *testing.T, e *specEdge) {
	t.Helper()
	select {
	case <-e.rebirths:
	case <-time.After(20 * time.Second):
		t.Fatalf("edge node %s was not asked for a rebirth", e.node)
	}
}

// TestSparkplugRecordsEqualJSON publishes the same readings as JSON and as
// Sparkplug B (single readings and a batch) through the real bridge: every
// Kafka record of the Sparkplug path is byte for byte the JSON path's.
// DDATA before its birth and after a seq gap is dead-lettered with its
// reason and the edge node is asked for a rebirth.
func TestSparkplugRecordsEqualJSON(t *testing.T) {
	site := stacktest.Unique("site")
	cfg := sparkplugConfig(t, site)
	b := startBridge(t, cfg)
	pub := publisher(t)
	start := time.Now()

	var records int
	var all []wire.Reading
	for i := uint64(1); i <= 10; i++ {
		r := specReading(site, "pump-1", i, start)
		all = append(all, r)
		payload, _ := r.MarshalJSON()
		publish(t, pub, wire.ReadingsTopic(site, r.Asset), payload)
		records++
	}
	batch := []wire.Reading{specReading(site, "pump-2", 1, start), specReading(site, "pump-2", 2, start), specReading(site, "pump-2", 3, start)}
	payload, _ := wire.EncodeBatch(batch)
	publish(t, pub, wire.ReadingsTopic(site, "pump-2"), payload)
	records++

	edge := newSpecEdge(t, site, "gw-1")
	edge.nbirth()
	edge.dbirth("pump-1")
	edge.dbirth("pump-2")
	for _, r := range all {
		edge.ddata("pump-1", r)
	}
	edge.ddata("pump-2", batch...)
	// Data of a device never born, then a gap on another edge node.
	early := edge.ddata("pump-3", specReading(site, "pump-3", 1, start))
	gapped := newSpecEdge(t, site, "gw-2")
	gapped.nbirth()
	gapped.dbirth("motor-1")
	gapped.seq++
	gap := gapped.ddata("motor-1", specReading(site, "motor-1", 1, start))

	got := stacktest.ReadN(t, cfg.Kafka.Readings, 2*records, 30*time.Second)
	if len(got) != 2*records {
		t.Fatalf("%d records, want %d (%d from each path)", len(got), 2*records, records)
	}
	same := map[string]int{}
	for _, m := range got {
		same[string(m.Key)+" "+string(m.Value)]++
	}
	for rec, n := range same {
		if n != 2 {
			t.Errorf("record %.120q appears %d times, want twice (once per path)", rec, n)
		}
	}
	if len(same) != records {
		t.Errorf("%d distinct records, want %d", len(same), records)
	}

	dead := stacktest.ReadN(t, cfg.Kafka.DeadLetters, 2, 30*time.Second)
	if c := deadCodes(t, dead); c["no_birth"] != 1 || c["seq_gap"] != 1 || len(dead) != 2 {
		t.Fatalf("dead letters %v, want one no_birth and one seq_gap", c)
	}
	for _, m := range dead {
		if string(m.Value) != string(early) && string(m.Value) != string(gap) {
			t.Errorf("dead letter holds %x, not the refused payload", m.Value)
		}
	}
	waitRebirth(t, edge)
	waitRebirth(t, gapped)
	if n := testutil.ToFloat64(b.metrics.Rebirths); n != 2 {
		t.Errorf("rebirth requests %v, want 2", n)
	}
	if n := testutil.ToFloat64(b.metrics.Rejected.WithLabelValues("seq_gap")); n != 1 {
		t.Errorf("rejected{code=seq_gap} %v, want 1", n)
	}
}

// TestSparkplugBridgeRestart stops the bridge while an edge node keeps
// publishing: its persistent session queues the DDATA, which the new
// bridge, knowing no births, cannot map. Each is dead-lettered (no_birth)
// and the edge node is asked for a rebirth, once; after the rebirth the
// edge node's data maps again. Every reading is in exactly one place,
// the readings topic or the dead-letter topic, once.
func TestSparkplugBridgeRestart(t *testing.T) {
	site := stacktest.Unique("site")
	cfg := sparkplugConfig(t, site)
	first, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- first.Run(ctx) }()
	stacktest.Eventually(t, 20*time.Second, func() bool { return first.Ready(context.Background()) == nil }, "bridge not connected")

	start := time.Now()
	edge := newSpecEdge(t, site, "gw-1")
	edge.nbirth()
	edge.dbirth("pump-1")
	seq := uint64(0)
	send := func(n int) []string {
		var payloads []string
		for range n {
			seq++
			payloads = append(payloads, string(edge.ddata("pump-1", specReading(site, "pump-1", seq, start))))
		}
		return payloads
	}
	send(10)
	stacktest.Eventually(t, 20*time.Second, func() bool { return testutil.ToFloat64(first.metrics.Readings) == 10 }, "first bridge wrote %v of 10", testutil.ToFloat64(first.metrics.Readings))
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	queued := send(10) // while no bridge runs: kept by its session
	second := startBridge(t, cfg)
	waitRebirth(t, edge)
	edge.nbirth()
	edge.dbirth("pump-1")
	send(10)

	got := decodeAll(t, stacktest.ReadN(t, cfg.Kafka.Readings, 20, 30*time.Second))
	var seqs []int
	for _, r := range got {
		seqs = append(seqs, int(r.Seq))
	}
	sort.Ints(seqs)
	want := []int{}
	for i := 1; i <= 30; i++ {
		if i <= 10 || i > 20 {
			want = append(want, i)
		}
	}
	if fmt.Sprint(seqs) != fmt.Sprint(want) {
		t.Fatalf("readings in Kafka %v, want %v", seqs, want)
	}
	dead := stacktest.ReadN(t, cfg.Kafka.DeadLetters, len(queued), 30*time.Second)
	if c := deadCodes(t, dead); c["no_birth"] != len(queued) || len(dead) != len(queued) {
		t.Fatalf("dead letters %v, want %d no_birth", c, len(queued))
	}
	for i, m := range dead {
		if string(m.Value) != queued[i] {
			t.Errorf("dead letter %d is not the queued DDATA %d", i, i)
		}
	}
	if n := testutil.ToFloat64(second.metrics.Rebirths); n != 1 {
		t.Errorf("rebirth requests %v, want 1 (at most one per 5 s per edge node)", n)
	}
}
