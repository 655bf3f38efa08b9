// Command pdmstack is the part of deployments/stack/stack.sh that is easier
// to say in Go than in shell: a Kafka readiness check that really produces
// and consumes a record, creation of the project's topics, and the SCRAM
// users of the secured stack.
//
//	pdmstack wait-kafka -brokers 127.0.0.1:9092 -timeout 2m
//	pdmstack topics -brokers 127.0.0.1:9092 -file deployments/kafka/topics.txt
//	pdmstack users -brokers 127.0.0.1:9092 -dir .stack/secrets/kafka
//
// It connects with the security the services read from the environment
// (PDM_KAFKA_TLS_CA_FILE, PDM_KAFKA_SASL_MECHANISM, _USERNAME, _PASSWORD or
// _PASSWORD_FILE); none set: plain TCP.
package main

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pdmstream/pdm/pdmkit/compose"
	"github.com/pdmstream/pdm/pdmkit/config"
	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
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
	dir := fs.String("dir", ".stack/secrets/kafka", "folder of <user>.password files (users only)")
	_ = fs.Parse(os.Args[2:])
	var sec stacktest.KafkaSecurity
	if err := config.Load("", &sec); err != nil {
		fmt.Fprintf(os.Stderr, "pdmstack: %v\n", err)
		os.Exit(2)
	}
	conn, err := kafkaconn.New(strings.Split(*brokers, ",")[:1], sec.TLS, sec.SASL)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pdmstack: %v\n", err)
		os.Exit(2)
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	switch os.Args[1] {
	case "wait-kafka":
		err = waitKafka(ctx, conn)
	case "topics":
		err = createTopics(ctx, conn, *file)
	case "users":
		err = upsertUsers(ctx, conn, *dir)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pdmstack %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: pdmstack wait-kafka|topics|users [-brokers host:port] [-timeout d] [-file topics.txt] [-dir secrets/kafka]")
	os.Exit(2)
}

// waitKafka retries a produce/consume round trip until it succeeds: an open
// port is not enough, the controller must have elected itself and the
// broker must accept acks=all writes.
func waitKafka(ctx context.Context, conn *kafkaconn.Conn) error {
	var last error
	for {
		attempt, cancel := context.WithTimeout(ctx, 15*time.Second)
		last = roundTrip(attempt, conn)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka at %s not ready: %w", conn.Brokers[0], last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func roundTrip(ctx context.Context, kc *kafkaconn.Conn) error {
	if err := stacktest.CreateTopic(ctx, kc, healthTopic, 1, map[string]string{"retention.ms": "3600000"}); err != nil {
		return err
	}
	conn, err := kc.Dialer(0).DialLeader(ctx, "tcp", kc.Brokers[0], healthTopic, 0)
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
func createTopics(ctx context.Context, conn *kafkaconn.Conn, file string) error {
	topics, err := compose.LoadTopics(file)
	if err != nil {
		return err
	}
	client := conn.Client(20 * time.Second)
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
		if err := stacktest.CreateTopic(ctx, conn, t.Name, want, t.Configs); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Printf("created topic %s (%d partitions)\n", t.Name, want)
	}
	return errors.Join(errs...)
}

// upsertUsers sets the SCRAM-SHA-512 credentials of every user with a
// <user>.password file in dir, so users added after the storage was
// formatted exist too. Setting an unchanged password again is harmless.
func upsertUsers(ctx context.Context, conn *kafkaconn.Conn, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.password"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no <user>.password files in %s", dir)
	}
	req := &kafka.AlterUserScramCredentialsRequest{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		salt := make([]byte, 32)
		_, _ = rand.Read(salt)
		salted, err := saltedPassword(strings.TrimSpace(string(b)), salt, 4096)
		if err != nil {
			return err
		}
		req.Upsertions = append(req.Upsertions, kafka.UserScramCredentialsUpsertion{
			Name: strings.TrimSuffix(filepath.Base(f), ".password"), Mechanism: kafka.ScramMechanismSha512,
			Iterations: 4096, Salt: salt, SaltedPassword: salted,
		})
	}
	resp, err := conn.Client(20*time.Second).AlterUserScramCredentials(ctx, req)
	if err != nil {
		return fmt.Errorf("alter SCRAM credentials: %w", err)
	}
	var errs []error
	for _, r := range resp.Results {
		if r.Error != nil {
			errs = append(errs, fmt.Errorf("user %s: %w", r.User, r.Error))
		}
	}
	return errors.Join(errs...)
}

// saltedPassword is SCRAM's Hi(password, salt, iterations) with SHA-512
// (RFC 5802), the form AlterUserScramCredentials takes.
func saltedPassword(password string, salt []byte, iterations int) ([]byte, error) {
	return pbkdf2.Key(sha512.New, password, salt, iterations, sha512.Size)
}
