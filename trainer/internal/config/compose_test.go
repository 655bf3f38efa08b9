package config

import (
	"strings"
	"testing"

	"github.com/pdmstream/pdm/pdmkit/compose"
	pdmconfig "github.com/pdmstream/pdm/pdmkit/config"
	"github.com/pdmstream/pdm/pdmkit/model/modeltest"
)

// TestComposeUsesRealKeys checks the trainer service in docker-compose.yml
// sets only environment variables this config reads, with values it
// accepts, and listens where its port is published.
func TestComposeUsesRealKeys(t *testing.T) {
	cfg := Default()
	env, err := compose.ServiceEnv("../../../docker-compose.yml", "trainer")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range compose.Unread(env, pdmconfig.EnvKeys(&cfg)) {
		t.Errorf("compose sets %s, which the trainer does not read", k)
	}
	if got, want := env["PDM_HTTP_ADDR"], ":"+strings.TrimPrefix(cfg.HTTP.Addr, "127.0.0.1:"); got != want {
		t.Errorf("PDM_HTTP_ADDR %q, want %q: the default port on every interface of the container", got, want)
	}
	if env["PDM_SIGNING_KEY_FILE"] == "" {
		t.Error("compose gives the trainer no signing key")
	}
	// The key file is in the container's volume: a real key stands in.
	priv, _ := modeltest.KeyFiles(t)
	env["PDM_SIGNING_KEY_FILE"] = priv
	for k, v := range env {
		t.Setenv(k, v)
	}
	c := Default()
	if err := pdmconfig.Load("", &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("the compose environment gives an invalid configuration: %v", err)
	}
}
