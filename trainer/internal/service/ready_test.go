package service

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
)

// TestReadyTriesEveryBroker: readiness holds while any bootstrap broker
// takes a connection, not only the first, and names every broker that
// does not when none does.
func TestReadyTriesEveryBroker(t *testing.T) {
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

	d := (&kafkaconn.Conn{}).Dialer(2 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := dialAny(ctx, d, []string{dead, l.Addr().String()}); err != nil {
		t.Fatalf("first broker down, second up: %v", err)
	}
	err = dialAny(ctx, d, []string{dead, dead})
	if err == nil || strings.Count(err.Error(), "connection refused") != 2 {
		t.Fatalf("every broker down: %v, want both named", err)
	}
}
