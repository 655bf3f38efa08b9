// Package historian writes every reading from Kafka to InfluxDB.
//
// It is a Kafka consumer group, so instances split the partitions. Readings
// are written in batches (up to influx.batch_size points or
// influx.flush_interval), each write is retried with backoff while InfluxDB
// is down, and offsets are committed only after InfluxDB accepted the batch.
// A crash replays the uncommitted batch; the write is idempotent because a
// point is identified by measurement, tags and timestamp, so writing the
// same reading twice leaves one point.
//
// Schema (for data teams), measurement "readings":
//
//	tags:   site, asset
//	fields: one float field per sensor (name as sent), seq (integer)
//	time:   the reading's timestamp, millisecond precision
package historian

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api/write"
	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/ingest/internal/config"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// Measurement is the InfluxDB measurement of readings.
const Measurement = "readings"

// pointWriter is the part of the blocking InfluxDB write API used here.
type pointWriter interface {
	WritePoint(ctx context.Context, points ...*write.Point) error
}

// source is the part of *kafka.Reader used here.
type source interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
	CommitMessages(ctx context.Context, msgs ...kafka.Message) error
}

// producer is the part of *kafka.Writer used for dead letters.
type producer interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Historian is one historian instance.
type Historian struct {
	cfg     config.Config
	log     *slog.Logger
	metrics *Metrics
	limits  wire.Limits
	client  influxdb2.Client
}

// New validates cfg; it connects to nothing.
func New(cfg config.Config, log *slog.Logger, m *Metrics) (*Historian, error) {
	if err := cfg.Validate(config.Historian); err != nil {
		return nil, fmt.Errorf("historian: %w", err)
	}
	limits := wire.DefaultLimits()
	// Age is the bridge's check at the edge of the system; the historian
	// must store whatever Kafka holds, however old, when it catches up.
	limits.MaxPast, limits.MaxFuture = 100*365*24*time.Hour, 100*365*24*time.Hour
	opts := influxdb2.DefaultOptions().SetPrecision(time.Millisecond).SetHTTPRequestTimeout(30)
	return &Historian{
		cfg: cfg, log: log.With("component", "historian"), metrics: m, limits: limits,
		client: influxdb2.NewClientWithOptions(cfg.Influx.URL, cfg.Influx.Token, opts),
	}, nil
}

// Ready reports whether InfluxDB answers.
func (h *Historian) Ready(ctx context.Context) error {
	ok, err := h.client.Ping(ctx)
	if err != nil {
		return fmt.Errorf("influxdb: %w", err)
	}
	if !ok {
		return errors.New("influxdb: ping failed")
	}
	return nil
}

// Close releases the InfluxDB client.
func (h *Historian) Close() { h.client.Close() }

// Run consumes and writes until ctx ends.
func (h *Historian) Run(ctx context.Context) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:        h.cfg.Kafka.Brokers,
		GroupID:        h.cfg.Kafka.GroupID,
		Topic:          h.cfg.Kafka.Topic,
		MinBytes:       1,
		MaxBytes:       10 << 20,
		MaxWait:        250 * time.Millisecond,
		StartOffset:    kafka.FirstOffset,
		CommitInterval: 0, // commit synchronously, after the write
	})
	defer r.Close()
	dlq := &kafka.Writer{
		Addr:         kafka.TCP(h.cfg.Kafka.Brokers...),
		Topic:        h.cfg.Kafka.DLQTopic,
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: h.cfg.Kafka.BatchTimeout,
	}
	defer dlq.Close()
	return h.consume(ctx, r, h.client.WriteAPIBlocking(h.cfg.Influx.Org, h.cfg.Influx.Bucket), dlq)
}

