package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
	"github.com/pdmstream/pdm/pdmkit/retry"
)

// KafkaLog keeps the registry in partition 0 of a compacted topic.
type KafkaLog struct {
	conn   *kafkaconn.Conn
	client *kafka.Client
	topic  string
	log    *slog.Logger
	w      *kafka.Writer
	// next is the offset after the last record applied (-1 before Follow
	// has read anything).
	next atomic.Int64
	// offsets holds each key's newest offset, for Read.
	mu      sync.Mutex
	offsets map[string]int64
	// failed is why the last attempt to reach the topic failed, for
	// readiness; nil once an attempt succeeds.
	failed atomic.Pointer[error]
}

// Failed is why the last attempt to read or reach the models topic failed
// (a refused login, the broker away), nil when the last one succeeded.
func (k *KafkaLog) Failed() error {
	if p := k.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// NewKafkaLog connects nothing; Follow and Append do.
func NewKafkaLog(conn *kafkaconn.Conn, topic string, log *slog.Logger) *KafkaLog {
	return &KafkaLog{
		conn: conn, client: conn.Client(10 * time.Second), topic: topic, log: log, offsets: map[string]int64{},
		w: &kafka.Writer{
			Addr:         kafka.TCP(conn.Brokers...),
			Transport:    conn.Transport(),
			Topic:        topic,
			Balancer:     firstPartition{},
			RequiredAcks: kafka.RequireAll,
			BatchTimeout: time.Millisecond,
			BatchBytes:   16 << 20,
			MaxAttempts:  5,
		},
	}
}

// firstPartition puts every record on the lowest partition, so records are
// applied in the order they were written.
type firstPartition struct{}

func (firstPartition) Balance(_ kafka.Message, partitions ...int) int {
	p := partitions[0]
	for _, q := range partitions {
		p = min(p, q)
	}
	return p
}

// Append writes one record and returns once every in-sync replica has it.
func (k *KafkaLog) Append(ctx context.Context, key string, value []byte) error {
	if err := k.w.WriteMessages(ctx, kafka.Message{Key: []byte(key), Value: value}); err != nil {
		return fmt.Errorf("registry: append %s: %w", key, err)
	}
	return nil
}

// Sync waits until Follow has applied every record that was in the topic
// when Sync was called, so a change made through another instance a moment
// ago is seen here before this instance changes the registry.
func (k *KafkaLog) Sync(ctx context.Context) error {
	// After a broker failure the partition has no leader until the cluster
	// elects one (KRaft notices a dead broker after
	// broker.session.timeout.ms, 9 s): wait that out, as Append's writer
	// does, rather than refuse the call at once.
	wait, cancel := context.WithTimeout(ctx, syncPatience)
	defer cancel()
	var end int64
	if err := retry.Do(wait, backoff, nil, func(ctx context.Context) (err error) {
		end, err = k.endOffset(ctx)
		return err
	}); err != nil {
		return err
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for k.next.Load() < end {
		select {
		case <-ctx.Done():
			return fmt.Errorf("registry: catching up with %s: %w", k.topic, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// Close flushes and closes the writer.
func (k *KafkaLog) Close(context.Context) error { return k.w.Close() }

// Follow creates the topic when missing (compacted), reads it from the
// start, passes each record to apply in order, calls caughtUp once it has
// read what existed when it started, and keeps following until ctx ends.
// While Kafka is away it waits and tries again, however long it takes.
func (k *KafkaLog) Follow(ctx context.Context, apply func(key string, value []byte), caughtUp func()) error {
	var end int64
	if err := retry.Do(ctx, backoff, k.retrying("registry start"), func(ctx context.Context) error {
		if err := k.ensureTopic(ctx); err != nil {
			return err
		}
		var err error
		end, err = k.endOffset(ctx)
		return err
	}); err != nil {
		return nil // ctx ended
	}
	k.failed.Store(nil)
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   k.conn.Brokers,
		Dialer:    k.conn.Dialer(0),
		Topic:     k.topic,
		Partition: 0,
		MinBytes:  1,
		MaxBytes:  64 << 20,
		// A short wait bounds how late a new activation is seen when the
		// fetch that carries it races the previous long poll.
		MaxWait: 100 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(kafka.FirstOffset); err != nil {
		return fmt.Errorf("registry: seek: %w", err)
	}
	if end == 0 {
		caughtUp()
	}
	signalled := end == 0
	for {
		// The reader reconnects by itself and keeps its offset.
		var m kafka.Message
		if err := retry.Do(ctx, backoff, k.retrying("registry read"), func(ctx context.Context) (err error) {
			m, err = r.FetchMessage(ctx)
			return err
		}); err != nil {
			return nil // ctx ended
		}
		k.failed.Store(nil)
		k.mu.Lock()
		k.offsets[string(m.Key)] = m.Offset
		k.mu.Unlock()
		apply(string(m.Key), m.Value)
		k.next.Store(m.Offset + 1)
		if !signalled && m.Offset+1 >= end {
			signalled = true
			caughtUp()
		}
	}
}

// Read returns the newest record of key that Follow has seen, read again
// from the topic at its offset (compaction keeps a key's newest record).
func (k *KafkaLog) Read(ctx context.Context, key string) ([]byte, error) {
	k.mu.Lock()
	off, ok := k.offsets[key]
	k.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("registry: no record %s in %s", key, k.topic)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: k.conn.Brokers, Dialer: k.conn.Dialer(0), Topic: k.topic, Partition: 0, MinBytes: 1, MaxBytes: 64 << 20})
	defer r.Close()
	if err := r.SetOffset(off); err != nil {
		return nil, fmt.Errorf("registry: seek %s: %w", key, err)
	}
	m, err := r.ReadMessage(ctx)
	if err != nil {
		return nil, fmt.Errorf("registry: read %s at offset %d: %w", key, off, err)
	}
	if string(m.Key) != key || m.Offset != off {
		return nil, fmt.Errorf("registry: offset %d of %s holds %s at %d, not %s", off, k.topic, m.Key, m.Offset, key)
	}
	return m.Value, nil
}

// backoff paces the registry's waits for Kafka.
var backoff = retry.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}

// syncPatience bounds how long Sync waits for the topic's end offset.
const syncPatience = 20 * time.Second

func (k *KafkaLog) retrying(what string) func(int, error, time.Duration) {
	return func(attempt int, err error, wait time.Duration) {
		k.failed.Store(&err)
		k.log.Warn(what+" failed, retrying", "attempt", attempt, "backoff", wait, "err", err)
	}
}

// endOffset returns the offset after the topic's last record (0 when it
// holds none), asking any of the brokers.
func (k *KafkaLog) endOffset(ctx context.Context) (int64, error) {
	resp, err := k.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		k.topic: {kafka.FirstOffsetOf(0), kafka.LastOffsetOf(0)}}})
	if err != nil {
		return 0, fmt.Errorf("registry: offsets of %s: %w", k.topic, err)
	}
	ps := resp.Topics[k.topic]
	if len(ps) != 1 || ps[0].Error != nil {
		return 0, fmt.Errorf("registry: offsets of %s: %v", k.topic, ps)
	}
	if ps[0].LastOffset <= ps[0].FirstOffset {
		return 0, nil
	}
	return ps[0].LastOffset, nil
}

func (k *KafkaLog) ensureTopic(ctx context.Context) error {
	// First a plain connection: its error names a refused password or
	// certificate, which the admin request below reports only as
	// "Broker Not Available".
	if err := k.conn.Answers(ctx, 0); err != nil {
		return fmt.Errorf("registry: kafka: %w", err)
	}
	resp, err := k.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		// The cluster's default.replication.factor.
		Topic: k.topic, NumPartitions: 1, ReplicationFactor: -1,
		ConfigEntries: []kafka.ConfigEntry{
			{ConfigName: "cleanup.policy", ConfigValue: "compact"},
			// Artifacts of larger networks pass the 1 MiB default.
			{ConfigName: "max.message.bytes", ConfigValue: "16777216"},
		},
	}}})
	if err != nil {
		return fmt.Errorf("registry: create topic %s: %w", k.topic, err)
	}
	if e := resp.Errors[k.topic]; e != nil && !errors.Is(e, kafka.TopicAlreadyExists) {
		return fmt.Errorf("registry: create topic %s: %w", k.topic, e)
	}
	return nil
}
