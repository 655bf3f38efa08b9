package sparkplug

import (
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/pdmstream/pdm/pdmkit/sparkplug/sparkplugpb"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// Message is one MQTT message to publish: QoS 1, not retained, as the
// specification wants every message of an edge node.
type Message struct {
	Topic   string
	Payload []byte
}

// Edge is one edge node's side of Sparkplug: it numbers its messages and
// remembers what it has born on the current MQTT connection. Not safe for
// concurrent use.
type Edge struct {
	group, node string
	// bdSeq is the current connection's birth/death number; next is the
	// next one (both 0..255).
	bdSeq, nextBD uint64
	seq           uint64 // the last seq sent, 0..255
	nextAlias     uint64
	devices       map[string]*edgeDevice
}

// edgeDevice is what Edge knows of one device (asset).
type edgeDevice struct {
	aliases map[string]uint64 // metric name → alias, for the life of the Edge
	names   []string          // its sensors, sorted: what its birth defines
	born    bool              // DBIRTH sent on the current connection
	last    wire.Reading      // the newest reading sent, for a rebirth
}

// NewEdge returns the edge node node of group.
func NewEdge(group, node string) *Edge {
	return &Edge{group: group, node: node, devices: map[string]*edgeDevice{}, nextAlias: 1}
}

// Connect starts a new MQTT connection: it takes the next bdSeq and returns
// the NDEATH to set as the connection's last will. Every device must be
// born again on it.
func (e *Edge) Connect(now time.Time) Message {
	e.bdSeq, e.nextBD = e.nextBD, (e.nextBD+1)%256
	for _, d := range e.devices {
		d.born = false
	}
	return e.nodeDeath(now)
}

func (e *Edge) nodeDeath(now time.Time) Message {
	return e.msg(Topic{Group: e.group, Type: NDeath, Node: e.node}, &pb.Payload{
		Timestamp: ms(now),
		Metrics:   []*pb.Payload_Metric{longMetric(BDSeqMetric, pb.DataType_Int64, e.bdSeq)},
	})
}

// Birth returns the NBIRTH that opens the connection (seq 0), with the
// connection's bdSeq and the rebirth control. Devices are born again as
// their data comes.
func (e *Edge) Birth(now time.Time) Message {
	e.seq = 0
	for _, d := range e.devices {
		d.born = false
	}
	rebirth := &pb.Payload_Metric{Name: proto.String(RebirthMetric), Datatype: dt(pb.DataType_Boolean),
		Value: &pb.Payload_Metric_BooleanValue{BooleanValue: false}}
	return e.msg(Topic{Group: e.group, Type: NBirth, Node: e.node}, &pb.Payload{
		Timestamp: ms(now), Seq: proto.Uint64(0),
		Metrics: []*pb.Payload_Metric{longMetric(BDSeqMetric, pb.DataType_Int64, e.bdSeq), rebirth},
	})
}

// Rebirth answers a rebirth request: the NBIRTH, then a DBIRTH for every
// device sent on this connection, with its newest values.
func (e *Edge) Rebirth(now time.Time) []Message {
	var born []string
	for id, d := range e.devices {
		if d.born {
			born = append(born, id)
		}
	}
	slices.Sort(born)
	out := []Message{e.Birth(now)}
	for _, id := range born {
		out = append(out, e.deviceBirth(id, e.devices[id], now))
	}
	return out
}

// Data returns the DDATA that carries rs, readings of one asset in order,
// preceded by the asset's DBIRTH when it is not born on this connection or
// has a sensor its birth did not define.
func (e *Edge) Data(rs []wire.Reading, now time.Time) ([]Message, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	asset := rs[0].Asset
	d := e.devices[asset]
	if d == nil {
		d = &edgeDevice{aliases: map[string]uint64{}}
		e.devices[asset] = d
	}
	d.alias(SeqMetric, e)
	grown := false
	for _, r := range rs {
		if r.Asset != asset {
			return nil, fmt.Errorf("sparkplug: readings of %s and %s in one message", asset, r.Asset)
		}
		for name := range r.Sensors {
			if _, ok := d.aliases[name]; !ok {
				d.alias(name, e)
				d.names = append(d.names, name)
				grown = true
			}
		}
	}
	slices.Sort(d.names)
	var out []Message
	if !d.born || grown {
		d.last = rs[0]
		out = append(out, e.deviceBirth(asset, d, now))
	}
	p := &pb.Payload{Timestamp: ms(now), Seq: proto.Uint64(e.next())}
	for _, r := range rs {
		ts := ms(r.Time)
		p.Metrics = append(p.Metrics, &pb.Payload_Metric{Alias: proto.Uint64(d.aliases[SeqMetric]), Timestamp: ts,
			Value: &pb.Payload_Metric_LongValue{LongValue: r.Seq}})
		for _, name := range d.names {
			v, ok := r.Sensors[name]
			if !ok {
				continue
			}
			p.Metrics = append(p.Metrics, &pb.Payload_Metric{Alias: proto.Uint64(d.aliases[name]), Timestamp: ts,
				Value: &pb.Payload_Metric_DoubleValue{DoubleValue: v}})
		}
	}
	d.last = rs[len(rs)-1]
	return append(out, e.msg(Topic{Group: e.group, Type: DData, Node: e.node, Device: asset}, p)), nil
}

// Deaths returns what an edge node publishes before it disconnects on
// purpose: a DDEATH per device born on this connection, then the NDEATH
// (a clean disconnect sends no will).
func (e *Edge) Deaths(now time.Time) []Message {
	var born []string
	for id, d := range e.devices {
		if d.born {
			born = append(born, id)
		}
	}
	slices.Sort(born)
	var out []Message
	for _, id := range born {
		e.devices[id].born = false
		out = append(out, e.msg(Topic{Group: e.group, Type: DDeath, Node: e.node, Device: id},
			&pb.Payload{Timestamp: ms(now), Seq: proto.Uint64(e.next())}))
	}
	return append(out, e.nodeDeath(now))
}

// deviceBirth defines every metric of d with its alias, datatype and
// newest value.
func (e *Edge) deviceBirth(id string, d *edgeDevice, now time.Time) Message {
	d.born = true
	ts := ms(d.last.Time)
	p := &pb.Payload{Timestamp: ms(now), Seq: proto.Uint64(e.next()), Metrics: []*pb.Payload_Metric{{
		Name: proto.String(SeqMetric), Alias: proto.Uint64(d.aliases[SeqMetric]), Timestamp: ts, Datatype: dt(pb.DataType_UInt64),
		Value: &pb.Payload_Metric_LongValue{LongValue: d.last.Seq},
	}}}
	for _, name := range d.names {
		m := &pb.Payload_Metric{Name: proto.String(name), Alias: proto.Uint64(d.aliases[name]), Timestamp: ts, Datatype: dt(pb.DataType_Double)}
		if v, ok := d.last.Sensors[name]; ok {
			m.Value = &pb.Payload_Metric_DoubleValue{DoubleValue: v}
		} else {
			m.IsNull = proto.Bool(true)
		}
		p.Metrics = append(p.Metrics, m)
	}
	return e.msg(Topic{Group: e.group, Type: DBirth, Node: e.node, Device: id}, p)
}

// alias gives name an alias unique across the edge node, kept for the
// life of the Edge, so a device's aliases do not change between births.
func (d *edgeDevice) alias(name string, e *Edge) {
	if _, ok := d.aliases[name]; !ok {
		d.aliases[name] = e.nextAlias
		e.nextAlias++
	}
}

// next returns the seq of the next message after NBIRTH's 0: 1..255, 0, 1, ...
func (e *Edge) next() uint64 {
	e.seq = (e.seq + 1) % 256
	return e.seq
}

func (e *Edge) msg(t Topic, p *pb.Payload) Message {
	b, err := proto.Marshal(p)
	if err != nil {
		// proto2 checks neither UTF-8 nor required fields here: a failure
		// is a bug of this package.
		panic(fmt.Sprintf("sparkplug: marshal %s: %v", t, err))
	}
	return Message{Topic: t.String(), Payload: b}
}

// RebirthRequest is the NCMD a host sends to ask an edge node for its
// births.
func RebirthRequest(group, node string, now time.Time) Message {
	p := &pb.Payload{Timestamp: ms(now), Metrics: []*pb.Payload_Metric{{
		Name: proto.String(RebirthMetric), Timestamp: ms(now), Datatype: dt(pb.DataType_Boolean),
		Value: &pb.Payload_Metric_BooleanValue{BooleanValue: true},
	}}}
	b, _ := proto.Marshal(p)
	return Message{Topic: Topic{Group: group, Type: NCmd, Node: node}.String(), Payload: b}
}

// IsRebirth reports whether an NCMD payload asks for a rebirth.
func IsRebirth(payload []byte) bool {
	var p pb.Payload
	if proto.Unmarshal(payload, &p) != nil {
		return false
	}
	for _, m := range p.GetMetrics() {
		if m.GetName() == RebirthMetric && m.GetBooleanValue() {
			return true
		}
	}
	return false
}

func longMetric(name string, t pb.DataType, v uint64) *pb.Payload_Metric {
	return &pb.Payload_Metric{Name: proto.String(name), Datatype: dt(t), Value: &pb.Payload_Metric_LongValue{LongValue: v}}
}

func dt(t pb.DataType) *uint32 { return proto.Uint32(uint32(t)) }

func ms(t time.Time) *uint64 { return proto.Uint64(uint64(t.UnixMilli())) }
