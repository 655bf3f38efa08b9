// Package bridge moves readings from MQTT to Kafka.
//
// It subscribes with an MQTT shared subscription, so several bridge
// instances split the readings, and acknowledges an MQTT message only after
// Kafka (acks=all) has every record made from it. A crash before that makes
// the broker deliver the message again: at least once, with the (asset, seq)
// of each reading left for consumers to de-duplicate.
//
// Each valid reading becomes one Kafka record keyed by its asset, so one
// asset's readings stay in one partition, in order. Anything refused goes to
// the dead-letter topic unchanged, with the reason in its headers; the
// bridge never stops for bad input.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/ingest/internal/config"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// producer is the part of *kafka.Writer the bridge uses.
type producer interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
	Close() error
}

// Bridge is one MQTT→Kafka bridge instance.
type Bridge struct {
	cfg       config.Config
	log       *slog.Logger
	metrics   *Metrics
	limits    wire.Limits
	connected atomic.Bool
}

// New validates cfg; it connects to nothing.
func New(cfg config.Config, log *slog.Logger, m *Metrics) (*Bridge, error) {
	if err := cfg.Validate(config.Bridge); err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	if cfg.MQTT.ClientID == "" {
		host, _ := os.Hostname()
		cfg.MQTT.ClientID = "ingest-bridge-" + host
	}
	return &Bridge{cfg: cfg, log: log.With("component", "bridge"), metrics: m, limits: wire.DefaultLimits()}, nil
}

// Ready reports whether the bridge is connected to MQTT and subscribed.
func (b *Bridge) Ready(context.Context) error {
	if !b.connected.Load() {
		return errors.New("mqtt not connected")
	}
	return nil
}

// Run bridges until ctx ends. Messages whose records Kafka has not
// acknowledged when it stops are left unacknowledged for the broker to
// redeliver.
//
// Kafka writes are pipelined: while one batch is in flight the next is
// collected and sent, and MQTT acknowledgements follow in arrival order as
// batches complete. A write that fails after the writer's own attempts is
// sent again after a pause; until it succeeds its messages stay unacked.
func (b *Bridge) Run(ctx context.Context) error {
	retries := make(chan []kafka.Message, 64)
	closing := make(chan struct{})
	w := &kafka.Writer{
		Addr:                   kafka.TCP(b.cfg.Kafka.Brokers...),
		Balancer:               &kafka.Murmur2Balancer{}, // same partition for a key as Java clients
		RequiredAcks:           kafka.RequireAll,         // the zero value would be acks=0
		BatchTimeout:           b.cfg.Kafka.BatchTimeout,
		BatchSize:              1000, // kafka-go allocates every batch at this size
		BatchBytes:             maxRecordBytes,
		Compression:            kafka.Lz4, // JSON shrinks several times: less for Kafka to store and move
		AllowAutoTopicCreation: false,
		Async:                  true, // results arrive in Completion, never dropped
		Completion: func(msgs []kafka.Message, err error) {
			if err != nil {
				b.metrics.KafkaErrors.Inc()
				b.log.Warn("kafka write failed, will retry", "records", len(msgs), "err", err)
				select {
				case retries <- msgs:
				case <-closing: // shutting down: the messages stay unacked
				}
				return
			}
			for _, m := range msgs {
				m.WriterData.(*pending).recordDone()
			}
		},
	}

	// The paho router calls the handler in order on one goroutine; it only
	// queues, so a slow Kafka write never blocks pings. The broker's
	// max_inflight_messages bounds what arrives unacknowledged.
	in := make(chan mqtt.Message, 2*b.cfg.MQTT.MaxBatch)
	handler := func(_ mqtt.Client, m mqtt.Message) {
		select {
		case in <- m:
		case <-ctx.Done():
		}
	}
	client := mqtt.NewClient(b.clientOptions(handler))
	client.Connect() // with ConnectRetry it keeps trying in the background

	// inOrder holds the batches sent to Kafka and not yet acked to MQTT,
	// oldest first; its capacity bounds the pipeline.
	inOrder := make(chan *pending, b.cfg.MQTT.Pipeline)
	flushed := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); b.ackInOrder(inOrder, flushed) }()
	go func() { defer wg.Done(); b.retry(ctx, w, retries) }()

	batch := make([]mqtt.Message, 0, b.cfg.MQTT.MaxBatch)
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
			continue
		case m := <-in:
			batch = append(batch[:0], m)
		}
		batch = b.fill(ctx, in, batch)
		p := b.newPending(batch)
		select {
		case inOrder <- p:
		case <-ctx.Done():
			continue // never sent: the broker redelivers it
		}
		if err := w.WriteMessages(ctx, p.records...); err != nil {
			// Not enqueued (the context ended, or a record the writer
			// refuses): treat as a failed write; p stays unacknowledged
			// until a retry succeeds.
			b.log.Warn("kafka enqueue failed", "err", err)
			select {
			case retries <- p.records:
			case <-ctx.Done():
			}
		}
		b.metrics.BatchMessages.Observe(float64(len(batch)))
	}

	close(inOrder)
	close(closing)
	_ = w.Close() // waits for the batches still in the writer
	close(flushed)
	wg.Wait()
	client.Disconnect(250)
	b.connected.Store(false)
	return nil
}

