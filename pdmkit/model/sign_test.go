package model

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func keyPair(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// signedBytes is the sample signed with priv, as a file holds it.
func signedBytes(t testing.TB, priv ed25519.PrivateKey) []byte {
	t.Helper()
	a := sample(t)
	if err := a.Sign(priv); err != nil {
		t.Fatal(err)
	}
	return encode(t, a)
}

func TestSignVerify(t *testing.T) {
	pub, priv := keyPair(t)
	other, _ := keyPair(t)
	raw := signedBytes(t, priv)
	load := func(t *testing.T, b []byte) *Artifact {
		t.Helper()
		a, err := Load(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	trust := NewTrust([]ed25519.PublicKey{other, pub}, false)

	a := load(t, raw)
	if id, err := trust.Verify(a); err != nil || id != KeyID(pub) {
		t.Fatalf("signed artifact: key %q, %v", id, err)
	}
	// Re-encoding (compact, another indentation) keeps the signature valid.
	compact, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Verify(load(t, compact)); err != nil {
		t.Fatalf("re-encoded: %v", err)
	}

	// One weight changed after signing, and the checksum set again so only
	// the signature can tell.
	tampered := load(t, raw)
	tampered.Weights[0] += 1e-9
	if err := tampered.Seal(); err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Verify(load(t, encode(t, tampered))); !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("tampered weight: %v", err)
	}

	unsigned := sample(t)
	if err := unsigned.Seal(); err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Verify(unsigned); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("unsigned: %v", err)
	}
	if _, err := NewTrust([]ed25519.PublicKey{other}, false).Verify(a); !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), "not among the trusted keys") {
		t.Fatalf("untrusted key: %v", err)
	}
	if _, err := (&Trust{}).Verify(a); !errors.Is(err, ErrSignature) {
		t.Fatalf("zero trust: %v", err)
	}

	lax := NewTrust([]ed25519.PublicKey{pub}, true)
	if id, err := lax.Verify(unsigned); err != nil || id != "" {
		t.Fatalf("accept_unsigned, unsigned: %q %v", id, err)
	}
	if _, err := NewTrust(nil, true).Verify(a); err != nil {
		t.Fatalf("accept_unsigned, untrusted key: %v", err)
	}
	if _, err := lax.Verify(tampered); !errors.Is(err, ErrSignature) {
		t.Fatalf("accept_unsigned still checks a trusted key's signature: %v", err)
	}
}

// Whatever the signature field holds, Verify returns an error or a key id
// and never panics.
func TestVerifyMalformed(t *testing.T) {
	pub, priv := keyPair(t)
	trust := NewTrust([]ed25519.PublicKey{pub}, false)
	a := sample(t)
	if err := a.Sign(priv); err != nil {
		t.Fatal(err)
	}
	good := *a.Signature
	id := KeyID(pub)
	for name, s := range map[string]*Signature{
		"empty":          {},
		"key id only":    {KeyID: id},
		"not base64":     {KeyID: id, Ed25519: "!!!"},
		"short":          {KeyID: id, Ed25519: base64.StdEncoding.EncodeToString([]byte("short"))},
		"long":           {KeyID: id, Ed25519: good.Ed25519 + good.Ed25519},
		"url base64":     {KeyID: id, Ed25519: base64.URLEncoding.EncodeToString(make([]byte, 64))},
		"zeros":          {KeyID: id, Ed25519: base64.StdEncoding.EncodeToString(make([]byte, 64))},
		"other key id":   {KeyID: "0000000000000000", Ed25519: good.Ed25519},
		"id upper case":  {KeyID: strings.ToUpper(id), Ed25519: good.Ed25519},
		"huge":           {KeyID: id, Ed25519: strings.Repeat("A", 1<<16)},
		"flipped sig":    {KeyID: id, Ed25519: flip(good.Ed25519)},
		"id with spaces": {KeyID: " " + id, Ed25519: good.Ed25519},
	} {
		c := *a
		c.Signature = s
		if _, err := trust.Verify(&c); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func flip(s string) string {
	b, _ := base64.StdEncoding.DecodeString(s)
	b[10] ^= 1
	return base64.StdEncoding.EncodeToString(b)
}

func FuzzVerify(f *testing.F) {
	pub, priv := keyPair(f)
	f.Add(signedBytes(f, priv))
	f.Add([]byte(`{"signature":{"key_id":"x","ed25519":"AAAA"}}`))
	f.Add([]byte(`{"signature":null}`))
	trust := NewTrust([]ed25519.PublicKey{pub}, false)
	f.Fuzz(func(t *testing.T, b []byte) {
		var a Artifact
		if json.Unmarshal(b, &a) != nil {
			return
		}
		id, err := trust.Verify(&a)
		if err == nil && id != KeyID(pub) {
			t.Fatalf("accepted without the trusted key: %q", id)
		}
	})
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	privPath, pubPath, pub, err := WriteKeyPair(dir, "model")
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(privPath)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v, %v", st.Mode(), err)
	}
	if _, _, _, err := WriteKeyPair(dir, "model"); err == nil {
		t.Fatal("overwrote an existing key pair")
	}
	priv, err := LoadPrivateKeyFile(privPath)
	if err != nil || !priv.Public().(ed25519.PublicKey).Equal(pub) {
		t.Fatalf("private key: %v", err)
	}
	b64 := filepath.Join(dir, "b64.pub")
	if err := os.WriteFile(b64, []byte(base64.StdEncoding.EncodeToString(pub)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	keys, err := TrustedKeys([]string{pubPath, base64.StdEncoding.EncodeToString(pub), b64, ""})
	if err != nil || len(keys) != 3 {
		t.Fatalf("trusted keys: %d, %v", len(keys), err)
	}
	for _, k := range keys {
		if !k.Equal(pub) {
			t.Fatal("a trusted key differs from the generated one")
		}
	}
	for _, bad := range []string{filepath.Join(dir, "missing.pub"), privPath, "AAAA"} {
		if _, err := TrustedKeys([]string{bad}); err == nil {
			t.Errorf("trusted key %q accepted", bad)
		}
	}
}
