package sparkplug

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/pdmstream/pdm/pdmkit/sparkplug/sparkplugpb"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func reading(asset string, seq uint64) wire.Reading {
	return wire.Reading{Site: "plant1", Asset: asset, Seq: seq, Time: t0.Add(time.Duration(seq) * time.Second),
		Sensors: map[string]float64{"vibration_rms": 0.1 * float64(seq), "bearing_temp": 40 + float64(seq)}}
}

// feed hands msgs to h and returns every reading, failing on any refusal.
func feed(t *testing.T, h *Host, msgs []Message) []wire.Reading {
	t.Helper()
	var out []wire.Reading
	for _, m := range msgs {
		res := h.Handle(m.Topic, m.Payload, t0)
		if res.Err != nil {
			t.Fatalf("%s: %v", m.Topic, res.Err)
		}
		out = append(out, res.Readings...)
	}
	return out
}

func decode(t *testing.T, m Message) *pb.Payload {
	t.Helper()
	var p pb.Payload
	if err := proto.Unmarshal(m.Payload, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

func TestRoundTrip(t *testing.T) {
	e := NewEdge("plant1", "gw-1")
	h := NewHost(HostOptions{})
	will := e.Connect(t0)
	if will.Topic != "spBv1.0/plant1/NDEATH/gw-1" {
		t.Fatalf("will on %s", will.Topic)
	}
	msgs := []Message{e.Birth(t0)}
	single, err := e.Data([]wire.Reading{reading("pump-1", 1)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(single) != 2 || !strings.Contains(single[0].Topic, "/DBIRTH/gw-1/pump-1") || !strings.Contains(single[1].Topic, "/DDATA/gw-1/pump-1") {
		t.Fatalf("first data of a device: %v, want DBIRTH then DDATA", topics(single))
	}
	batch, err := e.Data([]wire.Reading{reading("pump-1", 2), reading("pump-1", 3)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(batch) != 1 {
		t.Fatalf("born device: %v, want DDATA only", topics(batch))
	}
	// DDATA carries aliases, no names, no datatypes.
	for _, m := range decode(t, batch[0]).GetMetrics() {
		if m.Name != nil || m.Alias == nil || m.Datatype != nil {
			t.Fatalf("DDATA metric %v: want alias only", m)
		}
	}
	other, _ := e.Data([]wire.Reading{reading("motor-1", 1)}, t0)
	msgs = append(append(append(msgs, single...), batch...), other...)
	got := feed(t, h, msgs)
	want := []wire.Reading{reading("pump-1", 1), reading("pump-1", 2), reading("pump-1", 3), reading("motor-1", 1)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	// The Kafka record the JSON path would make is the same bytes.
	a, _ := wire.EncodeBatch(got[1:3])
	b, _ := wire.EncodeBatch(want[1:3])
	if string(a) != string(b) {
		t.Fatalf("records differ:\n%s\n%s", a, b)
	}
}

func topics(ms []Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Topic)
	}
	return out
}

// TestSeqWrapsAfter255 sends 600 messages: seq runs 0..255 and wraps to 0,
// and the host follows without a gap.
func TestSeqWrapsAfter255(t *testing.T) {
	e := NewEdge("plant1", "gw-1")
	h := NewHost(HostOptions{})
	e.Connect(t0)
	feed(t, h, []Message{e.Birth(t0)})
	var seqs []uint64
	n := 0
	for i := uint64(1); i <= 600; i++ {
		msgs, err := e.Data([]wire.Reading{reading("pump-1", i)}, t0)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			seqs = append(seqs, decode(t, m).GetSeq())
		}
		n += len(feed(t, h, msgs))
	}
	if n != 600 {
		t.Fatalf("%d readings, want 600", n)
	}
	// seqs[0] is the DBIRTH's 1; the 255th message after NBIRTH is 255, then 0.
	if seqs[254] != 255 || seqs[255] != 0 || seqs[256] != 1 {
		t.Fatalf("seq around the wrap: %v", seqs[252:258])
	}
}

// ddata builds a DDATA by hand, as another edge node might.
func ddata(seq uint64, metrics ...*pb.Payload_Metric) []byte {
	b, _ := proto.Marshal(&pb.Payload{Timestamp: proto.Uint64(uint64(t0.UnixMilli())), Seq: proto.Uint64(seq), Metrics: metrics})
	return b
}

func aliased(alias uint64, v float64) *pb.Payload_Metric {
	return &pb.Payload_Metric{Alias: proto.Uint64(alias), Value: &pb.Payload_Metric_DoubleValue{DoubleValue: v}}
}

func seqMetric(alias, v uint64) *pb.Payload_Metric {
	return &pb.Payload_Metric{Alias: proto.Uint64(alias), Value: &pb.Payload_Metric_LongValue{LongValue: v}}
}

// born returns a host that has seen gw-1's NBIRTH (seq 0) and pump-1's
// DBIRTH (seq 1) with pdm/seq as alias 1 and x as alias 2.
func born(t *testing.T) *Host {
	t.Helper()
	e := NewEdge("plant1", "gw-1")
	h := NewHost(HostOptions{})
	e.Connect(t0)
	msgs, _ := e.Data([]wire.Reading{{Site: "plant1", Asset: "pump-1", Seq: 1, Time: t0, Sensors: map[string]float64{"x": 1}}}, t0)
	feed(t, h, []Message{e.Birth(t0), msgs[0]}) // the DBIRTH, not the data
	return h
}

const ddataTopic = "spBv1.0/plant1/DDATA/gw-1/pump-1"

func TestHostRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		host    func(*testing.T) *Host
		topic   string
		payload []byte
		code    string
		rebirth bool
	}{
		{"data before any birth", func(*testing.T) *Host { return NewHost(HostOptions{}) }, ddataTopic, ddata(5, seqMetric(1, 1), aliased(2, 1)), "no_birth", true},
		{"data of a device never born", born, "spBv1.0/plant1/DDATA/gw-1/pump-2", ddata(2, seqMetric(1, 1), aliased(2, 1)), "no_birth", true},
		{"seq gap", born, ddataTopic, ddata(3, seqMetric(1, 1), aliased(2, 1)), "seq_gap", true},
		{"no seq", born, ddataTopic, func() []byte {
			b, _ := proto.Marshal(&pb.Payload{Timestamp: proto.Uint64(1), Metrics: []*pb.Payload_Metric{seqMetric(1, 1)}})
			return b
		}(), "seq_gap", true},
		{"unknown alias", born, ddataTopic, ddata(2, seqMetric(1, 1), aliased(9, 1)), "unknown_alias", true},
		{"no pdm/seq", born, ddataTopic, ddata(2, aliased(2, 1)), "bad_seq", false},
		{"wrong value type", born, ddataTopic, ddata(2, seqMetric(1, 1), &pb.Payload_Metric{Alias: proto.Uint64(2),
			Value: &pb.Payload_Metric_StringValue{StringValue: "hot"}}), "bad_value", false},
		{"not protobuf", born, ddataTopic, []byte{0xff, 0xff, 0xff}, "malformed", false},
		{"not a sparkplug topic", born, "spBv1.0/plant1/DDATA/gw-1", ddata(2), "topic_mismatch", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := tc.host(t).Handle(tc.topic, tc.payload, t0)
			if code := wire.CodeOf(res.Err); string(code) != tc.code {
				t.Fatalf("code %s (%v), want %s", code, res.Err, tc.code)
			}
			if res.Rebirth != tc.rebirth {
				t.Fatalf("rebirth %v, want %v", res.Rebirth, tc.rebirth)
			}
		})
	}
}

// TestGapNeedsRebirth: after a gap the node's data is refused until its
// NBIRTH, and the rebirth is asked for at most once per interval.
func TestGapNeedsRebirth(t *testing.T) {
	h := born(t)
	if res := h.Handle(ddataTopic, ddata(7, seqMetric(1, 1), aliased(2, 1)), t0); wire.CodeOf(res.Err) != "seq_gap" || !res.Rebirth {
		t.Fatalf("gap: %v rebirth=%v", res.Err, res.Rebirth)
	}
	res := h.Handle(ddataTopic, ddata(8, seqMetric(1, 2), aliased(2, 1)), t0.Add(time.Second))
	if wire.CodeOf(res.Err) != "no_birth" || res.Rebirth {
		t.Fatalf("after the gap: %v rebirth=%v, want no_birth without a second request", res.Err, res.Rebirth)
	}
	if !strings.Contains(res.Err.Error(), "seq 7 after 1") {
		t.Errorf("reason %q does not name the gap", res.Err)
	}
	if res := h.Handle(ddataTopic, ddata(9, seqMetric(1, 3), aliased(2, 1)), t0.Add(6*time.Second)); !res.Rebirth {
		t.Fatal("no second request after the interval")
	}
	// The rebirth: NBIRTH, DBIRTH, then data maps again.
	e := NewEdge("plant1", "gw-1")
	e.Connect(t0)
	e.Data([]wire.Reading{reading("pump-1", 3)}, t0)
	got := feed(t, h, append(e.Rebirth(t0), mustData(t, e, reading("pump-1", 4))...))
	if len(got) != 1 || got[0].Seq != 4 {
		t.Fatalf("after the rebirth: %+v", got)
	}
}

func mustData(t *testing.T, e *Edge, rs ...wire.Reading) []Message {
	t.Helper()
	m, err := e.Data(rs, t0)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDeathsEndBirths: DDEATH ends a device, NDEATH with the NBIRTH's
// bdSeq ends the node, and a late NDEATH of an earlier connection does
// not end the current one.
func TestDeathsEndBirths(t *testing.T) {
	e := NewEdge("plant1", "gw-1")
	h := NewHost(HostOptions{})
	oldWill := e.Connect(t0)
	feed(t, h, append([]Message{e.Birth(t0)}, mustData(t, e, reading("pump-1", 1))...))
	newWill := e.Connect(t0) // reconnect: bdSeq 1
	feed(t, h, append([]Message{e.Birth(t0)}, mustData(t, e, reading("pump-1", 2))...))
	feed(t, h, []Message{oldWill})
	if got := feed(t, h, mustData(t, e, reading("pump-1", 3))); len(got) != 1 {
		t.Fatalf("a late NDEATH of bdSeq 0 ended the connection of bdSeq 1")
	}
	deaths := e.Deaths(t0)
	if len(deaths) != 2 || !strings.Contains(deaths[0].Topic, "/DDEATH/gw-1/pump-1") || deaths[1].Topic != newWill.Topic || string(deaths[1].Payload) != string(newWill.Payload) {
		t.Fatalf("deaths %v, want DDEATH then the NDEATH of the will", topics(deaths))
	}
	feed(t, h, deaths[:1])
	if res := h.Handle(ddataTopic, ddata(5, seqMetric(1, 9), aliased(2, 1)), t0); wire.CodeOf(res.Err) != "no_birth" {
		t.Fatalf("data after DDEATH: %v", res.Err)
	}
	feed(t, h, deaths[1:])
	if res := h.Handle(ddataTopic, ddata(6, seqMetric(1, 9), aliased(2, 1)), t0); wire.CodeOf(res.Err) != "no_birth" || !strings.Contains(res.Err.Error(), "NDEATH") {
		t.Fatalf("data after NDEATH: %v", res.Err)
	}
}

// TestNewSensorRebirthsDevice: a sensor the birth did not define makes the
// edge send a new DBIRTH first, with the old aliases kept.
func TestNewSensorRebirthsDevice(t *testing.T) {
	e := NewEdge("plant1", "gw-1")
	h := NewHost(HostOptions{})
	e.Connect(t0)
	feed(t, h, append([]Message{e.Birth(t0)}, mustData(t, e, reading("pump-1", 1))...))
	r := reading("pump-1", 2)
	r.Sensors["flow"] = 12
	msgs := mustData(t, e, r)
	if len(msgs) != 2 || !strings.Contains(msgs[0].Topic, "DBIRTH") {
		t.Fatalf("new sensor: %v, want DBIRTH then DDATA", topics(msgs))
	}
	if got := feed(t, h, msgs); len(got) != 1 || !reflect.DeepEqual(got[0], r) {
		t.Fatalf("got %+v, want %+v", got, r)
	}
}

// TestOtherEdgesData: a DDATA by another implementation, with names
// instead of aliases, integer and boolean sensors, a string metric (not a
// sensor) and metrics without their own timestamp.
func TestOtherEdgesData(t *testing.T) {
	h := NewHost(HostOptions{})
	birth, _ := proto.Marshal(&pb.Payload{Seq: proto.Uint64(0), Metrics: []*pb.Payload_Metric{
		{Name: proto.String(BDSeqMetric), Datatype: dt(pb.DataType_UInt64), Value: &pb.Payload_Metric_LongValue{LongValue: 3}}}})
	dbirth, _ := proto.Marshal(&pb.Payload{Seq: proto.Uint64(1), Metrics: []*pb.Payload_Metric{
		{Name: proto.String(SeqMetric), Datatype: dt(pb.DataType_UInt32), IsNull: proto.Bool(true)},
		{Name: proto.String("temp"), Datatype: dt(pb.DataType_Int16), IsNull: proto.Bool(true)},
		{Name: proto.String("running"), Datatype: dt(pb.DataType_Boolean), IsNull: proto.Bool(true)},
		{Name: proto.String("label"), Datatype: dt(pb.DataType_String), IsNull: proto.Bool(true)},
	}})
	data, _ := proto.Marshal(&pb.Payload{Seq: proto.Uint64(2), Timestamp: proto.Uint64(uint64(t0.UnixMilli())), Metrics: []*pb.Payload_Metric{
		{Name: proto.String(SeqMetric), Value: &pb.Payload_Metric_IntValue{IntValue: 7}},
		{Name: proto.String("temp"), Value: &pb.Payload_Metric_IntValue{IntValue: uint32(0xffff) - 4}}, // -5 as Int16
		{Name: proto.String("running"), Value: &pb.Payload_Metric_BooleanValue{BooleanValue: true}},
		{Name: proto.String("label"), Value: &pb.Payload_Metric_StringValue{StringValue: "A"}},
	}})
	got := feed(t, h, []Message{{"spBv1.0/g/NBIRTH/n", birth}, {"spBv1.0/g/DBIRTH/n/d", dbirth}, {"spBv1.0/g/DDATA/n/d", data}})
	want := []wire.Reading{{Site: "g", Asset: "d", Seq: 7, Time: t0, Sensors: map[string]float64{"temp": -5, "running": 1}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestRebirthRequest(t *testing.T) {
	m := RebirthRequest("plant1", "gw-1", t0)
	if m.Topic != "spBv1.0/plant1/NCMD/gw-1" || !IsRebirth(m.Payload) {
		t.Fatalf("%s %x", m.Topic, m.Payload)
	}
	if IsRebirth([]byte("junk")) || IsRebirth(ddata(1, aliased(1, 1))) {
		t.Fatal("junk taken for a rebirth request")
	}
}

func TestParseTopic(t *testing.T) {
	for topic, ok := range map[string]bool{
		"spBv1.0/g/DDATA/n/d": true, "spBv1.0/g/NBIRTH/n": true,
		"spBv1.0/g/DDATA/n": false, "spBv1.0/g/NBIRTH/n/d": false, "spBv1.0/g/XDATA/n/d": false,
		"spBv1.0/g/DDATA/n/d/e": false, "spAv1.0/g/NBIRTH/n": false, "spBv1.0//NBIRTH/n": false,
	} {
		tp, err := ParseTopic(topic)
		if (err == nil) != ok {
			t.Errorf("%s: %v", topic, err)
		}
		if ok && tp.String() != topic {
			t.Errorf("%s formats as %s", topic, tp)
		}
	}
}

// TestHostForgetsBeyondMaxNodes: beyond the bound a node is forgotten (it
// is asked for a rebirth when it next sends), so memory stays bounded.
func TestHostForgetsBeyondMaxNodes(t *testing.T) {
	h := NewHost(HostOptions{MaxNodes: 3})
	for i := range 5 {
		e := NewEdge("g", fmt.Sprint("n", i))
		e.Connect(t0)
		feed(t, h, []Message{e.Birth(t0)})
	}
	if len(h.nodes) != 3 {
		t.Fatalf("%d nodes remembered, want 3", len(h.nodes))
	}
}
