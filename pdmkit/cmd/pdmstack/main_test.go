package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/segmentio/kafka-go"
)

func TestRoundTrip(t *testing.T) {
	conn := stacktest.KafkaConn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := waitKafka(ctx, conn); err != nil {
		t.Fatal(err)
	}
}

func TestCreateTopics(t *testing.T) {
	conn := stacktest.KafkaConn(t)
	name := stacktest.Unique("pdmstack-test")
	file := filepath.Join(t.TempDir(), "topics.txt")
	if err := os.WriteFile(file, []byte(name+" 2 cleanup.policy=compact\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = conn.Client(10*time.Second).DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{name}})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Twice: the second run finds the topic and must leave it alone.
	for i := 0; i < 2; i++ {
		if err := createTopics(ctx, conn, file); err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
	}
	c, err := conn.Dialer(0).Dial("tcp", conn.Brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	parts, err := c.ReadPartitions(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 2 {
		t.Errorf("%s has %d partitions, want 2", name, len(parts))
	}
}

// TestUsers: on a secured broker the admin upserts a user that was not
// there at format, who can then produce; the round trip works as admin.
func TestUsers(t *testing.T) {
	cluster := stacktest.StartSecureKafka(t, 1)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "late.password"), []byte("late-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := cluster.Conn("admin")
	if err := waitKafka(ctx, admin); err != nil {
		t.Fatal(err)
	}
	if err := upsertUsers(ctx, admin, dir); err != nil {
		t.Fatal(err)
	}
	late := cluster.ConnWith("late", "late-secret")
	w := &kafka.Writer{Addr: kafka.TCP(late.Brokers...), Topic: healthTopic, Transport: late.Transport()}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Value: []byte("hello")}); err != nil {
		t.Fatalf("the upserted user cannot produce: %v", err)
	}
}
