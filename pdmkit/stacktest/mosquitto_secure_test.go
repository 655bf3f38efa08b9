package stacktest

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// secureClient connects to m as user with password over TLS, trusting the
// broker's CA through the tls block every service uses.
func secureClient(t *testing.T, m *Mosquitto, url, user, password string) (mqtt.Client, error) {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID(Unique(user)).
		SetUsername(user).SetPassword(password).SetTLSConfig(m.TLS()).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false)
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("connect %s: timed out", user)
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

func mustSecureClient(t *testing.T, m *Mosquitto, user string) mqtt.Client {
	t.Helper()
	c, err := secureClient(t, m, m.URL(), user, m.Password(user))
	if err != nil {
		t.Fatalf("connect %s: %v", user, err)
	}
	return c
}

// subscribe returns a channel of "topic payload" for every message filter
// delivers, and the SUBACK code (0x80: refused).
func subscribe(t *testing.T, c mqtt.Client, filter string) (<-chan string, byte) {
	t.Helper()
	got := make(chan string, 100)
	tok := c.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) { got <- m.Topic() + " " + string(m.Payload()) })
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	// paho files a shared subscription's code under the filter without
	// $share/<group>/.
	key := filter
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		_, key, _ = strings.Cut(rest, "/")
	}
	return got, tok.(*mqtt.SubscribeToken).Result()[key]
}

func publish(t *testing.T, c mqtt.Client, topic, payload string) {
	t.Helper()
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// drain returns what arrives on got within d.
func drain(got <-chan string, d time.Duration) []string {
	var out []string
	deadline := time.After(d)
	for {
		select {
		case m := <-got:
			out = append(out, m)
		case <-deadline:
			return out
		}
	}
}

// TestSecureMosquittoRefusesStrangers: the secured broker takes no
// anonymous client, no wrong password and no plain TCP, and says why.
func TestSecureMosquittoRefusesStrangers(t *testing.T) {
	m := StartSecureMosquitto(t)
	if _, err := secureClient(t, m, m.URL(), "", ""); err == nil {
		t.Error("anonymous client connected")
	} else if !strings.Contains(err.Error(), "not Authorized") {
		t.Errorf("anonymous client: %v, want not Authorized", err)
	}
	_, err := secureClient(t, m, m.URL(), "gw-plant1", "wrong")
	if err == nil {
		t.Fatal("wrong password connected")
	}
	if !strings.Contains(err.Error(), "not Authorized") && !strings.Contains(err.Error(), "bad user name or password") {
		t.Errorf("wrong password: %v, want a refusal naming the credentials", err)
	}
	t.Logf("wrong password: %v", err)
	plain := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + m.addr).SetClientID(Unique("plain")).
		SetUsername("gw-plant1").SetPassword(m.Password("gw-plant1")).SetConnectTimeout(3 * time.Second))
	if tok := plain.Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
		plain.Disconnect(0)
		t.Error("plain TCP client connected to the TLS listener")
	}
	// A client that does not trust the local CA refuses the broker.
	o := mqtt.NewClientOptions().AddBroker(m.URL()).SetClientID(Unique("untrusting")).
		SetUsername("gw-plant1").SetPassword(m.Password("gw-plant1")).SetTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12}).
		SetConnectTimeout(3 * time.Second)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() == nil {
		c.Disconnect(0)
		t.Error("client without the local CA connected")
	} else if !strings.Contains(tok.Error().Error(), "certificate") {
		t.Errorf("client without the local CA: %v, want a certificate error", tok.Error())
	}
}

// TestSecureMosquittoACL: a gateway publishes and reads only under its own
// site; the bridge reads every site (also through its shared subscription);
// the scorer reads statuses and writes alerts.
func TestSecureMosquittoACL(t *testing.T) {
	m := StartSecureMosquitto(t)
	bridge := mustSecureClient(t, m, "bridge")
	all, code := subscribe(t, bridge, "pdm/v1/#")
	if code != 1 {
		t.Fatalf("bridge subscribe pdm/v1/#: SUBACK %#x, want granted QoS 1", code)
	}
	// A second bridge client: paho would route each message to both of one
	// client's matching subscriptions.
	shared, code := subscribe(t, mustSecureClient(t, m, "bridge"), "$share/ingest/pdm/v1/+/+/readings")
	if code != 1 {
		t.Fatalf("bridge shared subscription: SUBACK %#x, want granted QoS 1", code)
	}
	a := mustSecureClient(t, m, "gw-plant1")
	b := mustSecureClient(t, m, "gw-plant2")
	fromB, code := subscribe(t, a, "pdm/v1/plant2/#")
	t.Logf("gw-plant1 subscribing to plant2: SUBACK %#x", code)

	publish(t, a, "pdm/v1/plant1/pump-1/readings", "own")
	publish(t, a, "pdm/v1/plant2/pump-9/readings", "forged") // acknowledged, dropped
	publish(t, b, "pdm/v1/plant2/pump-9/readings", "b's own")

	got := drain(all, 2*time.Second)
	want := []string{"pdm/v1/plant1/pump-1/readings own", "pdm/v1/plant2/pump-9/readings b's own"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("bridge read %q, want %q (a forged publish must never arrive)", got, want)
	}
	if got := drain(shared, 500*time.Millisecond); len(got) != 2 {
		t.Errorf("bridge's shared subscription read %q, want both sites' readings", got)
	}
	if got := drain(fromB, 500*time.Millisecond); len(got) != 0 {
		t.Errorf("gw-plant1 read plant2's messages: %q", got)
	}

	scorer := mustSecureClient(t, m, "scorer")
	status, code := subscribe(t, scorer, "pdm/v1/+/+/status")
	if code != 1 {
		t.Fatalf("scorer subscribe statuses: SUBACK %#x", code)
	}
	publish(t, a, "pdm/v1/plant1/gw/status", "online")
	if got := drain(status, time.Second); len(got) != 1 {
		t.Errorf("scorer read statuses %q, want plant1's", got)
	}
	publish(t, scorer, "pdm/v1/plant2/pump-9/alerts", "alert")
	publish(t, scorer, "pdm/v1/plant2/pump-9/readings", "forged by scorer")
	if got := drain(all, 2*time.Second); strings.Join(got, "|") != "pdm/v1/plant1/gw/status online|pdm/v1/plant2/pump-9/alerts alert" {
		t.Errorf("after the scorer's publishes the bridge read %q, want the status and the alert only", got)
	}
}
