package tep

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/trainer/internal/train"
)

// Command is `trainer tep --data DIR`: train on d00.dat, score every test
// file, print the table. With --validate it cross-validates the same spec
// on d00.dat alone instead (no test file is read): how its settings were
// chosen.
func Command(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("tep", flag.ContinueOnError)
	dir := fs.String("data", "../shared/datasets/tep", "folder holding d00.dat and d00_te.dat … d21_te.dat")
	kind := fs.String("kind", string(model.Reconstruction), "model kind: reconstruction or forecaster")
	window := fs.Int("window", 0, "readings per input window (default: the benchmark's, see README)")
	horizon := fs.Int("horizon", 0, "forecaster: steps predicted")
	hidden := fs.Int("hidden", 0, "hidden units (per member)")
	smoothing := fs.Float64("smoothing", 0, "weight of the newest error in each sensor's moving average")
	epochs := fs.Int("epochs", 0, "maximum epochs per network")
	members := fs.Int("members", 0, "networks averaged into the model")
	folds := fs.Int("calibration-folds", 0, "forecaster: calibrate on this many folds of d00 (0: the 70/30 split)")
	resid := fs.String("residual-scale", "", "scale each sensor by its normal residual (true/false)")
	drift := fs.Float64("drift-ratio", 0, "reconstruction: block-mean spread above which a sensor is context only (0.99: none)")
	l2 := fs.Float64("l2", 0, "forecaster: weight decay")
	seed := fs.Uint64("seed", 0, "training seed")
	holdOut := fs.Float64("holdout", -1, "share of d00's newest rows train.Fit holds out (negative: none, the protocol trains on all 500)")
	validate := fs.Bool("validate", false, "cross-validate the spec on d00.dat alone (synthetic faults) instead of running the benchmark")
	vfolds := fs.Int("folds", 5, "with --validate: blocks of d00 held out in turn")
	out := fs.String("out", "", "write the trained artifact to this file (optional)")
	keyFile := fs.String("key", "", "ed25519 private key (PEM, trainer keygen) to sign the --out artifact with")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	spec := train.Spec{Kind: model.Kind(*kind), Name: "tep", Seed: *seed, HoldOut: *holdOut, Log: log}
	switch spec.Kind {
	case model.Forecaster:
		c := DefaultForecaster
		set(&c.Window, *window)
		set(&c.Horizon, *horizon)
		set(&c.Hidden, *hidden)
		set(&c.Smoothing, *smoothing)
		set(&c.Epochs, *epochs)
		set(&c.Members, *members)
		set(&c.CalibrationFolds, *folds)
		set(&c.L2, *l2)
		if err := setBool(&c.ResidualScale, "residual-scale", *resid); err != nil {
			return err
		}
		spec.Forecaster = c
	case model.Reconstruction:
		c := DefaultReconstruction
		set(&c.Window, *window)
		set(&c.Hidden, *hidden)
		set(&c.Smoothing, *smoothing)
		set(&c.Epochs, *epochs)
		set(&c.Members, *members)
		set(&c.DriftRatio, *drift)
		if err := setBool(&c.ResidualScale, "residual-scale", *resid); err != nil {
			return err
		}
		spec.Reconstruction = c
	default:
		return fmt.Errorf("tep: --kind %q: want %s or %s", *kind, model.Forecaster, model.Reconstruction)
	}
	if *validate {
		v, err := ValidateDir(ctx, *dir, spec, *vfolds)
		if err != nil {
			return err
		}
		PrintValidation(os.Stdout, spec, v)
		return nil
	}
	rep, err := Run(ctx, Options{Dir: *dir, Spec: spec, Log: log})
	if err != nil {
		return err
	}
	Print(os.Stdout, rep)
	if *out != "" {
		if *keyFile != "" {
			key, err := model.LoadPrivateKeyFile(*keyFile)
			if err != nil {
				return fmt.Errorf("tep: %w", err)
			}
			if err := rep.Train.Artifact.Sign(key); err != nil {
				return fmt.Errorf("tep: %w", err)
			}
		}
		if err := rep.Train.Artifact.WriteFile(*out); err != nil {
			return fmt.Errorf("tep: %w", err)
		}
	}
	return nil
}

// set overrides *dst with v unless v is zero.
func set[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}

// setBool sets *dst from a "true"/"false" flag value; "" leaves it.
func setBool(dst *bool, name, v string) error {
	switch v {
	case "":
	case "true", "false":
		*dst = v == "true"
	default:
		return fmt.Errorf("tep: --%s %q: want true or false", name, v)
	}
	return nil
}

func pct(v float64) string { return fmt.Sprintf("%.1f %%", 100*v) }
func f3(v float64) string  { return fmt.Sprintf("%.3f", v) }

// Describe names what a spec trains, for table headers.
func Describe(a *model.Artifact) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s, window %d", a.Kind, a.Name, a.Version, a.Window)
	if a.Kind == model.Forecaster {
		fmt.Fprintf(&b, ", horizon %d", a.Horizon)
	}
	fmt.Fprintf(&b, ", network %v, smoothing %g", a.Architecture.Sizes, a.Calibration.Smoothing)
	if a.Kind == model.Reconstruction {
		fmt.Fprintf(&b, ", %d context sensors", len(a.Centred))
	}
	return b.String()
}

