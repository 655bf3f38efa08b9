// Package cmapss reads NASA's C-MAPSS turbofan data (subset files
// train_FDxxx.txt, test_FDxxx.txt, RUL_FDxxx.txt) and runs the benchmark
// protocol: train the remaining-useful-life model on the training engines,
// predict the last cycle of every test engine, score RMSE and the PHM08
// score.
package cmapss

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pdmstream/pdm/pdmkit/rul"
)

// Columns are the 24 measurement columns after unit and cycle.
var Columns = func() []string {
	c := []string{"setting1", "setting2", "setting3"}
	for i := 1; i <= 21; i++ {
		c = append(c, fmt.Sprintf("s%d", i))
	}
	return c
}()

// Features are the model's candidate inputs: the measurement columns and
// "cycle", the number of cycles the engine has run (its age). Every test
// trajectory starts at cycle 1 as the training ones do, so the age is known
// at prediction time; engines of one fleet wear out at a similar age, which
// tells the model where in the life a reading is when the sensors are still
// flat.
var Features = append(append([]string(nil), Columns...), "cycle")

// WithCycle returns the series with the cycle count (1 for the first row)
// appended to every row, as the column "cycle" of Features.
func WithCycle(series []rul.Series) []rul.Series {
	out := make([]rul.Series, len(series))
	for i, s := range series {
		out[i] = rul.Series{Unit: s.Unit, Rows: make([][]float64, len(s.Rows))}
		for r, row := range s.Rows {
			out[i].Rows[r] = append(append(make([]float64, 0, len(row)+1), row...), float64(r+1))
		}
	}
	return out
}

// ReadSeries parses a space-separated C-MAPSS file into one series per unit,
// in file order.
func ReadSeries(r io.Reader) ([]rul.Series, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var out []rul.Series
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 2+len(Columns) {
			return nil, fmt.Errorf("cmapss: line %d has %d fields, want %d", line, len(f), 2+len(Columns))
		}
		unit := f[0]
		row := make([]float64, len(Columns))
		for j := range Columns {
			v, err := strconv.ParseFloat(f[2+j], 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("cmapss: line %d column %s: %q is not a number", line, Columns[j], f[2+j])
			}
			row[j] = v
		}
		if len(out) == 0 || out[len(out)-1].Unit != unit {
			out = append(out, rul.Series{Unit: unit})
		}
		out[len(out)-1].Rows = append(out[len(out)-1].Rows, row)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cmapss: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("cmapss: no rows")
	}
	return out, nil
}

// ReadRUL parses the true RUL file, one integer per line.
func ReadRUL(r io.Reader) ([]float64, error) {
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
	Members       int
	RMSE, PHM     float64
	MemberRMSE    []float64
	TrainTime     time.Duration
	PredictPerSec float64
}

func readFile[T any](dir, name string, parse func(io.Reader) (T, error)) (T, error) {
	var zero T
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return zero, fmt.Errorf("cmapss: %w (download the NASA C-MAPSS data set and put %s in %s)", err, name, dir)
	}
	defer f.Close()
	return parse(f)
}

