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
//
// With mqtt.sparkplug on it also takes Sparkplug B births, data and deaths
// (sparkplug.go): each DDATA becomes the record a JSON message of the same
// readings would.
package bridge

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/ingest/internal/config"
	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
	"github.com/pdmstream/pdm/pdmkit/retry"
	"github.com/pdmstream/pdm/pdmkit/sparkplug"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// Bridge is one MQTT→Kafka bridge instance.
type Bridge struct {
	cfg       config.Config
	log       *slog.Logger
	metrics   *Metrics
	limits    wire.Limits
	connected atomic.Bool
	// kafkaDown is the last failed write's error while Kafka refuses the
	// batch being written, nil once a write succeeds.
	kafkaDown atomic.Pointer[error]
	// retiring: on connect, leave the share group instead of joining it
	// (Retire); active is the time of the last message taken or batch
	// acknowledged, in Unix nanoseconds.
	retiring bool
	active   atomic.Int64
	// host maps Sparkplug messages (nil without mqtt.sparkplug); it is used
	// only by Run's batching loop. client publishes rebirth requests and
	// delivery confirmations.
	host   *sparkplug.Host
	client atomic.Pointer[mqtt.Client]
	// tls dials an ssl:// broker (mqtt.tls); nil: the system roots.
	tls *tls.Config
	// kafka is the way to the brokers (kafka.brokers, kafka.tls,
	// kafka.sasl).
	kafka *kafkaconn.Conn
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
	tc, err := cfg.MQTT.TLS.Client()
	if err != nil {
		return nil, fmt.Errorf("bridge: mqtt.%w", err)
	}
	kc, err := cfg.Kafka.Conn()
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	b := &Bridge{cfg: cfg, log: log.With("component", "bridge"), metrics: m, limits: wire.DefaultLimits(), tls: tc, kafka: kc}
	if cfg.MQTT.Sparkplug {
		b.host = sparkplug.NewHost(sparkplug.HostOptions{})
	}
	return b, nil
}

// Ready reports whether the bridge is connected to MQTT and subscribed,
// and Kafka takes its writes.
func (b *Bridge) Ready(context.Context) error {
	if !b.connected.Load() {
		return errors.New("mqtt not connected and subscribed")
	}
	if err := b.kafkaDown.Load(); err != nil {
		return fmt.Errorf("waiting for kafka, retrying the write: %w", *err)
	}
	return nil
}

