package kafkaconn_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/tlsconf"
)

func TestSASLBlock(t *testing.T) {
	for _, tt := range []struct {
		sasl kafkaconn.SASL
		want string // "" = accepted
	}{
		{kafkaconn.SASL{}, ""},
		{kafkaconn.SASL{Mechanism: "SCRAM-SHA-512", Username: "u", Password: "p"}, ""},
		{kafkaconn.SASL{Mechanism: "SCRAM-SHA-256", Username: "u", Password: "p"}, ""},
		{kafkaconn.SASL{Mechanism: "PLAIN", Username: "u", Password: "p"}, ""},
		{kafkaconn.SASL{Mechanism: "SCRAM-SHA-1", Username: "u", Password: "p"}, `sasl.mechanism "SCRAM-SHA-1"`},
		{kafkaconn.SASL{Mechanism: "SCRAM-SHA-512", Username: "u"}, "needs sasl.username and sasl.password"},
		{kafkaconn.SASL{Username: "u", Password: "p"}, "sasl.mechanism is empty"},
	} {
		c, err := kafkaconn.New([]string{"127.0.0.1:9092"}, tlsconf.Config{}, tt.sasl)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v: %v", tt.sasl.Mechanism, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: error %v, want %q", tt.sasl.Mechanism, err, tt.want)
		case err == nil && (c.SASL == nil) != (tt.sasl.Mechanism == ""):
			t.Errorf("%s: mechanism %v", tt.sasl.Mechanism, c.SASL)
		}
	}
	if _, err := kafkaconn.New(nil, tlsconf.Config{CAFile: "/nonexistent"}, kafkaconn.SASL{}); err == nil {
		t.Error("a missing ca_file was accepted")
	}
}

// TestSecuredBroker: against a broker configured as the secured stack
// (SASL_SSL, SCRAM-SHA-512) the right password produces and consumes
// through a Writer (Transport), a Reader (Dialer) and a Client; a wrong one
// fails with an error that names SASL authentication, and a client without
// SASL gets nothing.
func TestSecuredBroker(t *testing.T) {
	cluster := stacktest.StartSecureKafka(t, 1)
	topic := cluster.Topic("kafkaconn", 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	ingest := cluster.Conn("ingest")
	w := &kafka.Writer{Addr: kafka.TCP(ingest.Brokers...), Topic: topic, Transport: ingest.Transport(), BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("secured")}); err != nil {
		t.Fatalf("produce with the right password: %v", err)
	}
	scorer := cluster.Conn("scorer")
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: scorer.Brokers, Dialer: scorer.Dialer(0), Topic: topic, GroupID: stacktest.Unique("g"),
		StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	m, err := r.ReadMessage(ctx)
	if err != nil || string(m.Value) != "secured" {
		t.Fatalf("consume with the right password: %q, %v", m.Value, err)
	}
	if _, err := scorer.Client(10*time.Second).Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}}); err != nil {
		t.Fatalf("client with the right password: %v", err)
	}

	wrong := cluster.ConnWith("ingest", "not-the-password")
	bad := &kafka.Writer{Addr: kafka.TCP(wrong.Brokers...), Topic: topic, Transport: wrong.Transport(), MaxAttempts: 1}
	defer bad.Close()
	err = bad.WriteMessages(ctx, kafka.Message{Value: []byte("forged")})
	if err == nil {
		t.Fatal("produce with a wrong password succeeded")
	}
	if !strings.Contains(err.Error(), "SASL Authentication") {
		t.Errorf("wrong password: %v, want an error naming SASL authentication", err)
	}
	t.Logf("wrong password, writer: %v", err)
	_, err = wrong.Dialer(5*time.Second).DialLeader(ctx, "tcp", wrong.Brokers[0], topic, 0)
	if err == nil || !strings.Contains(err.Error(), "SASL Authentication") {
		t.Errorf("wrong password, dialer: %v, want an error naming SASL authentication", err)
	}

	// TLS without SASL: the broker closes the connection.
	noSASL, err := kafkaconn.New(cluster.Brokers(), tlsconf.Config{CAFile: cluster.CAFile()}, kafkaconn.SASL{})
	if err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 10*time.Second)
	defer cancelShort()
	if _, err := noSASL.Client(5*time.Second).Metadata(short, &kafka.MetadataRequest{Topics: []string{topic}}); err == nil {
		t.Error("a client without SASL read metadata")
	}
}
