// Package modelfile is `scorer model`: model artifact files by hand, for a
// model registry user without a trainer at hand.
//
//	scorer model new    trains a forecaster on a CSV of normal readings and
//	                    writes a sealed artifact ready to upload
//	scorer model seal   sets the checksum of an artifact written or edited
//	                    by hand
//	scorer model check  verifies an artifact as the registry will (format,
//	                    checksum, consistency) and prints what it is
//
// The checksum rule is pdmkit/model's (Artifact.Sum): sha256 over the
// compact re-encoding of the document with "sha256" empty, so a file's
// whitespace and the spelling of its numbers do not matter, only values.
package modelfile

import (
	"bytes"
	"context"
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

// Command is `scorer model <new|seal|check>`.
func Command(ctx context.Context, args []string) error {
	return command(ctx, args, os.Stdout, os.Stderr)
}

const usage = "usage: scorer model new|seal|check [flags] (-h after one for its flags)"

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
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" || *version == "" || *in == "" || *out == "" {
		fs.Usage()
		return errors.New("model new: --name, --version, --in and --out are required")
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
	if err := a.WriteFile(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s %s, forecaster, features %v, window %d, trained on %d of %d rows, sha256 %s\n",
		*out, a.Name, a.Version, a.Features, a.Window, used, len(t.Values), a.SHA256)
	return nil
}

func seal(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("model seal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "file to write (default: the input file, rewritten)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: scorer model seal [--out FILE] ARTIFACT.json")
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
	// Write validates and sets the checksum; the file is replaced only
	// once the whole artifact is encoded.
	var buf bytes.Buffer
	if err := a.Write(&buf); err != nil {
		return fmt.Errorf("model seal: %s: %w", in, err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("model seal: %w", err)
	}
	fmt.Fprintf(stdout, "%s: %s %s sealed, sha256 %s (was %q)\n", path, a.Name, a.Version, a.SHA256, old)
	return nil
}

func check(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("model check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: scorer model check ARTIFACT.json")
	}
	a, err := model.LoadFile(fs.Arg(0))
	if err != nil {
		if errors.Is(err, model.ErrChecksum) {
			return fmt.Errorf("model check: %w (after editing, run scorer model seal %s)", err, fs.Arg(0))
		}
		return fmt.Errorf("model check: %w", err)
	}
	if _, err := detect.New(a); err != nil {
		return fmt.Errorf("model check: %s: does not build a detector: %w", fs.Arg(0), err)
	}
	fmt.Fprintf(stdout, "%s: %s %s, %s, features %v, window %d, sha256 %s: valid\n", fs.Arg(0), a.Name, a.Version, a.Kind, a.Features, a.Window, a.SHA256)
	return nil
}
