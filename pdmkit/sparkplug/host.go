package sparkplug

import (
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/pdmstream/pdm/pdmkit/sparkplug/sparkplugpb"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// Host is the receiving side of Sparkplug: it learns the births of every
// edge node and device it sees and turns their DDATA into readings. Births
// live only in memory: a new Host knows none and asks for them. Not safe
// for concurrent use; feed it each edge node's messages in the order the
// broker delivered them.
type Host struct {
	opts  HostOptions
	nodes map[nodeKey]*hostNode
}

// HostOptions bound a Host. Zero values take the defaults.
type HostOptions struct {
	// RebirthInterval is the shortest time between two rebirth requests to
	// one edge node, so a stream of data it cannot map asks once, not per
	// message. Default 5s.
	RebirthInterval time.Duration
	// MaxNodes is the most edge nodes remembered; beyond it one is
	// forgotten (and asked for a rebirth when it next sends). Default 10,000.
	MaxNodes int
}

// Result is what one message did.
type Result struct {
	Topic Topic
	// Readings are the readings of a DDATA, not yet checked against
	// wire.Limits.
	Readings []wire.Reading
	// Err is a *wire.RejectError when the message was refused.
	Err error
	// Rebirth says the host should send RebirthRequest(Topic.Group,
	// Topic.Node): its births are missing or can no longer be trusted.
	Rebirth bool
}

type nodeKey struct{ group, node string }

type hostNode struct {
	born    bool
	why     string // why it is not born, for the error
	bdSeq   uint64
	seq     uint64 // of the last message
	devices map[string]*hostDevice
	askedAt time.Time // the last rebirth request
}

// hostDevice is a device's birth: its metrics by alias and by name.
type hostDevice struct {
	byAlias map[uint64]metricDef
	byName  map[string]metricDef
}

type metricDef struct {
	name     string
	datatype pb.DataType
}

// NewHost returns a host that knows no births.
func NewHost(opts HostOptions) *Host {
	if opts.RebirthInterval <= 0 {
		opts.RebirthInterval = 5 * time.Second
	}
	if opts.MaxNodes <= 0 {
		opts.MaxNodes = 10_000
	}
	return &Host{opts: opts, nodes: map[nodeKey]*hostNode{}}
}

// Handle takes one message received at now.
func (h *Host) Handle(topic string, payload []byte, now time.Time) Result {
	t, err := ParseTopic(topic)
	if err != nil {
		return Result{Err: wire.Reject(wire.ErrTopic, "%v", err)}
	}
	res := Result{Topic: t}
	var p pb.Payload
	if err := proto.Unmarshal(payload, &p); err != nil {
		res.Err = wire.Reject(wire.ErrMalformed, "%s: not a Sparkplug B payload: %v", t.Type, err)
		return res
	}
	key := nodeKey{t.Group, t.Node}
	n := h.nodes[key]
	switch t.Type {
	case NCmd, DCmd: // commands to edge nodes, ours among them: nothing to learn
		return res
	case NBirth:
		bd, ok := bdSeqOf(&p)
		if !ok || p.Seq == nil {
			res.Err = wire.Reject(wire.ErrMalformed, "NBIRTH without bdSeq metric or seq")
			return res
		}
		n = h.node(key)
		*n = hostNode{born: true, bdSeq: bd, seq: p.GetSeq(), devices: map[string]*hostDevice{}}
		return res
	case NDeath:
		bd, ok := bdSeqOf(&p)
		if !ok {
			res.Err = wire.Reject(wire.ErrMalformed, "NDEATH without bdSeq metric")
			return res
		}
		// A will of an earlier connection, delivered late, ends nothing.
		if n != nil && n.born && n.bdSeq == bd {
			n.kill(fmt.Sprintf("NDEATH with bdSeq %d", bd))
		}
		return res
	}

	// Every other message is numbered and needs the node's birth.
	if n == nil || !n.born {
		n = h.node(key)
		res.Rebirth = h.ask(n, now)
		if t.Type == DData || t.Type == DBirth {
			res.Err = wire.Reject(wire.ErrNoBirth, "%s of %s/%s without the edge node's birth (%s)", t.Type, t.Node, t.Device, n.why)
		}
		return res
	}
	if want := (n.seq + 1) % 256; p.Seq == nil || p.GetSeq() != want {
		got := "none"
		if p.Seq != nil {
			got = fmt.Sprint(p.GetSeq())
		}
		n.kill(fmt.Sprintf("seq %s after %d", got, n.seq))
		res.Err = wire.Reject(wire.ErrSeqGap, "%s of %s/%s: seq %s after %d, want %d", t.Type, t.Node, t.Device, got, n.seq, want)
		res.Rebirth = h.ask(n, now)
		return res
	}
	n.seq = p.GetSeq()
	switch t.Type {
	case DBirth:
		d, err := learn(&p)
		if err != nil {
			// Asking again would bring the same birth back: refuse it and
			// let the device's data be refused until a good one comes.
			delete(n.devices, t.Device)
			res.Err = wire.Reject(wire.ErrMalformed, "DBIRTH of %s/%s: %v", t.Node, t.Device, err)
			return res
		}
		n.devices[t.Device] = d
	case DDeath:
		delete(n.devices, t.Device)
	case DData:
		d := n.devices[t.Device]
		if d == nil {
			res.Err = wire.Reject(wire.ErrNoBirth, "DDATA of %s/%s before its DBIRTH", t.Node, t.Device)
			res.Rebirth = h.ask(n, now)
			return res
		}
		res.Readings, res.Err = d.readings(t, &p)
		if wire.CodeOf(res.Err) == "unknown_alias" {
			res.Rebirth = h.ask(n, now)
		}
	}
	return res
}

// node returns key's node, making one (not born) if needed.
func (h *Host) node(key nodeKey) *hostNode {
	if n := h.nodes[key]; n != nil {
		return n
	}
	if len(h.nodes) >= h.opts.MaxNodes {
		for k := range h.nodes { // any one: it is asked for a rebirth when it next sends
			delete(h.nodes, k)
			break
		}
	}
	n := &hostNode{why: "no NBIRTH seen"}
	h.nodes[key] = n
	return n
}

// ask reports whether to request n's rebirth now.
func (h *Host) ask(n *hostNode, now time.Time) bool {
	if !n.askedAt.IsZero() && now.Sub(n.askedAt) < h.opts.RebirthInterval {
		return false
	}
	n.askedAt = now
	return true
}

func (n *hostNode) kill(why string) {
	n.born, n.why, n.devices = false, why, nil
}

func bdSeqOf(p *pb.Payload) (uint64, bool) {
	for _, m := range p.GetMetrics() {
		if m.GetName() == BDSeqMetric {
			return unsigned(m, pb.DataType(m.GetDatatype()))
		}
	}
	return 0, false
}

// learn reads a DBIRTH's metric definitions.
func learn(p *pb.Payload) (*hostDevice, error) {
	d := &hostDevice{byAlias: map[uint64]metricDef{}, byName: map[string]metricDef{}}
	for i, m := range p.GetMetrics() {
		if m.Name == nil || m.Datatype == nil {
			return nil, fmt.Errorf("metric %d has no name or datatype", i)
		}
		def := metricDef{name: m.GetName(), datatype: pb.DataType(m.GetDatatype())}
		if _, dup := d.byName[def.name]; dup {
			return nil, fmt.Errorf("metric %q defined twice", clip(def.name))
		}
		d.byName[def.name] = def
		if m.Alias != nil {
			if other, dup := d.byAlias[m.GetAlias()]; dup {
				return nil, fmt.Errorf("alias %d of both %q and %q", m.GetAlias(), clip(other.name), clip(def.name))
			}
			d.byAlias[m.GetAlias()] = def
		}
	}
	return d, nil
}

// readings groups a DDATA's metrics into readings by timestamp, in the
// order the timestamps first appear.
func (d *hostDevice) readings(t Topic, p *pb.Payload) ([]wire.Reading, error) {
	var out []wire.Reading
	hasSeq := map[int]bool{}
	at := map[uint64]int{} // timestamp → index in out
	for i, m := range p.GetMetrics() {
		var (
			def metricDef
			ok  bool
		)
		switch {
		case m.Alias != nil:
			def, ok = d.byAlias[m.GetAlias()]
		case m.Name != nil:
			def, ok = d.byName[m.GetName()]
		default:
			return nil, wire.Reject(wire.ErrMalformed, "DDATA metric %d has neither name nor alias", i)
		}
		if !ok {
			return nil, wire.Reject(wire.ErrAlias, "DDATA metric %d (alias %d, name %q) is not in the DBIRTH of %s/%s", i, m.GetAlias(), clip(m.GetName()), t.Node, t.Device)
		}
		ts := m.GetTimestamp()
		if m.Timestamp == nil {
			ts = p.GetTimestamp()
		}
		if m.Timestamp == nil && p.Timestamp == nil {
			return nil, wire.Reject(wire.ErrTimestamp, "DDATA metric %q has no timestamp, nor has the payload", clip(def.name))
		}
		k, seen := at[ts]
		if !seen {
			k = len(out)
			at[ts] = k
			out = append(out, wire.Reading{Site: t.Group, Asset: t.Device, Time: time.UnixMilli(int64(ts)).UTC(), Sensors: map[string]float64{}})
		}
		r := &out[k]
		if def.name == SeqMetric {
			v, ok := unsigned(m, def.datatype)
			if !ok || m.GetIsNull() {
				return nil, wire.Reject(wire.ErrSeq, "%s is null or not an unsigned integer", SeqMetric)
			}
			if hasSeq[k] {
				return nil, wire.Reject(wire.ErrMalformed, "two %s metrics at %d", SeqMetric, ts)
			}
			r.Seq, hasSeq[k] = v, true
			continue
		}
		if m.GetIsNull() {
			continue // no value: the sensor is absent from this reading
		}
		v, numeric, ok := number(m, def.datatype)
		if !numeric {
			continue // strings, data sets, ...: not sensors
		}
		if !ok {
			return nil, wire.Reject(wire.ErrValue, "metric %q of type %s holds no such value", clip(def.name), def.datatype)
		}
		if _, dup := r.Sensors[def.name]; dup {
			return nil, wire.Reject(wire.ErrMalformed, "metric %q twice at %d", clip(def.name), ts)
		}
		r.Sensors[def.name] = v
	}
	if len(out) == 0 {
		return nil, wire.Reject(wire.ErrSensors, "DDATA without metrics")
	}
	for k := range out {
		if !hasSeq[k] {
			return nil, wire.Reject(wire.ErrSeq, "reading at %s has no %s metric", out[k].Time.Format(wire.TimeLayout), SeqMetric)
		}
	}
	return out, nil
}

// unsigned reads an integer metric of datatype t that must not be
// negative.
func unsigned(m *pb.Payload_Metric, t pb.DataType) (uint64, bool) {
	switch v := m.GetValue().(type) {
	case *pb.Payload_Metric_LongValue:
		if (t == pb.DataType_Int64 || t == pb.DataType_DateTime) && int64(v.LongValue) < 0 {
			return 0, false
		}
		return v.LongValue, true
	case *pb.Payload_Metric_IntValue:
		if (t == pb.DataType_Int8 && int8(v.IntValue) < 0) ||
			(t == pb.DataType_Int16 && int16(v.IntValue) < 0) || (t == pb.DataType_Int32 && int32(v.IntValue) < 0) {
			return 0, false
		}
		return uint64(v.IntValue), true
	}
	return 0, false
}

// number reads a metric of datatype t as a sensor value: numeric says t
// is a type a sensor can have, ok that the metric holds a value of it.
func number(m *pb.Payload_Metric, t pb.DataType) (v float64, numeric, ok bool) {
	switch t {
	case pb.DataType_Int8, pb.DataType_Int16, pb.DataType_Int32, pb.DataType_UInt8, pb.DataType_UInt16, pb.DataType_UInt32:
		x, ok := m.GetValue().(*pb.Payload_Metric_IntValue)
		if !ok {
			return 0, true, false
		}
		switch t {
		case pb.DataType_Int8:
			return float64(int8(x.IntValue)), true, true
		case pb.DataType_Int16:
			return float64(int16(x.IntValue)), true, true
		case pb.DataType_Int32:
			return float64(int32(x.IntValue)), true, true
		}
		return float64(x.IntValue), true, true
	case pb.DataType_Int64, pb.DataType_UInt64:
		x, ok := m.GetValue().(*pb.Payload_Metric_LongValue)
		if !ok {
			return 0, true, false
		}
		if t == pb.DataType_Int64 {
			return float64(int64(x.LongValue)), true, true
		}
		return float64(x.LongValue), true, true
	case pb.DataType_Float:
		x, ok := m.GetValue().(*pb.Payload_Metric_FloatValue)
		if !ok {
			return 0, true, false
		}
		return float64(x.FloatValue), true, true
	case pb.DataType_Double:
		x, ok := m.GetValue().(*pb.Payload_Metric_DoubleValue)
		if !ok {
			return 0, true, false
		}
		return x.DoubleValue, true, true
	case pb.DataType_Boolean:
		x, ok := m.GetValue().(*pb.Payload_Metric_BooleanValue)
		if !ok {
			return 0, true, false
		}
		if x.BooleanValue {
			return 1, true, true
		}
		return 0, true, true
	}
	return math.NaN(), false, false
}
