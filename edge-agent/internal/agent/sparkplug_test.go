package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/protobuf/proto"

	"github.com/pdmstream/pdm/edge-agent/internal/config"
	pb "github.com/pdmstream/pdm/pdmkit/sparkplug/sparkplugpb"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
)

// spMessage is one Sparkplug message as a host received it.
type spMessage struct {
	kind, device string
	p            *pb.Payload
}

// spHost records every Sparkplug message of a group, in arrival order.
type spHost struct {
	mu   sync.Mutex
	msgs []spMessage
	c    mqtt.Client
}

func subscribeSparkplug(t *testing.T, group string) *spHost {
	t.Helper()
	h := &spHost{}
	h.c = mqtt.NewClient(stacktest.MQTTOptions(t).SetClientID(stacktest.Unique("sphost")).SetCleanSession(true))
	if tok := h.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("host connect: %v", tok.Error())
	}
	t.Cleanup(func() { h.c.Disconnect(100) })
	tok := h.c.Subscribe("spBv1.0/"+group+"/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		parts := strings.Split(m.Topic(), "/")
		var p pb.Payload
		if proto.Unmarshal(m.Payload(), &p) != nil || len(parts) < 4 {
			p.Uuid = proto.String("undecodable")
		}
		msg := spMessage{kind: parts[2], p: &p}
		if len(parts) == 5 {
			msg.device = parts[4]
		}
		h.mu.Lock()
		h.msgs = append(h.msgs, msg)
		h.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("host subscribe: %v", tok.Error())
	}
	return h
}

func (h *spHost) count(kind string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.msgs {
		if m.kind == kind {
			n++
		}
	}
	return n
}

func (h *spHost) all() []spMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.msgs)
}

// cutProxy forwards TCP connections to target and can sever them all, as a
// dropped link would: the broker sees the connection end without a
// DISCONNECT and publishes the last will.
type cutProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func bdSeq(p *pb.Payload) (uint64, bool) {
	for _, m := range p.GetMetrics() {
		if m.GetName() == "bdSeq" {
			return m.GetLongValue(), true
		}
	}
	return 0, false
}

