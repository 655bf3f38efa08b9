// Package cmapss runs NASA's C-MAPSS turbofan benchmark (subset files
// train_FDxxx.txt, test_FDxxx.txt, RUL_FDxxx.txt) the way the trainer
// trains and the scorer scores: the training engines are read by the
// trainer's file reader (one run to failure per unit) and trained by
// train.Fit as a job's rul kind, or a model `trainer run` made is loaded;
// every test engine's readings are then fed to the live detector
// (pdmkit/detect) and its remaining life after the last cycle is scored
// by RMSE and the PHM08 score.
package cmapss

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/pdmstream/pdm/pdmkit/detect"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/rul"
	"github.com/pdmstream/pdm/trainer/internal/history"
	"github.com/pdmstream/pdm/trainer/internal/train"
)

// Columns name the 26 columns of a C-MAPSS file: the unit, its age in
// cycles, three operating settings and 21 sensors. The age is a sensor
// like the others: every test trajectory starts at cycle 1 as the training
// ones do, so it is known at prediction time, and engines of one fleet
// wear out at a similar age, which tells the model where in the life a
// reading is while the sensors are still flat.
var Columns = func() []string {
	c := []string{"unit", "cycle", "setting1", "setting2", "setting3"}
	for i := 1; i <= 21; i++ {
		c = append(c, fmt.Sprintf("s%d", i))
	}
	return c
}()

// ReadFile reads a C-MAPSS file through the trainer's file reader: one
// series per unit, one row per cycle.
func ReadFile(path string) ([]*history.Series, error) {
	return history.ReadFile(path, history.FileOptions{Site: "cmapss", Columns: Columns, AssetCol: "unit"})
}

// readRUL reads the true RUL file, one integer per line.
func readRUL(path string) ([]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cmapss: %w", err)
	}
	defer f.Close()
	return parseRUL(f)
}

func parseRUL(r io.Reader) ([]float64, error) {
	sc := bufio.NewScanner(r)
	var out []float64
	for sc.Scan() {
		s := strings.TrimSpace(sc.Text())
		if s == "" {
			continue
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("cmapss: RUL line %d: %q is not a number", len(out)+1, s)
		}
		out = append(out, v)
	}
	return out, sc.Err()
}

// Score returns RMSE and the PHM08 score of predictions against truth.
func Score(pred, truth []float64) (rmse, phm float64) {
	for i, p := range pred {
		d := p - truth[i]
		rmse += d * d
		if d < 0 {
			phm += math.Exp(-d/13) - 1
		} else {
			phm += math.Exp(d/10) - 1
		}
	}
	return math.Sqrt(rmse / float64(len(pred))), phm
}

// Result of one benchmark run.
type Result struct {
	// Artifact is the model scored: trained here, or loaded.
	Artifact  *model.Artifact
	Engines   int
	RMSE, PHM float64
	// TrainTime is train.Fit's (zero for a loaded model), ScoreTime the
	// detectors' over every test engine.
	TrainTime, ScoreTime time.Duration
	Cycles               int
}

// Options of Run.
type Options struct {
	// Dir holds the subset's files; Subset names it (FD001).
	Dir, Subset string
	// Model, when set, is the artifact file to score instead of training
	// one.
	Model string
	// RUL is what train.Fit trains (Members networks averaged into one).
	RUL rul.Config
	// Out, when set, is where the trained artifact is written, signed
	// with Key when that is set.
	Out string
	Key ed25519.PrivateKey
}