// Run bridges until ctx ends. Messages whose records Kafka has not
// acknowledged when it stops are left unacknowledged for the broker to
// redeliver.
//
// One batch is written to Kafka at a time, in one request, while the next
// takes in and checks what arrives meanwhile. A batch is written once the
// writer is free and it is full or kafka.batch_timeout has passed since its
// first message, like the Java producer's linger.ms: under load it holds
// what arrived during the previous write, and at any load a request carries
// at least batch_timeout's worth of messages, which is what keeps the
// broker's work per reading low. A batch Kafka refuses, wholly or in part,
// is written again with backoff before any later one, which keeps each
// partition in order; until then its messages stay unacknowledged.
func (b *Bridge) Run(ctx context.Context) error {
	prod := newProducer(b.kafka, kafka.Lz4) // JSON shrinks several times: less for Kafka to store and move
	defer prod.close()

	// The paho router calls the handler in order on one goroutine; it only
	// queues, so a slow Kafka write never blocks pings. The broker's
	// max_inflight_messages bounds what arrives unacknowledged: one batch
	// being written, one filling, and this queue.
	in := newInbox(2*b.cfg.MQTT.MaxBatch, 4*maxBatchBytes)
	handler := func(_ mqtt.Client, m mqtt.Message) {
		b.active.Store(time.Now().UnixNano())
		in.put(ctx, m)
	}
	client := mqtt.NewClient(b.clientOptions(ctx, handler))
	b.client.Store(&client)
	connectCtx, stopConnect := context.WithCancel(ctx)
	connecting := make(chan struct{})
	go func() { defer close(connecting); b.connect(connectCtx, client) }()

	batches := make(chan *pending) // unbuffered: handed over when the writer is free
	written := make(chan struct{})
	go func() { defer close(written); b.write(ctx, prod, batches) }()

	var p *pending // the batch filling, nil while there is none
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	var lingering <-chan time.Time // fires when p has waited batch_timeout
	add := func(m mqtt.Message) {
		if p == nil {
			p = &pending{}
			linger.Reset(b.cfg.Kafka.BatchTimeout)
			lingering = linger.C
		}
		p.add(b, m)
	}
	for ctx.Err() == nil {
		var handOver chan<- *pending
		ready := in.ready
		if p != nil {
			full := len(p.msgs) >= b.cfg.MQTT.MaxBatch || p.bytes >= maxBatchBytes
			if full || lingering == nil {
				handOver = batches
			}
			if full {
				ready = nil
			}
		}
		select {
		case <-ctx.Done(): // p, if any, was never written: the broker redelivers it
		case <-ready:
			msgs, bytes := b.cfg.MQTT.MaxBatch, maxBatchBytes
			if p != nil {
				msgs, bytes = msgs-len(p.msgs), bytes-p.bytes
			}
			in.take(msgs, bytes, add)
		case <-lingering:
			lingering = nil
		case handOver <- p:
			b.metrics.BatchMessages.Observe(float64(len(p.msgs)))
			linger.Stop()
			p, lingering = nil, nil
		}
	}
	close(batches)
	<-written
	stopConnect()
	<-connecting
	client.Disconnect(250)
	b.connected.Store(false)
	return nil
}

// Retire takes this instance (its mqtt.client_id) out of the share group
// for good: it connects with its persistent session, leaves the group so
// the broker assigns it nothing new, bridges what the session still holds
// until nothing has arrived for idle, then deletes the session. Without
// it a stopped instance's session keeps taking its share of the readings,
// queued for a bridge that never returns, until the broker expires it.
func (b *Bridge) Retire(ctx context.Context, idle time.Duration) error {
	b.retiring = true
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.Run(rctx) }()
	tick := time.NewTicker(idle / 4)
	defer tick.Stop()
	for drained := false; !drained; {
		select {
		case <-ctx.Done():
			cancel()
			<-done
			return ctx.Err()
		case err := <-done:
			return fmt.Errorf("bridge: retire: %w", err)
		case <-tick.C:
			drained = b.connected.Load() && time.Since(time.Unix(0, b.active.Load())) >= idle
		}
	}
	cancel()
	if err := <-done; err != nil {
		return fmt.Errorf("bridge: retire: %w", err)
	}
	// A clean-session connect with the same client id discards the session.
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.cfg.MQTT.URL).SetClientID(b.cfg.MQTT.ClientID).
		SetUsername(b.cfg.MQTT.Username).SetPassword(b.cfg.MQTT.Password).SetTLSConfig(b.tls).SetCleanSession(true))
	if t := c.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return fmt.Errorf("bridge: retire: delete session %s: %v", b.cfg.MQTT.ClientID, t.Error())
	}
	c.Disconnect(250)
	b.log.Info("retired: session drained and deleted", "client_id", b.cfg.MQTT.ClientID)
	return nil
}

// write writes each batch to Kafka and then acknowledges its MQTT messages.
func (b *Bridge) write(ctx context.Context, prod *producer, batches <-chan *pending) {
	for p := range batches {
		if !b.writeBatch(ctx, prod, p) {
			continue // stopped before Kafka took it all: left unacknowledged
		}
		now := time.Now()
		b.metrics.KafkaWrite.Observe(now.Sub(p.first).Seconds())
		b.metrics.observeWritten(p.sampled, now)
		for _, m := range p.msgs {
			m.Ack()
		}
		b.confirm(p.delivered)
		b.active.Store(time.Now().UnixNano())
	}
}

