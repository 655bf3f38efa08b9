package opcua

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pdmstream/pdm/edge-agent/internal/opcua/opcuatest"
	"github.com/pdmstream/pdm/edge-agent/internal/source"
)

// selfSigned makes an application instance certificate as the README's
// openssl commands do: RSA 2048, the application URI as a URI SAN, the
// key usages OPC UA asks for. It writes cert.pem and key.pem into dir.
func selfSigned(t *testing.T, dir, uri string) (der []byte, key *rsa.PrivateKey, certFile, keyFile string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(uri)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "pdm test", Organization: []string{"pdm"}},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{u}, DNSNames: []string{"localhost"},
		BasicConstraintsValid: true,
	}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	write := func(path, typ string, b []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(certFile, "CERTIFICATE", der)
	write(keyFile, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))
	return der, key, certFile, keyFile
}

// The server is pinned by its certificate: the right one connects, another
// is refused before any session opens, over None and Basic256Sha256 alike
// (gopcua's test server cannot open Basic256Sha256 channels, so a session
// over them is not tested here; see README.md). A missing key file stops
// New.
func TestServerCertificatePin(t *testing.T) {
	srvDER, srvKey, srvCert, _ := selfSigned(t, t.TempDir(), "urn:pdm:test-server")
	_, _, cliCert, cliKey := selfSigned(t, t.TempDir(), "urn:pdm:edge-agent")
	srv := opcuatest.New(t, opcuatest.Options{Certificate: srvDER, Key: srvKey}, "x")
	srv.Set("x", 42)
	t.Run("right certificate", func(t *testing.T) {
		c := testConfig(srv, "x")
		c.ServerCertificate = srvCert
		s := newSource(t, c)
		await(t, s, equal(map[string]float64{"x": 42}), "x from the pinned server")
	})
	_, _, other, _ := selfSigned(t, t.TempDir(), "urn:pdm:impostor")
	for _, policy := range []string{PolicyNone, PolicyBasic256Sha256} {
		t.Run("wrong certificate/"+policy, func(t *testing.T) {
			c := testConfig(srv, "x")
			if policy != PolicyNone {
				c.SecurityPolicy, c.SecurityMode = policy, ModeSignAndEncrypt
				c.Certificate, c.PrivateKey = cliCert, cliKey
			}
			c.ServerCertificate = other
			s := newSource(t, c)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := s.Next(ctx)
			if !errors.Is(err, source.ErrMissed) || !strings.Contains(err.Error(), "not opcua.server_certificate") {
				t.Fatalf("pinned to another certificate: %v", err)
			}
			if s.Sessions() != 0 {
				t.Fatalf("%d sessions with an unpinned server", s.Sessions())
			}
		})
	}
	t.Run("key files", func(t *testing.T) {
		c := testConfig(srv, "x")
		c.SecurityPolicy, c.SecurityMode = PolicyBasic256Sha256, ModeSign
		c.Certificate, c.PrivateKey = cliCert, cliKey
		if _, err := New(c, c.Assets[0], testLog(t)); err != nil {
			t.Fatalf("New with the README's formats: %v", err)
		}
		c.PrivateKey = filepath.Join(t.TempDir(), "nope.pem")
		if _, err := New(c, c.Assets[0], testLog(t)); err == nil || !strings.Contains(err.Error(), "nope.pem") {
			t.Fatalf("New with a missing key: %v", err)
		}
		// OpenSSL 3 writes PKCS#8 by default, which gopcua does not read.
		b, _ := os.ReadFile(cliKey)
		block, _ := pem.Decode(b)
		k, _ := x509.ParsePKCS1PrivateKey(block.Bytes)
		p8, _ := x509.MarshalPKCS8PrivateKey(k)
		c.PrivateKey = filepath.Join(t.TempDir(), "key8.pem")
		os.WriteFile(c.PrivateKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), 0o600)
		if _, err := New(c, c.Assets[0], testLog(t)); err == nil || !strings.Contains(err.Error(), "openssl rsa -traditional") {
			t.Fatalf("New with a PKCS#8 key: %v", err)
		}
	})
}
