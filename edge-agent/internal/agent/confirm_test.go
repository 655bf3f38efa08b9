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

	mu   sync.Mutex
	seen map[string]map[uint64]bool // asset → seqs
}

func newTestBridge(t *testing.T, url, site string) *testBridge {
	tb := &testBridge{t: t, url: url, site: site, seen: map[string]map[uint64]bool{}}
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
