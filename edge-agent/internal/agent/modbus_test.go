package agent

import (
	"context"
	"math"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pdmstream/pdm/edge-agent/internal/modbus"
	"github.com/pdmstream/pdm/edge-agent/internal/modbustest"
	"github.com/pdmstream/pdm/edge-agent/internal/mqtttest"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
)

// metricSum adds up the series name{labels...} in reg (labels not given
// match any value); -1 if there is none.
func metricSum(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum, found := 0.0, false
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue series
				}
			}
			found = true
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			} else {
				sum += m.GetGauge().GetValue()
			}
		}
	}
	if !found {
		return -1
	}
	return sum
}

// A Modbus device polled by the agent publishes through the spool and the
// shared Mosquitto like any source: a separate subscriber gets seq 1..n in
// order with the decoded values, one of which counts the device's reads.
// A second device that does not answer publishes nothing, and its missed
// polls are counted by the agent.
func TestModbusToStack(t *testing.T) {
	srv := modbustest.Start(t)
	// holding 0 counts the reads of it: poll k reads k.
	var reads atomic.Uint32
	srv.OnRequest(func(r modbustest.Request) (time.Duration, error) {
		if r.Table == "holding" && r.Addr == 0 {
			srv.SetRegisters(1, "holding", 0, uint16(reads.Add(1)))
		}
		return 0, nil
	})
	srv.SetRegisters(1, "holding", 1, uint16(0xff85)) // int16 -123
	srv.SetRegisters(1, "holding", 2, modbustest.Float32(3.75)...)
	srv.SetRegisters(2, "input", 10, 0x0000, 0x4170) // float32 15.0, low word first
	srv.SetBits(1, "coil", 0, true)

	ln, err := net.Listen("tcp", "127.0.0.1:0") // a port nobody serves
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	ln.Close()

	site := stacktest.Unique("modbus")
	sub := mqtttest.Subscribe(t, stacktest.MQTTOptions(t), site)
	cfg := stackConfig(t, site)
	cfg.Assets = ""
	cfg.Modbus.Devices = []modbus.Device{
		{Asset: "plc-1", Address: srv.Addr(), Groups: []modbus.Group{{Interval: 50 * time.Millisecond, Tags: []modbus.Tag{
			{Sensor: "polls", Address: 0},
			{Sensor: "temp", Address: 1, Type: "int16", Scale: 0.1},
			{Sensor: "flow", Address: 2, Type: "float32"},
			{Sensor: "ambient", Table: "input", Address: 10, Type: "float32", WordOrder: "little", UnitID: ptr(uint8(2))},
			{Sensor: "running", Table: "coil", Address: 0},
		}}}},
		{Asset: "plc-down", Address: deadAddr, ReconnectMax: 200 * time.Millisecond, Groups: []modbus.Group{{Interval: 50 * time.Millisecond,
			Tags: []modbus.Tag{{Sensor: "x"}}}}},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, done := start(t, ctx, cfg)
	if ids := a.AssetIDs(); len(ids) != 2 || ids[0] != "plc-1" || ids[1] != "plc-down" {
		t.Fatalf("asset ids %v", ids)
	}
	const n = 20
	stacktest.Eventually(t, 15*time.Second, func() bool { return sub.Distinct()["plc-1"] >= n },
		"subscriber has %v, want %d of plc-1", sub.Distinct(), n)
	cancel()
	waitDone(t, done, 10*time.Second)

	first, _ := sub.FirstArrivals()
	got := first["plc-1"]
	for i, g := range got[:n] {
		if g.Seq != uint64(i+1) {
			t.Fatalf("reading %d has seq %d", i, g.Seq)
		}
		want := map[string]float64{"polls": float64(i + 1), "temp": -12.3, "flow": 3.75, "ambient": 15, "running": 1}
		for k, w := range want {
			if v, ok := g.Sensors[k]; !ok || math.Abs(v-w) > 1e-9 {
				t.Fatalf("seq %d: %s = %v (present %v), want %v; reading %v", g.Seq, k, v, ok, w, g.Sensors)
			}
		}
		if len(g.Sensors) != len(want) {
			t.Fatalf("seq %d: sensors %v", g.Seq, g.Sensors)
		}
	}
	if len(first["plc-down"]) != 0 {
		t.Errorf("%d readings from the device that does not answer", len(first["plc-down"]))
	}
	if sub.Invalid() > 0 {
		t.Errorf("%d invalid readings arrived", sub.Invalid())
	}
	missed := testutil.ToFloat64(a.m.missed.WithLabelValues("plc-down"))
	byReason := metricSum(t, a.Registry(), "pdm_edge_modbus_polls_missed_total", map[string]string{"asset": "plc-down"})
	connects := metricSum(t, a.Registry(), "pdm_edge_modbus_polls_missed_total", map[string]string{"asset": "plc-down", "reason": "connect"})
	if missed < 10 || missed != byReason || connects < 1 || connects >= missed {
		t.Errorf("plc-down: %v cycles missed (agent), %v by reason (modbus), %v of them connect attempts; want the same, at least 10, fewer attempts than polls", missed, byReason, connects)
	}
	// On a loaded machine a 50 ms poll can start a whole interval late and
	// is then missed as "late"; any other miss on loopback is a fault.
	missed1 := testutil.ToFloat64(a.m.missed.WithLabelValues("plc-1"))
	late1 := metricSum(t, a.Registry(), "pdm_edge_modbus_polls_missed_total", map[string]string{"asset": "plc-1", "reason": "late"})
	if missed1 != late1 {
		t.Errorf("plc-1 missed %v polls on loopback, %v of them late", missed1, late1)
	}
	requests := metricSum(t, a.Registry(), "pdm_edge_modbus_requests_total", map[string]string{"asset": "plc-1"})
	if served := len(srv.Requests()); requests != float64(served) || served < 3*n {
		t.Errorf("pdm_edge_modbus_requests_total %v, server answered %d (3 reads per poll, %d+ polls)", requests, served, n)
	}
}

func ptr[T any](v T) *T { return &v }