// Run trains (or loads) the model and scores every test engine.
func Run(ctx context.Context, o Options) (*Result, error) {
	test, err := ReadFile(filepath.Join(o.Dir, "test_"+o.Subset+".txt"))
	if err != nil {
		return nil, fmt.Errorf("cmapss: %w (download the NASA C-MAPSS data set into %s)", err, o.Dir)
	}
	truth, err := readRUL(filepath.Join(o.Dir, "RUL_"+o.Subset+".txt"))
	if err != nil {
		return nil, err
	}
	if len(truth) != len(test) {
		return nil, fmt.Errorf("cmapss: %d test engines but %d RUL values", len(test), len(truth))
	}
	res := &Result{Engines: len(test)}
	if o.Model != "" {
		if res.Artifact, err = model.LoadFile(o.Model); err != nil {
			return nil, err
		}
	} else {
		runs, err := ReadFile(filepath.Join(o.Dir, "train_"+o.Subset+".txt"))
		if err != nil {
			return nil, fmt.Errorf("cmapss: %w", err)
		}
		start := time.Now()
		// The protocol trains on every training engine: the test engines
		// are the hold-out.
		fit, err := train.Fit(ctx, runs, train.Spec{Kind: model.RUL, Name: "cmapss-rul", Version: o.Subset, HoldOut: -1, RUL: o.RUL})
		if err != nil {
			return nil, err
		}
		res.Artifact, res.TrainTime = fit.Artifact, time.Since(start)
		if o.Out != "" {
			if o.Key != nil {
				if err := res.Artifact.Sign(o.Key); err != nil {
					return nil, err
				}
			}
			if err := res.Artifact.WriteFile(o.Out); err != nil {
				return nil, err
			}
		}
	}
	start := time.Now()
	pred := make([]float64, len(test))
	for i, s := range test {
		if pred[i], err = lastLife(res.Artifact, s); err != nil {
			return nil, err
		}
		res.Cycles += s.Rows
	}
	res.ScoreTime = time.Since(start)
	res.RMSE, res.PHM = Score(pred, truth)
	return res, nil
}

// lastLife feeds an engine's cycles to a fresh live detector and returns
// its remaining life after the last one.
func lastLife(a *model.Artifact, s *history.Series) (float64, error) {
	lives, err := lifeAfterEach(a, s)
	if err != nil {
		return 0, err
	}
	return lives[len(lives)-1], nil
}

// lifeAfterEach feeds an engine's cycles to a fresh live detector and
// returns its remaining life after each one. The detector sees only the
// cycles before, so entry i is what it says of the engine cut after cycle
// i+1.
func lifeAfterEach(a *model.Artifact, s *history.Series) ([]float64, error) {
	det, err := detect.New(a)
	if err != nil {
		return nil, err
	}
	life, ok := det.(interface{ RUL() float64 })
	if !ok {
		return nil, fmt.Errorf("cmapss: a %s model does not predict remaining life", a.Kind)
	}
	sensors := make(map[string]float64, len(s.Sensors))
	lives := make([]float64, 0, s.Rows)
	for _, sg := range s.Segments {
		for k := range sg.N {
			for j, name := range s.Sensors {
				sensors[name] = sg.Row(k)[j]
			}
			if _, err := det.Observe(sg.Time(k), sensors); err != nil {
				return nil, fmt.Errorf("cmapss: engine %s: %w", s.Asset, err)
			}
			lives = append(lives, life.RUL())
		}
	}
	if len(lives) == 0 {
		return nil, fmt.Errorf("cmapss: engine %s has no cycles", s.Asset)
	}
	return lives, nil
}

// Fold cuts of CrossValidate: each held-out engine is cut where its true
// remaining life is 5, 15, ..., 145 cycles, keeping at least 31 cycles (the
// shortest test trajectory of FD001), as the test file cuts engines.
const (
	cutStep, cutMax, minCycles = 10, 145, 31
)

// CrossValidate trains on all but one of folds groups of the training
// engines (a fixed permutation), scores every cut of the held-out group
// through the live detector, and returns the RMSE over all cuts of all
// folds against the uncapped truth, and the number of cuts. Only training
// engines are used, so a setting chosen by it has not seen the test
// engines.
func CrossValidate(ctx context.Context, runs []*history.Series, folds int, cfg rul.Config) (rmse float64, cuts int, err error) {
	if folds < 2 || folds > len(runs) {
		return 0, 0, fmt.Errorf("cmapss: %d folds for %d engines", folds, len(runs))
	}
	order := rand.New(rand.NewPCG(5, 5)).Perm(len(runs))
	for f := range folds {
		var fitOn, held []*history.Series
		for i, u := range order {
			if i%folds == f {
				held = append(held, runs[u])
			} else {
				fitOn = append(fitOn, runs[u])
			}
		}
		fit, err := train.Fit(ctx, fitOn, train.Spec{Kind: model.RUL, Name: "cmapss-cv", Version: strconv.Itoa(f + 1), HoldOut: -1, RUL: cfg})
		if err != nil {
			return 0, 0, fmt.Errorf("cmapss: fold %d: %w", f+1, err)
		}
		for _, s := range held {
			lives, err := lifeAfterEach(fit.Artifact, s)
			if err != nil {
				return 0, 0, err
			}
			for r := cutStep / 2; r <= cutMax && len(lives)-r >= minCycles; r += cutStep {
				d := lives[len(lives)-1-r] - float64(r)
				rmse += d * d
				cuts++
			}
		}
	}
	if cuts == 0 {
		return 0, 0, fmt.Errorf("cmapss: no engine has %d cycles to cut", minCycles+cutStep/2)
	}
	return math.Sqrt(rmse / float64(cuts)), cuts, nil
}

