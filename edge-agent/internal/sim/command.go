package sim

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

// Command is `edge-agent simulate`: one simulated asset's history, with
// or without a degradation, written as CSV with its ground truth, so the
// decision can be tried on it with `scorer backtest`.
func Command(_ context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var r Run
	fs.StringVar(&r.Asset, "asset", "pump-1", "asset id")
	fs.StringVar(&r.Kind, "kind", Pump, "pump or motor")
	fs.StringVar(&r.Mode, "mode", "", "degradation: bearing_wear, cavitation or misalignment (default none: a healthy run)")
	fs.DurationVar(&r.After, "after", 30*time.Hour, "simulated time from the first reading to the onset")
	fs.DurationVar(&r.TTF, "ttf", 0, "simulated time from onset to failure (default the mode's: bearing_wear 72h, cavitation 24h, misalignment 120h, ±15%)")
	fs.DurationVar(&r.Step, "step", 3*time.Minute, "simulated time between readings")
	fs.IntVar(&r.Rows, "rows", 2000, "readings to write")
	fs.Uint64Var(&r.Seed, "seed", 1, "random seed")
	fs.Float64Var(&r.SetPoint, "set-point", 0, "move the asset to this mean load (0.3..1), a new operating point, --set-point-after the first reading")
	fs.DurationVar(&r.SetPointAfter, "set-point-after", 0, "simulated time from the first reading to the --set-point change")
	start := fs.String("start", "2026-01-05T00:00:00Z", "time of the first reading (RFC 3339)")
	out := fs.String("out", "", "CSV to write: timestamp, the kind's sensors, anomaly (required; - for stdout)")
	truthOut := fs.String("truth", "", "also write the ground truth (onset and failure times) as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		fs.Usage()
		return errors.New("simulate: --out is required")
	}
	var err error
	if r.Start, err = time.Parse(time.RFC3339, *start); err != nil {
		return fmt.Errorf("simulate: --start: %w", err)
	}
	if r.Rows < 1 {
		return fmt.Errorf("simulate: --rows (%d) must be at least 1", r.Rows)
	}
	w := io.Writer(os.Stdout)
	if *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			return fmt.Errorf("simulate: %w", err)
		}
		defer f.Close()
		w = f
	}
	truth, err := WriteCSV(w, r)
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	if c, ok := w.(io.Closer); ok && *out != "-" {
		if err := c.Close(); err != nil {
			return fmt.Errorf("simulate: %w", err)
		}
	}
	b, _ := json.Marshal(truth)
	if *truthOut != "" {
		if err := os.WriteFile(*truthOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("simulate: %w", err)
		}
	}
	fmt.Fprintf(stderr, "simulate: %d readings of %s (%s) every %s; truth %s\n", r.Rows, r.Asset, r.Kind, r.Step, b)
	return nil
}
