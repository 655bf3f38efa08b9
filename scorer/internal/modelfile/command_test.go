package modelfile

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/model"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errs bytes.Buffer
	err := command(context.Background(), args, &out, &errs)
	return out.String() + errs.String(), err
}

// writeCSV writes a smooth two-sensor history with a labelled fault.
func writeCSV(t *testing.T, path string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("timestamp,bearing_temp,flow,anomaly\n")
	t0 := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	for i := range 500 {
		label := 0
		temp := 60 + 2*math.Sin(float64(i)/5)
		if i >= 300 && i < 340 {
			label, temp = 1, temp+30
		}
		fmt.Fprintf(&b, "%s,%.4f,%.4f,%d\n", t0.Add(time.Duration(i)*time.Minute).Format(time.RFC3339), temp, 118+3*math.Cos(float64(i)/7), label)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// new writes an artifact the registry's loader accepts, trained only on
// the normal rows; an edited artifact fails check naming seal, and seal
// makes it valid again; reformatting a sealed file changes nothing.
func TestNewSealCheck(t *testing.T) {
	dir := t.TempDir()
	csv, art := filepath.Join(dir, "h.csv"), filepath.Join(dir, "m.json")
	writeCSV(t, csv)
	out, err := run(t, "new", "-name", "pump", "-version", "3", "-in", csv, "-label-col", "anomaly", "-out", art, "-epochs", "5")
	if err != nil {
		t.Fatalf("new: %v\n%s", err, out)
	}
	if !strings.Contains(out, "pump 3, forecaster, features [bearing_temp flow], window 8, trained on 460 of 500 rows") {
		t.Fatalf("new printed %q", out)
	}
	a, err := model.LoadFile(art)
	if err != nil {
		t.Fatalf("registry loader refuses the new artifact: %v", err)
	}
	if a.Training.Rows == 0 || a.Name != "pump" || a.Version != "3" {
		t.Fatalf("artifact %+v", a.Training)
	}
	if out, err := run(t, "check", art); err != nil || !strings.Contains(out, "sha256 "+a.SHA256+", unsigned (not verified: no --trusted-keys): valid") {
		t.Fatalf("check: %v %q", err, out)
	}

	raw, _ := os.ReadFile(art)
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	flat, _ := json.Marshal(doc)
	// Re-encoded compactly, with a number spelt differently (0.1 as
	// 1.000e-1): the same values, the same checksum.
	respelt := bytes.Replace(flat, []byte(`"smoothing":0.1`), []byte(`"smoothing":1.000e-1`), 1)
	if bytes.Equal(respelt, flat) {
		t.Fatalf("no smoothing 0.1 to respell in %s", flat)
	}
	flat = respelt
	reformatted := filepath.Join(dir, "flat.json")
	os.WriteFile(reformatted, flat, 0o644)
	if out, err := run(t, "check", reformatted); err != nil {
		t.Fatalf("reformatted artifact: %v %q", err, out)
	}

	// An edited value: check refuses with the checksum it should have and
	// says how to seal; seal fixes it.
	edited := bytes.Replace(raw, []byte(`"name": "pump"`), []byte(`"name": "pump-a"`), 1)
	if bytes.Equal(edited, raw) {
		t.Fatal("edit did not apply")
	}
	os.WriteFile(art, edited, 0o644)
	out, err = run(t, "check", art)
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") || !strings.Contains(err.Error(), "content hashes to") || !strings.Contains(err.Error(), "scorer model seal "+art) {
		t.Fatalf("check of an edited artifact: %v %q", err, out)
	}
	if out, err := run(t, "seal", art); err != nil || !strings.Contains(out, "pump-a 3 sealed") {
		t.Fatalf("seal: %v %q", err, out)
	}
	if b, err := model.LoadFile(art); err != nil || b.Name != "pump-a" {
		t.Fatalf("after seal: %v", err)
	}
	// A hand-written artifact that is inconsistent is not sealed.
	bad := bytes.Replace(edited, []byte(`"window": 8`), []byte(`"window": 9`), 1)
	os.WriteFile(art, bad, 0o644)
	if _, err := run(t, "seal", art); err == nil || !strings.Contains(err.Error(), "network input") {
		t.Fatalf("seal of an inconsistent artifact: %v", err)
	}
	if got, _ := os.ReadFile(art); !bytes.Equal(got, bad) {
		t.Fatal("a refused seal rewrote the file")
	}
	for _, args := range [][]string{nil, {"nope"}, {"new"}, {"check"}} {
		if _, err := run(t, args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

// keygen writes a key pair; new --key signs; check --trusted-keys verifies
// and refuses another key; an edit sealed without a key drops the stale
// signature, sealed with --key signs again.
func TestKeygenSignCheck(t *testing.T) {
	dir := t.TempDir()
	keys, other := filepath.Join(dir, "keys"), filepath.Join(dir, "other")
	out, err := run(t, "keygen", "-out", keys)
	if err != nil || !strings.Contains(out, "model.key: private key") || !strings.Contains(out, "model.pub: public key") {
		t.Fatalf("keygen: %v %q", err, out)
	}
	if st, err := os.Stat(filepath.Join(keys, "model.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key file: %v %v", st, err)
	}
	if _, err := run(t, "keygen", "-out", keys); err == nil {
		t.Fatal("keygen overwrote a key pair")
	}
	if _, err := run(t, "keygen", "-out", other); err != nil {
		t.Fatal(err)
	}
	priv, pub, otherPub := filepath.Join(keys, "model.key"), filepath.Join(keys, "model.pub"), filepath.Join(other, "model.pub")
	csv, art := filepath.Join(dir, "h.csv"), filepath.Join(dir, "m.json")
	writeCSV(t, csv)
	out, err = run(t, "new", "-name", "pump", "-version", "3", "-in", csv, "-label-col", "anomaly", "-out", art, "-epochs", "2", "-key", priv)
	if err != nil || !strings.Contains(out, ", signed by key ") {
		t.Fatalf("new --key: %v %q", err, out)
	}
	if out, err := run(t, "check", "-trusted-keys", pub, art); err != nil || !strings.Contains(out, "(trusted): valid") {
		t.Fatalf("check: %v %q", err, out)
	}
	if _, err := run(t, "check", "-trusted-keys", otherPub, art); err == nil || !strings.Contains(err.Error(), "not among the trusted keys") {
		t.Fatalf("check against another key: %v", err)
	}

	raw, _ := os.ReadFile(art)
	os.WriteFile(art, bytes.Replace(raw, []byte(`"name": "pump"`), []byte(`"name": "pump-a"`), 1), 0o644)
	if out, err := run(t, "seal", art); err != nil || !strings.Contains(out, "unsigned") {
		t.Fatalf("seal of an edited signed artifact: %v %q", err, out)
	}
	if _, err := run(t, "check", "-trusted-keys", pub, art); err == nil || !strings.Contains(err.Error(), "no signature") {
		t.Fatalf("check after sealing without a key: %v", err)
	}
	if out, err := run(t, "seal", "-key", priv, art); err != nil || !strings.Contains(out, "signed by key") {
		t.Fatalf("seal --key: %v %q", err, out)
	}
	if _, err := run(t, "check", "-trusted-keys", pub, art); err != nil {
		t.Fatalf("check after seal --key: %v", err)
	}
	// Sealing an unchanged signed file keeps its signature.
	if out, err := run(t, "seal", art); err != nil || !strings.Contains(out, "signed by key") {
		t.Fatalf("seal of an unchanged signed artifact: %v %q", err, out)
	}
}
