package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/pdmstream/pdm/scorer/internal/stream"
)

// MQTT publishes each alert's current state, retained, at
// pdm/v1/{site}/{asset}/alerts with QoS 1.
type MQTT struct {
	c   mqtt.Client
	log *slog.Logger
}

// NewMQTT returns an output that connects on Connect.
func NewMQTT(url, clientID string, log *slog.Logger) *MQTT {
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID(clientID).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(5 * time.Second).SetCleanSession(true).SetOrderMatters(false).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { log.Warn("mqtt connection lost", "err", err) })
	return &MQTT{c: mqtt.NewClient(o), log: log}
}

// Connect starts connecting; the client keeps retrying in the background.
func (m *MQTT) Connect() { m.c.Connect() }

// Name implements stream.Output.
func (m *MQTT) Name() string { return "mqtt" }

// Write implements stream.Output: every event is published with QoS 1 and
// Write waits until the broker acknowledged all of them.
func (m *MQTT) Write(ctx context.Context, b *stream.Batch) error {
	if len(b.Alerts) == 0 {
		return nil
	}
	if !m.c.IsConnectionOpen() {
		return fmt.Errorf("sink: mqtt: not connected")
	}
	toks := make([]mqtt.Token, 0, len(b.Alerts))
	for i := range b.Alerts {
		a := &b.Alerts[i]
		v, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("sink: encode alert %s: %w", a.ID, err)
		}
		toks = append(toks, m.c.Publish(wire.AlertsTopic(a.Site, a.Asset), 1, true, v))
	}
	for _, t := range toks {
		select {
		case <-t.Done():
			if err := t.Error(); err != nil {
				return fmt.Errorf("sink: mqtt: %w", err)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Ready reports whether the broker connection is up.
func (m *MQTT) Ready(context.Context) error {
	if !m.c.IsConnectionOpen() {
		return fmt.Errorf("mqtt not connected")
	}
	return nil
}

// Close disconnects, giving in-flight publishes a moment.
func (m *MQTT) Close() { m.c.Disconnect(250) }