// Print writes the report as markdown.
func Print(w io.Writer, r *Report) {
	a := r.Train.Artifact
	fmt.Fprintf(w, "Tennessee Eastman (Braatz data): trained on d00.dat (%d rows) by train.Fit — %s; %d epochs; "+
		"PCA baseline %d components (%.1f %% of the variance), fitted on the same rows.\n\n",
		r.Train.TrainRows, Describe(a), len(r.Train.Curve), r.PCA.K, 100*r.PCA.Explained)
	fmt.Fprintln(w, "| test file | alerts (decision defaults) | alerts (new-normal horizon off) | first alert (row) | ours at 5 % FAR | PCA T² at 5 % FAR | PCA SPE at 5 % FAR | AUC ours / T² / SPE |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	row := func(name string, x Row) {
		first := "—"
		if x.FirstAlert >= 0 {
			first = fmt.Sprint(x.FirstAlert + 1)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s / %s / %s |\n", name, f3(x.Alerts), f3(x.AlertsKept), first,
			f3(x.At5[Ours]), f3(x.At5[T2]), f3(x.At5[SPE]), f3(x.AUC[Ours]), f3(x.AUC[T2]), f3(x.AUC[SPE]))
	}
	row("d00_te, normal: FAR", r.Normal)
	for _, x := range r.Faults {
		name := fmt.Sprintf("d%02d_te: FDR", x.Fault)
		if slices.Contains(Undetectable, x.Fault) {
			name += " (undetectable)"
		}
		row(name, x)
	}
	r.Mean18.FirstAlert, r.Mean21.FirstAlert = -1, -1
	row("**mean FDR, 18 detectable faults**", r.Mean18)
	row("mean FDR, all 21 faults", r.Mean21)
	fmt.Fprintf(w, "\nFAR on d00_te with PCA's textbook limits (99th percentile of the training statistic): T² %s, SPE %s.\n",
		pct(r.Normal.Limit99[0]), pct(r.Normal.Limit99[1]))
	fmt.Fprintf(w, "Alerts: the share of rows after which the decision (pdmkit/monitor over anomaly.FromArtifact) has an alert open, "+
		"rows 161–960 of a fault file, all rows of d00_te. At 5 %% FAR: one threshold per statistic at the 95th percentile of its d00_te values "+
		"(ours: the detector's raw error, which its score ranks identically).\n")
	fmt.Fprintf(w, "Training %.1f s, scoring %.1f s (22 files, two decisions each), 2 cores.\n", r.TrainTime.Seconds(), r.ScoreTime.Seconds())
	fmt.Fprintf(w, "TEP summary: mean FDR at 5 %% FAR 18 faults ours %.3f T2 %.3f SPE %.3f; 21 faults ours %.3f T2 %.3f SPE %.3f; "+
		"FAR own %.4f; FDR own 18 faults %.3f kept %.3f\n",
		r.Mean18.At5[Ours], r.Mean18.At5[T2], r.Mean18.At5[SPE], r.Mean21.At5[Ours], r.Mean21.At5[T2], r.Mean21.At5[SPE],
		r.Normal.AlertsKept, r.Mean18.Alerts, r.Mean18.AlertsKept)
}

// PrintValidation writes a validation as markdown.
func PrintValidation(w io.Writer, spec train.Spec, v *Validation) {
	fmt.Fprintf(w, "d00.dat cross-validation, %d folds (%d clean held-out rows), %s\n\n", v.Folds, v.Rows, describeSpec(spec))
	fmt.Fprintln(w, "| synthetic fault | detected at 5 % FAR | AUC |")
	fmt.Fprintln(w, "|---|---|---|")
	for k, name := range Synthetic {
		fmt.Fprintf(w, "| %s | %s | %s |\n", name, f3(v.Detect[k]), f3(v.AUC[k]))
	}
	fmt.Fprintf(w, "| **mean** | %s | %s |\n", f3(v.MeanDetect), f3(v.MeanAUC))
	fmt.Fprintf(w, "| PCA T² / SPE mean | %s / %s | %s / %s |\n", f3(v.PCADetect[0]), f3(v.PCADetect[1]), f3(v.PCAAUC[0]), f3(v.PCAAUC[1]))
	fmt.Fprintf(w, "\nClean held-out rows with an alert open (own thresholds): %s\n", pct(v.Alerts))
}

func describeSpec(s train.Spec) string {
	if s.Kind == model.Reconstruction {
		c := s.Reconstruction
		return fmt.Sprintf("reconstruction window %d hidden %d smoothing %g drift ratio %g members %d residual scale %v",
			c.Window, c.Hidden, c.Smoothing, c.DriftRatio, c.Members, c.ResidualScale)
	}
	c := s.Forecaster
	return fmt.Sprintf("forecaster window %d horizon %d hidden %d smoothing %g members %d calibration folds %d residual scale %v L2 %g",
		c.Window, c.Horizon, c.Hidden, c.Smoothing, c.Members, c.CalibrationFolds, c.ResidualScale, c.L2)
}