// TestSparkplugEdgeNode runs the agent with mqtt.payload sparkplug and
// checks what a Sparkplug host application sees against the
// specification: NBIRTH (seq 0, bdSeq, the rebirth control) on every
// connection, each device's DBIRTH (names, aliases, datatypes) before its
// DDATA, DDATA by alias only, seq numbers without a gap, the NDEATH will
// with the bdSeq of its connection when the link drops, births again on
// an NCMD rebirth, DDEATHs and the NDEATH on a clean stop; and every
// reading of every asset arrives.
func TestSparkplugEdgeNode(t *testing.T) {
	site := stacktest.Unique("spb")
	host := subscribeSparkplug(t, site)
	cfg := stackConfig(t, site)
	broker, err := url.Parse(cfg.MQTT.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, broker.Host)
	broker.Host = proxy.ln.Addr().String()
	cfg.MQTT.URL = broker.String()
	cfg.MQTT.Payload = config.PayloadSparkplug
	cfg.Assets = "pump-1=pump,motor-1=motor"
	const n = 100
	cfg.Rate, cfg.Batch, cfg.Limit = 25, 2, n
	_, done := start(t, context.Background(), cfg)

	stacktest.Eventually(t, 10*time.Second, func() bool { return host.count("DDATA") >= 4 }, "no DDATA")
	proxy.cut()
	stacktest.Eventually(t, 10*time.Second, func() bool { return host.count("NDEATH") >= 1 && host.count("NBIRTH") >= 2 },
		"after the cut: %d NDEATH, %d NBIRTH", host.count("NDEATH"), host.count("NBIRTH"))
	stacktest.Eventually(t, 10*time.Second, func() bool { return host.count("DBIRTH") >= 4 }, "devices not born again after the reconnect")
	rebirth, _ := proto.Marshal(&pb.Payload{Timestamp: proto.Uint64(uint64(time.Now().UnixMilli())), Metrics: []*pb.Payload_Metric{{
		Name: proto.String("Node Control/Rebirth"), Datatype: proto.Uint32(uint32(pb.DataType_Boolean)), Value: &pb.Payload_Metric_BooleanValue{BooleanValue: true}}}})
	if tok := host.c.Publish("spBv1.0/"+site+"/NCMD/"+cfg.AgentID, 1, false, rebirth); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	stacktest.Eventually(t, 10*time.Second, func() bool { return host.count("NBIRTH") >= 3 }, "no NBIRTH after the rebirth request")
	waitDone(t, done, 30*time.Second)
	stacktest.Eventually(t, 10*time.Second, func() bool { return host.count("NDEATH") >= 2 }, "no NDEATH on the clean stop")

	var (
		born             bool
		seq, bd          uint64
		nbirths, ndeaths []uint64
		devices          map[string]map[uint64]string // this connection's births: alias → name
		got              = map[string]map[uint64]bool{"pump-1": {}, "motor-1": {}}
		lastKinds        []string
	)
	for i, m := range host.all() {
		where := fmt.Sprintf("message %d (%s %s)", i, m.kind, m.device)
		if m.p.GetUuid() == "undecodable" {
			t.Fatalf("%s: not a Sparkplug B payload", where)
		}
		lastKinds = append(lastKinds, m.kind+" "+m.device)
		switch m.kind {
		case "NCMD":
			continue
		case "NBIRTH":
			b, ok := bdSeq(m.p)
			if !ok || m.p.Seq == nil || m.p.GetSeq() != 0 {
				t.Fatalf("%s: NBIRTH needs bdSeq and seq 0: %v", where, m.p)
			}
			hasRebirth := false
			for _, mt := range m.p.GetMetrics() {
				hasRebirth = hasRebirth || (mt.GetName() == "Node Control/Rebirth" && mt.GetDatatype() == uint32(pb.DataType_Boolean))
			}
			if !hasRebirth {
				t.Fatalf("%s: NBIRTH without the Node Control/Rebirth metric", where)
			}
			born, seq, bd, devices = true, 0, b, map[string]map[uint64]string{}
			nbirths = append(nbirths, b)
			continue
		case "NDEATH":
			b, ok := bdSeq(m.p)
			if !ok {
				t.Fatalf("%s: NDEATH without bdSeq", where)
			}
			ndeaths = append(ndeaths, b)
			if b == bd {
				born = false
			}
			continue
		}
		if !born {
			t.Fatalf("%s before its edge node's NBIRTH", where)
		}
		if m.p.Seq == nil || m.p.GetSeq() != (seq+1)%256 {
			t.Fatalf("%s: seq %d after %d", where, m.p.GetSeq(), seq)
		}
		seq = m.p.GetSeq()
		switch m.kind {
		case "DBIRTH":
			aliases := map[uint64]string{}
			for _, mt := range m.p.GetMetrics() {
				if mt.Name == nil || mt.Alias == nil || mt.Datatype == nil {
					t.Fatalf("%s: metric %v lacks a name, alias or datatype", where, mt)
				}
				if _, dup := aliases[mt.GetAlias()]; dup {
					t.Fatalf("%s: alias %d twice", where, mt.GetAlias())
				}
				aliases[mt.GetAlias()] = mt.GetName()
			}
			hasSeq := false
			for _, name := range aliases {
				hasSeq = hasSeq || name == "pdm/seq"
			}
			if !hasSeq {
				t.Fatalf("%s: no pdm/seq metric", where)
			}
			devices[m.device] = aliases
		case "DDATA":
			aliases, ok := devices[m.device]
			if !ok {
				t.Fatalf("%s before the device's DBIRTH on this connection", where)
			}
			seqAt := map[uint64]uint64{}
			sensorsAt := map[uint64]int{}
			for _, mt := range m.p.GetMetrics() {
				name, ok := aliases[mt.GetAlias()]
				if mt.Name != nil || mt.Alias == nil || !ok {
					t.Fatalf("%s: metric %v is not by a born alias only", where, mt)
				}
				if name == "pdm/seq" {
					seqAt[mt.GetTimestamp()] = mt.GetLongValue()
				} else {
					sensorsAt[mt.GetTimestamp()]++
				}
			}
			for ts, s := range seqAt {
				if sensorsAt[ts] == 0 {
					t.Fatalf("%s: reading %d without sensors", where, s)
				}
				got[m.device][s] = true
			}
		case "DDEATH":
			delete(devices, m.device)
		default:
			t.Fatalf("%s: unexpected message type", where)
		}
	}
	for asset, seqs := range got {
		for s := uint64(1); s <= n; s++ {
			if !seqs[s] {
				t.Errorf("%s: reading %d never arrived", asset, s)
			}
		}
	}
	if len(nbirths) != 3 || nbirths[1] <= nbirths[0] || nbirths[2] != nbirths[1] {
		t.Errorf("NBIRTH bdSeqs %v: want a new one on the reconnect and the same on the rebirth", nbirths)
	}
	if len(ndeaths) != 2 || ndeaths[0] != nbirths[0] || ndeaths[1] != nbirths[2] {
		t.Errorf("NDEATH bdSeqs %v, want the will of the first connection (%d) and the clean stop's (%d)", ndeaths, nbirths[0], nbirths[len(nbirths)-1])
	}
	tail := lastKinds[len(lastKinds)-3:]
	slices.Sort(tail[:2])
	if strings.Join(tail, ",") != "DDEATH motor-1,DDEATH pump-1,NDEATH " {
		t.Errorf("clean stop ended with %v, want the DDEATHs then the NDEATH", tail)
	}
}