// confirm tells the agents which of their readings Kafka now has: for
// each asset of a written batch, the highest sequence number taken. QoS 0
// and not awaited: a lost confirmation is covered by the next one, or the
// agent sends the readings again.
func (b *Bridge) confirm(delivered map[assetKey]uint64) {
	c := b.client.Load()
	if c == nil || len(delivered) == 0 {
		return
	}
	for k, seq := range delivered {
		payload, _ := json.Marshal(wire.Delivered{Seq: seq})
		(*c).Publish(wire.DeliveredTopic(k.site, k.asset), 0, false, payload)
	}
	b.metrics.Confirmations.Add(float64(len(delivered)))
}

// writeBatch writes p's records, retrying what Kafka refused with backoff
// until it has them all, and reports whether it has. Once ctx has ended a
// write is still finished, so a clean stop leaves little to redeliver, but
// a refused one is not retried.
func (b *Bridge) writeBatch(ctx context.Context, prod *producer, p *pending) bool {
	recs := p.records
	backoff := retry.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	for attempt := 0; ; attempt++ {
		left, err := prod.produce(context.WithoutCancel(ctx), recs)
		if err == nil {
			b.kafkaDown.Store(nil)
			return true
		}
		b.kafkaDown.Store(&err)
		b.metrics.KafkaErrors.Inc()
		wait := backoff.Next(attempt)
		b.log.Warn("kafka write failed, will retry", "records", len(left), "backoff", wait, "err", err)
		recs = left
		if !retry.Sleep(ctx, wait) {
			return false
		}
	}
}

