package stream

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestAckGivesUpOnABusyPartition: a partition loop that does not take the
// request (busy scoring) makes Ack fail after its deadline with an error
// that says so, rather than block its caller for ever.
func TestAckGivesUpOnABusyPartition(t *testing.T) {
	saved := ackTimeout
	t.Cleanup(func() { ackTimeout = saved })
	ackTimeout = 100 * time.Millisecond
	c := &Consumer{acks: map[int]*ackPort{0: {ch: make(chan ackReq), done: make(chan struct{})}}}
	start := time.Now()
	_, err := c.Ack(context.Background(), "a/1", "op", "")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("Ack on a busy partition: %v after %v", err, time.Since(start))
	}
}
