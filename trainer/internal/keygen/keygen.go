// Package keygen is `trainer keygen`: the ed25519 key pair the trainer
// signs artifacts with (signing.key_file) and scorers trust
// (models.trusted_keys).
package keygen

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pdmstream/pdm/pdmkit/model"
)

// Command is `trainer keygen --out DIR [--name NAME] [--if-missing]`.
func Command(_ context.Context, args []string) error {
	return run(args, os.Stdout, os.Stderr)
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "folder to write NAME.key (private, mode 0600) and NAME.pub into (required)")
	name := fs.String("name", "model", "file name of the pair")
	ifMissing := fs.Bool("if-missing", false, "keep an existing pair and exit 0 (for a deployment's one-shot step)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 0 {
		fs.Usage()
		return errors.New("keygen: --out is required")
	}
	if *ifMissing {
		if _, err := model.LoadPrivateKeyFile(filepath.Join(*out, *name+".key")); err == nil {
			fmt.Fprintf(stdout, "%s: key pair kept\n", filepath.Join(*out, *name))
			return nil
		}
	}
	priv, pub, key, err := model.WriteKeyPair(*out, *name)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	fmt.Fprintf(stdout, "%s: private key (signing.key_file)\n%s: public key %s (the scorer's models.trusted_keys: the file or %s)\n",
		priv, pub, model.KeyID(key), base64.StdEncoding.EncodeToString(key))
	return nil
}
