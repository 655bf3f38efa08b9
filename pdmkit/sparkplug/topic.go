package sparkplug

import (
	"fmt"
	"strings"
)

// Namespace is the first topic level of Sparkplug B.
const Namespace = "spBv1.0"

// Type is a Sparkplug message type, the topic's third level.
type Type string

// The message types this package handles (STATE, NDATA's and DCMD's
// contents are not used by the pipeline).
const (
	NBirth Type = "NBIRTH"
	NDeath Type = "NDEATH"
	NData  Type = "NDATA"
	NCmd   Type = "NCMD"
	DBirth Type = "DBIRTH"
	DDeath Type = "DDEATH"
	DData  Type = "DDATA"
	DCmd   Type = "DCMD"
)

// Metric names with a meaning in the specification, and ours.
const (
	// BDSeqMetric is the birth/death sequence number of NBIRTH and NDEATH.
	BDSeqMetric = "bdSeq"
	// RebirthMetric, set true in an NCMD, asks an edge node for its births.
	RebirthMetric = "Node Control/Rebirth"
	// SeqMetric carries a reading's per-asset sequence number.
	SeqMetric = "pdm/seq"
)

// Topic is a parsed Sparkplug topic; Device is empty for node messages.
type Topic struct {
	Group  string
	Type   Type
	Node   string
	Device string
}

func (t Topic) String() string {
	s := Namespace + "/" + t.Group + "/" + string(t.Type) + "/" + t.Node
	if t.Device != "" {
		s += "/" + t.Device
	}
	return s
}

// deviceType reports whether messages of type t name a device.
func deviceType(t Type) bool { return t == DBirth || t == DDeath || t == DData || t == DCmd }

// ParseTopic splits spBv1.0/{group}/{type}/{node}[/{device}]. Device
// messages must name a device, node messages must not.
func ParseTopic(topic string) (Topic, error) {
	parts := strings.Split(topic, "/")
	if len(parts) < 4 || len(parts) > 5 || parts[0] != Namespace {
		return Topic{}, fmt.Errorf("%q is not %s/{group}/{type}/{edge node}[/{device}]", clip(topic), Namespace)
	}
	t := Topic{Group: parts[1], Type: Type(parts[2]), Node: parts[3]}
	if len(parts) == 5 {
		t.Device = parts[4]
	}
	switch t.Type {
	case NBirth, NDeath, NData, NCmd, DBirth, DDeath, DData, DCmd:
	default:
		return Topic{}, fmt.Errorf("%q: unknown message type %q", clip(topic), clip(parts[2]))
	}
	if deviceType(t.Type) != (t.Device != "") {
		return Topic{}, fmt.Errorf("%q: %s with %d topic levels", clip(topic), t.Type, len(parts))
	}
	for _, p := range parts[1:] {
		if p == "" || strings.ContainsAny(p, "+#") {
			return Topic{}, fmt.Errorf("%q: empty or wildcard topic level", clip(topic))
		}
	}
	return t, nil
}

// HostFilters are the subscriptions of a host application that takes the
// node and device lifecycle and data of group ("+" for every group).
func HostFilters(group string) []string {
	p := Namespace + "/" + group + "/"
	return []string{
		p + string(NBirth) + "/+", p + string(NDeath) + "/+", p + string(NData) + "/+",
		p + string(DBirth) + "/+/+", p + string(DDeath) + "/+/+", p + string(DData) + "/+/+",
	}
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