func (b *Bridge) clientOptions(handler mqtt.MessageHandler) *mqtt.ClientOptions {
	filter := "$share/" + b.cfg.MQTT.ShareGroup + "/" + b.cfg.MQTT.Filter
	return mqtt.NewClientOptions().
		AddBroker(b.cfg.MQTT.URL).
		SetClientID(b.cfg.MQTT.ClientID).
		SetUsername(b.cfg.MQTT.Username).
		SetPassword(b.cfg.MQTT.Password).
		SetCleanSession(false). // the broker keeps our subscription and queue while we are away
		SetAutoAckDisabled(true).
		SetOrderMatters(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(10 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetDefaultPublishHandler(handler). // messages of the session that arrive before the subscribe returns
		SetOnConnectHandler(func(c mqtt.Client) {
			b.log.Info("mqtt connected", "broker", b.cfg.MQTT.URL, "filter", filter)
			if t := c.Subscribe(filter, 1, handler); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
				b.log.Error("mqtt subscribe failed, reconnecting", "filter", filter, "err", t.Error())
				go c.Disconnect(0) // not from inside the handler; auto-reconnect subscribes again
				return
			}
			b.connected.Store(true)
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			b.connected.Store(false)
			b.metrics.Reconnects.Inc()
			b.log.Warn("mqtt connection lost", "err", err)
		})
}

// pending is one batch of MQTT messages whose Kafka records are in flight.
type pending struct {
	msgs      []mqtt.Message
	records   []kafka.Message
	sampled   []time.Time
	sent      time.Time
	remaining atomic.Int64
	done      chan struct{}
}

func (b *Bridge) newPending(batch []mqtt.Message) *pending {
	var o outbox
	received := time.Now()
	for _, m := range batch {
		b.translate(&o, m.Topic(), m.Payload(), received)
	}
	p := &pending{msgs: append([]mqtt.Message(nil), batch...), records: o.records, sampled: o.sampled, sent: time.Now(), done: make(chan struct{})}
	p.remaining.Store(int64(len(p.records)))
	for i := range p.records {
		p.records[i].WriterData = p
	}
	return p
}

func (p *pending) recordDone() {
	if p.remaining.Add(-1) == 0 {
		close(p.done)
	}
}

// ackInOrder acknowledges each batch's MQTT messages once Kafka has all its
// records, in the order the batches were sent. After flushed closes, a batch
// that is still not done never will be: it stays unacknowledged and the
// broker delivers it again on the next connection.
func (b *Bridge) ackInOrder(inOrder <-chan *pending, flushed <-chan struct{}) {
	for p := range inOrder {
		select {
		case <-p.done:
		case <-flushed:
			select {
			case <-p.done:
			default:
				continue
			}
		}
		b.metrics.KafkaWrite.Observe(time.Since(p.sent).Seconds())
		b.metrics.observeWritten(p.sampled, time.Now())
		for _, m := range p.msgs {
			m.Ack()
		}
	}
}

// retry writes failed records again after a pause, until ctx ends.
func (b *Bridge) retry(ctx context.Context, w producer, retries <-chan []kafka.Message) {
	for {
		select {
		case <-ctx.Done():
			return
		case msgs := <-retries:
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				b.log.Warn("kafka retry enqueue failed", "err", err)
			}
		}
	}
}

// fill adds queued messages to batch until it is full or Linger passes
// without a new one.
func (b *Bridge) fill(ctx context.Context, in <-chan mqtt.Message, batch []mqtt.Message) []mqtt.Message {
	var timer *time.Timer
	for len(batch) < cap(batch) {
		select {
		case m := <-in:
			batch = append(batch, m)
			continue
		default:
		}
		if b.cfg.MQTT.Linger == 0 {
			return batch
		}
		if timer == nil {
			timer = time.NewTimer(b.cfg.MQTT.Linger)
			defer timer.Stop()
		}
		select {
		case m := <-in:
			batch = append(batch, m)
		case <-timer.C:
			return batch
		case <-ctx.Done():
			return batch
		}
	}
	return batch
}
