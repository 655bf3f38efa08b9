// Package modeltest signs artifacts in tests with a throwaway ed25519 key
// pair, generated once per test binary and trusted by Trust.
package modeltest

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"testing"

	"github.com/pdmstream/pdm/pdmkit/model"
)

// Public and Private are the test binary's key pair.
var Public, Private = mustKey()

func mustKey() (ed25519.PublicKey, ed25519.PrivateKey) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		panic(err)
	}
	return pub, priv
}

// Trust trusts Public only and refuses unsigned artifacts.
func Trust() *model.Trust { return model.NewTrust([]ed25519.PublicKey{Public}, false) }

// Encode signs a with Private (sealing it) and returns it as a file holds it.
func Encode(t testing.TB, a *model.Artifact) []byte {
	t.Helper()
	if err := a.Sign(Private); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := a.Write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// PrivateKeyPEM is Private as a key file holds it (PEM PKCS#8).
func PrivateKeyPEM(t testing.TB) string {
	t.Helper()
	b, err := model.MarshalPrivateKey(Private)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// KeyFiles writes the key pair into a temporary folder as model.key (PEM
// PKCS#8, 0600) and model.pub (PEM PKIX) and returns their paths.
func KeyFiles(t testing.TB) (priv, pub string) {
	t.Helper()
	dir := t.TempDir()
	pubPEM, err := model.MarshalPublicKey(Public)
	if err != nil {
		t.Fatal(err)
	}
	priv, pub = filepath.Join(dir, "model.key"), filepath.Join(dir, "model.pub")
	if err := os.WriteFile(priv, []byte(PrivateKeyPEM(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return priv, pub
}
