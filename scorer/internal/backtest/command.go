package backtest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
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
	out := fs.String("out", "", "output CSV: timestamp,anomaly_score,alert,top_sensor (required; - for stdout)")
	warm := fs.Int("warmup-rows", 0, "rows learned as normal before scoring (default 15% of the rows, at most 1000)")
	timeCol := fs.String("time-col", "", "time column (default: the first named timestamp, datetime, time or date)")
	excl := fs.String("exclude-cols", "", "comma-separated columns that are neither sensors nor the label")
	label := fs.String("label-col", "", "0/1 label column; prints precision, recall, F1, FAR, MAR and lead times")
	// Detector settings; the defaults are the live scorer's.
	window := fs.Int("window", 0, "advanced: readings per network input (default 4)")
	smoothing := fs.Float64("smoothing", 0, "advanced: weight of the newest error in the moving average (default 0.13)")
	enter := fs.Float64("enter", 0, "advanced: score that opens an alert (default 0.99)")
	exit := fs.Float64("exit", 0, "advanced: score below which an alert closes (default 0.95)")
	minDur := fs.Int("min-duration", 0, "advanced: readings past a level before the alert state changes (default 3)")
	drift := fs.Float64("drift-ratio", 0, "advanced: spread of warm-up block means over overall spread above which a sensor counts as drifting (default 0.6)")
	frozen := fs.Bool("frozen", false, "advanced: stop learning after the warm-up (default: keep adapting on guarded recent history, as the live scorer does)")
	fs.Usage = func() {
		fmt.Fprintln(log, "usage: scorer backtest --in FILE.csv --out SCORES.csv [--warmup-rows N] [--time-col NAME] [--exclude-cols a,b] [--label-col NAME]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" || *out == "" {
		fs.Usage()
		return errors.New("backtest: --in and --out are required")
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
	var w io.Writer = os.Stdout
	var of *os.File
	if *out != "-" {
		if of, err = os.Create(*out); err != nil {
			return fmt.Errorf("backtest: %w", err)
		}
		w = of
	}
	opt := Options{WarmupRows: *warm}
	opt.Detector.Window, opt.Detector.Smoothing = *window, *smoothing
	opt.Detector.Enter, opt.Detector.Exit, opt.Detector.MinDuration = *enter, *exit, *minDur
	opt.Detector.Frozen, opt.Detector.DriftRatio = *frozen, *drift
	sum, err := Run(ctx, t, w, opt)
	if of != nil {
		if cerr := of.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("backtest: %w", cerr)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	fmt.Fprintf(log, "%s: %d rows, %d sensors, warm-up %d, %d rows skipped (no value yet), %d missing cells carried forward, %d alert rows\n",
		*in, sum.Rows, len(sum.Sensors), sum.Warmup, sum.Skipped, t.Missing, sum.Alerts)
	if m := sum.Metrics; m != nil {
		fmt.Fprintf(log, "precision %.3f recall %.3f F1 %.3f FAR %.2f%% MAR %.2f%% (TP %d FP %d FN %d TN %d)\n",
			m.Precision, m.Recall, m.F1, m.FAR, m.MAR, m.TP, m.FP, m.FN, m.TN)
		fmt.Fprintf(log, "events %d detected %d mean delay %v mean lead %v\n", m.Events, m.Detected, m.MeanDelay, m.MeanLead)
	}
	return nil
}
