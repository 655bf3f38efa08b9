package model

// Signing: who made an artifact. The checksum says the artifact is intact;
// the signature says a holder of a trusted private key wrote it.
//
// The signature rule, for anyone signing outside Go: an ed25519 signature
// (RFC 8032, pure Ed25519) of the canonical bytes (Canonical: the very
// bytes the checksum hashes), stored in the artifact as
//
//	"signature": {"key_id": "<16 hex>", "ed25519": "<standard base64 of the 64-byte signature>"}
//
// where key_id is KeyID of the public key: the lowercase hex of the first
// 8 bytes of the SHA-256 of its 32 raw bytes. Neither the checksum nor the
// signature covers the signature field, so sealing after signing keeps
// the signature, and re-encoding the file does not break it; any changed
// value does.
//
// Keys are stored as PEM: the private key as PKCS#8 ("PRIVATE KEY", as
// `openssl genpkey -algorithm ed25519` writes it), the public key as PKIX
// ("PUBLIC KEY", as `openssl pkey -pubout` writes it). A public key may
// also be given as the standard base64 of its 32 raw bytes.

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Signature errors; Verify wraps them with the detail.
var (
	// ErrUnsigned: the artifact carries no signature.
	ErrUnsigned = errors.New("model: unsigned artifact")
	// ErrSignature: the signature is malformed, by a key that is not
	// trusted, or does not match the content (edited after signing).
	ErrSignature = errors.New("model: bad signature")
)

// Signature is an artifact's ed25519 signature and the id of its key.
type Signature struct {
	KeyID   string `json:"key_id"`
	Ed25519 string `json:"ed25519"`
}

// KeyID names a public key: the hex of the first 8 bytes of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

// Sign validates the artifact, sets its checksum and signs it with priv.
func (a *Artifact) Sign(priv ed25519.PrivateKey) error {
	if len(priv) != ed25519.PrivateKeySize {
		return fmt.Errorf("model: sign: private key of %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	if err := a.Seal(); err != nil {
		return err
	}
	b, err := a.Canonical()
	if err != nil {
		return err
	}
	a.Signature = &Signature{
		KeyID:   KeyID(priv.Public().(ed25519.PublicKey)),
		Ed25519: base64.StdEncoding.EncodeToString(ed25519.Sign(priv, b)),
	}
	return nil
}

// Trust is the set of public keys whose signatures a loader accepts.
// The zero Trust refuses every artifact.
type Trust struct {
	keys map[string]ed25519.PublicKey
	// AcceptUnsigned loads artifacts without a signature, or signed by a
	// key that is not trusted, as unsigned; a signature by a trusted key
	// must still match.
	AcceptUnsigned bool
}

// NewTrust trusts keys.
func NewTrust(keys []ed25519.PublicKey, acceptUnsigned bool) *Trust {
	t := &Trust{keys: make(map[string]ed25519.PublicKey, len(keys)), AcceptUnsigned: acceptUnsigned}
	for _, k := range keys {
		t.keys[KeyID(k)] = k
	}
	return t
}

// KeyIDs lists the trusted keys' ids, sorted.
func (t *Trust) KeyIDs() []string {
	return slices.Sorted(maps.Keys(t.keys))
}

// Verify checks a's signature against the trusted keys. It returns the key
// id that signed a ("" when a is accepted unsigned), or an error wrapping
// ErrUnsigned or ErrSignature. It never panics, whatever the signature
// field holds.
func (t *Trust) Verify(a *Artifact) (string, error) {
	s := a.Signature
	if s == nil {
		if t.AcceptUnsigned {
			return "", nil
		}
		return "", fmt.Errorf("%w: %s %s has no signature (sign it with a trusted key: scorer model new -key, the trainer's signing.key_file; or set models.accept_unsigned)", ErrUnsigned, a.Name, a.Version)
	}
	pub, ok := t.keys[s.KeyID]
	if !ok {
		if t.AcceptUnsigned {
			return "", nil
		}
		return "", fmt.Errorf("%w: %s %s is signed by key %q, which is not among the trusted keys (models.trusted_keys)", ErrSignature, a.Name, a.Version, s.KeyID)
	}
	sig, err := base64.StdEncoding.DecodeString(s.Ed25519)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return "", fmt.Errorf("%w: %s %s: the signature is not the base64 of %d bytes", ErrSignature, a.Name, a.Version, ed25519.SignatureSize)
	}
	b, err := a.Canonical()
	if err != nil {
		return "", err
	}
	if !ed25519.Verify(pub, b, sig) {
		return "", fmt.Errorf("%w: %s %s: the signature by key %q does not match the content (changed after signing)", ErrSignature, a.Name, a.Version, s.KeyID)
	}
	return s.KeyID, nil
}

// MarshalPrivateKey encodes priv as PEM PKCS#8.
func MarshalPrivateKey(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("model: encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// MarshalPublicKey encodes pub as PEM PKIX.
func MarshalPublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("model: encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePrivateKey decodes a PEM PKCS#8 ed25519 private key.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("model: private key: not a PEM \"PRIVATE KEY\" block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("model: private key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("model: private key: %T, want ed25519", k)
	}
	return priv, nil
}

// ParsePublicKey decodes an ed25519 public key: PEM PKIX, or the standard
// base64 of its 32 raw bytes.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("model: public key: PEM %q block, want \"PUBLIC KEY\"", blk.Type)
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("model: public key: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("model: public key: %T, want ed25519", k)
		}
		return pub, nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("model: public key: neither PEM nor the base64 of %d bytes", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

// LoadPrivateKeyFile reads a PEM PKCS#8 ed25519 private key file.
func LoadPrivateKeyFile(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	k, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// TrustedKeys reads each entry as a public key: the base64 of its 32 raw
// bytes, or else the path of a file holding one (PEM or base64).
func TrustedKeys(entries []string) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for _, e := range entries {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		if raw, err := base64.StdEncoding.DecodeString(e); err == nil && len(raw) == ed25519.PublicKeySize {
			keys = append(keys, ed25519.PublicKey(raw))
			continue
		}
		b, err := os.ReadFile(e)
		if err != nil {
			return nil, fmt.Errorf("model: trusted key %q is neither the base64 of a key nor a readable file: %w", e, err)
		}
		k, err := ParsePublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// WriteKeyPair generates a key pair and writes it to dir as name.key (the
// private key, mode 0600) and name.pub; it refuses to overwrite either.
func WriteKeyPair(dir, name string) (privPath, pubPath string, pub ed25519.PublicKey, err error) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return "", "", nil, fmt.Errorf("model: generate key: %w", err)
	}
	privPEM, err := MarshalPrivateKey(priv)
	if err != nil {
		return "", "", nil, err
	}
	pubPEM, err := MarshalPublicKey(pub)
	if err != nil {
		return "", "", nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", nil, fmt.Errorf("model: %w", err)
	}
	privPath, pubPath = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	for _, f := range []struct {
		path string
		b    []byte
		mode os.FileMode
	}{{privPath, privPEM, 0o600}, {pubPath, pubPEM, 0o644}} {
		w, err := os.OpenFile(f.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.mode)
		if err != nil {
			return "", "", nil, fmt.Errorf("model: %w", err)
		}
		if _, err := w.Write(f.b); err != nil {
			w.Close()
			return "", "", nil, fmt.Errorf("model: %s: %w", f.path, err)
		}
		if err := w.Close(); err != nil {
			return "", "", nil, fmt.Errorf("model: %s: %w", f.path, err)
		}
	}
	return privPath, pubPath, pub, nil
}
