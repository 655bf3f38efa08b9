// Package modelfile is `scorer model`: model artifact files by hand, for a
// model registry user without a trainer at hand.
//
//	scorer model new     trains a forecaster on a CSV of normal readings and
//	                     writes a sealed artifact ready to upload, signed
//	                     with -key
//	scorer model seal    sets the checksum of an artifact written or edited
//	                     by hand, and signs it with -key
//	scorer model check   verifies an artifact as the registry will (format,
//	                     checksum, consistency, and with -trusted-keys its
//	                     signature) and prints what it is
//	scorer model keygen  writes an ed25519 key pair for signing artifacts
//
// The checksum rule is pdmkit/model's (Artifact.Sum): sha256 over the
// compact re-encoding of the document with "sha256" empty and "signature"
// left out, so a file's whitespace and the spelling of its numbers do not
// matter, only values; the signature covers the same bytes.
package modelfile

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/detect"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/scorer/internal/backtest"
)

// Command is `scorer model <new|seal|check|keygen>`.
func Command(ctx context.Context, args []string) error {
	return command(ctx, args, os.Stdout, os.Stderr)
}

const usage = "usage: scorer model new|seal|check|keygen [flags] (-h after one for its flags)"

func command(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch args[0] {
	case "new":
		return newModel(args[1:], stdout, stderr)
	case "seal":
		return seal(args[1:], stdout, stderr)
	case "check":
		return check(args[1:], stdout, stderr)
	case "keygen":
		return keygen(args[1:], stdout, stderr)
	}
	return fmt.Errorf("model: unknown command %q; %s", args[0], usage)
}