func (h *Historian) consume(ctx context.Context, r source, w pointWriter, dlq producer) error {
	var msgs, dead []kafka.Message
	points := make([]*write.Point, 0, h.cfg.Influx.BatchSize)
	for {
		clear(points) // let the previous batch's points be collected
		msgs, dead, points = msgs[:0], dead[:0], points[:0]
		if err := h.fetch(ctx, r, func(m kafka.Message) bool {
			msgs = append(msgs, m)
			var err error
			if points, err = h.appendPoints(points, m.Value); err != nil {
				dead = append(dead, h.deadLetter(m, err))
			}
			return len(points) < h.cfg.Influx.BatchSize
		}); err != nil {
			return nil // ctx ended; nothing fetched is committed
		}
		if err := retry(ctx, h.log, "influxdb write", func() error {
			if len(points) == 0 {
				return nil
			}
			start := time.Now()
			err := w.WritePoint(ctx, points...)
			h.metrics.WriteSeconds.Observe(time.Since(start).Seconds())
			if err != nil {
				h.metrics.WriteErrors.Inc()
			}
			return err
		}); err != nil {
			return nil
		}
		if len(dead) > 0 {
			if err := retry(ctx, h.log, "dead-letter write", func() error { return dlq.WriteMessages(ctx, dead...) }); err != nil {
				return nil
			}
		}
		h.metrics.Points.Add(float64(len(points)))
		if err := r.CommitMessages(ctx, msgs...); err != nil {
			// After a rebalance the new owner replays these; the writes are
			// idempotent, so this costs time, not correctness.
			h.metrics.CommitErrors.Inc()
			h.log.Warn("commit failed", "messages", len(msgs), "err", err)
		}
	}
}

// fetch blocks for the first message, then passes messages to add until it
// returns false or flush_interval has passed since the first.
func (h *Historian) fetch(ctx context.Context, r source, add func(kafka.Message) bool) error {
	m, err := r.FetchMessage(ctx)
	if err != nil {
		return err
	}
	if !add(m) {
		return nil
	}
	wait, cancel := context.WithTimeout(ctx, h.cfg.Influx.FlushInterval)
	defer cancel()
	for {
		m, err := r.FetchMessage(wait)
		if err != nil {
			return nil
		}
		if !add(m) {
			return nil
		}
	}
}

// appendPoints adds the points of one record (a reading or a batch of
// readings) to points. A record with any refused reading adds nothing: the
// bridge let only valid readings through, so such a record is corrupt and
// goes whole to the dead-letter topic.
func (h *Historian) appendPoints(points []*write.Point, value []byte) ([]*write.Point, error) {
	items, err := h.limits.Decode(value, time.Now())
	if err != nil {
		return points, err
	}
	for _, it := range items {
		if it.Err != nil {
			return points, it.Err
		}
	}
	for _, it := range items {
		r := it.Reading
		fields := make(map[string]any, len(r.Sensors)+1)
		for k, v := range r.Sensors {
			fields[k] = v
		}
		fields["seq"] = int64(r.Seq) // InfluxDB 1.8 has no unsigned fields by default
		points = append(points, write.NewPoint(Measurement, map[string]string{"site": r.Site, "asset": r.Asset}, fields, r.Time))
	}
	return points, nil
}

func (h *Historian) deadLetter(m kafka.Message, err error) kafka.Message {
	code := wire.CodeOf(err)
	h.metrics.Rejected.WithLabelValues(string(code)).Inc()
	h.log.Warn("record refused", "partition", m.Partition, "offset", m.Offset, "code", code, "err", err)
	return kafka.Message{Key: m.Key, Value: m.Value, Headers: []kafka.Header{
		{Key: wire.HeaderErrorCode, Value: []byte(code)},
		{Key: wire.HeaderErrorReason, Value: []byte(err.Error())},
		{Key: wire.HeaderSource, Value: []byte(m.Topic + "/" + strconv.Itoa(m.Partition) + "@" + strconv.FormatInt(m.Offset, 10))},
		{Key: wire.HeaderReceivedAt, Value: []byte(time.Now().UTC().Format(wire.TimeLayout))},
	}}
}

// retry calls fn with capped exponential backoff until it succeeds or ctx
// ends.
func retry(ctx context.Context, log *slog.Logger, what string, fn func() error) error {
	backoff := 100 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			return nil
		}
		log.Warn(what+" failed, retrying", "backoff", backoff, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}
