package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdmstream/pdm/pdmkit/cli"
)

// serveHealthz answers GET /healthz on ln until the test ends.
func serveHealthz(t *testing.T, ln net.Listener) string {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// `edge-agent healthcheck` finds the address as the service does: flag, PDM_HTTP_ADDR,
// -config file, else the default http.addr.
func TestHealthcheck(t *testing.T) {
	up := serveHealthz(t, listen(t, "127.0.0.1:0"))
	closed := listen(t, "127.0.0.1:0")
	down := closed.Addr().String()
	closed.Close()
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte("http:\n  addr: \""+up+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hc := func(t *testing.T, args ...string) (int, string) {
		t.Helper()
		var stderr bytes.Buffer
		code := cli.Run(context.Background(), "edge-agent", commands(), append([]string{"healthcheck"}, args...), &stderr)
		return code, stderr.String()
	}
	for _, tc := range []struct {
		name string
		env  string
		args []string
		code int
	}{
		{"flag", "", []string{"-http.addr", up}, 0},
		{"flag, nothing listening", "", []string{"-http.addr", down}, 1},
		{"environment", up, nil, 0},
		{"flag over environment", up, []string{"-http.addr", down}, 1},
		{"config file", "", []string{"-config", file}, 0},
		{"empty address", "", []string{"-http.addr", ""}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("PDM_HTTP_ADDR", tc.env)
			}
			if code, stderr := hc(t, tc.args...); code != tc.code {
				t.Errorf("code %d, want %d; stderr %q", code, tc.code, stderr)
			}
		})
	}
	for _, d := range defaults {
		t.Run("default "+d.addr, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1"+d.addr)
			if err != nil { // the port is taken here: at least the address must be understood
				if _, stderr := hc(t, d.args...); strings.Contains(stderr, "address") && strings.Contains(stderr, "missing port") {
					t.Errorf("default address not found: %s", stderr)
				}
				return
			}
			serveHealthz(t, ln)
			if code, stderr := hc(t, d.args...); code != 0 {
				t.Errorf("code %d against a listener on the default %s; stderr %q", code, d.addr, stderr)
			}
		})
	}
}

var defaults = []struct {
	addr string
	args []string
}{{":9101", nil}}