func newModel(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("model new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "model name (required)")
	version := fs.String("version", "", "version (required)")
	in := fs.String("in", "", "CSV of normal readings with a header: a time column and one column per sensor (required); `edge-agent simulate` writes one")
	out := fs.String("out", "", "artifact file to write (required)")
	timeCol := fs.String("time-col", "", "time column (default: the first named timestamp, datetime, time or date)")
	excl := fs.String("exclude-cols", "", "comma-separated columns that are not sensors")
	label := fs.String("label-col", "", "0/1 label column: rows labelled 1 are left out of training")
	window := fs.Int("window", 8, "readings per network input")
	horizon := fs.Int("horizon", 2, "readings forecast")
	epochs := fs.Int("epochs", 30, "training epochs")
	seed := fs.Uint64("seed", 1, "random seed: the same file, flags and seed give the same artifact")
	keyFile := fs.String("key", "", "ed25519 private key (PEM, from scorer model keygen) to sign the artifact with; without it the artifact is unsigned and a scorer loads it only with models.accept_unsigned")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" || *version == "" || *in == "" || *out == "" {
		fs.Usage()
		return errors.New("model new: --name, --version, --in and --out are required")
	}
	key, err := signingKey(*keyFile)
	if err != nil {
		return fmt.Errorf("model new: %w", err)
	}
	f, err := os.Open(*in)
	if err != nil {
		return fmt.Errorf("model new: %w", err)
	}
	defer f.Close()
	var exclude []string
	if *excl != "" {
		exclude = strings.Split(*excl, ",")
	}
	t, err := backtest.ReadTable(f, backtest.ReadOptions{TimeCol: *timeCol, Exclude: exclude, LabelCol: *label})
	if err != nil {
		return fmt.Errorf("model new: %s: %w", *in, err)
	}
	// Contiguous runs of complete, normal rows: a labelled or incomplete
	// row ends a run, so no window spans it.
	var segs [][][]float64
	var cur [][]float64
	used := 0
	for i, row := range t.Values {
		bad := t.Labels != nil && t.Labels[i]
		for _, v := range row {
			bad = bad || math.IsNaN(v)
		}
		if bad {
			if len(cur) > 0 {
				segs = append(segs, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, row)
		used++
	}
	if len(cur) > 0 {
		segs = append(segs, cur)
	}
	tr, err := anomaly.TrainForecasterSegments(segs, t.Times[0], t.Times[len(t.Times)-1], t.Sensors,
		anomaly.ForecasterConfig{Name: *name, Version: *version, Window: *window, Horizon: *horizon, Epochs: *epochs, Seed: *seed})
	if err != nil {
		return fmt.Errorf("model new: train on %d normal rows of %s: %w", used, *in, err)
	}
	a := tr.Artifact
	a.CreatedAt = time.Now().UTC().Truncate(time.Second)
	if key != nil {
		if err := a.Sign(key); err != nil {
			return fmt.Errorf("model new: %w", err)
		}
	}
	if err := a.WriteFile(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s %s, forecaster, features %v, window %d, trained on %d of %d rows, sha256 %s, %s\n",
		*out, a.Name, a.Version, a.Features, a.Window, used, len(t.Values), a.SHA256, signedBy(a))
	return nil
}

// signingKey reads the private key at path; none when path is empty.
func signingKey(path string) (ed25519.PrivateKey, error) {
	if path == "" {
		return nil, nil
	}
	return model.LoadPrivateKeyFile(path)
}

// signedBy says who signed a, as the commands print it.
func signedBy(a *model.Artifact) string {
	if a.Signature == nil {
		return "unsigned"
	}
	return "signed by key " + a.Signature.KeyID
}

func seal(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("model seal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "file to write (default: the input file, rewritten)")
	keyFile := fs.String("key", "", "ed25519 private key (PEM) to sign the artifact with")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: scorer model seal [--out FILE] [--key FILE] ARTIFACT.json")
	}
	key, err := signingKey(*keyFile)
	if err != nil {
		return fmt.Errorf("model seal: %w", err)
	}
	in := fs.Arg(0)
	raw, err := os.ReadFile(in)
	if err != nil {
		return fmt.Errorf("model seal: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var a model.Artifact
	if err := dec.Decode(&a); err != nil {
		return fmt.Errorf("model seal: %s: %w", in, err)
	}
	old := a.SHA256
	path := in
	if *out != "" {
		path = *out
	}
	// A content that no longer has its checksum was edited after any
	// signature was made: that signature cannot hold, so it goes.
	if sum, err := a.Sum(); err == nil && sum != old {
		a.Signature = nil
	}
	if key != nil {
		if err := a.Sign(key); err != nil {
			return fmt.Errorf("model seal: %s: %w", in, err)
		}
	}
	// Write validates and sets the checksum; the file is replaced only
	// once the whole artifact is encoded.
	var buf bytes.Buffer
	if err := a.Write(&buf); err != nil {
		return fmt.Errorf("model seal: %s: %w", in, err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("model seal: %w", err)
	}
	fmt.Fprintf(stdout, "%s: %s %s sealed, sha256 %s (was %q), %s\n", path, a.Name, a.Version, a.SHA256, old, signedBy(&a))
	return nil
}

func check(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("model check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	trusted := fs.String("trusted-keys", "", "comma-separated public keys (base64 or files) the signature must be by, as the scorer's models.trusted_keys; without it the signature is not checked")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: scorer model check [--trusted-keys KEYS] ARTIFACT.json")
	}
	a, err := model.LoadFile(fs.Arg(0))
	if err != nil {
		if errors.Is(err, model.ErrChecksum) {
			return fmt.Errorf("model check: %w (after editing, run scorer model seal %s)", err, fs.Arg(0))
		}
		return fmt.Errorf("model check: %w", err)
	}
	signer := signedBy(a) + " (not verified: no --trusted-keys)"
	if *trusted != "" {
		keys, err := model.TrustedKeys(strings.Split(*trusted, ","))
		if err != nil {
			return fmt.Errorf("model check: %w", err)
		}
		if _, err := model.NewTrust(keys, false).Verify(a); err != nil {
			return fmt.Errorf("model check: %s: %w", fs.Arg(0), err)
		}
		signer = signedBy(a) + " (trusted)"
	}
	if _, err := detect.New(a); err != nil {
		return fmt.Errorf("model check: %s: does not build a detector: %w", fs.Arg(0), err)
	}
	fmt.Fprintf(stdout, "%s: %s %s, %s, features %v, window %d, sha256 %s, %s: valid\n", fs.Arg(0), a.Name, a.Version, a.Kind, a.Features, a.Window, a.SHA256, signer)
	return nil
}

func keygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("model keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "folder to write NAME.key (private, mode 0600) and NAME.pub into (required)")
	name := fs.String("name", "model", "file name of the pair")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 0 {
		fs.Usage()
		return errors.New("model keygen: --out is required")
	}
	priv, pub, key, err := model.WriteKeyPair(*out, *name)
	if err != nil {
		return fmt.Errorf("model keygen: %w", err)
	}
	fmt.Fprintf(stdout, "%s: private key (sign with it: scorer model new --key, the trainer's signing.key_file)\n%s: public key %s (trust it: the scorer's models.trusted_keys, the file or %s)\n",
		priv, pub, model.KeyID(key), base64.StdEncoding.EncodeToString(key))
	return nil
}
