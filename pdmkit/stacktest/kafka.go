package stacktest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// ReadN reads topic from the first offset of every partition until it has
// n records or timeout passes, and returns what it read, in order within
// each partition. It fails the test when fewer than n arrive, and waits a
// little past n to catch records that should not exist.
func ReadN(t testing.TB, topic string, n int, timeout time.Duration) []kafka.Message {
	t.Helper()
	kc := KafkaConn(t)
	conn, err := kc.Dialer(0).Dial("tcp", kc.Brokers[0])
	if err != nil {
		t.Fatalf("stacktest: dial kafka: %v", err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatalf("stacktest: partitions of %s: %v", topic, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var (
		mu   sync.Mutex
		got  []kafka.Message
		wg   sync.WaitGroup
		done = make(chan struct{})
		once sync.Once
	)
	for _, p := range parts {
		wg.Add(1)
		go func(partition int) {
			defer wg.Done()
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: kc.Brokers, Dialer: kc.Dialer(0), Topic: topic, Partition: partition, MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond})
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					return
				}
				mu.Lock()
				got = append(got, m)
				if len(got) >= n {
					once.Do(func() { close(done) })
				}
				mu.Unlock()
			}
		}(p.ID)
	}
	select {
	case <-done:
		// Linger briefly: duplicates or strays beyond n would show here.
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
		}
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	if len(got) < n {
		t.Fatalf("stacktest: %d records in %s after %s, want %d", len(got), topic, timeout, n)
	}
	return got
}
