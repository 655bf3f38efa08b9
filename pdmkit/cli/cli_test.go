package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/telemetry"
	"github.com/pdmstream/pdm/pdmkit/tlsconf"
)

func TestRun(t *testing.T) {
	var got, def []string
	cmds := map[string]Command{
		"ok":   func(_ context.Context, args []string) error { got = args; return nil },
		"fail": func(context.Context, []string) error { return errors.New("boom") },
		"help": func(context.Context, []string) error { return fmt.Errorf("parse: %w", flag.ErrHelp) },
	}
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"ok", "-x", "1"}, 0, ""},
		{[]string{"fail"}, 1, "tool: boom"},
		{[]string{"help", "-h"}, 0, ""},
		{[]string{"nope"}, 2, "commands: [fail help ok]"},
		{nil, 2, "usage: tool <command>"},
		{[]string{"-x"}, 2, "usage: tool <command>"},
	} {
		var stderr bytes.Buffer
		if code := Run(context.Background(), "tool", cmds, tc.args, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("%v: code %d, stderr %q; want %d, %q", tc.args, code, stderr.String(), tc.code, tc.stderr)
		}
	}
	if strings.Join(got, " ") != "-x 1" {
		t.Errorf("args passed: %v", got)
	}
	cmds[""] = func(_ context.Context, args []string) error { def = args; return nil }
	if code := Run(context.Background(), "tool", cmds, []string{"-x", "2"}, &bytes.Buffer{}); code != 0 || strings.Join(def, " ") != "-x 2" {
		t.Errorf("default command: code %d, args %v", code, def)
	}
}

type hcConfig struct {
	HTTP struct {
		Addr string         `yaml:"addr" env:"PDM_HTTP_ADDR"`
		TLS  tlsconf.Config `yaml:"tls" env:"PDM_HTTP_TLS"`
	} `yaml:"http"`
}

// healthz listens on loopback and answers /healthz; it returns host:port.
func healthz(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestHealthcheck(t *testing.T) {
	up, down := healthz(t), closedPort(t)
	_, port, _ := net.SplitHostPort(up)
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("http:\n  addr: \""+up+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, def, env string
		args           []string
		code           int
	}{
		{"default address", ":" + port, "", nil, 0},
		{"default address, nothing there", down, "", nil, 1},
		{"flag", down, "", []string{"-http.addr", up}, 0},
		{"environment", down, up, nil, 0},
		{"flag over environment", up, up, []string{"-http.addr", down}, 1},
		{"file", down, "", []string{"-config", file}, 0},
		{"empty address", "", "", nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("PDM_HTTP_ADDR", tc.env)
			}
			var cfg hcConfig
			cfg.HTTP.Addr = tc.def
			cmds := map[string]Command{"healthcheck": Healthcheck("tool", &cfg, "", func() (string, tlsconf.Config) { return cfg.HTTP.Addr, cfg.HTTP.TLS })}
			var stderr bytes.Buffer
			if code := Run(context.Background(), "tool", cmds, append([]string{"healthcheck"}, tc.args...), &stderr); code != tc.code {
				t.Errorf("code %d, want %d (stderr %q)", code, tc.code, stderr.String())
			}
		})
	}
}

// A service serving HTTPS (http.tls.cert_file and key_file) is probed over
// TLS; a plain probe of it fails, and so does a TLS probe of a plain one.
func TestHealthcheckTLS(t *testing.T) {
	_, cert, key := stacktest.PKI(t)
	pair := tlsconf.Config{CertFile: cert, KeyFile: key}
	tc, err := pair.Server()
	if err != nil {
		t.Fatal(err)
	}
	addr := closedPort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go telemetry.ServeTLS(ctx, addr, tc, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), slog.New(slog.DiscardHandler))
	plain := healthz(t)
	probe := func(addr string, t2 tlsconf.Config) int {
		var cfg hcConfig
		cfg.HTTP.Addr, cfg.HTTP.TLS = addr, t2
		cmds := map[string]Command{"healthcheck": Healthcheck("tool", &cfg, "", func() (string, tlsconf.Config) { return cfg.HTTP.Addr, cfg.HTTP.TLS })}
		return Run(context.Background(), "tool", cmds, []string{"healthcheck"}, io.Discard)
	}
	stacktest.Eventually(t, 5*time.Second, func() bool { return probe(addr, pair) == 0 }, "the TLS probe of an HTTPS server fails")
	if probe(addr, tlsconf.Config{}) == 0 {
		t.Error("a plain probe of an HTTPS server succeeded")
	}
	if probe(plain, pair) == 0 {
		t.Error("a TLS probe of a plain server succeeded")
	}
}
