package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pdmstream/pdm/pdmkit/compose"
	pdmconfig "github.com/pdmstream/pdm/pdmkit/config"
	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
)

func TestDefaultsAreValid(t *testing.T) {
	for _, role := range []Role{Bridge, Historian} {
		cfg := Default(role)
		if err := cfg.Validate(role); err != nil {
			t.Errorf("%s defaults: %v", role, err)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		role   Role
		change func(*Config)
		want   string
	}{
		{"no brokers", Bridge, func(c *Config) { c.Kafka.Brokers = nil }, "kafka.brokers is empty"},
		{"dlq is readings", Bridge, func(c *Config) { c.Kafka.DeadLetters = c.Kafka.Readings }, `kafka.dead_letters ("pdm.readings") must differ`},
		{"kafka-go default timeout", Bridge, func(c *Config) { c.Kafka.BatchTimeout = 0 }, "kafka.batch_timeout (0s)"},
		{"sasl without mechanism", Bridge, func(c *Config) { c.Kafka.SASL.Username, c.Kafka.SASL.Password = "ingest", "pw" }, "kafka: kafkaconn: sasl.username is set but sasl.mechanism is empty"},
		{"sasl without password", Historian, func(c *Config) { c.Kafka.SASL.Mechanism, c.Kafka.SASL.Username = "SCRAM-SHA-512", "ingest" }, "needs sasl.username and sasl.password"},
		{"sasl mechanism", Bridge, func(c *Config) {
			c.Kafka.SASL = kafkaconn.SASL{Mechanism: "GSSAPI", Username: "u", Password: "p"}
		}, `sasl.mechanism "GSSAPI"`},
		{"kafka ca_file", Historian, func(c *Config) { c.Kafka.TLS.CAFile = "/nonexistent/ca.pem" }, "kafka: kafkaconn: tls: ca_file"},
		{"bad mqtt url", Bridge, func(c *Config) { c.MQTT.URL = "localhost" }, `mqtt.url ("localhost")`},
		{"huge batch", Bridge, func(c *Config) { c.MQTT.MaxBatch = 1e6 }, "mqtt.max_batch (1000000)"},
		{"no group", Historian, func(c *Config) { c.Kafka.Group = "" }, "kafka.group is empty"},
		{"no bucket", Historian, func(c *Config) { c.Influx.Bucket = "" }, "influx.bucket is empty"},
		{"batch size", Historian, func(c *Config) { c.Influx.BatchSize = 0 }, "influx.batch_size (0)"},
		{"bad role", "scorer", func(*Config) {}, `role "scorer"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Default(Bridge)
			if tc.role == Historian {
				cfg = Default(Historian)
			}
			tc.change(&cfg)
			err := cfg.Validate(tc.role)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// TestKafkaSecurityFromEnvironment: the kafka tls and sasl blocks read
// PDM_KAFKA_TLS_* and PDM_KAFKA_SASL_*, the password also from the file
// PDM_KAFKA_SASL_PASSWORD_FILE names, and the logged config hides it.
func TestKafkaSecurityFromEnvironment(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "ingest.password")
	if err := os.WriteFile(pw, []byte("s3cret-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PDM_KAFKA_TLS_CA_FILE", "/etc/pdm/ca.pem")
	t.Setenv("PDM_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
	t.Setenv("PDM_KAFKA_SASL_USERNAME", "ingest")
	t.Setenv("PDM_KAFKA_SASL_PASSWORD_FILE", pw)
	cfg := Default(Historian)
	if err := pdmconfig.Load("", &cfg); err != nil {
		t.Fatal(err)
	}
	want := kafkaconn.SASL{Mechanism: "SCRAM-SHA-512", Username: "ingest", Password: "s3cret-from-file"}
	if cfg.Kafka.SASL != want || cfg.Kafka.TLS.CAFile != "/etc/pdm/ca.pem" {
		t.Fatalf("kafka blocks %+v %+v, want %+v and ca_file /etc/pdm/ca.pem", cfg.Kafka.SASL, cfg.Kafka.TLS, want)
	}
	if s := pdmconfig.String(&cfg); strings.Contains(s, "s3cret") {
		t.Fatalf("the logged config shows the password:\n%s", s)
	}
	for _, k := range []string{"PDM_KAFKA_TLS_CA_FILE", "PDM_KAFKA_SASL_MECHANISM", "PDM_KAFKA_SASL_USERNAME", "PDM_KAFKA_SASL_PASSWORD", "PDM_KAFKA_SASL_PASSWORD_FILE"} {
		if !slices.Contains(pdmconfig.EnvKeys(&cfg), k) {
			t.Errorf("%s is not read", k)
		}
	}
}

// TestSampleMatchesDefaults loads the embedded sample over zero values and
// checks it yields the defaults, so the documented file cannot drift.
func TestSampleMatchesDefaults(t *testing.T) {
	var fromSample Config
	if err := pdmconfig.LoadString(Sample, &fromSample); err != nil {
		t.Fatal(err)
	}
	if got, want := pdmconfig.String(&fromSample), pdmconfig.String(ptr(Default(Bridge))); got != want {
		t.Fatalf("sample.yaml differs from the defaults:\n--- sample\n%s\n--- defaults\n%s", got, want)
	}
}

func ptr[T any](v T) *T { return &v }

// TestComposeUsesRealKeys checks the ingest services in docker-compose.yml
// set only environment variables this config reads, and listen where their
// ports are published.
func TestComposeUsesRealKeys(t *testing.T) {
	cfg := Default(Bridge)
	keys := pdmconfig.EnvKeys(&cfg)
	for service, role := range map[string]Role{"ingest-bridge": Bridge, "ingest-historian": Historian} {
		env, err := compose.ServiceEnv("../../../docker-compose.yml", service)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range compose.Unread(env, keys) {
			t.Errorf("%s: compose sets %s, which ingest does not read", service, k)
		}
		if got, want := env["PDM_HTTP_ADDR"], ":"+strings.TrimPrefix(Default(role).HTTP.Addr, "127.0.0.1:"); got != want {
			t.Errorf("%s: PDM_HTTP_ADDR %q, want %q: the default port on every interface of the container", service, got, want)
		}
	}
}
