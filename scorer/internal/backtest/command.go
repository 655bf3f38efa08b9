package backtest

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	pdmconfig "github.com/pdmstream/pdm/pdmkit/config"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/scorer/internal/config"
)

// Command is `scorer backtest ...`: it parses args, runs, and prints the
// summary (and metrics with --label-col) to stderr.
func Command(ctx context.Context, args []string) error {
	return command(ctx, args, os.Stderr)
}

func command(ctx context.Context, args []string, log io.Writer) error {
	fs := flag.NewFlagSet("backtest", flag.ContinueOnError)
	fs.SetOutput(log)
	in := fs.String("in", "", "input CSV with a header (required)")
	out := fs.String("out", "", "output CSV: "+Header+" (required; - for stdout)")
	events := fs.String("events", "", "write every alert event, as the scorer publishes it, to this file as JSON lines")
	conf := fs.String("config", "", "the scorer's YAML configuration: its alert section is the decision (default: the scorer's defaults)")
	warm := fs.Int("warmup-rows", 0, "rows learned as normal before scoring (default 15% of the rows, at most 1000)")
	timeCol := fs.String("time-col", "", "time column (default: the first named timestamp, datetime, time or date)")
	excl := fs.String("exclude-cols", "", "comma-separated columns that are neither sensors nor the label")
	modelPath := fs.String("model", "", "score with this model artifact (JSON, as uploaded to the registry) instead of the online learner")
	label := fs.String("label-col", "", "0/1 label column; prints precision, recall, F1, FAR, MAR and lead times")
	// The decision's settings most worth trying; the rest come from --config.
	nnReadings := fs.Int("new-normal-readings", 0, "readings of a settled excursion before it is learnt as normal (default: the scorer's, 300)")
	nnDuration := fs.Duration("new-normal-duration", 0, "reading time of a settled excursion before it is learnt as normal (default: the scorer's, 24h)")
	nnOff := fs.Bool("no-new-normal", false, "never learn a new normal (the scorer's alert.new_normal.off)")
	// Detector settings; the defaults are the live scorer's.
	window := fs.Int("window", 0, "advanced: readings per network input (default 4)")
	smoothing := fs.Float64("smoothing", 0, "advanced: weight of the newest error in the moving average (default 0.13)")
	drift := fs.Float64("drift-ratio", 0, "advanced: spread of warm-up block means over overall spread above which a sensor counts as drifting (default 0.6)")
	frozen := fs.Bool("frozen", false, "advanced: stop learning after the warm-up (default: keep adapting on guarded recent history, as the live scorer does)")
	fs.Usage = func() {
		fmt.Fprintln(log, "usage: scorer backtest --in FILE.csv --out SCORES.csv [--events EVENTS.jsonl] [--config scorer.yaml] [--model ARTIFACT.json] [--warmup-rows N] [--time-col NAME] [--exclude-cols a,b] [--label-col NAME]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" || *out == "" {
		fs.Usage()
		return errors.New("backtest: --in and --out are required")
	}
	cfg := config.Default()
	if err := pdmconfig.Load(*conf, &cfg); err != nil {
		return fmt.Errorf("backtest: %w", err)
	}
	cfg.Alert.NewNormal.Readings = cmp.Or(*nnReadings, cfg.Alert.NewNormal.Readings)
	cfg.Alert.NewNormal.Duration = cmp.Or(*nnDuration, cfg.Alert.NewNormal.Duration)
	cfg.Alert.NewNormal.Off = cfg.Alert.NewNormal.Off || *nnOff
	if err := cfg.Alert.Config().Validate(); err != nil {
		return fmt.Errorf("backtest: %w", err)
	}
	f, err := os.Open(*in)
	if err != nil {
		return fmt.Errorf("backtest: %w", err)
	}
	defer f.Close()
	var exclude []string
	if *excl != "" {
		exclude = strings.Split(*excl, ",")
	}
	t, err := ReadTable(f, ReadOptions{TimeCol: *timeCol, Exclude: exclude, LabelCol: *label})
	if err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	opt := Options{WarmupRows: *warm, Decision: cfg.Alert.Config(), Asset: strings.TrimSuffix(filepath.Base(*in), filepath.Ext(*in))}
	if *modelPath != "" {
		if opt.Model, err = model.LoadFile(*modelPath); err != nil {
			return fmt.Errorf("backtest: --model: %w", err)
		}
	}
	opt.Detector.Window, opt.Detector.Smoothing = *window, *smoothing
	opt.Detector.Frozen, opt.Detector.DriftRatio = *frozen, *drift
	var closers []*os.File
	create := func(path string) (io.Writer, error) {
		if path == "-" {
			return os.Stdout, nil
		}
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("backtest: %w", err)
		}
		closers = append(closers, f)
		return f, nil
	}
	w, err := create(*out)
	if err != nil {
		return err
	}
	if *events != "" {
		if opt.Events, err = create(*events); err != nil {
			return err
		}
	}
	sum, err := Run(ctx, t, w, opt)
	for _, c := range closers {
		if cerr := c.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("backtest: %w", cerr)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	fmt.Fprintf(log, "%s: %d rows, %d sensors, warm-up %d, %d rows skipped (no value yet), %d missing cells carried forward, %d alert rows, %d alerts opened, resolved %v, %d drifts\n",
		*in, sum.Rows, len(sum.Sensors), sum.Warmup, sum.Skipped, t.Missing, sum.Alerts, sum.Opened, sum.Resolutions, sum.Drifts)
	if m := sum.Metrics; m != nil {
		fmt.Fprintf(log, "precision %.3f recall %.3f F1 %.3f FAR %.2f%% MAR %.2f%% (TP %d FP %d FN %d TN %d)\n",
			m.Precision, m.Recall, m.F1, m.FAR, m.MAR, m.TP, m.FP, m.FN, m.TN)
		fmt.Fprintf(log, "events %d detected %d mean delay %v mean lead %v\n", m.Events, m.Detected, m.MeanDelay, m.MeanLead)
	}
	return nil
}
