package config

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

type testConfig struct {
	Name    string        `yaml:"name" env:"PDM_TEST_NAME"`
	Brokers []string      `yaml:"brokers" env:"PDM_TEST_BROKERS"`
	Wait    time.Duration `yaml:"wait"`
	Inner   struct {
		Count  int    `yaml:"max_count" env:"PDM_TEST_COUNT"`
		Secret string `yaml:"secret" secret:"true"`
	} `yaml:"inner"`
}

func TestPrecedence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("name: file\nwait: 3s\ninner:\n  max_count: 1\n  secret: s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PDM_TEST_NAME", "env")
	t.Setenv("PDM_TEST_BROKERS", "a:1, b:2")
	t.Setenv("PDM_TEST_COUNT", "2")

	cfg := testConfig{Name: "default", Wait: time.Second}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	apply := BindFlags(fs, &cfg)
	if err := fs.Parse([]string{"-inner.max-count", "3"}); err != nil {
		t.Fatal(err)
	}
	if err := Load(path, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := apply(); err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "env" || cfg.Wait != 3*time.Second || cfg.Inner.Count != 3 || !reflect.DeepEqual(cfg.Brokers, []string{"a:1", "b:2"}) {
		t.Fatalf("got %+v", cfg)
	}
	if s := String(&cfg); strings.Contains(s, "s3cret") || !strings.Contains(s, "***") {
		t.Fatalf("secret not masked:\n%s", s)
	}
	if cfg.Inner.Secret != "s3cret" {
		t.Fatal("String changed the config")
	}
	if got := EnvKeys(&cfg); !reflect.DeepEqual(got, []string{"PDM_TEST_BROKERS", "PDM_TEST_COUNT", "PDM_TEST_NAME"}) {
		t.Fatalf("EnvKeys = %v", got)
	}
}

func TestErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("nmae: typo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var cfg testConfig
	if err := Load(path, &cfg); err == nil || !strings.Contains(err.Error(), "nmae") {
		t.Fatalf("unknown key: got %v", err)
	}
	t.Setenv("PDM_TEST_COUNT", "many")
	if err := Load("", &cfg); err == nil || !strings.Contains(err.Error(), "PDM_TEST_COUNT") {
		t.Fatalf("bad env: got %v", err)
	}
}

func TestSecretFromFile(t *testing.T) {
	type cfgT struct {
		Token string `yaml:"token" env:"PDM_TEST_TOKEN" secret:"true"`
		Plain string `yaml:"plain" env:"PDM_TEST_PLAIN"`
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	if err := os.WriteFile(path, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PDM_TEST_TOKEN_FILE", path)
	t.Setenv("PDM_TEST_PLAIN_FILE", path)
	var cfg cfgT
	if err := Load("", &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Token != "from-file" || cfg.Plain != "" {
		t.Fatalf("got %+v: a secret comes from its _FILE, a plain field does not", cfg)
	}
	t.Setenv("PDM_TEST_TOKEN", "from-env")
	if err := Load("", &cfg); err != nil || cfg.Token != "from-env" {
		t.Fatalf("the variable itself wins: %+v %v", cfg, err)
	}
	os.Unsetenv("PDM_TEST_TOKEN")
	t.Setenv("PDM_TEST_TOKEN_FILE", filepath.Join(dir, "missing"))
	if err := Load("", &cfg); err == nil || !strings.Contains(err.Error(), "PDM_TEST_TOKEN_FILE") {
		t.Fatalf("a missing file is an error naming the variable: %v", err)
	}
	if got := EnvKeys(&cfg); !reflect.DeepEqual(got, []string{"PDM_TEST_PLAIN", "PDM_TEST_TOKEN", "PDM_TEST_TOKEN_FILE"}) {
		t.Fatalf("EnvKeys = %v", got)
	}
}

// -h lists every field as a flag with the struct's default; a secret's
// value is never shown.
func TestFlagDefaults(t *testing.T) {
	cfg := testConfig{Name: "def", Brokers: []string{"a:1", "b:2"}, Wait: 90 * time.Second}
	cfg.Inner.Count, cfg.Inner.Secret = 7, "hunter2"
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	apply := BindFlags(fs, &cfg)
	var out strings.Builder
	fs.SetOutput(&out)
	fs.PrintDefaults()
	for _, want := range []string{`-name string`, `(default "def")`, `-brokers string`, `(default "a:1,b:2")`,
		`-wait string`, `(default "1m30s")`, `-inner.max-count string`, `(default "7")`, `-inner.secret string`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-h lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "hunter2") {
		t.Errorf("-h shows the secret:\n%s", out.String())
	}
	// The defaults are not applied as if set: only flags given are.
	cfg.Name = "from-file"
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := apply(); err != nil || cfg.Name != "from-file" {
		t.Fatalf("apply without flags changed name to %q (err %v)", cfg.Name, err)
	}
}
