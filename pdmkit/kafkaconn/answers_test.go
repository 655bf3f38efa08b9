package kafkaconn

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// TestAnswersTriesEveryBroker: Answers holds while any bootstrap broker
// takes a connection, not only the first, and names every broker that
// does not when none does.
func TestAnswersTriesEveryBroker(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// A port nothing listens on.
	dl, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := dl.Addr().String()
	dl.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := (&Conn{Brokers: []string{dead, l.Addr().String()}}).Answers(ctx, 2*time.Second); err != nil {
		t.Fatalf("first broker down, second up: %v", err)
	}
	err = (&Conn{Brokers: []string{dead, dead}}).Answers(ctx, 2*time.Second)
	if err == nil || strings.Count(err.Error(), "connection refused") != 2 {
		t.Fatalf("every broker down: %v, want both named", err)
	}
}
