package agent

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pdmstream/pdm/edge-agent/internal/mqtttest"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// testBridge stands in for the ingest bridge's side of confirmed delivery:
// a persistent session subscribed to a site's readings that confirms each
// message's highest seq once it has recorded it, and says so on
// wire.IngestJoinedTopic when it has subscribed.
type testBridge struct {
	t      *testing.T
	url    string
	site   string
	client mqtt.Client

	mu       sync.Mutex
	seen     map[string]map[uint64]bool // asset → seqs
	received map[string]int             // asset → readings received, duplicates included
}

func newTestBridge(t *testing.T, url, site string) *testBridge {
	tb := &testBridge{t: t, url: url, site: site, seen: map[string]map[uint64]bool{}, received: map[string]int{}}
	tb.join()
	t.Cleanup(tb.leave)
	return tb
}

func (tb *testBridge) join() {
	tb.t.Helper()
	handler := func(c mqtt.Client, m mqtt.Message) {
		items, err := wire.DefaultLimits().Decode(m.Payload(), time.Now())
		if err != nil {
			tb.t.Errorf("invalid message: %v", err)
			return
		}
		var top uint64
		tb.mu.Lock()
		for _, it := range items {
			r := it.Reading
			if tb.seen[r.Asset] == nil {
				tb.seen[r.Asset] = map[uint64]bool{}
			}
			tb.seen[r.Asset][r.Seq] = true
			tb.received[r.Asset]++
			top = max(top, r.Seq)
		}
		tb.mu.Unlock()
		b, _ := json.Marshal(wire.Delivered{Seq: top})
		c.Publish(wire.DeliveredTopic(tb.site, items[0].Reading.Asset), 0, false, b)
	}
	filter := wire.TopicRoot + "/" + tb.site + "/+/readings"
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(tb.url).SetClientID("bridge-" + tb.site).
		SetCleanSession(false).SetDefaultPublishHandler(handler))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.t.Fatalf("test bridge connect: %v", tok.Error())
	}
	if tok := c.Subscribe(filter, 1, handler); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.t.Fatalf("test bridge subscribe: %v", tok.Error())
	}
	c.Publish(wire.IngestJoinedTopic, 1, false, []byte(`{"bridge":"test"}`))
	tb.client = c
}

func (tb *testBridge) leave() {
	if tb.client != nil {
		tb.client.Disconnect(100)
		tb.client = nil
	}
}

func (tb *testBridge) distinct(asset string) int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return len(tb.seen[asset])
}

func (tb *testBridge) duplicates(asset string) int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.received[asset] - len(tb.seen[asset])
}

// Bridges of other sites subscribing on the same broker say so on the
// same topic; their IngestJoined names their filter, and an agent none of
// whose readings it matches sends nothing again — before, every such
// message made it resend its readings in flight (seen in CI: the first
// batch of each asset two to ten times in Kafka while other tests' bridges
// subscribed). A bridge that does take the agent's readings still makes it
// resend what is unconfirmed (TestConfirmedDeliveryThroughABrokerCrash).
func TestJoinedElsewhereSendsNothingAgain(t *testing.T) {
	b := mqtttest.NewBroker(t)
	b.Start()
	site := stacktest.Unique("joined")
	bridge := newTestBridge(t, b.URL(), site)
	other := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("other-bridge"))
	if tok := other.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer other.Disconnect(100)

	cfg := testConfig(b.URL(), site)
	cfg.MQTT.Confirm = true
	cfg.Assets = "pump-1=pump"
	cfg.Spool.Dir = t.TempDir()
	cfg.Rate, cfg.Batch, cfg.Limit = 200, 5, 1000
	_, done := start(t, context.Background(), cfg)
	joined, _ := json.Marshal(wire.IngestJoined{Bridge: "other", Filter: wire.TopicRoot + "/elsewhere/+/readings"})
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for bridge.distinct("pump-1") < cfg.Limit {
		select {
		case <-tick.C:
			other.Publish(wire.IngestJoinedTopic, 1, false, joined)
		case <-time.After(30 * time.Second):
			t.Fatalf("the bridge has %d of %d readings", bridge.distinct("pump-1"), cfg.Limit)
		}
	}
	waitDone(t, done, 30*time.Second)
	if n := bridge.duplicates("pump-1"); n != 0 {
		t.Fatalf("the agent sent %d readings again for bridges of another site", n)
	}
}

// The crash: the bridge is away, the broker has acknowledged the
// agent's readings into the bridge's queue, and the broker is killed
// before it saved it. Readings are kept in the agent's spool until a
// bridge confirms them, and sent again when a bridge subscribes, so every
// reading arrives. With mqtt.confirm off (the PUBACK decides) the same run
// loses the readings of the crash.
func TestConfirmedDeliveryThroughABrokerCrash(t *testing.T) {
	for _, confirm := range []bool{true, false} {
		name := map[bool]string{true: "confirm", false: "puback"}[confirm]
		t.Run(name, func(t *testing.T) {
			b := mqtttest.NewBroker(t)
			b.Start()
			site := stacktest.Unique("confirm")
			bridge := newTestBridge(t, b.URL(), site)

			cfg := testConfig(b.URL(), site)
			cfg.MQTT.Confirm = confirm
			cfg.Assets = "pump-1=pump"
			cfg.Spool.Dir = t.TempDir()
			cfg.Rate, cfg.Batch, cfg.Limit = 200, 5, 2000
			_, done := start(t, context.Background(), cfg)

			stacktest.Eventually(t, 20*time.Second, func() bool { return bridge.distinct("pump-1") >= 300 },
				"the bridge has %d readings", func() any { return bridge.distinct("pump-1") })
			bridge.leave()
			time.Sleep(time.Second) // the broker acknowledges about 200 readings into the bridge's queue
			b.Kill()                // before it saved them
			b.Start()
			time.Sleep(time.Second) // the agent is back; no bridge has subscribed yet
			bridge.join()

			if !confirm {
				waitDone(t, done, 30*time.Second)
				time.Sleep(time.Second)
				if n := bridge.distinct("pump-1"); n == cfg.Limit {
					t.Fatalf("the bridge has all %d readings without confirmations: the crash lost nothing, so the test shows nothing", n)
				} else {
					t.Logf("without confirmations the crash lost %d of %d readings", cfg.Limit-n, cfg.Limit)
				}
				return
			}
			// The agent ends only once every reading is confirmed.
			waitDone(t, done, 60*time.Second)
			if n := bridge.distinct("pump-1"); n != cfg.Limit {
				t.Fatalf("the bridge has %d of %d readings", n, cfg.Limit)
			}
		})
	}
}
