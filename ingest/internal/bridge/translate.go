package bridge

import (
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/pdmkit/sparkplug"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// outbox collects the records of one batch of MQTT messages.
type outbox struct {
	records []kafka.Message
	// sampled holds the reading time of each record on the readings topic,
	// for the age-at-Kafka metric.
	sampled []time.Time
	// delivered is the highest sequence number taken of each asset, valid
	// or dead-lettered, for the confirmations (nil without mqtt.confirm).
	delivered map[assetKey]uint64
}

type assetKey struct{ site, asset string }

// taken notes a reading of the message's own asset for its confirmation.
func (o *outbox) taken(site, asset string, seq uint64) {
	if o.delivered == nil {
		o.delivered = map[assetKey]uint64{}
	}
	k := assetKey{site, asset}
	o.delivered[k] = max(o.delivered[k], seq)
}

// translate adds to o the Kafka records for one MQTT message: its valid
// readings as one record keyed by the asset, and one dead-letter record per
// refused reading or refused message.
//
// A message whose readings are all valid goes to Kafka byte for byte, single
// or batch: one record per MQTT message keeps Kafka's per-record cost off
// batched traffic. A batch with refused readings is rebuilt from the valid
// ones.
func (b *Bridge) translate(o *outbox, topic string, payload []byte, received time.Time) {
	b.metrics.Messages.Inc()
	if b.host != nil && strings.HasPrefix(topic, sparkplug.Namespace+"/") {
		b.translateSparkplug(o, topic, payload, received)
		return
	}
	site, asset, _, err := wire.ParseTopic(topic)
	if err != nil {
		o.records = append(o.records, b.deadLetter(asset, topic, payload, -1, err, received))
		return
	}
	items, err := b.limits.Check(payload, received)
	if err != nil {
		o.records = append(o.records, b.deadLetter(asset, topic, payload, -1, err, received))
		return
	}
	single := len(items) == 1 && len(items[0].Raw) == len(payload)
	var good [][]byte
	for i, it := range items {
		index := i
		if single {
			index = -1 // the message itself
		}
		ours := it.Reading.Site == site && it.Reading.Asset == asset
		if it.Err == nil && !ours {
			it.Err = &wire.RejectError{Kind: wire.ErrTopic, Index: index,
				Detail: "reading of " + it.Reading.Site + "/" + it.Reading.Asset + " on topic of " + site + "/" + asset}
		}
		if ours && it.Reading.Seq > 0 && b.cfg.MQTT.Confirm {
			// Dead letters too: refused for good, they must not hold the
			// agent's spool.
			o.taken(site, asset, it.Reading.Seq)
		}
		if it.Err != nil {
			o.records = append(o.records, b.deadLetter(asset, topic, it.Raw, index, it.Err, received))
			continue
		}
		good = append(good, it.Raw)
		o.sampled = append(o.sampled, it.Reading.Time)
	}
	if len(good) == 0 {
		return
	}
	value := payload
	if len(good) < len(items) {
		value = wire.JoinBatch(good)
	}
	// The record's timestamp is left to the producer's clock: retention works
	// on it, and a reading spooled for days must not expire at once.
	o.records = append(o.records, kafka.Message{Topic: b.cfg.Kafka.Readings, Key: []byte(asset), Value: value})
}

// maxRecordBytes bounds one Kafka record. The readings and dead-letter
// topics accept 4 MiB (deployments/kafka/topics.txt); a valid message is at
// most wire's MaxPayload (1 MiB) and a dead letter is cut to that size.
const maxRecordBytes = 4 << 20

func (b *Bridge) deadLetter(key, source string, value []byte, index int, err error, received time.Time) kafka.Message {
	code := wire.CodeOf(err)
	b.metrics.Rejected.WithLabelValues(string(code)).Inc()
	b.log.Debug("refused", "source", source, "code", code, "err", err)
	h := []kafka.Header{
		{Key: wire.HeaderErrorCode, Value: []byte(code)},
		{Key: wire.HeaderErrorReason, Value: []byte(err.Error())},
		{Key: wire.HeaderSource, Value: []byte(source)},
		{Key: wire.HeaderReceivedAt, Value: []byte(received.UTC().Format(wire.TimeLayout))},
	}
	if index >= 0 {
		h = append(h, kafka.Header{Key: wire.HeaderBatchIndex, Value: []byte(strconv.Itoa(index))})
	}
	if len(value) > b.limits.MaxPayload {
		// An oversized message cannot be stored whole; keep its head and
		// say how long it was.
		h = append(h, kafka.Header{Key: wire.HeaderTruncatedFrom, Value: []byte(strconv.Itoa(len(value)))})
		value = value[:b.limits.MaxPayload]
	}
	if key == "" {
		key = source
	}
	return kafka.Message{Topic: b.cfg.Kafka.DeadLetters, Key: []byte(key), Value: value, Headers: h}
}
