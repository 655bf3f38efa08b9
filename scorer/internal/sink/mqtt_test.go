package sink

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/pdmstream/pdm/scorer/internal/stream"
)

// TestMQTTDoesNotHoldBackScoring: with the floor broker killed, Write
// returns at once and keeps the newest alert state of each asset; once the
// broker is back those states are published, retained, and nothing is
// pending.
func TestMQTTDoesNotHoldBackScoring(t *testing.T) {
	broker := stacktest.StartMosquitto(t)
	m := NewMQTT(MQTTConn{URL: broker.URL(), ClientID: stacktest.Unique("scorer")}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.Connect()
	defer m.Close(context.Background())
	stacktest.Eventually(t, 10*time.Second, func() bool { return m.Ready(context.Background()) == nil }, "not connected")

	broker.Kill()
	state := func(asset string, rev int) alert.Alert {
		return alert.Alert{ID: asset + "-1", Site: "s", Asset: asset, Kind: alert.KindAnomaly, Revision: rev, State: alert.Opened}
	}
	start := time.Now()
	for _, b := range []stream.Batch{{Alerts: []alert.Alert{state("a1", 1), state("a2", 1)}}, {Alerts: []alert.Alert{state("a1", 2)}}} {
		if err := m.Write(context.Background(), &b); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Write took %v with the broker down", took)
	}
	if n := m.Pending(); n != 2 {
		t.Fatalf("%d assets pending, want 2 (the newest state of each)", n)
	}

	broker.Restart()
	stacktest.Eventually(t, 30*time.Second, func() bool { return m.Pending() == 0 }, "pending states not published after the broker came back")
	got := make(chan alert.Alert, 4)
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL()).SetClientID(stacktest.Unique("reader")))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(100)
	c.Subscribe(wire.AlertsTopic("s", "+"), 1, func(_ mqtt.Client, msg mqtt.Message) {
		var a alert.Alert
		if json.Unmarshal(msg.Payload(), &a) == nil {
			got <- a
		}
	})
	revs := map[string]int{}
	for len(revs) < 2 {
		select {
		case a := <-got:
			revs[a.Asset] = a.Revision
		case <-time.After(5 * time.Second):
			t.Fatalf("retained states after the outage: %v", revs)
		}
	}
	if revs["a1"] != 2 || revs["a2"] != 1 {
		t.Fatalf("retained revisions %v, want a1 2 and a2 1", revs)
	}
}

// TestMQTTGatewayStatus: the retained statuses of gateways on the shared
// broker reach OnStatus with their site and agent, on connect (retained)
// and as they change (a last will).
func TestMQTTGatewayStatus(t *testing.T) {
	site := stacktest.Unique("status")
	type got struct {
		agent   string
		payload string
	}
	ch := make(chan got, 16)
	stack := stacktest.MQTTOptions(t)
	pub := mqtt.NewClient(stacktest.MQTTOptions(t).SetClientID(stacktest.Unique("gw")))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	t.Cleanup(func() { pub.Disconnect(100) }) // after the clear below: cleanups run last first
	publish := func(agent, payload string) {
		t.Helper()
		if tok := pub.Publish(wire.StatusTopic(site, agent), 1, true, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	t.Cleanup(func() { publish("gw-1", "") }) // clear the retained status
	publish("gw-1", `{"agent":"gw-1","status":"online","assets":["p1"]}`)

	m := NewMQTT(MQTTConn{URL: stack.Servers[0].String(), ClientID: stacktest.Unique("scorer"),
		Username: stack.Username, Password: stack.Password, TLS: stack.TLSConfig}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.OnStatus(func(s, agent string, payload []byte) {
		if s == site {
			ch <- got{agent, string(payload)}
		}
	})
	m.Connect()
	defer m.Close(context.Background())
	next := func() got {
		t.Helper()
		select {
		case g := <-ch:
			return g
		case <-time.After(10 * time.Second):
			t.Fatal("no status within 10s")
		}
		return got{}
	}
	if g := next(); g.agent != "gw-1" || !strings.Contains(g.payload, `"online"`) {
		t.Fatalf("retained status %+v", g)
	}
	publish("gw-1", `{"agent":"gw-1","status":"offline","assets":["p1"]}`)
	if g := next(); g.agent != "gw-1" || !strings.Contains(g.payload, `"offline"`) {
		t.Fatalf("changed status %+v", g)
	}
}

// TestMQTTSecuredBroker: as the scorer user over TLS (the secured stack's
// broker and ACL) the output reads a gateway's status and publishes alert
// states that a reader receives.
func TestMQTTSecuredBroker(t *testing.T) {
	broker := stacktest.StartSecureMosquitto(t)
	gw := mqtt.NewClient(broker.ClientOptions("gw-plant1"))
	if tok := gw.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer gw.Disconnect(100)
	if tok := gw.Publish(wire.StatusTopic("plant1", "gw"), 1, true, "online"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	statuses := make(chan string, 4)
	m := NewMQTT(MQTTConn{URL: broker.URL(), ClientID: stacktest.Unique("scorer"),
		Username: "scorer", Password: broker.Password("scorer"), TLS: broker.TLS()}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.OnStatus(func(site, agent string, payload []byte) { statuses <- site + "/" + agent + " " + string(payload) })
	m.Connect()
	defer m.Close(context.Background())
	stacktest.Eventually(t, 10*time.Second, func() bool { return m.Ready(context.Background()) == nil }, "not connected")
	select {
	case s := <-statuses:
		if s != "plant1/gw online" {
			t.Fatalf("status %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no gateway status through the secured broker")
	}

	got := make(chan string, 4)
	reader := mqtt.NewClient(broker.ClientOptions("bridge"))
	if tok := reader.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer reader.Disconnect(100)
	if tok := reader.Subscribe(wire.AlertsTopic("plant1", "+"), 1, func(_ mqtt.Client, msg mqtt.Message) { got <- msg.Topic() }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	b := stream.Batch{Alerts: []alert.Alert{{ID: "p1-1", Site: "plant1", Asset: "p1", Kind: alert.KindAnomaly, Revision: 1, State: alert.Opened}}}
	if err := m.Write(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	select {
	case topic := <-got:
		if topic != wire.AlertsTopic("plant1", "p1") {
			t.Fatalf("alert on %s", topic)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the scorer's alert state did not arrive through the secured broker")
	}
}
