// Command pdmstack is the part of deployments/stack/stack.sh that is easier
// to say in Go than in shell: a Kafka readiness check that really produces
// and consumes a record, and creation of the project's topics.
//
//	pdmstack wait-kafka -brokers 127.0.0.1:9092 -timeout 2m
//	pdmstack topics -brokers 127.0.0.1:9092 -file deployments/kafka/topics.txt
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pdmstream/pdm/pdmkit/compose"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/segmentio/kafka-go"
)

// healthTopic carries the readiness round trip. It has one partition and a
// short retention, and is not one of the project's topics.
const healthTopic = "pdm.stack.health"

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fs := flag.NewFlagSet("pdmstack "+os.Args[1], flag.ExitOnError)
	brokers := fs.String("brokers", stacktest.Env("PDM_KAFKA_BROKERS", "127.0.0.1:9092"), "Kafka bootstrap broker (PDM_KAFKA_BROKERS; the first is used)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	file := fs.String("file", "deployments/kafka/topics.txt", "topics file (topics only)")
	_ = fs.Parse(os.Args[2:])
	broker := strings.Split(*brokers, ",")[0]

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var err error
	switch os.Args[1] {
	case "wait-kafka":
		err = waitKafka(ctx, broker)
	case "topics":
		err = createTopics(ctx, broker, *file)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pdmstack %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: pdmstack wait-kafka|topics [-brokers host:port] [-timeout d] [-file topics.txt]")
	os.Exit(2)
}

// waitKafka retries a produce/consume round trip until it succeeds: an open
// port is not enough, the controller must have elected itself and the
// broker must accept acks=all writes.
func waitKafka(ctx context.Context, broker string) error {
	var last error
	for {
		attempt, cancel := context.WithTimeout(ctx, 15*time.Second)
		last = roundTrip(attempt, broker)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka at %s not ready: %w", broker, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func roundTrip(ctx context.Context, broker string) error {
	if err := stacktest.CreateTopic(ctx, broker, healthTopic, 1, map[string]string{"retention.ms": "3600000"}); err != nil {
		return err
	}
	conn, err := kafka.DialLeader(ctx, "tcp", broker, healthTopic, 0)
	if err != nil {
		return fmt.Errorf("dial leader: %w", err)
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	end, err := conn.ReadLastOffset()
	if err != nil {
		return fmt.Errorf("read last offset: %w", err)
	}
	token := make([]byte, 8)
	_, _ = rand.Read(token)
	want := hex.EncodeToString(token)
	// A Conn writes with acks=all (-1) unless told otherwise.
	if _, err := conn.WriteMessages(kafka.Message{Value: []byte(want)}); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	if _, err := conn.Seek(end, kafka.SeekAbsolute); err != nil {
		return fmt.Errorf("seek: %w", err)
	}
	// Other checks may have written after our offset; read until ours.
	for {
		m, err := conn.ReadMessage(1 << 20)
		if err != nil {
			return fmt.Errorf("consume: %w", err)
		}
		if string(m.Value) == want {
			return nil
		}
	}
}

// createTopics creates every topic of the file that does not exist yet.
// An existing topic is left alone, with a warning when its partition count
// differs from the wanted one (Kafka cannot shrink a topic).
func createTopics(ctx context.Context, broker, file string) error {
	topics, err := compose.LoadTopics(file)
	if err != nil {
		return err
	}
	client := &kafka.Client{Addr: kafka.TCP(broker), Timeout: 20 * time.Second}
	var errs []error
	for _, t := range topics {
		want, err := t.PartitionsFrom(os.Getenv)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{t.Name}})
		if err != nil {
			return fmt.Errorf("metadata: %w", err)
		}
		if len(meta.Topics) == 1 && meta.Topics[0].Error == nil {
			if have := len(meta.Topics[0].Partitions); have != want {
				fmt.Fprintf(os.Stderr, "pdmstack: topic %s exists with %d partitions, not %d; left as it is\n", t.Name, have, want)
			}
			continue
		}
		if err := stacktest.CreateTopic(ctx, broker, t.Name, want, t.Configs); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Printf("created topic %s (%d partitions)\n", t.Name, want)
	}
	return errors.Join(errs...)
}
