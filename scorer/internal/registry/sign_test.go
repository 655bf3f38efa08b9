package registry

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/model/modeltest"
)

// sealed encodes a sealed but unsigned artifact.
func sealed(t *testing.T, a *model.Artifact) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := a.Write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tamperedArtifact is a signed artifact with one weight changed afterwards
// and its checksum set again, so only the signature can tell.
func tamperedArtifact(t *testing.T, name, version string) []byte {
	t.Helper()
	a, err := model.Load(bytes.NewReader(artifact(t, name, version)))
	if err != nil {
		t.Fatal(err)
	}
	a.Weights[0] = 42
	return sealed(t, a)
}

func TestUploadChecksSignatures(t *testing.T) {
	ctx := context.Background()
	_, stranger, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	byStranger := unsigned(t, "m", "4")
	if err := byStranger.Sign(stranger); err != nil {
		t.Fatal(err)
	}
	r, _ := newTest(t, nil)
	v, err := r.Upload(ctx, "m", "1", artifact(t, "m", "1"))
	if err != nil {
		t.Fatalf("signed: %v", err)
	}
	if v.SignedBy != model.KeyID(modeltest.Public) {
		t.Fatalf("signed by %q", v.SignedBy)
	}
	for _, tc := range []struct {
		name, version string
		raw           []byte
		want          error
		reason        string
	}{
		{"unsigned", "2", sealed(t, unsigned(t, "m", "2")), model.ErrUnsigned, "has no signature"},
		{"tampered", "3", tamperedArtifact(t, "m", "3"), model.ErrSignature, "does not match the content"},
		{"untrusted key", "4", sealed(t, byStranger), model.ErrSignature, "not among the trusted keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Upload(ctx, "m", tc.version, tc.raw)
			if !errors.Is(err, ErrRefused) || !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("upload: %v, want %v: %s", err, tc.want, tc.reason)
			}
			if _, err := r.Lookup(context.Background(), "m", tc.version); err == nil {
				t.Fatal("the refused version is in the registry")
			}
		})
	}

	// A registry without SetTrust refuses even a signed artifact.
	m := &memLog{}
	bare := New(m, fakeFactory, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.r = bare
	if _, err := bare.Upload(ctx, "m", "1", artifact(t, "m", "1")); !errors.Is(err, ErrRefused) {
		t.Fatalf("no trust configured: %v", err)
	}

	// accept_unsigned lets the unsigned one in, and still refuses a
	// trusted key's signature that does not match.
	lax, _ := newTest(t, nil)
	lax.SetTrust(model.NewTrust([]ed25519.PublicKey{modeltest.Public}, true))
	if v, err := lax.Upload(ctx, "m", "2", sealed(t, unsigned(t, "m", "2"))); err != nil || v.SignedBy != "" {
		t.Fatalf("accept_unsigned: %v", err)
	}
	if _, err := lax.Upload(ctx, "m", "3", tamperedArtifact(t, "m", "3")); !errors.Is(err, model.ErrSignature) {
		t.Fatalf("accept_unsigned, tampered: %v", err)
	}
}

// A tampered record on the topic (written there by something other than a
// scorer's upload) is refused, counted and listed, and the records after it
// still apply.
func TestTopicRecordRefused(t *testing.T) {
	r, _ := newTest(t, nil)
	r.Apply(artifactKey("m", "1"), tamperedArtifact(t, "m", "1"))
	r.Apply(artifactKey("m", "2"), sealed(t, unsigned(t, "m", "2")))
	r.Apply(artifactKey("m", "3"), artifact(t, "m", "3"))
	if n := r.RefusedRecords(); n != 2 {
		t.Fatalf("refused records %d, want 2", n)
	}
	if _, err := r.Lookup(context.Background(), "m", "3"); err != nil {
		t.Fatalf("the record after the refused ones: %v", err)
	}
	info, _ := r.Model("m")
	if !strings.Contains(info.Refused["1"], "does not match") || !strings.Contains(info.Refused["2"], "no signature") || len(info.Versions) != 1 {
		t.Fatalf("model info %+v", info)
	}
}
