package config

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pdmconfig "github.com/pdmstream/pdm/pdmkit/config"
	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/model/modeltest"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"gopkg.in/yaml.v3"
)

// TestSampleIsTheDefault: the embedded sample, read alone, gives exactly
// the defaults, so the documentation cannot drift from the code.
func TestSampleIsTheDefault(t *testing.T) {
	var got Config
	dec := yaml.NewDecoder(strings.NewReader(Sample))
	dec.KnownFields(true)
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := Default()
	var a, b bytes.Buffer
	yaml.NewEncoder(&a).Encode(got)
	yaml.NewEncoder(&b).Encode(want)
	if a.String() != b.String() {
		t.Fatalf("sample differs from the defaults:\nsample:\n%s\ndefaults:\n%s", a.String(), b.String())
	}
	if err := want.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestClassLookup(t *testing.T) {
	c := Default()
	c.Classes = []Class{{Name: "pumps", Assets: []string{"p1", "p2"}, Job: Job{Kind: "forecaster", MinRows: 900}}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	k := c.Class("p2")
	if k.Name != "pumps" || k.Job.Kind != "forecaster" || k.Job.MinRows != 900 || k.Job.Step != c.Job.Step {
		t.Fatalf("class of p2: %+v", k)
	}
	if k := c.Class("motor-9"); k.Name != "motor-9" || len(k.Assets) != 1 || k.Job != c.Job {
		t.Fatalf("an asset of no class: %+v", k)
	}
}

func TestValidate(t *testing.T) {
	cases := map[string]func(*Config){
		"kind":     func(c *Config) { c.Job.Kind = "rnn" },
		"holdout":  func(c *Config) { c.Job.Holdout = 1 },
		"resample": func(c *Config) { c.Influx.Resample = "maybe" },
		"asset twice": func(c *Config) {
			c.Classes = []Class{{Name: "a", Assets: []string{"x"}}, {Name: "b", Assets: []string{"x"}}}
		},
		"class job":               func(c *Config) { c.Classes = []Class{{Name: "a", Assets: []string{"x"}, Job: Job{MinRows: 3}}} },
		"scorer url":              func(c *Config) { c.Scorer.URL = "::" },
		"short history":           func(c *Config) { c.Job.History = c.Job.Step },
		"failure score":           func(c *Config) { c.Job.FailureScore = 1 },
		"bad class name":          func(c *Config) { c.Classes = []Class{{Name: "a/b", Assets: []string{"x"}}} },
		"sasl user, no mechanism": func(c *Config) { c.Kafka.SASL = kafkaconn.SASL{Username: "trainer", Password: "p"} },
		"sasl, no password":       func(c *Config) { c.Kafka.SASL = kafkaconn.SASL{Mechanism: kafkaconn.ScramSHA512, Username: "trainer"} },
		"kafka ca_file missing":   func(c *Config) { c.Kafka.TLS.CAFile = "/nonexistent/ca.pem" },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			c := Default()
			edit(&c)
			if err := c.Validate(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestEnvironment: the variables the README lists set the fields.
func TestEnvironment(t *testing.T) {
	t.Setenv("PDM_SCORER_URL", "http://scorer:8080")
	t.Setenv("PDM_TRAINER_DATA", "/var/lib/trainer")
	c := Default()
	if err := pdmconfig.Load("", &c); err != nil {
		t.Fatal(err)
	}
	if c.Scorer.URL != "http://scorer:8080" || c.DataDir != "/var/lib/trainer" {
		t.Fatalf("environment not applied: %+v %s", c.Scorer, c.DataDir)
	}
}

// TestKafkaSecurity: the kafka section's tls and sasl blocks come from
// PDM_KAFKA_TLS_* and PDM_KAFKA_SASL_*, the password also from the file
// PDM_KAFKA_SASL_PASSWORD_FILE names, and make a TLS, SCRAM connection;
// a bad combination is refused naming the section.
func TestKafkaSecurity(t *testing.T) {
	ca, _, _ := stacktest.PKI(t)
	pw := filepath.Join(t.TempDir(), "trainer.password")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PDM_KAFKA_TLS_CA_FILE", ca)
	t.Setenv("PDM_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
	t.Setenv("PDM_KAFKA_SASL_USERNAME", "trainer")
	t.Setenv("PDM_KAFKA_SASL_PASSWORD_FILE", pw)
	c := Default()
	if err := pdmconfig.Load("", &c); err != nil {
		t.Fatal(err)
	}
	if c.Kafka.TLS.CAFile != ca || c.Kafka.SASL != (kafkaconn.SASL{Mechanism: "SCRAM-SHA-512", Username: "trainer", Password: "s3cret"}) {
		t.Fatalf("kafka blocks from the environment: %+v %+v", c.Kafka.TLS, c.Kafka.SASL.Mechanism)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	conn, err := c.Kafka.Conn()
	if err != nil || conn.TLS == nil || conn.SASL == nil || conn.SASL.Name() != "SCRAM-SHA-512" {
		t.Fatalf("conn: %+v, %v", conn, err)
	}
	if s := pdmconfig.String(&c); strings.Contains(s, "s3cret") {
		t.Errorf("the configuration as logged shows the password:\n%s", s)
	}
	c.Kafka.SASL.Mechanism = "SCRAM-SHA-1"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "kafka: ") || !strings.Contains(err.Error(), "SCRAM-SHA-1") {
		t.Fatalf("an unknown mechanism: %v", err)
	}
	if conn, err := Default().Kafka.Conn(); err != nil || conn.TLS != nil || conn.SASL != nil {
		t.Fatalf("default: %+v, %v, want plain", conn, err)
	}
}

// The signing key comes from signing.key_file, or as a secret from
// PDM_SIGNING_KEY or the file PDM_SIGNING_KEY_FILE names; a key that does
// not read, or both settings at once, is refused.
func TestSigningKey(t *testing.T) {
	priv, pub := modeltest.KeyFiles(t)
	want := model.KeyID(modeltest.Public)
	check := func(name string, c Config) {
		t.Helper()
		if err := c.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		k, err := c.Signing.PrivateKey()
		if err != nil || k == nil || model.KeyID(k.Public().(ed25519.PublicKey)) != want {
			t.Fatalf("%s: key %v, %v", name, k != nil, err)
		}
	}
	c := Default()
	c.Signing.KeyFile = priv
	check("key_file", c)

	t.Setenv("PDM_SIGNING_KEY_FILE", priv)
	c = Default()
	if err := pdmconfig.Load("", &c); err != nil {
		t.Fatal(err)
	}
	check("PDM_SIGNING_KEY_FILE", c)

	c.Signing.KeyFile = priv
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "both set") {
		t.Fatalf("key and key_file: %v", err)
	}
	c = Default()
	c.Signing.KeyFile = pub
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "signing.key_file") {
		t.Fatalf("a public key as the signing key: %v", err)
	}
	if k, err := Default().Signing.PrivateKey(); k != nil || err != nil {
		t.Fatalf("default: %v %v", k, err)
	}
}
