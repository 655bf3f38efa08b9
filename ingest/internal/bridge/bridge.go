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

// Ready reports whether the bridge is connected to MQTT.
func (b *Bridge) Ready(context.Context) error {
	if !b.connected.Load() {
		return errors.New("mqtt not connected")
	}
	return nil
}

// Run bridges until ctx ends. Messages received but not yet written to
// Kafka when it stops are left unacknowledged for the broker to redeliver.
func (b *Bridge) Run(ctx context.Context) error {
	w := &kafka.Writer{
		Addr:                   kafka.TCP(b.cfg.Kafka.Brokers...),
		Balancer:               &kafka.Murmur2Balancer{}, // same partition for a key as Java clients
		RequiredAcks:           kafka.RequireAll,         // the zero value would be acks=0
		BatchTimeout:           b.cfg.Kafka.BatchTimeout,
		BatchSize:              10_000,
		AllowAutoTopicCreation: false,
	}
	defer w.Close()

	// The paho router calls the handler in order on one goroutine; it only
	// queues, so a slow Kafka write never blocks pings. The queue holds
	// twice a batch: the broker's inflight limit bounds what arrives unacked.
	in := make(chan mqtt.Message, 2*b.cfg.MQTT.MaxBatch)
	handler := func(_ mqtt.Client, m mqtt.Message) {
		select {
		case in <- m:
		case <-ctx.Done():
		}
	}
	filter := "$share/" + b.cfg.MQTT.ShareGroup + "/" + b.cfg.MQTT.Filter
	opts := mqtt.NewClientOptions().
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
			b.connected.Store(true)
			b.log.Info("mqtt connected", "broker", b.cfg.MQTT.URL, "filter", filter)
			if t := c.Subscribe(filter, 1, handler); t.WaitTimeout(10*time.Second) && t.Error() != nil {
				b.log.Error("mqtt subscribe", "filter", filter, "err", t.Error())
			}
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			b.connected.Store(false)
			b.metrics.Reconnects.Inc()
			b.log.Warn("mqtt connection lost", "err", err)
		})
	client := mqtt.NewClient(opts)
	client.Connect() // with ConnectRetry it keeps trying in the background
	defer func() {
		client.Disconnect(250)
		b.connected.Store(false)
	}()

	batch := make([]mqtt.Message, 0, b.cfg.MQTT.MaxBatch)
	var o outbox
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return nil
		case m := <-in:
			batch = append(batch, m)
		}
		batch = b.fill(ctx, in, batch)
		o.reset()
		received := time.Now()
		for _, m := range batch {
			b.translate(&o, m.Topic(), m.Payload(), received)
		}
		b.metrics.BatchMessages.Observe(float64(len(batch)))
		if err := b.forward(ctx, w, o.records); err != nil {
			return nil // ctx ended during retries: leave the batch unacked
		}
		b.metrics.observeWritten(o.sampled, time.Now())
		for _, m := range batch {
			m.Ack()
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

// forward writes records to Kafka, retrying with backoff until Kafka takes
// them all or ctx ends.
func (b *Bridge) forward(ctx context.Context, w producer, records []kafka.Message) error {
	backoff := 50 * time.Millisecond
	for {
		start := time.Now()
		err := w.WriteMessages(ctx, records...)
		b.metrics.KafkaWrite.Observe(time.Since(start).Seconds())
		if err == nil {
			return nil
		}
		b.metrics.KafkaErrors.Inc()
		b.log.Warn("kafka write failed, retrying", "records", len(records), "backoff", backoff, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
