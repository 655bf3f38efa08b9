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
	broker := stacktest.KafkaBrokers(t)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := waitKafka(ctx, broker); err != nil {
		t.Fatal(err)
	}
}

func TestCreateTopics(t *testing.T) {
	broker := stacktest.KafkaBrokers(t)[0]
	name := stacktest.Unique("pdmstack-test")
	file := filepath.Join(t.TempDir(), "topics.txt")
	if err := os.WriteFile(file, []byte(name+" 2 cleanup.policy=compact\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, err := kafka.Dial("tcp", broker); err == nil {
			_ = c.DeleteTopics(name)
			c.Close()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Twice: the second run finds the topic and must leave it alone.
	for i := 0; i < 2; i++ {
		if err := createTopics(ctx, broker, file); err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
	}
	c, err := kafka.Dial("tcp", broker)
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
