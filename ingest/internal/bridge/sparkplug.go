package bridge

import (
	"errors"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/pdmkit/sparkplug"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// translateSparkplug adds to o the records of one Sparkplug message. Births
// and deaths only teach the host; a DDATA's valid readings become one
// record, exactly what the JSON path makes of a message holding the same
// readings: the single-reading form for a DDATA of one reading, the batch
// form otherwise, keyed by the asset. What the host refuses (data before
// its birth, a seq gap, an unknown alias, a bad payload) and readings that
// fail validation are dead-lettered with the Sparkplug payload unchanged;
// where the host lost trust in an edge node's births it is asked for a
// rebirth.
func (b *Bridge) translateSparkplug(o *outbox, topic string, payload []byte, received time.Time) {
	if len(payload) > b.limits.MaxPayload {
		err := wire.Reject(wire.ErrOversize, "%d bytes (limit %d)", len(payload), b.limits.MaxPayload)
		o.records = append(o.records, b.deadLetter("", topic, payload, -1, err, received))
		return
	}
	res := b.host.Handle(topic, payload, received)
	kind := string(res.Topic.Type)
	if kind == "" {
		kind = "invalid"
	}
	b.metrics.Sparkplug.WithLabelValues(kind).Inc()
	if res.Rebirth {
		b.requestRebirth(res.Topic, res.Err, received)
	}
	asset := res.Topic.Device
	if res.Err != nil {
		o.records = append(o.records, b.deadLetter(asset, topic, payload, -1, res.Err, received))
		return
	}
	if len(res.Readings) == 0 {
		return
	}
	single := len(res.Readings) == 1
	good := make([]wire.Reading, 0, len(res.Readings))
	for i, r := range res.Readings {
		if err := b.limits.Validate(&r, received); err != nil {
			index := i
			var re *wire.RejectError
			if errors.As(err, &re) && !single {
				re.Index = i
			} else {
				index = -1
			}
			o.records = append(o.records, b.deadLetter(asset, topic, payload, index, err, received))
			continue
		}
		good = append(good, r)
	}
	if len(good) == 0 {
		return
	}
	var (
		value []byte
		err   error
	)
	if single {
		value, err = good[0].MarshalJSON()
	} else {
		value, err = wire.EncodeBatch(good)
	}
	if err != nil { // validated readings always encode
		o.records = append(o.records, b.deadLetter(asset, topic, payload, -1, err, received))
		return
	}
	for _, r := range good {
		o.sampled = append(o.sampled, r.Time)
	}
	o.records = append(o.records, kafka.Message{Topic: b.cfg.Kafka.Readings, Key: []byte(asset), Value: value})
}

// requestRebirth publishes the NCMD that asks t's edge node for its births.
// It does not wait: the request is repeated (at most every 5 s) for as long
// as the node's data cannot be mapped.
func (b *Bridge) requestRebirth(t sparkplug.Topic, why error, now time.Time) {
	c := b.client.Load()
	if c == nil {
		return
	}
	m := sparkplug.RebirthRequest(t.Group, t.Node, now)
	(*c).Publish(m.Topic, 0, false, m.Payload)
	b.metrics.Rebirths.Inc()
	b.log.Info("sparkplug rebirth requested", "group", t.Group, "edge_node", t.Node, "reason", why)
}