func (b *Bridge) clientOptions(ctx context.Context, handler mqtt.MessageHandler) *mqtt.ClientOptions {
	share := "$share/" + b.cfg.MQTT.ShareGroup + "/"
	filters := map[string]byte{share + b.cfg.MQTT.Filter: 1}
	// Readings published with extra topic levels are taken too, and
	// dead-lettered (topic_mismatch) rather than left unseen at the broker.
	if deeper, ok := wire.DeeperFilter(b.cfg.MQTT.Filter); ok {
		filters[share+deeper] = 1
	}
	if b.host != nil {
		// Not shared: see config.MQTT.Sparkplug.
		for _, f := range sparkplug.HostFilters(b.cfg.MQTT.SparkplugGroup) {
			filters[f] = 1
		}
	}
	o := mqtt.NewClientOptions()
	if u, err := url.Parse(b.cfg.MQTT.URL); err == nil && (u.Scheme == "tcp" || u.Scheme == "mqtt") {
		o.SetCustomOpenConnectionFn(dialBuffered) // other schemes (TLS, WebSocket) keep paho's own
	}
	return o.
		AddBroker(b.cfg.MQTT.URL).
		SetClientID(b.cfg.MQTT.ClientID).
		SetUsername(b.cfg.MQTT.Username).
		SetPassword(b.cfg.MQTT.Password).
		SetTLSConfig(b.tls).
		SetCleanSession(false). // the broker keeps our subscription and queue while we are away
		SetAutoAckDisabled(true).
		SetOrderMatters(true).
		SetAutoReconnect(true). // once connected (see connect)
		SetMaxReconnectInterval(10 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetDefaultPublishHandler(handler). // messages of the session that arrive before the subscribe returns
		SetOnConnectHandler(func(c mqtt.Client) {
			b.log.Info("mqtt connected", "broker", b.cfg.MQTT.URL, "filter", b.cfg.MQTT.Filter)
			b.join(ctx, c, filters, handler)
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			b.connected.Store(false)
			b.metrics.Reconnects.Inc()
			b.log.Warn("mqtt connection lost", "err", err)
		})
}

// connect makes the first connection, retrying with backoff until ctx
// ends and logging why each attempt failed (a refused password, the broker
// away): paho's own connect retry says nothing. Once connected, paho's
// auto-reconnect keeps the connection.
func (b *Bridge) connect(ctx context.Context, c mqtt.Client) {
	backoff := retry.Backoff{Initial: 500 * time.Millisecond, Max: 10 * time.Second}
	_ = retry.Do(ctx, backoff, func(attempt int, err error, wait time.Duration) {
		b.log.Warn("mqtt connect failed, retrying", "broker", b.cfg.MQTT.URL, "attempt", attempt, "backoff", wait, "err", err)
	}, func(ctx context.Context) error {
		t := c.Connect()
		select {
		case <-t.Done():
			return t.Error()
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

// join subscribes to filters on a fresh connection (or, retiring, leaves
// them), retrying with backoff for as long as the connection is open and
// ctx lasts: a refused or unanswered subscription is tried again on the
// same connection, and the bridge is not ready until it holds.
// (Disconnecting instead would end paho's auto-reconnect for good.)
func (b *Bridge) join(ctx context.Context, c mqtt.Client, filters map[string]byte, handler mqtt.MessageHandler) {
	backoff := retry.Backoff{Initial: 500 * time.Millisecond, Max: 10 * time.Second}
	for attempt := 0; c.IsConnectionOpen(); attempt++ {
		err := b.joinOnce(c, filters, handler)
		if err == nil {
			b.active.Store(time.Now().UnixNano())
			b.connected.Store(true)
			if b.cfg.MQTT.Confirm && !b.retiring {
				// Readings published while no bridge was subscribed are
				// gone: the agents send again what is not confirmed.
				joined, _ := json.Marshal(wire.IngestJoined{Bridge: b.cfg.MQTT.ClientID, Time: time.Now().UTC(), Filter: b.cfg.MQTT.Filter})
				c.Publish(wire.IngestJoinedTopic, 1, false, joined)
			}
			return
		}
		b.metrics.SubscribeErrors.Inc()
		wait := backoff.Next(attempt)
		b.log.Error("mqtt subscribe failed; retrying", "filter", b.cfg.MQTT.Filter, "attempt", attempt+1, "retry_in", wait, "err", err)
		if !retry.Sleep(ctx, wait) {
			return
		}
	}
}

func (b *Bridge) joinOnce(c mqtt.Client, filters map[string]byte, handler mqtt.MessageHandler) error {
	if b.retiring {
		// Leave the share group: what the session holds still arrives,
		// nothing new is assigned to it.
		topics := make([]string, 0, len(filters))
		for f := range filters {
			topics = append(topics, f)
		}
		t := c.Unsubscribe(topics...)
		if !t.WaitTimeout(10 * time.Second) {
			return errors.New("no UNSUBACK within 10s")
		}
		return t.Error()
	}
	t := c.SubscribeMultiple(filters, handler)
	if !t.WaitTimeout(10 * time.Second) {
		return errors.New("no SUBACK within 10s")
	}
	if err := t.Error(); err != nil {
		return err
	}
	// paho reports a refused subscription (return code 0x80) as granted
	// with QoS 128, not as an error.
	for f, qos := range t.(*mqtt.SubscribeToken).Result() {
		if qos == 0x80 {
			return fmt.Errorf("the broker refused the subscription to %s", f)
		}
	}
	return nil
}

// maxBatchBytes bounds the MQTT payloads of one batch. A batch may pass it
// by its last message, at most wire's MaxPayload (1 MiB), so each
// partition's share of a request stays within the 4 MiB the topics accept
// (deployments/kafka/topics.txt) and a request stays small for the broker.
const maxBatchBytes = 1 << 20

// pending is one batch of MQTT messages and the Kafka records made from them.
type pending struct {
	msgs []mqtt.Message
	outbox
	bytes int       // sum of the messages' payload sizes
	first time.Time // when its first message was taken
}

func (p *pending) add(b *Bridge, m mqtt.Message) {
	now := time.Now()
	if len(p.msgs) == 0 {
		p.first = now
	}
	p.msgs = append(p.msgs, m)
	p.bytes += len(m.Payload())
	b.translate(&p.outbox, m.Topic(), m.Payload(), now)
}
