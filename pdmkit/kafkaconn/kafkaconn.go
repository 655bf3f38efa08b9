// Package kafkaconn is how every service reaches Kafka: one place that
// turns the brokers, the shared tls block and the sasl block of a
// service's kafka section into kafka-go's Dialer (readers, connections)
// and Transport (writers, clients).
//
// A section holds the two blocks beside its brokers:
//
//	TLS  tlsconf.Config `yaml:"tls" env:"PDM_KAFKA_TLS"`
//	SASL kafkaconn.SASL `yaml:"sasl" env:"PDM_KAFKA_SASL"`
//
// which read PDM_KAFKA_TLS_CA_FILE, ... and PDM_KAFKA_SASL_MECHANISM,
// PDM_KAFKA_SASL_USERNAME and PDM_KAFKA_SASL_PASSWORD (or the file
// PDM_KAFKA_SASL_PASSWORD_FILE names). Both empty: plain TCP, no
// authentication.
package kafkaconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/pdmstream/pdm/pdmkit/tlsconf"
)

// SASL mechanisms.
const (
	ScramSHA512 = "SCRAM-SHA-512"
	ScramSHA256 = "SCRAM-SHA-256"
	Plain       = "PLAIN"
)

// SASL is the sasl block: the mechanism and the user's credentials.
type SASL struct {
	Mechanism string `yaml:"mechanism" env:"_MECHANISM" help:"SASL mechanism: SCRAM-SHA-512, SCRAM-SHA-256, PLAIN or empty (none)"`
	Username  string `yaml:"username" env:"_USERNAME" help:"SASL user"`
	Password  string `yaml:"password" env:"_PASSWORD" secret:"true" help:"SASL password"`
}

// Conn is the resolved way to the brokers.
type Conn struct {
	Brokers []string
	// TLS is nil for plain TCP.
	TLS *tls.Config
	// SASL is nil for no authentication.
	SASL sasl.Mechanism

	transport *kafka.Transport // New's, shared by Transport's callers
}

// New checks the blocks and loads what they name.
func New(brokers []string, t tlsconf.Config, s SASL) (*Conn, error) {
	tc, err := t.Client()
	if err != nil {
		return nil, fmt.Errorf("kafkaconn: %w", err)
	}
	m, err := s.mechanism()
	if err != nil {
		return nil, err
	}
	c := &Conn{Brokers: brokers, TLS: tc, SASL: m}
	if tc != nil || m != nil {
		c.transport = &kafka.Transport{TLS: tc, SASL: m}
	}
	return c, nil
}

func (s SASL) mechanism() (sasl.Mechanism, error) {
	if s.Mechanism == "" {
		if s.Username != "" || s.Password != "" {
			return nil, fmt.Errorf("kafkaconn: sasl.username is set but sasl.mechanism is empty (want %s, %s or %s)", ScramSHA512, ScramSHA256, Plain)
		}
		return nil, nil
	}
	if s.Username == "" || s.Password == "" {
		return nil, fmt.Errorf("kafkaconn: sasl.mechanism %s needs sasl.username and sasl.password", s.Mechanism)
	}
	switch s.Mechanism {
	case ScramSHA512, ScramSHA256:
		algo := scram.SHA512
		if s.Mechanism == ScramSHA256 {
			algo = scram.SHA256
		}
		m, err := scram.Mechanism(algo, s.Username, s.Password)
		if err != nil {
			return nil, fmt.Errorf("kafkaconn: sasl: %w", err)
		}
		return m, nil
	case Plain:
		return plain.Mechanism{Username: s.Username, Password: s.Password}, nil
	}
	return nil, fmt.Errorf("kafkaconn: sasl.mechanism %q: want %s, %s or %s", s.Mechanism, ScramSHA512, ScramSHA256, Plain)
}

// Dialer is for readers (kafka.ReaderConfig.Dialer) and connections
// (DialLeader, DialContext); timeout 0 means kafka-go's default of 10s.
func (c *Conn) Dialer(timeout time.Duration) *kafka.Dialer {
	if timeout == 0 {
		timeout = kafka.DefaultDialer.Timeout
	}
	return &kafka.Dialer{Timeout: timeout, DualStack: true, TLS: c.TLS, SASLMechanism: c.SASL}
}

// Answers dials every bootstrap broker at once, through TLS and SASL
// authentication as the clients do, and returns nil as soon as one
// connection opens, else every broker's error (a refused password is
// named as such, where an admin client would report only "Broker Not
// Available"). timeout bounds each dial (0: 10s).
func (c *Conn) Answers(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := c.Dialer(timeout)
	errs := make(chan error, len(c.Brokers))
	for _, b := range c.Brokers {
		go func() {
			conn, err := d.DialContext(ctx, "tcp", b)
			if err != nil {
				errs <- fmt.Errorf("%s: %w", b, err)
				return
			}
			conn.Close()
			errs <- nil
		}()
	}
	var all []error
	for range c.Brokers {
		err := <-errs
		if err == nil {
			return nil
		}
		all = append(all, err)
	}
	return errors.Join(all...)
}

// Transport is for writers (kafka.Writer.Transport) and clients
// (kafka.Client.Transport). The writers and clients of one Conn share a
// transport, and so its metadata: a topic created through one is known to
// the others at once (a transport of its own would learn of it only at its
// next metadata refresh, and a writer would get "Unknown Topic Or
// Partition" meanwhile). Plain and anonymous, it is kafka-go's
// DefaultTransport, the one a writer or client without a Transport uses.
func (c *Conn) Transport() *kafka.Transport {
	switch {
	case c.transport != nil:
		return c.transport
	case c.TLS == nil && c.SASL == nil:
		return kafka.DefaultTransport.(*kafka.Transport)
	}
	return &kafka.Transport{TLS: c.TLS, SASL: c.SASL}
}

// Client is an admin client of the brokers over the Conn's Transport.
func (c *Conn) Client(timeout time.Duration) *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(c.Brokers...), Timeout: timeout, Transport: c.Transport()}
}
