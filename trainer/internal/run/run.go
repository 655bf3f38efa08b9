// Package run is `trainer run`: one training job by hand, in the
// foreground, through the same job as `trainer serve` runs — the history
// from InfluxDB (or, with --file, from a CSV or whitespace-separated file
// through the same history type), the candidate validated against the
// active version, published to the scorer's registry (or, with --dry-run,
// written to the job's folder).
package run

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	pdmconfig "github.com/pdmstream/pdm/pdmkit/config"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/pdmstream/pdm/trainer/internal/config"
	"github.com/pdmstream/pdm/trainer/internal/history"
	"github.com/pdmstream/pdm/trainer/internal/job"
	"github.com/pdmstream/pdm/trainer/internal/progress"
	"github.com/pdmstream/pdm/trainer/internal/registry"
)

// Command is `trainer run --asset A | --class C [--file F [--asset-col C]] [--dry-run]`
// plus every configuration flag of `trainer serve`.
func Command(ctx context.Context, args []string) error {
	var asset, class, file, by string
	var dry bool
	var cols, label, assetCol string
	cfg := config.Default()
	extra := func(fs *flag.FlagSet) {
		fs.StringVar(&asset, "asset", "", "the asset to train (its class, if it has one)")
		fs.StringVar(&class, "class", "", "the class to train")
		fs.StringVar(&file, "file", "", "read the history from this CSV or whitespace file instead of InfluxDB")
		fs.StringVar(&cols, "columns", "", "the file's column names, comma separated, when it has no header line")
		fs.StringVar(&assetCol, "asset-col", "", "the file's asset (or unit) column: each value is a series of its own (for the rul kind, one run to failure)")
		fs.StringVar(&label, "label-col", "", "the file's 0/1 label column: labelled rows are not normal operation")
		fs.BoolVar(&dry, "dry-run", false, "validate without a registry: no active version, the artifact written to the job's folder")
		fs.StringVar(&by, "by", "trainer run", "who asks, for the record")
	}
	if printed, err := pdmconfig.Parse("run", args, &cfg, config.Sample, os.Stdout, extra); printed || err != nil {
		return err
	}
	if (asset == "") == (class == "") {
		return errors.New("run: give exactly one of --asset and --class")
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log, err := cfg.Log.Logger()
	if err != nil {
		return err
	}
	store, err := job.NewStore(cfg.DataDir)
	if err != nil {
		return err
	}
	req := wire.TrainingRequest{Asset: asset, Class: class, Reason: wire.ReasonManual, By: by, At: time.Now().UTC()}
	k := cfg.Class(req.Key())
	req.Site = k.Job.Site
	var reader job.Reader
	if file != "" {
		opt := history.FileOptions{Site: req.Site, Asset: k.Assets[0], AssetCol: assetCol, Step: k.Job.Step, LabelCol: label}
		if cols != "" {
			opt.Columns = strings.Split(cols, ",")
		}
		reader = fileReader{path: file, opt: opt}
	} else {
		r, err := history.New(history.Config{URL: cfg.Influx.URL, Token: cfg.Influx.Token, Org: cfg.Influx.Org, Bucket: cfg.Influx.Bucket,
			Resample: history.Resample(cfg.Influx.Resample), RetryFor: cfg.Influx.RetryFor}, log)
		if err != nil {
			return err
		}
		defer r.Close(context.WithoutCancel(ctx)) // nothing to wait for
		reader = r
	}
	key, err := job.SigningKey(cfg, log)
	if err != nil {
		return err
	}
	var reg job.Registry = registry.New(cfg.Scorer.URL, cfg.Scorer.Token, log.With("component", "registry"))
	if dry {
		reg = job.Offline{Dir: store.Dir(job.ID(k.Name, req.At)), Log: log}
		if err := os.MkdirAll(store.Dir(job.ID(k.Name, req.At)), 0o755); err != nil {
			return err
		}
	}
	bar := progress.New(os.Stderr, log, "history of "+k.Name, 5*time.Second)
	runner := &job.Runner{Config: &cfg, History: reader, Registry: reg, Store: store, Log: log, Progress: bar, Key: key}
	rec, err := runner.Run(ctx, req)
	bar.Close()
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(rec, "", "  ")
	fmt.Println(string(b))
	fmt.Fprintf(os.Stderr, "job %s: %s — %s\nrecord and plots: %s\n", rec.ID, rec.State, rec.Reason, store.Dir(rec.ID))
	if rec.State == job.Failed {
		return fmt.Errorf("run: job %s failed: %s", rec.ID, rec.Reason)
	}
	return nil
}

// fileReader serves a file's history to the job.
type fileReader struct {
	path string
	opt  history.FileOptions
}

func (f fileReader) Read(_ context.Context, q history.Query, _ history.Reporter) ([]*history.Series, error) {
	f.opt.Step = q.Step
	return history.ReadFile(f.path, f.opt)
}
