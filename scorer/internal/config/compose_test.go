package config

import (
	"strings"
	"testing"

	"github.com/pdmstream/pdm/pdmkit/compose"
	pdmconfig "github.com/pdmstream/pdm/pdmkit/config"
)

// TestComposeUsesRealKeys checks the scorer service in docker-compose.yml
// sets only environment variables this config reads, and listens where its
// port is published.
func TestComposeUsesRealKeys(t *testing.T) {
	cfg := Default()
	env, err := compose.ServiceEnv("../../../docker-compose.yml", "scorer")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range compose.Unread(env, pdmconfig.EnvKeys(&cfg)) {
		t.Errorf("compose sets %s, which the scorer does not read", k)
	}
	if got, want := env["PDM_HTTP_ADDR"], ":"+strings.TrimPrefix(cfg.HTTP.Addr, "127.0.0.1:"); got != want {
		t.Errorf("PDM_HTTP_ADDR %q, want %q: the default port on every interface of the container", got, want)
	}
}
