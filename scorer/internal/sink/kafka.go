// Package sink holds the scoring loop's outputs: Kafka topics for other
// systems, InfluxDB for data teams, MQTT retained alert state for the
// floor. Each Write returns only when its records are acknowledged, which
// is what lets the loop commit offsets after it.
package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
	"github.com/pdmstream/pdm/scorer/internal/stream"
	"github.com/segmentio/kafka-go"
)

// HeaderID carries a record's deterministic id, for consumers that
// de-duplicate replays.
const HeaderID = "pdm-id"

// Kafka writes scores and alert events, keyed by asset, and training
// requests (when retrain names a topic), with acks=all.
type Kafka struct {
	w                       *kafka.Writer
	scores, alerts, retrain string
}

// NewKafka returns a Kafka output; it connects on first write. An empty
// retrain topic drops the batches' training requests.
func NewKafka(conn *kafkaconn.Conn, scores, alerts, retrain string) *Kafka {
	return &Kafka{
		scores: scores, alerts: alerts, retrain: retrain,
		w: &kafka.Writer{
			Addr:      kafka.TCP(conn.Brokers...),
			Transport: conn.Transport(),
			// Murmur2 puts an asset on the same partition a Java producer
			// would, so every consumer agrees on per-asset order.
			Balancer:     &kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll,
			BatchTimeout: 2 * time.Millisecond,
			// kafka-go allocates every batch at this size, so it is kept
			// near what one partition gets from a scored batch.
			BatchSize: 1000,
			// The broker's default message.max.bytes is 1 MiB; a larger
			// request would be refused on every retry.
			BatchBytes:   1 << 20,
			MaxAttempts:  3,
			WriteTimeout: 10 * time.Second,
		},
	}
}

// Name implements stream.Output.
func (k *Kafka) Name() string { return "kafka" }

// Write implements stream.Output.
func (k *Kafka) Write(ctx context.Context, b *stream.Batch) error {
	msgs := make([]kafka.Message, 0, len(b.Scores)+len(b.Alerts))
	// One buffer for the batch's values; a value keeps pointing at its
	// bytes even when a later append moves the buffer.
	buf := make([]byte, 0, 512*len(b.Scores))
	// Records carry the time they were produced (the reading's time is in
	// the value): the topic's time-based retention and a reader's start
	// "an hour ago" count from when scoring happened, so a backlog of old
	// readings replayed today is neither deleted at once nor skipped.
	for i := range b.Scores {
		s := &b.Scores[i]
		start := len(buf)
		buf = appendScore(buf, s)
		msgs = append(msgs, kafka.Message{Topic: k.scores, Key: []byte(s.Asset), Value: buf[start:len(buf):len(buf)], Time: s.ScoredAt,
			Headers: []kafka.Header{{Key: HeaderID, Value: []byte(s.ID)}}})
	}
	for i := range b.Alerts {
		a := &b.Alerts[i]
		v, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("sink: encode alert %s: %w", a.ID, err)
		}
		msgs = append(msgs, kafka.Message{Topic: k.alerts, Key: []byte(a.Asset), Value: v,
			Headers: []kafka.Header{{Key: HeaderID, Value: []byte(a.EventID())}}})
	}
	for _, r := range b.Requests {
		if k.retrain == "" {
			break
		}
		v, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("sink: encode training request: %w", err)
		}
		msgs = append(msgs, kafka.Message{Topic: k.retrain, Key: []byte(r.Key()), Value: v, Time: r.At})
	}
	if err := k.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("sink: kafka: %w", err)
	}
	return nil
}

// Close flushes and closes the writer.
func (k *Kafka) Close(context.Context) error { return k.w.Close() }
