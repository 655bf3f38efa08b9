package keygen

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdmstream/pdm/pdmkit/model"
)

func TestKeygen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	var out, errs bytes.Buffer
	if err := run([]string{"-out", dir}, &out, &errs); err != nil {
		t.Fatalf("%v %s", err, errs.String())
	}
	priv, err := model.LoadPrivateKeyFile(filepath.Join(dir, "model.key"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := model.TrustedKeys([]string{filepath.Join(dir, "model.pub")})
	if err != nil || len(keys) != 1 || !keys[0].Equal(priv.Public()) {
		t.Fatalf("public key: %v", err)
	}
	if st, _ := os.Stat(filepath.Join(dir, "model.key")); st.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v", st.Mode())
	}
	if !strings.Contains(out.String(), model.KeyID(keys[0])) {
		t.Fatalf("output %q lacks the key id", out.String())
	}
	if err := run([]string{"-out", dir}, &out, &errs); err == nil {
		t.Fatal("overwrote the key pair")
	}
	if err := run([]string{"-out", dir, "-if-missing"}, &out, &errs); err != nil || !strings.Contains(out.String(), "kept") {
		t.Fatalf("--if-missing with a pair: %v %q", err, out.String())
	}
	if k, err := model.LoadPrivateKeyFile(filepath.Join(dir, "model.key")); err != nil || !k.Equal(priv) {
		t.Fatal("--if-missing replaced the pair")
	}
	if err := run(nil, &out, &errs); err == nil {
		t.Fatal("no --out accepted")
	}
}
