package stacktest

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestClusterSurvivesAKilledBroker: a three-node cluster of the test's
// own keeps a replicated topic writable with one broker killed, and the
// broker rejoins after a restart.
func TestClusterSurvivesAKilledBroker(t *testing.T) {
	c := StartKafka(t, 3)
	topic := c.Topic("cluster", 3)
	w := &kafka.Writer{Addr: kafka.TCP(c.Brokers()...), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sent := 0
	write := func(n int) {
		t.Helper()
		msgs := make([]kafka.Message, n)
		for i := range msgs {
			msgs[i] = kafka.Message{Value: []byte(strconv.Itoa(sent))}
			sent++
		}
		// Only the messages that failed are written again.
		Eventually(t, time.Minute, func() bool {
			err := w.WriteMessages(ctx, msgs...)
			var we kafka.WriteErrors
			if errors.As(err, &we) {
				var failed []kafka.Message
				for i, e := range we {
					if e != nil {
						failed = append(failed, msgs[i])
					}
				}
				msgs = failed
			}
			return err == nil
		}, "write to %s", topic)
	}
	write(30)
	c.Kill(0)
	write(30)
	c.Restart(0)
	write(30)
	// Every write is in the topic (at least once: a write whose answer was
	// lost with the broker is sent again).
	seen := map[string]bool{}
	for p := range 3 {
		conn, err := kafka.DialLeader(ctx, "tcp", c.Brokers()[1], topic, p)
		if err != nil {
			t.Fatal(err)
		}
		last, err := conn.ReadLastOffset()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Seek(0, kafka.SeekAbsolute); err != nil {
			t.Fatal(err)
		}
		for range last {
			m, err := conn.ReadMessage(1 << 20)
			if err != nil {
				t.Fatal(err)
			}
			seen[string(m.Value)] = true
		}
		conn.Close()
	}
	if len(seen) != sent {
		t.Fatalf("%d of the %d messages written are in the topic", len(seen), sent)
	}
}