// Run trains members models with different seeds, averages their
// predictions, and scores the ensemble.
func Run(ctx context.Context, dir, subset string, cfg rul.Config, members int, out string) (*Result, error) {
	train, err := readFile(dir, "train_"+subset+".txt", ReadSeries)
	if err != nil {
		return nil, err
	}
	test, err := readFile(dir, "test_"+subset+".txt", ReadSeries)
	if err != nil {
		return nil, err
	}
	truth, err := readFile(dir, "RUL_"+subset+".txt", ReadRUL)
	if err != nil {
		return nil, err
	}
	if len(truth) != len(test) {
		return nil, fmt.Errorf("cmapss: %d test engines but %d RUL values", len(test), len(truth))
	}
	train, test = WithCycle(train), WithCycle(test)
	res := &Result{Members: members}
	sum := make([]float64, len(test))
	start := time.Now()
	var predTime time.Duration
	for m := 0; m < members; m++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c := cfg
		c.Seed = max(cfg.Seed, 1) + uint64(m)
		c.Version = fmt.Sprintf("%s-%d", subset, m+1)
		model, err := rul.Train(train, Features, c)
		if err != nil {
			return nil, err
		}
		idx := make([]int, len(model.Features()))
		for k, f := range model.Features() {
			for j, col := range Features {
				if col == f {
					idx[k] = j
				}
			}
		}
		pred := make([]float64, len(test))
		t0 := time.Now()
		for i, s := range test {
			rows := make([][]float64, len(s.Rows))
			for r, full := range s.Rows {
				rows[r] = make([]float64, len(idx))
				for k, j := range idx {
					rows[r][k] = full[j]
				}
			}
			if pred[i], err = model.Predict(rows); err != nil {
				return nil, err
			}
			sum[i] += pred[i]
		}
		predTime += time.Since(t0)
		r, _ := Score(pred, truth)
		res.MemberRMSE = append(res.MemberRMSE, r)
		fmt.Fprintf(os.Stderr, "member %d: test RMSE %.2f, validation RMSE %.2f, %v epochs, features %v\n", m+1, r,
			model.Artifact.Metrics["val_rmse"], model.Artifact.Metrics["epochs"], model.Features())
		if out != "" {
			if err := writeArtifact(out, m, model); err != nil {
				return nil, err
			}
		}
	}
	res.TrainTime = time.Since(start) - predTime
	for i := range sum {
		sum[i] /= float64(members)
	}
	res.RMSE, res.PHM = Score(sum, truth)
	res.PredictPerSec = float64(len(test)*members) / predTime.Seconds()
	return res, nil
}

func writeArtifact(dir string, m int, model *rul.Model) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("rul-%d.json", m+1)))
	if err != nil {
		return err
	}
	if err := model.Artifact.Write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Command is `trainer cmapss --data DIR`.
func Command(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("cmapss", flag.ContinueOnError)
	dir := fs.String("data", "../shared/datasets/cmapss-fd001", "folder holding train_FD001.txt, test_FD001.txt and RUL_FD001.txt")
	subset := fs.String("subset", "FD001", "C-MAPSS subset")
	members := fs.Int("members", 5, "ensemble members (seeds) averaged")
	epochs := fs.Int("epochs", 0, "maximum epochs per member (default 80)")
	window := fs.Int("window", 0, "cycles per input window (default 50)")
	hidden := fs.String("hidden", "", "hidden layer widths, comma-separated (default 64,32)")
	l2 := fs.Float64("l2", 0, "L2 regularisation (default 3e-3)")
	decay := fs.Float64("lr-decay", 0, "factor on the learning rate after 5 epochs without validation improvement (default 0.5; negative: constant rate)")
	smoothing := fs.Float64("smoothing", 0, "weight of the newest cycle in a moving average over each sensor (default 0: none)")
	out := fs.String("out", "", "folder to write the members' model artifacts into (optional)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *members < 1 {
		return fmt.Errorf("cmapss: members (%d) must be at least 1", *members)
	}
	cfg := rul.Config{Epochs: *epochs, Window: *window, L2: *l2, LRDecay: *decay, Smoothing: *smoothing, Name: "cmapss-rul"}
	if *hidden != "" {
		for _, h := range strings.Split(*hidden, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(h))
			if err != nil || n < 1 {
				return fmt.Errorf("cmapss: hidden width %q is not a positive integer", h)
			}
			cfg.Hidden = append(cfg.Hidden, n)
		}
	}
	res, err := Run(ctx, *dir, *subset, cfg, *members, *out)
	if err != nil {
		return err
	}
	fmt.Printf("C-MAPSS %s: RMSE %.2f  PHM08 score %.0f  (%d members, member RMSE %s)\n", *subset, res.RMSE, res.PHM, res.Members, fmtList(res.MemberRMSE))
	fmt.Printf("training time %.1fs, prediction %.0f engines/s\n", res.TrainTime.Seconds(), res.PredictPerSec)
	return nil
}

func fmtList(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return strings.Join(s, " ")
}
