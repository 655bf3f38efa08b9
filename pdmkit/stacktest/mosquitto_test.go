package stacktest

import (
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// TestStackMosquittoSavesWithinSeconds: with the stack's configuration a
// broker killed (SIGKILL, no shutdown save) a few seconds after a change
// comes back with it: the newest retained status (not an older last will)
// and a persistent session's subscription with the message queued for it
// while it was away. Mosquitto 2.0 does not restore shared subscriptions
// ($share/...) from its store at all, which is why this is checked with a
// plain one (docs/architecture.md).
func TestStackMosquittoSavesWithinSeconds(t *testing.T) {
	m := StartMosquitto(t)
	connect := func(id string, clean bool) mqtt.Client {
		t.Helper()
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.URL()).SetClientID(id).SetCleanSession(clean))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect %s: %v", id, tok.Error())
		}
		return c
	}
	got := make(chan string, 10)
	away := connect("away", false)
	if tok := away.Subscribe("pdm/v1/s/+/readings", 1, func(_ mqtt.Client, msg mqtt.Message) { got <- string(msg.Payload()) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	away.Disconnect(100)
	pub := connect("pub", true)
	for _, status := range []string{"offline", "online"} {
		if tok := pub.Publish("pdm/v1/s/gw/status", 1, true, status); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	if tok := pub.Publish("pdm/v1/s/a/readings", 1, false, "queued"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	pub.Disconnect(100)
	time.Sleep(3 * time.Second) // the stack saves every second
	m.Kill()
	m.Restart()

	status := make(chan string, 1)
	c := connect("reader", true)
	defer c.Disconnect(100)
	c.Subscribe("pdm/v1/s/gw/status", 1, func(_ mqtt.Client, msg mqtt.Message) { status <- string(msg.Payload()) })
	select {
	case s := <-status:
		if s != "online" {
			t.Fatalf("retained status after the crash %q, want the newest, online", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the retained status did not survive the crash")
	}
	away = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.URL()).SetClientID("away").SetCleanSession(false).
		SetDefaultPublishHandler(func(_ mqtt.Client, msg mqtt.Message) { got <- string(msg.Payload()) }))
	if tok := away.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer away.Disconnect(100)
	select {
	case p := <-got:
		if p != "queued" {
			t.Fatalf("session got %q, want the queued message", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the persistent session or its queued message did not survive the crash")
	}
}
