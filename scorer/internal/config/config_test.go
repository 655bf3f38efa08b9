package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	pdmconfig "github.com/pdmstream/pdm/pdmkit/config"
	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
)

// The embedded sample must load into exactly the defaults, so the sample
// cannot drift from the code.
func TestSampleIsDefault(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scorer.yaml")
	if err := os.WriteFile(path, []byte(Sample), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, k := range pdmconfig.EnvKeys(&Config{}) {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	got := Default()
	if err := pdmconfig.Load(path, &got); err != nil {
		t.Fatal(err)
	}
	if a, b := pdmconfig.String(&got), pdmconfig.String(new(Default())); a != b {
		t.Fatalf("sample differs from defaults:\n%s\nwant\n%s", a, b)
	}
	if err := got.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func TestEnvAndSecret(t *testing.T) {
	t.Setenv("PDM_API_TOKEN", "s3cret")
	t.Setenv("PDM_KAFKA_BROKERS", "a:1,b:2")
	t.Setenv("PDM_HTTP_ADDR", "127.0.0.1:0")
	c := Default()
	if err := pdmconfig.Load("", &c); err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Token != "s3cret" || len(c.Kafka.Brokers) != 2 || c.HTTP.Addr != "127.0.0.1:0" {
		t.Fatalf("env not applied: %+v", c)
	}
	if s := pdmconfig.String(&c); strings.Contains(s, "s3cret") {
		t.Fatalf("secret printed: %s", s)
	}
	want := []string{"PDM_API_TOKEN", "PDM_HTTP_ADDR", "PDM_INFLUX_BUCKET", "PDM_INFLUX_TOKEN", "PDM_INFLUX_URL", "PDM_KAFKA_BROKERS", "PDM_LOG_FORMAT", "PDM_LOG_LEVEL", "PDM_MQTT_URL"}
	keys := strings.Join(pdmconfig.EnvKeys(&c), ",")
	for _, k := range want {
		if !strings.Contains(keys, k) {
			t.Errorf("env key %s missing from %s", k, keys)
		}
	}
}

// The kafka section's tls and sasl blocks read PDM_KAFKA_TLS_* and
// PDM_KAFKA_SASL_*, the password also from the file
// PDM_KAFKA_SASL_PASSWORD_FILE names, and the password is never printed.
func TestKafkaSecurityFromEnv(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "scorer.password")
	if err := os.WriteFile(secret, []byte("kafka-s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PDM_KAFKA_TLS_CA_FILE", "/run/secrets/ca.pem")
	t.Setenv("PDM_KAFKA_SASL_MECHANISM", kafkaconn.ScramSHA512)
	t.Setenv("PDM_KAFKA_SASL_USERNAME", "scorer")
	t.Setenv("PDM_KAFKA_SASL_PASSWORD", "")
	os.Unsetenv("PDM_KAFKA_SASL_PASSWORD")
	t.Setenv("PDM_KAFKA_SASL_PASSWORD_FILE", secret)
	c := Default()
	if err := pdmconfig.Load("", &c); err != nil {
		t.Fatal(err)
	}
	want := kafkaconn.SASL{Mechanism: kafkaconn.ScramSHA512, Username: "scorer", Password: "kafka-s3cret"}
	if c.Kafka.TLS.CAFile != "/run/secrets/ca.pem" || c.Kafka.SASL != want {
		t.Fatalf("kafka tls %+v, sasl %+v; want ca_file /run/secrets/ca.pem and %+v", c.Kafka.TLS, c.Kafka.SASL, want)
	}
	if s := pdmconfig.String(&c); strings.Contains(s, "kafka-s3cret") {
		t.Fatalf("secret printed: %s", s)
	}
	keys := strings.Join(pdmconfig.EnvKeys(&c), ",")
	for _, k := range []string{"PDM_KAFKA_TLS_CA_FILE", "PDM_KAFKA_SASL_MECHANISM", "PDM_KAFKA_SASL_USERNAME", "PDM_KAFKA_SASL_PASSWORD", "PDM_KAFKA_SASL_PASSWORD_FILE"} {
		if !strings.Contains(keys, k) {
			t.Errorf("env key %s missing from %s", k, keys)
		}
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"hysteresis", func(c *Config) { c.Alert.Resolve = 0.995 }, "resolve (0.995) must be in (0, open 0.986) for hysteresis"},
		{"no brokers", func(c *Config) { c.Kafka.Brokers = nil }, "kafka.brokers is empty"},
		{"session", func(c *Config) { c.Kafka.SessionTimeout = 0 }, "kafka.session_timeout"},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, `log.format ("xml")`},
		{"bucket", func(c *Config) { c.Influx.Bucket = "" }, "influx.bucket is empty"},
		{"mqtt url", func(c *Config) { c.MQTT.URL = "::" }, "mqtt.url"},
		{"batch", func(c *Config) { c.Scoring.MaxBatch = 0 }, "scoring.max_batch (0)"},
		{"trainer url", func(c *Config) { c.HTTP.TrainerURL = "trainer:8081" }, `http.trainer_url ("trainer:8081")`},
		{"sasl without mechanism", func(c *Config) { c.Kafka.SASL.Username = "scorer" }, "kafka: kafkaconn: sasl.username is set but sasl.mechanism is empty"},
		{"sasl mechanism", func(c *Config) {
			c.Kafka.SASL = kafkaconn.SASL{Mechanism: "GSSAPI", Username: "scorer", Password: "p"}
		}, `kafka: kafkaconn: sasl.mechanism "GSSAPI"`},
		{"kafka ca file", func(c *Config) { c.Kafka.TLS.CAFile = "/nonexistent/ca.pem" }, "kafka: kafkaconn: tls: ca_file"},
		{"trainer url query", func(c *Config) { c.HTTP.TrainerURL = "http://trainer:8081/?x=1" }, "http.trainer_url"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want containing %q", err, tc.want)
			}
		})
	}
}

func TestTrainerURL(t *testing.T) {
	for _, u := range []string{"", "http://trainer:8081", "https://ops.example/trainer/"} {
		c := Default()
		c.HTTP.TrainerURL = u
		if err := c.Validate(); err != nil {
			t.Errorf("http.trainer_url %q: %v", u, err)
		}
	}
}
