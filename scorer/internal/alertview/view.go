// Package alertview gives every scorer instance the same view of alerts by
// following the alerts topic, and carries acknowledgements to the instance
// that owns the alert's asset.
//
// Invariants:
//   - The view holds the latest revision of every alert in the topic,
//     whichever instance published it, so the alert list does not depend on
//     which instance a request reaches.
//   - An acknowledgement is applied only by the partition loop that owns
//     the asset (that loop publishes the acknowledged state); an instance
//     that does not own it writes an ack request to the alerts topic, which
//     every instance reads and the owner applies.
package alertview

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
	"github.com/pdmstream/pdm/scorer/internal/stream"
	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/scorer/internal/follow"
)

// HeaderRecord marks records of the alerts topic that are not alerts.
const HeaderRecord = "pdm-record"

// recordAckRequest is HeaderRecord's value on an acknowledgement request.
const recordAckRequest = "ack-request"

// ErrUnknown: no alert with that id is in the view.
var ErrUnknown = errors.New("unknown alert")

// Acker applies an acknowledgement where this instance owns the alert.
type Acker interface {
	Ack(ctx context.Context, id, by, reason string) (alert.Alert, error)
}

type ackRequest struct {
	ID     string    `json:"id"`
	By     string    `json:"by"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// View follows the alerts topic into a store.
type View struct {
	conn  *kafkaconn.Conn
	topic string
	store *Store
	acker Acker
	log   *slog.Logger
	w     *kafka.Writer
}

// New returns a view filling store; it connects nothing until Run.
func New(conn *kafkaconn.Conn, topic string, store *Store, acker Acker, log *slog.Logger) *View {
	return &View{conn: conn, topic: topic, store: store, acker: acker, log: log,
		w: &kafka.Writer{Addr: kafka.TCP(conn.Brokers...), Transport: conn.Transport(), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}}
}

// List implements the API's alert listing.
func (v *View) List(f Filter) []alert.Alert { return v.store.List(f) }

// Subscribe follows every alert event the view keeps (Store.Subscribe).
func (v *View) Subscribe() (<-chan alert.Alert, func()) { return v.store.Subscribe() }

// Ack acknowledges alert id: directly when this instance owns it,
// otherwise through an ack request on the topic. queued reports the
// latter; the returned alert is then the state before the acknowledgement.
func (v *View) Ack(ctx context.Context, id, by, reason string) (a alert.Alert, queued bool, err error) {
	a, err = v.acker.Ack(ctx, id, by, reason)
	if err == nil || !errors.Is(err, stream.ErrAlertNotHere) {
		return a, false, err
	}
	cur, ok := v.store.Get(id)
	if !ok {
		return alert.Alert{}, false, fmt.Errorf("%w: %s", ErrUnknown, id)
	}
	if cur.State == alert.Resolved {
		return cur, false, fmt.Errorf("%w: %s is resolved", stream.ErrAlertNotHere, id)
	}
	b, err := json.Marshal(ackRequest{ID: id, By: by, Reason: reason, At: time.Now().UTC()})
	if err != nil {
		return alert.Alert{}, false, err
	}
	if err := v.w.WriteMessages(ctx, kafka.Message{Key: []byte(cur.Asset), Value: b,
		Headers: []kafka.Header{{Key: HeaderRecord, Value: []byte(recordAckRequest)}}}); err != nil {
		return alert.Alert{}, false, fmt.Errorf("alertview: ack request: %w", err)
	}
	return cur, true, nil
}

// Run follows every partition of the topic from its start until ctx ends.
// While Kafka is away it waits and tries again, however long it takes.
func (v *View) Run(ctx context.Context) error {
	return follow.Run(ctx, follow.Options{Conn: v.conn, Topic: v.topic, Log: v.log}, v.apply)
}

func (v *View) apply(ctx context.Context, m *kafka.Message) {
	for _, h := range m.Headers {
		if h.Key == HeaderRecord && string(h.Value) == recordAckRequest {
			var req ackRequest
			if err := json.Unmarshal(m.Value, &req); err != nil {
				v.log.Warn("ack request ignored", "err", err)
				return
			}
			// Old requests replayed at start-up are applied again; the
			// tracker ignores an acknowledgement of an alert it does not
			// hold open, and a second one of the same alert.
			if _, err := v.acker.Ack(ctx, req.ID, req.By, req.Reason); err != nil && !errors.Is(err, stream.ErrAlertNotHere) {
				v.log.Warn("ack request", "id", req.ID, "err", err)
			}
			return
		}
	}
	var a alert.Alert
	if err := json.Unmarshal(m.Value, &a); err != nil || a.ID == "" {
		v.log.Warn("alert record ignored", "partition", m.Partition, "offset", m.Offset, "err", err)
		return
	}
	v.store.Put(ctx, []alert.Alert{a})
}

// Close flushes and closes the writer.
func (v *View) Close(context.Context) error { return v.w.Close() }