// Command is `trainer cmapss --data DIR [--model ARTIFACT]`.
func Command(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("cmapss", flag.ContinueOnError)
	dir := fs.String("data", "../shared/datasets/cmapss-fd001", "folder holding train_FD001.txt, test_FD001.txt and RUL_FD001.txt")
	subset := fs.String("subset", "FD001", "C-MAPSS subset")
	modelFile := fs.String("model", "", "score this rul artifact (e.g. from trainer run) instead of training one")
	members := fs.Int("members", 5, "networks trained with successive seeds and averaged into the model")
	epochs := fs.Int("epochs", 0, "maximum epochs per network (default 80)")
	window := fs.Int("window", 0, "cycles per input window (default 80)")
	hidden := fs.String("hidden", "", "hidden layer widths, comma-separated (default 64,32)")
	l2 := fs.Float64("l2", 0, "L2 regularisation (default 3e-3)")
	decay := fs.Float64("lr-decay", 0, "factor on the learning rate after 5 epochs without validation improvement (default 0.5; negative: constant rate)")
	capRUL := fs.Float64("cap", 0, "largest training target in cycles (default 125)")
	smoothing := fs.Float64("smoothing", 0, "weight of the newest cycle in a moving average over each sensor (default 0: none)")
	folds := fs.Int("cv", 0, "instead of the test engines, cross-validate over this many folds of the training engines")
	out := fs.String("out", "", "file to write the trained model artifact to (optional)")
	keyFile := fs.String("key", "", "ed25519 private key (PEM, trainer keygen) to sign the --out artifact with")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *members < 1 {
		return fmt.Errorf("cmapss: members (%d) must be at least 1", *members)
	}
	cfg := rul.Config{Epochs: *epochs, Window: *window, Cap: *capRUL, L2: *l2, LRDecay: *decay, Smoothing: *smoothing, Members: *members}
	if *hidden != "" {
		for _, h := range strings.Split(*hidden, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(h))
			if err != nil || n < 1 {
				return fmt.Errorf("cmapss: hidden width %q is not a positive integer", h)
			}
			cfg.Hidden = append(cfg.Hidden, n)
		}
	}
	if *folds > 0 {
		runs, err := ReadFile(filepath.Join(*dir, "train_"+*subset+".txt"))
		if err != nil {
			return err
		}
		rmse, cuts, err := CrossValidate(ctx, runs, *folds, cfg)
		if err != nil {
			return err
		}
		fmt.Printf("C-MAPSS %s, %d-fold cross-validation over the %d training engines (%d cuts through the live detector): RMSE %.2f\n",
			*subset, *folds, len(runs), cuts, rmse)
		return nil
	}
	var key ed25519.PrivateKey
	if *keyFile != "" {
		k, err := model.LoadPrivateKeyFile(*keyFile)
		if err != nil {
			return fmt.Errorf("cmapss: %w", err)
		}
		key = k
	}
	res, err := Run(ctx, Options{Dir: *dir, Subset: *subset, Model: *modelFile, RUL: cfg, Out: *out, Key: key})
	if err != nil {
		return err
	}
	a := res.Artifact
	how := fmt.Sprintf("trained by train.Fit in %.1fs", res.TrainTime.Seconds())
	if *modelFile != "" {
		how = "loaded from " + *modelFile
	}
	fmt.Printf("C-MAPSS %s: RMSE %.2f  PHM08 score %.0f  (%d test engines; model %s version %s, %.0f networks, %s; features %v)\n",
		*subset, res.RMSE, res.PHM, res.Engines, a.Name, a.Version, max(a.Metrics["members"], 1), how, a.Features)
	fmt.Printf("training time %.1fs, scoring %.0f cycles/s through the live detector (%d cores)\n",
		res.TrainTime.Seconds(), float64(res.Cycles)/res.ScoreTime.Seconds(), runtime.GOMAXPROCS(0))
	return nil
}
