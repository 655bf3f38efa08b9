// Package config is the scorer's configuration: one struct whose defaults
// live in Default, loaded from a YAML file, the environment (PDM_*) and flags
// in rising precedence by pdmkit/config, and checked by Validate.
package config

import (
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/monitor"
	"github.com/pdmstream/pdm/pdmkit/telemetry"
	"github.com/pdmstream/pdm/pdmkit/tlsconf"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// Sample is the documented sample configuration printed by -print-config.
//
//go:embed sample.yaml
var Sample string

// Config is everything the scorer can be told.
type Config struct {
	Kafka   Kafka            `yaml:"kafka"`
	MQTT    MQTT             `yaml:"mqtt"`
	Influx  Influx           `yaml:"influx"`
	HTTP    HTTP             `yaml:"http"`
	Log     telemetry.Log    `yaml:"log"`
	Scoring Scoring          `yaml:"scoring"`
	Models  Models           `yaml:"models"`
	Alert   monitor.Settings `yaml:"alert"`
}

// Models says whose model artifacts the scorer loads.
type Models struct {
	// TrustedKeys are the ed25519 public keys whose signatures make an
	// artifact loadable, each the standard base64 of the 32-byte key or
	// the path of a file holding one (PEM, as `scorer model keygen`
	// writes it, or base64). Default empty: no artifact is trusted.
	TrustedKeys []string `yaml:"trusted_keys" env:"PDM_MODELS_TRUSTED_KEYS" help:"public keys (base64 or files) whose signed model artifacts are loaded, comma separated"`
	// AcceptUnsigned loads artifacts without a signature (or signed by a
	// key not in TrustedKeys) too; a signature by a trusted key must
	// still match. Default false.
	AcceptUnsigned bool `yaml:"accept_unsigned" env:"PDM_MODELS_ACCEPT_UNSIGNED" help:"also load unsigned model artifacts (insecure)"`
}

// Trust reads the trusted keys.
func (m Models) Trust() (*model.Trust, error) {
	keys, err := model.TrustedKeys(m.TrustedKeys)
	if err != nil {
		return nil, fmt.Errorf("config: models.trusted_keys: %w", err)
	}
	return model.NewTrust(keys, m.AcceptUnsigned), nil
}

// Kafka names the brokers, the consumer group and the topics.
type Kafka struct {
	// Brokers are the bootstrap brokers. Default 127.0.0.1:9092.
	Brokers []string `yaml:"brokers" env:"PDM_KAFKA_BROKERS" help:"Kafka bootstrap brokers, comma separated"`
	// TLS is the tls block for brokers that listen with TLS: ca_file is
	// the CA that signed the brokers' certificates. Default empty: plain
	// TCP.
	TLS tlsconf.Config `yaml:"tls" env:"PDM_KAFKA_TLS"`
	// SASL is the sasl block, if the brokers want a user: mechanism
	// (SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN), username and password (the
	// secured local stack's user is scorer). Default empty: no
	// authentication.
	SASL kafkaconn.SASL `yaml:"sasl" env:"PDM_KAFKA_SASL"`
	// Group is the consumer group the scorer instances share. Default pdm-scorer.
	Group string `yaml:"group" env:"PDM_SCORER_GROUP" help:"Kafka consumer group"`
	// Readings is the topic scored. Default pdm.readings.
	Readings string `yaml:"readings" env:"PDM_KAFKA_READINGS" help:"topic of readings"`
	// Scores receives one record per scored reading. Default pdm.scores.
	Scores string `yaml:"scores" env:"PDM_KAFKA_SCORES" help:"topic of scores"`
	// Alerts receives alert state changes. Default pdm.alerts.
	Alerts string `yaml:"alerts" env:"PDM_KAFKA_ALERTS" help:"topic of alerts"`
	// Models is the compacted topic holding the model registry. Default pdm.models.
	Models string `yaml:"models" env:"PDM_KAFKA_MODELS" help:"compacted topic of the model registry"`
	// ModelsCacheBytes bounds the bytes of artifacts kept in memory:
	// versions in use always stay, others leave memory least recently
	// looked up first and are read back from the topic when asked for
	// (0: no bound). Default 64 MiB.
	ModelsCacheBytes int64 `yaml:"models_cache_bytes" help:"bytes of model artifacts kept in memory (0: no bound)"`
	// Retrain receives training requests for the trainer: an asset learnt
	// a new normal, or needs a model of its own. Empty sends none. Default
	// pdm.retrain.
	Retrain string `yaml:"retrain" env:"PDM_KAFKA_RETRAIN" help:"topic of training requests (empty: none)"`
	// SessionTimeout is how long the group waits for a silent member before
	// giving its partitions to others. Default 10s.
	SessionTimeout time.Duration `yaml:"session_timeout" help:"consumer group session timeout"`
}

// Conn is the way to the brokers the tls and sasl blocks describe, for
// every Kafka client of the scorer.
func (k Kafka) Conn() (*kafkaconn.Conn, error) {
	return kafkaconn.New(k.Brokers, k.TLS, k.SASL)
}

// MQTT is the broker the floor's alert topics live on.
type MQTT struct {
	// URL of the broker; empty disables MQTT alerts. Default tcp://127.0.0.1:1883.
	URL string `yaml:"url" env:"PDM_MQTT_URL" help:"MQTT broker URL, empty to disable"`
	// ClientID prefix; a random suffix keeps instances apart. Default pdm-scorer.
	ClientID string `yaml:"client_id" help:"MQTT client id prefix"`
	// Username and Password, if the broker wants them (the secured local
	// stack's user is scorer). Default empty.
	Username string `yaml:"username" env:"PDM_MQTT_USERNAME" help:"MQTT user"`
	Password string `yaml:"password" env:"PDM_MQTT_PASSWORD" secret:"true" help:"MQTT password"`
	// TLS is the tls block for an ssl:// broker: ca_file is the CA that
	// signed the broker's certificate. Default empty (the system roots).
	TLS tlsconf.Config `yaml:"tls" env:"PDM_MQTT_TLS"`
}

// Influx is where scores and alerts are written for data teams.
type Influx struct {
	// URL of InfluxDB; empty disables writes. Default http://127.0.0.1:8086.
	URL string `yaml:"url" env:"PDM_INFLUX_URL" help:"InfluxDB URL, empty to disable"`
	// Token is "user:password" on 1.8, an API token on 2.x. Default empty.
	Token string `yaml:"token" env:"PDM_INFLUX_TOKEN" secret:"true" help:"InfluxDB token"`
	// Org is ignored by 1.8. Default empty.
	Org string `yaml:"org" env:"PDM_INFLUX_ORG" help:"InfluxDB organisation"`
	// Bucket is "db/retention" on 1.8. Default pdm/autogen.
	Bucket string `yaml:"bucket" env:"PDM_INFLUX_BUCKET" help:"InfluxDB bucket"`
	// BatchSize is the most points per write request. Default 5000.
	BatchSize int `yaml:"batch_size" help:"points per InfluxDB write"`
}

// HTTP is the API, metrics and health server.
type HTTP struct {
	// Addr to listen on; empty disables the server. Default 127.0.0.1:8080
	// (loopback only).
	Addr string `yaml:"addr" env:"PDM_HTTP_ADDR" help:"HTTP listen address"`
	// AdminAddr serves the Go profiles (/debug/pprof/), off when empty
	// (the default); bind it to loopback.
	AdminAddr string `yaml:"admin_addr" env:"PDM_HTTP_ADMIN_ADDR" help:"profiles (/debug/pprof/) listen address, loopback (empty = off)"`
	// TLS serves Addr over HTTPS with cert_file and key_file; a ca_file
	// also requires every client to present a certificate it signed.
	// Empty: plain HTTP.
	TLS tlsconf.Config `yaml:"tls" env:"PDM_HTTP_TLS"`
	// Token is the bearer token write endpoints require (it also grants
	// reads). Default empty, which refuses every write.
	Token string `yaml:"token" env:"PDM_API_TOKEN" secret:"true" help:"bearer token for write endpoints"`
	// ReadToken is the bearer token read endpoints, inference included,
	// require. Default empty: reads are open to whoever reaches Addr.
	ReadToken string `yaml:"read_token" env:"PDM_API_READ_TOKEN" secret:"true" help:"bearer token for read endpoints (empty = reads open)"`
	// StaleAfter: an asset with no reading scored for this long shows as
	// stale in GET /v1/assets and the console. Default 2m.
	StaleAfter time.Duration `yaml:"stale_after" help:"time without a scored reading after which an asset is stale"`
	// FleetSince is how far back in the scores topic an instance starts
	// reading to fill its fleet view (every asset, whichever instance
	// scores it). Default 1h.
	FleetSince time.Duration `yaml:"fleet_since" help:"how far back in the scores topic the fleet view starts at start-up"`
	// TrainerURL is the trainer's HTTP API as the operators' browsers
	// reach it (e.g. http://trainer:8081); the console shows the loss and
	// score plots of the training job behind each model version from
	// there. Default empty: no plots.
	TrainerURL string `yaml:"trainer_url" env:"PDM_TRAINER_URL" help:"trainer API base URL for the console's training plots (empty: none)"`
}

// Scoring tunes the streaming loop.
type Scoring struct {
	// Replay is how many readings per partition before the committed offset
	// are re-read, without output, to rebuild detector and alert state after
	// an assignment. Default 2000.
	Replay int `yaml:"replay" help:"readings per partition replayed to rebuild state"`
	// MaxBatch is the most readings scored between two commits. Default 2000.
	MaxBatch int `yaml:"max_batch" help:"readings per commit"`
	// History is how many recent readings per asset are kept to warm a newly
	// swapped-in model. Default 256.
	History int `yaml:"history" help:"readings per asset kept to warm a new model"`
	// ColdStart: an asset scored by the online learner asks the trainer for
	// a model of its own every this many scored readings (0: never).
	// Default 3600.
	ColdStart int `yaml:"cold_start" help:"readings on the online learner between requests for a model (0: never)"`
	// IdleAfter: an asset silent this long (reading time) with no open
	// alert is forgotten, and starts afresh if it returns. Default 168h.
	IdleAfter time.Duration `yaml:"idle_after" help:"silence after which an asset without an open alert is forgotten"`
	// MaxAssets bounds the assets kept per partition; beyond it the
	// longest silent ones without an open alert are forgotten. Default
	// 100000.
	MaxAssets int `yaml:"max_assets" help:"assets kept per partition"`
	// ReorderWait: a reading that skips ahead in its asset's sequence (two
	// bridges sharing a subscription write an asset's readings out of
	// order) waits this long for the missing ones; then they are given up,
	// and one arriving later is counted late and not scored. 0 waits for
	// none. Default 2s.
	ReorderWait time.Duration `yaml:"reorder_wait" help:"how long a reading waits for a missing earlier one of its asset (0: not at all)"`
	// DefaultModel scores assets with no model of their own; empty means the
	// online learner. Default empty.
	DefaultModel string `yaml:"default_model" env:"PDM_DEFAULT_MODEL" help:"model for assets without one"`
}

// Default returns the configuration with every documented default.
func Default() Config {
	return Config{
		Kafka: Kafka{
			Brokers:          []string{"127.0.0.1:9092"},
			Group:            "pdm-scorer",
			Readings:         wire.TopicReadings,
			Scores:           wire.TopicScores,
			Alerts:           wire.TopicAlerts,
			Models:           "pdm.models",
			ModelsCacheBytes: 64 << 20,
			Retrain:          wire.TopicRetrain,
			SessionTimeout:   10 * time.Second,
		},
		MQTT:   MQTT{URL: "tcp://127.0.0.1:1883", ClientID: "pdm-scorer"},
		Influx: Influx{URL: "http://127.0.0.1:8086", Bucket: "pdm/autogen", BatchSize: 5000},
		HTTP:   HTTP{Addr: "127.0.0.1:8080", StaleAfter: 2 * time.Minute, FleetSince: time.Hour},
		Log:    telemetry.DefaultLog(),
		Scoring: Scoring{
			Replay:      2000,
			MaxBatch:    2000,
			History:     256,
			ColdStart:   3600,
			IdleAfter:   7 * 24 * time.Hour,
			MaxAssets:   100_000,
			ReorderWait: 2 * time.Second,
		},
		Alert: monitor.DefaultSettings(),
	}
}

// Validate rejects values and combinations the scorer cannot run with.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(c.Kafka.Brokers) == 0 {
		bad("kafka.brokers is empty")
	}
	for name, v := range map[string]string{
		"kafka.group": c.Kafka.Group, "kafka.readings": c.Kafka.Readings, "kafka.scores": c.Kafka.Scores,
		"kafka.alerts": c.Kafka.Alerts, "kafka.models": c.Kafka.Models,
	} {
		if v == "" {
			bad("%s is empty", name)
		}
	}
	if c.Kafka.Models == c.Kafka.Readings || c.Kafka.Scores == c.Kafka.Readings {
		bad("kafka.readings (%s) must differ from kafka.scores (%s) and kafka.models (%s)", c.Kafka.Readings, c.Kafka.Scores, c.Kafka.Models)
	}
	if _, err := c.HTTP.TLS.Server(); err != nil {
		bad("http.tls: %v", err)
	}
	if _, err := c.Kafka.Conn(); err != nil {
		bad("kafka: %v", err)
	}
	if c.Kafka.SessionTimeout < 6*time.Second {
		bad("kafka.session_timeout (%s) is below the broker minimum of 6s", c.Kafka.SessionTimeout)
	}
	if c.MQTT.URL != "" {
		if u, err := url.Parse(c.MQTT.URL); err != nil || u.Host == "" {
			bad("mqtt.url (%q) is not a broker URL", c.MQTT.URL)
		}
	}
	if c.Influx.URL != "" {
		if u, err := url.Parse(c.Influx.URL); err != nil || u.Host == "" {
			bad("influx.url (%q) is not an http URL", c.Influx.URL)
		}
		if c.Influx.Bucket == "" {
			bad("influx.bucket is empty while influx.url (%s) is set", c.Influx.URL)
		}
	}
	if c.Influx.BatchSize < 1 {
		bad("influx.batch_size (%d) must be at least 1", c.Influx.BatchSize)
	}
	if err := c.Log.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Scoring.Replay < 0 {
		bad("scoring.replay (%d) must not be negative", c.Scoring.Replay)
	}
	if c.Scoring.MaxBatch < 1 {
		bad("scoring.max_batch (%d) must be at least 1", c.Scoring.MaxBatch)
	}
	if c.Scoring.ColdStart < 0 {
		bad("scoring.cold_start (%d) must not be negative", c.Scoring.ColdStart)
	}
	if c.Scoring.ReorderWait < 0 {
		bad("scoring.reorder_wait (%s) must not be negative", c.Scoring.ReorderWait)
	}
	if c.Scoring.IdleAfter <= 0 || c.Scoring.MaxAssets < 1 {
		bad("scoring.idle_after (%s) must be positive and scoring.max_assets (%d) at least 1", c.Scoring.IdleAfter, c.Scoring.MaxAssets)
	}
	if c.HTTP.TrainerURL != "" {
		if u, err := url.Parse(c.HTTP.TrainerURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			bad("http.trainer_url (%q) is not an http or https base URL (scheme, host, optional path; no query)", c.HTTP.TrainerURL)
		}
	}
	if c.HTTP.StaleAfter <= 0 {
		bad("http.stale_after (%s) must be positive", c.HTTP.StaleAfter)
	}
	if c.HTTP.FleetSince <= 0 {
		bad("http.fleet_since (%s) must be positive", c.HTTP.FleetSince)
	}
	if c.Scoring.History < 0 {
		bad("scoring.history (%d) must not be negative", c.Scoring.History)
	}
	if err := c.Alert.Config().Validate(); err != nil {
		bad("alert: %v", err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}
