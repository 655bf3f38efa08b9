// Package historian writes every reading from Kafka to InfluxDB.
//
// It is a Kafka consumer group, so instances split the partitions. Readings
// are written in batches (up to influx.batch_size points or
// influx.flush_interval), each write is retried with jittered backoff while
// InfluxDB is down, and offsets are committed only after InfluxDB accepted
// the batch. A record InfluxDB refuses for its content (a field type
// conflict, a point outside the retention policy) goes to the dead-letter
// topic with InfluxDB's reason, so one bad record cannot hold its partition.
// While Kafka is away the historian waits, however long it takes, and
// readiness says so.
// A crash replays the uncommitted batch; the write is idempotent because a
// point is identified by measurement, tags and timestamp, so writing the
// same reading twice leaves one point.
//
// Schema (for data teams), measurement "readings":
//
//	tags:   site, asset
//	fields: one float field per sensor (name as sent), seq (integer)
//	time:   the reading's timestamp, millisecond precision
//
// docs/data.md has it with the scorer's measurements and queries over them.
package historian

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	influxhttp "github.com/influxdata/influxdb-client-go/v2/api/http"
	"github.com/influxdata/influxdb-client-go/v2/api/write"
	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/ingest/internal/config"
	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
	"github.com/pdmstream/pdm/pdmkit/retry"
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
	closeOnce sync.Once
	cfg       config.Config
	log       *slog.Logger
	metrics   *Metrics
	limits    wire.Limits
	client    influxdb2.Client
	// kafka is the way to the brokers (kafka.brokers, kafka.tls,
	// kafka.sasl).
	kafka *kafkaconn.Conn
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
	kc, err := cfg.Kafka.Conn()
	if err != nil {
		return nil, fmt.Errorf("historian: %w", err)
	}
	opts := influxdb2.DefaultOptions().SetPrecision(time.Millisecond).SetHTTPRequestTimeout(30)
	return &Historian{
		cfg: cfg, log: log.With("component", "historian"), metrics: m, limits: limits,
		client: influxdb2.NewClientWithOptions(cfg.Influx.URL, cfg.Influx.Token, opts),
		kafka:  kc,
	}, nil
}

// Ready reports whether a Kafka broker and InfluxDB answer: while either
// is away, or Kafka refuses the historian's credentials, it waits, and
// says so here.
func (h *Historian) Ready(ctx context.Context) error {
	if err := h.kafka.Answers(ctx, 0); err != nil {
		return fmt.Errorf("waiting for kafka: %w", err)
	}
	ok, err := h.client.Ping(ctx)
	if err != nil {
		return fmt.Errorf("influxdb: %w", err)
	}
	if !ok {
		return errors.New("influxdb: ping failed")
	}
	return nil
}

// Close releases the InfluxDB client; safe to call twice. Run has flushed
// its writes by the time it returns, so there is nothing to wait for.
func (h *Historian) Close(context.Context) error {
	h.closeOnce.Do(h.client.Close)
	return nil
}

// Run consumes and writes until ctx ends. It first waits for Kafka to
// answer, logging why it does not: the reader retries a refused connection
// or authentication by itself, silently.
func (h *Historian) Run(ctx context.Context) error {
	if err := retry.Do(ctx, backoff, h.retrying("kafka connection"), func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return h.kafka.Answers(ctx, 0)
	}); err != nil {
		return nil // ctx ended
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: h.kafka.Brokers,
		Dialer:  h.kafka.Dialer(0),
		GroupID: h.cfg.Kafka.Group,
		// A member gone with a restarted broker holds its partitions
		// for the session timeout; the heartbeat and the rebalance follow
		// it, as in the scorer's group.
		SessionTimeout:    h.cfg.Kafka.SessionTimeout,
		HeartbeatInterval: h.cfg.Kafka.SessionTimeout / 5,
		RebalanceTimeout:  15 * time.Second,
		Topic:             h.cfg.Kafka.Readings,
		MinBytes:          1,
		MaxBytes:          10 << 20,
		MaxWait:           250 * time.Millisecond,
		StartOffset:       kafka.FirstOffset,
		CommitInterval:    0, // commit synchronously, after the write
	})
	defer r.Close()
	dlq := &kafka.Writer{
		Addr:         kafka.TCP(h.kafka.Brokers...),
		Transport:    h.kafka.Transport(),
		Topic:        h.cfg.Kafka.DeadLetters,
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: h.cfg.Kafka.BatchTimeout,
	}
	defer dlq.Close()
	return h.consume(ctx, r, h.client.WriteAPIBlocking(h.cfg.Influx.Org, h.cfg.Influx.Bucket), dlq)
}

