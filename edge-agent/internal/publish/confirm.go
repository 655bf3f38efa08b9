package publish

import (
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pdmstream/pdm/pdmkit/wire"
)

// confirmations holds what the bridges have confirmed: per readings topic,
// the highest sequence number Kafka has. It is written by paho's message
// handler and read by the acker.
type confirmations struct {
	mu sync.Mutex
	// seq is the highest confirmed sequence number per readings topic;
	// sent the highest published, since a confirmation beyond it cannot be
	// of this agent's readings and is ignored.
	seq, sent map[string]uint64
	// changed and joined signal a new confirmation and a bridge's
	// subscription; each holds at most one signal.
	changed, joined chan struct{}
	warned          time.Time
}

func newConfirmations() *confirmations {
	return &confirmations{
		seq: map[string]uint64{}, sent: map[string]uint64{},
		changed: make(chan struct{}, 1), joined: make(chan struct{}, 1),
	}
}

// stuckAfter is how long the oldest acknowledged record may wait for its
// confirmation before the agent says so (and again every stuckAfter).
const stuckAfter = time.Minute

// sending notes a record about to be published.
func (c *confirmations) sending(topic string, lastSeq uint64) {
	c.mu.Lock()
	c.sent[topic] = max(c.sent[topic], lastSeq)
	c.mu.Unlock()
}

// handle is paho's handler for confirmations and bridges' subscriptions.
// It only records and signals: publishing from it could deadlock paho.
func (c *confirmations) handle(_ mqtt.Client, m mqtt.Message) {
	if m.Topic() == wire.IngestJoinedTopic {
		if c.concerns(m.Payload()) {
			signal(c.joined)
		}
		return
	}
	site, asset, kind, err := wire.ParseTopic(m.Topic())
	if err != nil || kind != "delivered" {
		return
	}
	d, err := wire.DecodeDelivered(m.Payload())
	if err != nil {
		return
	}
	topic := wire.ReadingsTopic(site, asset)
	c.mu.Lock()
	ok := d.Seq <= c.sent[topic] && d.Seq > c.seq[topic]
	if ok {
		c.seq[topic] = d.Seq
	}
	c.mu.Unlock()
	if ok {
		signal(c.changed)
	}
}

// concerns reports whether a bridge's IngestJoined may be about this
// agent's readings: its filter matches a readings topic the agent has
// published on (or it names no filter). A bridge subscribing for other
// sites must not make the agent send its readings in flight again.
func (c *confirmations) concerns(payload []byte) bool {
	var j wire.IngestJoined
	if json.Unmarshal(payload, &j) != nil || j.Filter == "" {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for topic := range c.sent {
		if wire.MatchFilter(j.Filter, topic) {
			return true
		}
	}
	return false
}

// covered is how many of the records, from the first, are confirmed.
func (c *confirmations) covered(recs []entry) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for n < len(recs) && recs[n].lastSeq <= c.seq[recs[n].topic] {
		n++
	}
	return n
}

// warnIfStuck logs, at most every stuckAfter, that the oldest record has
// waited for its confirmation that long: no bridge with mqtt.confirm is
// taking this agent's readings, and the spool fills.
func (c *confirmations) warnIfStuck(log *slog.Logger, unconfirmed []entry) {
	if len(unconfirmed) == 0 || time.Since(unconfirmed[0].at) < stuckAfter || time.Since(c.warned) < stuckAfter {
		return
	}
	c.warned = time.Now()
	log.Warn("readings acknowledged by the broker wait for a bridge's confirmation; they stay in the spool (is an ingest bridge running, with mqtt.confirm on?)",
		"records", len(unconfirmed), "oldest", time.Since(unconfirmed[0].at).Round(time.Second))
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
