package sink

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pdmstream/pdm/pdmkit/retry"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/pdmstream/pdm/scorer/internal/stream"
)

// MQTT publishes each alert's current state, retained, at
// pdm/v1/{site}/{asset}/alerts with QoS 1, off the scoring path: Write
// keeps the newest state of each asset and returns at once, and a
// goroutine publishes what is pending, retrying while the broker is away.
// A retained topic holds only the newest state, so keeping one per asset
// loses nothing a subscriber would see, bounds the memory by the number of
// assets, and a broker outage never holds back scoring or Kafka commits.
type MQTT struct {
	closeOnce sync.Once
	c         mqtt.Client
	log       *slog.Logger
	wake      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	started   atomic.Bool

	mu      sync.Mutex
	pending map[string]*pendingAlert // by topic

	// onStatus, when set before Connect, receives the gateways' retained
	// statuses (pdm/v1/{site}/{agent}/status).
	onStatus func(site, agent string, payload []byte)
}

// StatusFilter matches every gateway's retained status topic.
const StatusFilter = wire.TopicRoot + "/+/+/status"

// OnStatus subscribes, on every connect, to the gateways' retained
// online/offline statuses (the edge agent's last will) and hands each to
// fn; an empty payload is a cleared status. Call before Connect. fn runs
// on the client's goroutine and must not block.
func (m *MQTT) OnStatus(fn func(site, agent string, payload []byte)) { m.onStatus = fn }

func (m *MQTT) connected(c mqtt.Client) {
	m.signal()
	if m.onStatus == nil {
		return
	}
	// Not waited for: a handler must not block the client.
	c.Subscribe(StatusFilter, 1, func(_ mqtt.Client, msg mqtt.Message) {
		site, agent, kind, err := wire.ParseTopic(msg.Topic())
		if err != nil || kind != "status" {
			m.log.Warn("status message on an unexpected topic ignored", "topic", msg.Topic(), "err", err)
			return
		}
		m.onStatus(site, agent, msg.Payload())
	})
}

type pendingAlert struct{ value []byte }

// MQTTConn is how the output reaches the broker.
type MQTTConn struct {
	URL, ClientID      string
	Username, Password string
	// TLS dials an ssl:// broker; nil uses the system roots.
	TLS *tls.Config
}

// NewMQTT returns an output that connects on Connect.
func NewMQTT(conn MQTTConn, log *slog.Logger) *MQTT {
	m := &MQTT{log: log, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		pending: map[string]*pendingAlert{}}
	o := mqtt.NewClientOptions().AddBroker(conn.URL).SetClientID(conn.ClientID).
		SetUsername(conn.Username).SetPassword(conn.Password).SetTLSConfig(conn.TLS).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(5 * time.Second).SetCleanSession(true).SetOrderMatters(false).
		SetOnConnectHandler(m.connected).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { log.Warn("mqtt connection lost", "err", err) })
	m.c = mqtt.NewClient(o)
	return m
}

// Connect starts connecting, and publishing; the client keeps retrying in
// the background.
func (m *MQTT) Connect() {
	m.c.Connect()
	if !m.started.Swap(true) {
		go m.run()
	}
}

// Name implements stream.Output.
func (m *MQTT) Name() string { return "mqtt" }

// Write implements stream.Output: the batch's alert states become the
// pending state of their assets, to be published by the background loop.
func (m *MQTT) Write(_ context.Context, b *stream.Batch) error {
	if len(b.Alerts) == 0 {
		return nil
	}
	m.mu.Lock()
	for i := range b.Alerts {
		a := &b.Alerts[i]
		v, err := json.Marshal(a)
		if err != nil {
			m.mu.Unlock()
			return fmt.Errorf("sink: encode alert %s: %w", a.ID, err)
		}
		m.pending[wire.AlertsTopic(a.Site, a.Asset)] = &pendingAlert{v}
	}
	m.mu.Unlock()
	m.signal()
	return nil
}

// Pending is how many assets' alert states wait to be published.
func (m *MQTT) Pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pending)
}

func (m *MQTT) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// run publishes the pending states until Close: one round at a time, each
// state removed once the broker acknowledged it unless a newer one
// replaced it meanwhile (the next round publishes that one).
func (m *MQTT) run() {
	defer close(m.done)
	backoff := retry.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	for attempt := 0; ; {
		select {
		case <-m.stop:
			return
		case <-m.wake:
		}
		err := m.publishPending()
		if err == nil {
			attempt = 0
			continue
		}
		wait := backoff.Next(attempt)
		attempt++
		m.log.Warn("mqtt alert publish failed; keeping the newest state per asset", "pending", m.Pending(), "attempt", attempt, "retry_in", wait, "err", err)
		select {
		case <-m.stop:
			return
		case <-time.After(wait):
			m.signal()
		}
	}
}

func (m *MQTT) publishPending() error {
	m.mu.Lock()
	round := make(map[string]*pendingAlert, len(m.pending))
	for k, v := range m.pending {
		round[k] = v
	}
	m.mu.Unlock()
	if len(round) == 0 {
		return nil
	}
	if !m.c.IsConnectionOpen() {
		return fmt.Errorf("sink: mqtt: not connected")
	}
	toks := make(map[string]mqtt.Token, len(round))
	for topic, p := range round {
		toks[topic] = m.c.Publish(topic, 1, true, p.value)
	}
	var failed error
	for topic, t := range toks {
		if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
			failed = fmt.Errorf("sink: mqtt: publish %s: %v", topic, t.Error())
			continue
		}
		m.mu.Lock()
		if m.pending[topic] == round[topic] {
			delete(m.pending, topic)
		}
		m.mu.Unlock()
	}
	if failed == nil && m.Pending() > 0 {
		m.signal() // newer states arrived during the round
	}
	return failed
}

// Ready reports whether the broker connection is up.
func (m *MQTT) Ready(context.Context) error {
	if !m.c.IsConnectionOpen() {
		return fmt.Errorf("mqtt not connected")
	}
	return nil
}

// Close stops publishing and disconnects, giving in-flight publishes a
// moment. States still pending are not published. It waits for the
// publisher until ctx ends; safe to call twice.
func (m *MQTT) Close(ctx context.Context) error {
	var err error
	m.closeOnce.Do(func() {
		close(m.stop)
		if m.started.Load() {
			select {
			case <-m.done:
			case <-ctx.Done():
				err = fmt.Errorf("mqtt: close: %w", ctx.Err())
			}
		}
		m.c.Disconnect(250)
	})
	return err
}