func (h *Historian) consume(ctx context.Context, r source, w pointWriter, dlq producer) error {
	var msgs, dead []kafka.Message
	var ends []int // ends[i]: the end in points of msgs[i]'s points
	points := make([]*write.Point, 0, h.cfg.Influx.BatchSize)
	for {
		clear(points) // let the previous batch's points be collected
		msgs, dead, ends, points = msgs[:0], dead[:0], ends[:0], points[:0]
		// While Kafka is away the historian waits, however long it takes:
		// the reader rejoins the group by itself.
		if err := retry.Do(ctx, backoff, h.fetchFailed, func(ctx context.Context) error {
			return h.fetch(ctx, r, func(m kafka.Message) bool {
				msgs = append(msgs, m)
				var err error
				if points, err = h.appendPoints(points, m.Value); err != nil {
					dead = append(dead, h.deadLetter(m, wire.CodeOf(err), err))
				}
				ends = append(ends, len(points))
				return len(points) < h.cfg.Influx.BatchSize
			})
		}); err != nil {
			return nil // ctx ended; nothing fetched is committed
		}
		refused, err := h.write(ctx, w, msgs, ends, points)
		if err != nil {
			return nil // ctx ended
		}
		dead = append(dead, refused...)
		if len(dead) > 0 {
			if err := retry.Do(ctx, backoff, h.retrying("dead-letter write"), func(ctx context.Context) error {
				return dlq.WriteMessages(ctx, dead...)
			}); err != nil {
				return nil
			}
		}
		if err := r.CommitMessages(ctx, msgs...); err != nil {
			// After a rebalance the new owner replays these; the writes are
			// idempotent, so this costs time, not correctness.
			h.metrics.CommitErrors.Inc()
			h.log.Warn("commit failed", "messages", len(msgs), "err", err)
		}
	}
}

// backoff paces every retry of the historian.
var backoff = retry.Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second}

func (h *Historian) fetchFailed(attempt int, err error, wait time.Duration) {
	h.metrics.FetchErrors.Inc()
	h.log.Warn("kafka fetch failed; waiting for the broker", "attempt", attempt, "backoff", wait, "err", err)
}

func (h *Historian) retrying(what string) func(int, error, time.Duration) {
	return func(attempt int, err error, wait time.Duration) {
		h.log.Warn(what+" failed, retrying", "attempt", attempt, "backoff", wait, "err", err)
	}
}

// write writes the batch's points (msgs[i]'s are points[ends[i-1]:ends[i]]),
// retrying while InfluxDB is away, and returns the dead letters of the
// records InfluxDB refused: when it refuses the batch, each record is
// written on its own so that only the refused ones are set aside and the
// partition moves on. It fails only when ctx ends.
func (h *Historian) write(ctx context.Context, w pointWriter, msgs []kafka.Message, ends []int, points []*write.Point) ([]kafka.Message, error) {
	err := h.writePoints(ctx, w, points)
	if !errors.Is(err, errRefused) {
		if err == nil {
			h.metrics.Points.Add(float64(len(points)))
		}
		return nil, err
	}
	var dead []kafka.Message
	for i, m := range msgs {
		from := 0
		if i > 0 {
			from = ends[i-1]
		}
		if from == ends[i] {
			continue // refused by the decoder already
		}
		switch err := h.writePoints(ctx, w, points[from:ends[i]]); {
		case errors.Is(err, errRefused):
			dead = append(dead, h.deadLetter(m, codeRefused, err))
		case err != nil:
			return nil, err
		default:
			h.metrics.Points.Add(float64(ends[i] - from))
		}
	}
	return dead, nil
}

// errRefused marks a write InfluxDB refused for its content.
var errRefused = errors.New("influxdb refused the points")

// codeRefused is the dead-letter code of records InfluxDB refused.
const codeRefused wire.Code = "influx_refused"

// writePoints writes points, retrying with backoff while the failure is
// InfluxDB's or the link's; it returns an error wrapping errRefused when
// InfluxDB refuses the data itself, or ctx's error.
func (h *Historian) writePoints(ctx context.Context, w pointWriter, points []*write.Point) error {
	if len(points) == 0 {
		return nil
	}
	return retry.Do(ctx, backoff, h.retrying("influxdb write"), func(ctx context.Context) error {
		start := time.Now()
		err := w.WritePoint(ctx, points...)
		h.metrics.WriteSeconds.Observe(time.Since(start).Seconds())
		if err == nil {
			return nil
		}
		h.metrics.WriteErrors.Inc()
		if refusal(err) {
			return retry.Permanent(fmt.Errorf("%w: %w", errRefused, err))
		}
		return err
	})
}

// refusal reports whether InfluxDB refused the data itself — a field type
// conflict, a point outside the retention policy, a line it cannot parse,
// a body too large — so that writing it again cannot succeed. Other
// failures (InfluxDB down or overloaded, a missing database, bad
// credentials) are the server's or the configuration's and are retried
// until they are fixed.
func refusal(err error) bool {
	var he *influxhttp.Error
	if !errors.As(err, &he) {
		return false
	}
	switch he.StatusCode {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return true
	}
	return false
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

func (h *Historian) deadLetter(m kafka.Message, code wire.Code, err error) kafka.Message {
	h.metrics.Rejected.WithLabelValues(string(code)).Inc()
	h.log.Warn("record refused", "partition", m.Partition, "offset", m.Offset, "code", code, "err", err)
	return kafka.Message{Key: m.Key, Value: m.Value, Headers: []kafka.Header{
		{Key: wire.HeaderErrorCode, Value: []byte(code)},
		{Key: wire.HeaderErrorReason, Value: []byte(err.Error())},
		{Key: wire.HeaderSource, Value: []byte(m.Topic + "/" + strconv.Itoa(m.Partition) + "@" + strconv.FormatInt(m.Offset, 10))},
		{Key: wire.HeaderReceivedAt, Value: []byte(time.Now().UTC().Format(wire.TimeLayout))},
	}}
}
