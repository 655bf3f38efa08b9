// Package follow reads every partition of a Kafka topic, from its start or
// from a recent time, and hands each record to a function, for the views
// every scorer instance keeps of what all instances published (alerts,
// the fleet's scores).
//
// Invariants:
//   - A Kafka outage of any length is waited out with jittered backoff; Run
//     returns nil only when ctx ends.
//   - Within a partition records are applied in offset order, one at a
//     time; partitions are followed concurrently, so apply must be safe
//     for concurrent use.
package follow

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
	"github.com/pdmstream/pdm/pdmkit/retry"
)

// Options say what to follow.
type Options struct {
	Conn  *kafkaconn.Conn
	Topic string
	// Since, when positive, starts each partition at its first record
	// stamped at or after now−Since; zero starts at the first offset.
	Since time.Duration
	Log   *slog.Logger
}

// backoff paces the waits for Kafka.
var backoff = retry.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}

// Run follows every partition of o.Topic until ctx ends.
func Run(ctx context.Context, o Options, apply func(context.Context, *kafka.Message)) error {
	var parts []kafka.Partition
	client := o.Conn.Client(10 * time.Second)
	if err := retry.Do(ctx, backoff, retrying(o.Log, "partitions of "+o.Topic), func(ctx context.Context) error {
		meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{o.Topic}})
		if err != nil {
			return fmt.Errorf("follow: partitions of %s: %w", o.Topic, err)
		}
		if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
			return fmt.Errorf("follow: partitions of %s: %v", o.Topic, meta.Topics)
		}
		parts = meta.Topics[0].Partitions
		return nil
	}); err != nil {
		return nil // ctx ended
	}
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			partition(ctx, o, p.ID, apply)
		}()
	}
	wg.Wait()
	return nil
}

func partition(ctx context.Context, o Options, id int, apply func(context.Context, *kafka.Message)) {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: o.Conn.Brokers, Dialer: o.Conn.Dialer(0), Topic: o.Topic, Partition: id,
		MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	where := fmt.Sprintf("%s/%d", o.Topic, id)
	if err := retry.Do(ctx, backoff, retrying(o.Log, "seek "+where), func(ctx context.Context) error {
		if o.Since > 0 {
			return r.SetOffsetAt(ctx, time.Now().Add(-o.Since))
		}
		return r.SetOffset(kafka.FirstOffset)
	}); err != nil {
		return // ctx ended
	}
	for {
		// The reader reconnects by itself and keeps its offset.
		var m kafka.Message
		if err := retry.Do(ctx, backoff, retrying(o.Log, "read "+where), func(ctx context.Context) (err error) {
			m, err = r.FetchMessage(ctx)
			return err
		}); err != nil {
			return // ctx ended
		}
		apply(ctx, &m)
	}
}

func retrying(log *slog.Logger, what string) func(int, error, time.Duration) {
	return func(attempt int, err error, wait time.Duration) {
		log.Warn(what+" failed, retrying", "attempt", attempt, "backoff", wait, "err", err)
	}
}
