package tlsconf_test

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdmstream/pdm/pdmkit/config"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/tlsconf"
)

func pki(t *testing.T) (ca, cert, key string) { return stacktest.PKI(t) }

func TestEmptyIsPlain(t *testing.T) {
	var c tlsconf.Config
	for _, f := range []func() (*tls.Config, error){c.Client, c.Server} {
		if tc, err := f(); tc != nil || err != nil {
			t.Fatalf("empty block: %v %v, want plain", tc, err)
		}
	}
}

func TestHandshake(t *testing.T) {
	ca, cert, key := pki(t)
	for _, mutual := range []bool{false, true} {
		srv := tlsconf.Config{CertFile: cert, KeyFile: key}
		if mutual {
			srv.CAFile = ca
		}
		stc, err := srv.Server()
		if err != nil {
			t.Fatal(err)
		}
		ln, err := tls.Listen("tcp", "127.0.0.1:0", stc)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			c, err := ln.Accept()
			if err == nil {
				err = c.(*tls.Conn).Handshake()
				c.Close()
			}
			done <- err
		}()
		cli := tlsconf.Config{CAFile: ca}
		if mutual {
			cli.CertFile, cli.KeyFile = cert, key
		}
		ctc, err := cli.Client()
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tls.Dial("tcp", ln.Addr().String(), ctc)
		if err != nil {
			t.Fatalf("mutual=%v: dial: %v", mutual, err)
		}
		conn.Close()
		if err := <-done; err != nil {
			t.Fatalf("mutual=%v: server handshake: %v", mutual, err)
		}
		ln.Close()
	}
}

func TestUntrustedServerRefused(t *testing.T) {
	_, cert, key := pki(t)
	otherCA, _, _ := pki(t)
	stc, _ := tlsconf.Config{CertFile: cert, KeyFile: key}.Server()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", stc)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	ctc, _ := tlsconf.Config{CAFile: otherCA}.Client()
	if _, err := tls.Dial("tcp", ln.Addr().String(), ctc); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a server signed by another CA: %v, want a certificate error", err)
	}
}

func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not pem"), 0o600)
	cases := map[string]tlsconf.Config{
		"no PEM certificate": {CAFile: junk},
		"no such file":       {CAFile: filepath.Join(dir, "missing.pem")},
		"go together":        {CertFile: junk},
	}
	for want, c := range cases {
		if _, err := c.Client(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want %q", c, err, want)
		}
	}
	if _, err := (tlsconf.Config{CAFile: junk}).Server(); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Errorf("a server without a certificate: %v", err)
	}
}

func TestEnvironmentPrefix(t *testing.T) {
	var cfg struct {
		MQTT struct {
			TLS tlsconf.Config `yaml:"tls" env:"PDM_MQTT_TLS"`
		} `yaml:"mqtt"`
		Unnamed tlsconf.Config `yaml:"unnamed"`
	}
	t.Setenv("PDM_MQTT_TLS_CA_FILE", "/ca.pem")
	if err := config.Load("", &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.MQTT.TLS.CAFile != "/ca.pem" {
		t.Fatalf("got %+v", cfg.MQTT.TLS)
	}
	keys := strings.Join(config.EnvKeys(&cfg), " ")
	if keys != "PDM_MQTT_TLS_CA_FILE PDM_MQTT_TLS_CERT_FILE PDM_MQTT_TLS_KEY_FILE PDM_MQTT_TLS_SERVER_NAME" {
		t.Fatalf("EnvKeys = %s (a block without a prefix reads no variable)", keys)
	}
}
