package follow

import (
	"context"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/pdmkit/stacktest"
)

// Against the local Kafka: from the start, every record of every
// partition; with Since, only the recent ones.
func TestRunFromStartAndSince(t *testing.T) {
	kc := stacktest.KafkaConn(t)
	topic := stacktest.Topic(t, "follow", 3)
	w := &kafka.Writer{Addr: kafka.TCP(kc.Brokers...), Transport: kc.Transport(), Topic: topic, Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	old := time.Now().Add(-2 * time.Hour)
	var msgs []kafka.Message
	for _, k := range []string{"a", "b", "c", "d"} {
		msgs = append(msgs, kafka.Message{Key: []byte(k), Value: []byte("old-" + k), Time: old})
	}
	for _, k := range []string{"a", "b", "c", "d"} {
		msgs = append(msgs, kafka.Message{Key: []byte(k), Value: []byte("new-" + k), Time: time.Now()})
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	collect := func(since time.Duration, want int) []string {
		ctx, cancel := context.WithCancel(context.Background())
		var mu sync.Mutex
		var got []string
		done := make(chan error)
		go func() {
			done <- Run(ctx, Options{Conn: kc, Topic: topic, Since: since, Log: slog.New(slog.NewTextHandler(io.Discard, nil))},
				func(_ context.Context, m *kafka.Message) {
					mu.Lock()
					got = append(got, string(m.Value))
					mu.Unlock()
				})
		}()
		stacktest.Eventually(t, 20*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(got) >= want
		}, "since %s: %d records", since, want)
		time.Sleep(300 * time.Millisecond) // no more than want arrive
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v, want nil when ctx ends", err)
		}
		mu.Lock()
		defer mu.Unlock()
		sort.Strings(got)
		return got
	}
	if got := strings.Join(collect(0, 8), " "); got != "new-a new-b new-c new-d old-a old-b old-c old-d" {
		t.Fatalf("from the start: %s", got)
	}
	if got := strings.Join(collect(time.Hour, 4), " "); got != "new-a new-b new-c new-d" {
		t.Fatalf("since an hour: %s", got)
	}
}
