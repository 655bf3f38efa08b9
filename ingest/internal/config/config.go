// Package config holds the ingest service's configuration: one struct for
// both roles (bridge and historian), its defaults, and its validation.
package config

import (
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
	"github.com/pdmstream/pdm/pdmkit/telemetry"
	"github.com/pdmstream/pdm/pdmkit/tlsconf"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// Sample is the documented sample configuration, printed by -print-config.
//
//go:embed sample.yaml
var Sample string

// Config configures `ingest bridge` and `ingest historian`.
type Config struct {
	HTTP   HTTP          `yaml:"http"`
	Log    telemetry.Log `yaml:"log"`
	MQTT   MQTT          `yaml:"mqtt"`
	Kafka  Kafka         `yaml:"kafka"`
	Influx Influx        `yaml:"influx"`
}

// HTTP is the admin server.
type HTTP struct {
	// Addr serves /metrics, /healthz and /readyz. Default "127.0.0.1:9102" for the
	// bridge, "127.0.0.1:9103" for the historian (loopback only); "" disables it.
	Addr string `yaml:"addr" env:"PDM_HTTP_ADDR" help:"admin HTTP listen address (empty = off; historian default 127.0.0.1:9103)"`
	// AdminAddr serves the Go profiles (/debug/pprof/), off when empty
	// (the default); bind it to loopback.
	AdminAddr string `yaml:"admin_addr" env:"PDM_HTTP_ADMIN_ADDR" help:"profiles (/debug/pprof/) listen address, loopback (empty = off)"`
	// TLS serves Addr over HTTPS with cert_file and key_file; a ca_file
	// also requires every client to present a certificate it signed.
	// Empty: plain HTTP.
	TLS tlsconf.Config `yaml:"tls" env:"PDM_HTTP_TLS"`
}

// MQTT configures the bridge's subscription.
type MQTT struct {
	// URL of the broker. Default tcp://127.0.0.1:1883.
	URL string `yaml:"url" env:"PDM_MQTT_URL" help:"MQTT broker URL"`
	// ClientID must be unique per bridge instance and stable across restarts,
	// so the broker keeps its persistent session. Default ingest-bridge-<hostname>.
	ClientID string `yaml:"client_id" env:"PDM_MQTT_CLIENT_ID" help:"MQTT client id (stable per instance)"`
	// ShareGroup names the shared subscription; instances in one group split
	// the readings between them. Default "ingest".
	ShareGroup string `yaml:"share_group" help:"MQTT shared subscription group"`
	// Filter is the topic filter of readings. Default pdm/v1/+/+/readings.
	Filter string `yaml:"filter" help:"MQTT topic filter of readings"`
	// Username and Password, if the broker wants them. Default empty.
	Username string `yaml:"username" env:"PDM_MQTT_USERNAME" help:"MQTT user"`
	Password string `yaml:"password" env:"PDM_MQTT_PASSWORD" secret:"true" help:"MQTT password"`
	// TLS is the tls block for an ssl:// broker: ca_file is the CA that
	// signed the broker's certificate. Default empty (the system roots).
	TLS tlsconf.Config `yaml:"tls" env:"PDM_MQTT_TLS"`
	// MaxBatch is the most MQTT messages the bridge writes to Kafka in one
	// request; a batch also ends after about 1 MiB of payloads. The broker
	// sends at most max_inflight_messages unacknowledged; the bridge holds
	// up to 4 × max_batch messages and about 8 MiB (one batch being written,
	// one filling, a queue of two), so that is the most it can use
	// (Mosquitto here: 4000). Default 1000.
	MaxBatch int `yaml:"max_batch" help:"MQTT messages per Kafka write"`
	// Sparkplug also takes Sparkplug B 3.0 messages of the group
	// SparkplugGroup (NBIRTH, NDEATH, NDATA, DBIRTH, DDATA, DDEATH), maps
	// DDATA to readings and asks edge nodes for rebirths on
	// spBv1.0/{group}/NCMD/{edge}. These subscriptions are not shared: an
	// edge node's aliases and seq numbers need all of its messages in one
	// instance, so instances split Sparkplug traffic by group, not by
	// share group. Default false.
	Sparkplug bool `yaml:"sparkplug" help:"also bridge Sparkplug B (spBv1.0) messages"`
	// SparkplugGroup is the Sparkplug group (site) taken, "+" for every
	// group. Default "+".
	SparkplugGroup string `yaml:"sparkplug_group" help:"Sparkplug group to take (+ = all)"`
	// Confirm publishes, after each Kafka write, the highest sequence
	// number written of each asset on pdm/v1/{site}/{asset}/delivered, and
	// after each subscribe a message on pdm/ingest/joined; agents keep
	// their readings until confirmed and send again what was not, so a
	// broker crash loses nothing (wire.Delivered). Default true.
	Confirm bool `yaml:"confirm" env:"PDM_MQTT_CONFIRM" help:"confirm Kafka writes to the agents (pdm/v1/{site}/{asset}/delivered)"`
}

// Kafka configures the producer (bridge) and the consumer (historian).
type Kafka struct {
	// Brokers are the bootstrap servers. Default [127.0.0.1:9092].
	Brokers []string `yaml:"brokers" env:"PDM_KAFKA_BROKERS" help:"Kafka bootstrap brokers, comma separated"`
	// TLS is the tls block for brokers that listen with TLS (SSL or
	// SASL_SSL): ca_file is the CA that signed the brokers' certificates.
	// Default empty (plain TCP).
	TLS tlsconf.Config `yaml:"tls" env:"PDM_KAFKA_TLS"`
	// SASL is the sasl block: mechanism (SCRAM-SHA-512, SCRAM-SHA-256 or
	// PLAIN), username and password, if the brokers want them; the
	// password is best given as PDM_KAFKA_SASL_PASSWORD or the file
	// PDM_KAFKA_SASL_PASSWORD_FILE names. Default empty (no
	// authentication).
	SASL kafkaconn.SASL `yaml:"sasl" env:"PDM_KAFKA_SASL"`
	// Readings is the topic of valid readings. Default pdm.readings.
	Readings string `yaml:"readings" env:"PDM_KAFKA_READINGS" help:"Kafka topic of readings"`
	// DeadLetters receives refused input with its reason. Default
	// pdm.readings.dlq.
	DeadLetters string `yaml:"dead_letters" env:"PDM_KAFKA_DEAD_LETTERS" help:"Kafka topic of dead letters (refused input)"`
	// BatchTimeout is how long a batch waits for more records after its
	// first before it is written, unless it is full: the bridge's batches,
	// the historian's dead letters. kafka-go's default of 1s would add a
	// second to every write; 0 would send tiny requests whose per-request
	// cost dominates the broker's work. Default 5ms.
	BatchTimeout time.Duration `yaml:"batch_timeout" help:"how long a batch waits for more records"`
	// Group is the historian's consumer group. Default pdm-historian.
	Group string `yaml:"group" help:"historian consumer group"`
	// SessionTimeout is how long the group waits for a silent member before
	// giving its partitions to others, and so how long a restarted broker
	// may hold the group's partitions for a member that is gone. Default
	// 10s, as the scorer's (kafka-go's 30s would add 20 s to the recovery
	// from every broker restart).
	SessionTimeout time.Duration `yaml:"session_timeout" help:"consumer group session timeout"`
}

// Conn is the way to the brokers the tls and sasl blocks give; every
// Kafka client of ingest goes through it.
func (k Kafka) Conn() (*kafkaconn.Conn, error) {
	c, err := kafkaconn.New(k.Brokers, k.TLS, k.SASL)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return c, nil
}

// Influx configures the historian's writes.
type Influx struct {
	// URL of InfluxDB. Default http://127.0.0.1:8086.
	URL string `yaml:"url" env:"PDM_INFLUX_URL" help:"InfluxDB URL"`
	// Token: "user:password" for InfluxDB 1.8 with auth on, an API token for
	// 2.x. Default empty (auth off).
	Token string `yaml:"token" env:"PDM_INFLUX_TOKEN" secret:"true" help:"InfluxDB token"`
	// Org is the 2.x organisation; ignored by 1.8. Default empty.
	Org string `yaml:"org" env:"PDM_INFLUX_ORG" help:"InfluxDB organisation"`
	// Bucket is "database/retention-policy" on 1.8. Default pdm/autogen.
	Bucket string `yaml:"bucket" env:"PDM_INFLUX_BUCKET" help:"InfluxDB bucket"`
	// BatchSize is the most points per write. Default 5000.
	BatchSize int `yaml:"batch_size" help:"points per InfluxDB write"`
	// FlushInterval bounds how long a partial batch waits. Default 1s.
	FlushInterval time.Duration `yaml:"flush_interval" help:"longest wait before a partial write"`
}

// Role selects the defaults that differ between the two commands.
type Role string

const (
	Bridge    Role = "bridge"
	Historian Role = "historian"
)

// Default returns the documented defaults for role.
func Default(role Role) Config {
	addr := "127.0.0.1:9102"
	if role == Historian {
		addr = "127.0.0.1:9103"
	}
	return Config{
		HTTP: HTTP{Addr: addr},
		Log:  telemetry.DefaultLog(),
		MQTT: MQTT{
			URL:            "tcp://127.0.0.1:1883",
			ShareGroup:     "ingest",
			Filter:         wire.ReadingsFilter,
			MaxBatch:       1000,
			SparkplugGroup: "+",
			Confirm:        true,
		},
		Kafka: Kafka{
			Brokers:        []string{"127.0.0.1:9092"},
			Readings:       wire.TopicReadings,
			DeadLetters:    wire.TopicReadingsDLQ,
			BatchTimeout:   5 * time.Millisecond,
			Group:          "pdm-historian",
			SessionTimeout: 10 * time.Second,
		},
		Influx: Influx{
			URL:           "http://127.0.0.1:8086",
			Bucket:        "pdm/autogen",
			BatchSize:     5000,
			FlushInterval: time.Second,
		},
	}
}

// Validate rejects settings that cannot work, naming the values at fault.
func (c *Config) Validate(role Role) error {
	var errs []error
	if len(c.Kafka.Brokers) == 0 {
		errs = append(errs, errors.New("kafka.brokers is empty"))
	}
	if _, err := c.HTTP.TLS.Server(); err != nil {
		errs = append(errs, fmt.Errorf("http.tls: %w", err))
	}
	if _, err := c.Kafka.Conn(); err != nil {
		errs = append(errs, err)
	}
	if c.Kafka.Readings == "" || c.Kafka.DeadLetters == "" {
		errs = append(errs, fmt.Errorf("kafka.readings (%q) and kafka.dead_letters (%q) must be set", c.Kafka.Readings, c.Kafka.DeadLetters))
	}
	if c.Kafka.Readings == c.Kafka.DeadLetters {
		errs = append(errs, fmt.Errorf("kafka.dead_letters (%q) must differ from kafka.readings (%q)", c.Kafka.DeadLetters, c.Kafka.Readings))
	}
	if err := c.Log.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Kafka.SessionTimeout < 6*time.Second {
		errs = append(errs, fmt.Errorf("kafka.session_timeout (%s) is below the broker minimum of 6s", c.Kafka.SessionTimeout))
	}
	if c.Kafka.BatchTimeout <= 0 || c.Kafka.BatchTimeout > time.Second {
		errs = append(errs, fmt.Errorf("kafka.batch_timeout (%s) must be in (0, 1s]", c.Kafka.BatchTimeout))
	}
	switch role {
	case Bridge:
		if u, err := url.Parse(c.MQTT.URL); err != nil || u.Host == "" {
			errs = append(errs, fmt.Errorf("mqtt.url (%q) is not a broker URL such as tcp://host:1883", c.MQTT.URL))
		}
		if c.MQTT.ShareGroup == "" || c.MQTT.Filter == "" {
			errs = append(errs, fmt.Errorf("mqtt.share_group (%q) and mqtt.filter (%q) must be set", c.MQTT.ShareGroup, c.MQTT.Filter))
		}
		if c.MQTT.MaxBatch < 1 || c.MQTT.MaxBatch > 100_000 {
			errs = append(errs, fmt.Errorf("mqtt.max_batch (%d) must be in 1..100000", c.MQTT.MaxBatch))
		}
		if c.MQTT.Sparkplug && c.MQTT.SparkplugGroup != "+" && !wire.ValidID(c.MQTT.SparkplugGroup) {
			errs = append(errs, fmt.Errorf("mqtt.sparkplug_group (%q) must be + or a site id", c.MQTT.SparkplugGroup))
		}
	case Historian:
		if c.Kafka.Group == "" {
			errs = append(errs, errors.New("kafka.group is empty"))
		}
		if u, err := url.Parse(c.Influx.URL); err != nil || u.Host == "" {
			errs = append(errs, fmt.Errorf("influx.url (%q) is not an http(s) URL", c.Influx.URL))
		}
		if c.Influx.Bucket == "" {
			errs = append(errs, errors.New("influx.bucket is empty"))
		}
		if c.Influx.BatchSize < 1 || c.Influx.BatchSize > 100_000 {
			errs = append(errs, fmt.Errorf("influx.batch_size (%d) must be in 1..100000", c.Influx.BatchSize))
		}
		if c.Influx.FlushInterval <= 0 {
			errs = append(errs, fmt.Errorf("influx.flush_interval (%s) must be positive", c.Influx.FlushInterval))
		}
	default:
		errs = append(errs, fmt.Errorf("role %q: want bridge or historian", role))
	}
	return errors.Join(errs...)
}
