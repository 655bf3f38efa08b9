// Package rul is the remaining-useful-life regressor for fleets with
// run-to-failure history: a network over a window of an asset's last
// readings predicts how many cycles remain. Training targets are capped
// (piecewise-linear RUL): early in life the data cannot tell 300 cycles
// from 200, so the model learns "healthy" up to the cap and the decline
// after it.
package rul

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/nn"
)

// Series is one asset's readings in time order, columns as the features
// passed to Train.
type Series struct {
	Unit string
	Rows [][]float64
}

// Config controls Train; zero fields take the defaults noted.
type Config struct {
	Name, Version, ParentVersion string
	// Window is the readings per input (default 80); shorter histories are
	// padded with their first reading. C-MAPSS FD001 engines degrade over
	// their last 100 or more cycles, and a longer view of that trend
	// predicts better: 5-fold cross-validation on the training engines
	// gives RMSE 13.9 at 40 cycles, 12.4 at 60 and 12.1 at 80.
	Window int
	// Cap is the largest training target (default 125 cycles).
	Cap float64
	// Hidden layer widths (default 64, 32), ReLU.
	Hidden []int
	// Smoothing is the weight of the newest reading in an exponential moving
	// average over each feature before windowing (default 0: none; C-MAPSS
	// sensors are noisy, and the trend is what predicts the end).
	Smoothing float64
	// L2 regularisation of the weights (default 3e-3).
	L2 float64
	// Epochs (default 80), BatchSize (default 128), Seed (default 1).
	Epochs, BatchSize int
	Seed              uint64
	// MinCorrelation: features whose absolute correlation with the capped
	// target on the training data is below this are dropped (default 0.05);
	// constant sensors and operating settings without information go.
	MinCorrelation float64
	// LRDecay multiplies Adam's learning rate (0.001) each time the
	// validation error has not improved for 5 epochs (default 0.5; a
	// negative value keeps the rate constant).
	LRDecay float64
	// ValidationFraction of the units is held out for early stopping
	// (default 0.2).
	ValidationFraction float64
	// Members is how many networks are trained, each with its own seed
	// (Seed, Seed+1, ...) and its own early-stopping units, and averaged
	// (default 1). The average is itself one network, the members side by
	// side (see stack), so the artifact holds the whole ensemble and scores
	// like any other.
	Members int
	// CreatedAt stamps the artifact (default now): a trainer sets the end
	// of its data, so the same data trains the same artifact.
	CreatedAt time.Time
}

func (c Config) withDefaults() Config {
	c.Name = cmp.Or(c.Name, "rul")
	c.Version = cmp.Or(c.Version, "1")
	c.Window = cmp.Or(c.Window, 80)
	c.Cap = cmp.Or(c.Cap, 125)
	if c.Hidden == nil {
		c.Hidden = []int{64, 32}
	}
	c.L2 = cmp.Or(c.L2, 3e-3)
	c.Epochs = cmp.Or(c.Epochs, 80)
	c.BatchSize = cmp.Or(c.BatchSize, 128)
	c.Seed = cmp.Or(c.Seed, 1)
	c.MinCorrelation = cmp.Or(c.MinCorrelation, 0.05)
	if c.LRDecay == 0 {
		c.LRDecay = 0.5
	} else if c.LRDecay < 0 {
		c.LRDecay = 0
	}
	c.ValidationFraction = cmp.Or(c.ValidationFraction, 0.2)
	c.Members = max(c.Members, 1)
	return c
}

// Model predicts remaining useful life.
type Model struct {
	Artifact *model.Artifact
	// Curve is the learning curve, when the model was trained here.
	Curve []nn.EpochLoss
	net   *nn.Network
	cap   float64
	in    []float64
}

// Features are the columns Predict expects, in order.
func (m *Model) Features() []string { return slices.Clone(m.Artifact.Features) }

// FromArtifact builds a model from a loaded RUL artifact.
func FromArtifact(a *model.Artifact) (*Model, error) {
	if a.Kind != model.RUL {
		return nil, fmt.Errorf("rul: artifact is a %s model", a.Kind)
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	net, err := a.Network()
	if err != nil {
		return nil, err
	}
	c := a.Metrics["target_cap"]
	if !(c > 0) {
		return nil, fmt.Errorf("rul: artifact lacks metrics.target_cap")
	}
	return &Model{Artifact: a, net: net, cap: c, in: make([]float64, net.InputSize())}, nil
}

// smooth returns rows after an exponential moving average per column with
// weight alpha on the newest row (alpha 0 or 1: the rows unchanged).
func smooth(rows [][]float64, alpha float64) [][]float64 {
	if alpha <= 0 || alpha >= 1 {
		return rows
	}
	out := make([][]float64, len(rows))
	for i, r := range rows {
		out[i] = slices.Clone(r)
		if i > 0 {
			for j := range r {
				out[i][j] = alpha*r[j] + (1-alpha)*out[i-1][j]
			}
		}
	}
	return out
}

// windowInto writes the scaled window ending at row end (inclusive) into dst.
func windowInto(dst []float64, s *nn.Scaler, rows [][]float64, end, w int) {
	d := len(s.Mean)
	for p := 0; p < w; p++ {
		i := max(end-w+1+p, 0)
		s.Transform(dst[p*d:(p+1)*d], rows[i])
	}
}

// Predict returns the remaining useful life after the last of rows (columns
// as Features), in the cycles the model was trained on.
func (m *Model) Predict(rows [][]float64) (float64, error) {
	if len(rows) == 0 {
		return 0, errors.New("rul: no readings")
	}
	d := len(m.Artifact.Features)
	for i, r := range rows {
		if len(r) != d {
			return 0, fmt.Errorf("rul: row %d has %d values for %d features", i, len(r), d)
		}
	}
	rows = smooth(rows, m.Artifact.InputSmoothing)
	windowInto(m.in, &m.Artifact.Scaler, rows, len(rows)-1, m.Artifact.Window)
	out := m.net.Forward(m.in)[0] * m.cap
	return math.Max(0, math.Min(m.cap, out)), nil
}

// Train fits a model on run-to-failure series: the last row of each series
// is the failure, so the target at row i is min(Cap, len-1-i).
func Train(series []Series, features []string, cfg Config) (*Model, error) {
	cfg = cfg.withDefaults()
	if len(series) < 2 {
		return nil, fmt.Errorf("rul: need at least 2 run-to-failure series, have %d", len(series))
	}
	var all [][]float64
	var targets []float64
	for _, s := range series {
		for i, r := range s.Rows {
			if len(r) != len(features) {
				return nil, fmt.Errorf("rul: unit %s row %d has %d values for %d features", s.Unit, i, len(r), len(features))
			}
			all = append(all, r)
			targets = append(targets, math.Min(cfg.Cap, float64(len(s.Rows)-1-i)))
		}
	}
	keep := selectFeatures(all, targets, cfg.MinCorrelation)
	if len(keep) == 0 {
		return nil, errors.New("rul: no feature correlates with the remaining life")
	}
	names := make([]string, len(keep))
	for k, j := range keep {
		names[k] = features[j]
	}
	pick := func(rows [][]float64) [][]float64 {
		out := make([][]float64, len(rows))
		for i, r := range rows {
			out[i] = make([]float64, len(keep))
			for k, j := range keep {
				out[i][k] = r[j]
			}
		}
		return out
	}
	sel := make([]Series, len(series))
	var selAll [][]float64
	for i, s := range series {
		rows := pick(s.Rows)
		selAll = append(selAll, rows...)
		sel[i] = Series{Unit: s.Unit, Rows: smooth(rows, cfg.Smoothing)}
	}
	scaler, err := nn.FitScaler(selAll)
	if err != nil {
		return nil, err
	}
	d, w := len(keep), cfg.Window
	build := func(units []int) (*mat.Dense, *mat.Dense) {
		n := 0
		for _, u := range units {
			n += len(sel[u].Rows)
		}
		x, y := mat.NewDense(n, w*d, nil), mat.NewDense(n, 1, nil)
		r := 0
		for _, u := range units {
			s := sel[u]
			for i := range s.Rows {
				windowInto(x.RawRowView(r), scaler, s.Rows, i, w)
				y.Set(r, 0, math.Min(cfg.Cap, float64(len(s.Rows)-1-i))/cfg.Cap)
				r++
			}
		}
		return x, y
	}
	sizes := append(append([]int{w * d}, cfg.Hidden...), 1)
	acts := make([]nn.Activation, len(sizes)-1)
	for i := range acts {
		acts[i] = nn.ReLU
	}
	acts[len(acts)-1] = nn.Linear
	spec := nn.Spec{Sizes: sizes, Acts: acts}
	nVal := max(1, int(math.Round(cfg.ValidationFraction*float64(len(sel)))))
	var (
		nets      []*nn.Network
		curve     []nn.EpochLoss
		valRMSE   float64
		epochs    float64
		trainedOn int
	)
	for k := range cfg.Members {
		seed := cfg.Seed + uint64(k)
		// Whole units are held out for early stopping (a seeded choice):
		// windows of one unit overlap, so a random share of windows would
		// validate on near-copies of training windows.
		order := rand.New(rand.NewPCG(seed, 77)).Perm(len(sel))
		x, y := build(order[nVal:])
		xv, yv := build(order[:nVal])
		net, err := nn.New(spec, seed)
		if err != nil {
			return nil, err
		}
		res, err := net.Train(x, y, nn.TrainConfig{Optimizer: nn.Adam, LearningRate: 0.001, Epochs: cfg.Epochs,
			BatchSize: cfg.BatchSize, L2: cfg.L2, ValX: xv, ValY: yv, Patience: 10, LRDecay: cfg.LRDecay, Seed: seed, Float32: true})
		if err != nil {
			return nil, err
		}
		if k == 0 {
			curve, trainedOn = res.History, x.RawMatrix().Rows
		}
		nets = append(nets, net)
		valRMSE += math.Sqrt(res.ValLoss) * cfg.Cap / float64(cfg.Members)
		epochs += float64(res.Epochs) / float64(cfg.Members)
	}
	net, err := stack(nets)
	if err != nil {
		return nil, err
	}
	if cfg.Members > 1 {
		trainedOn = len(selAll) // every member's units, early-stopping ones included
	}
	a := &model.Artifact{
		Kind: model.RUL, Name: cfg.Name, Version: cfg.Version, ParentVersion: cfg.ParentVersion,
		CreatedAt: cmp.Or(cfg.CreatedAt, time.Now()).UTC().Truncate(time.Second), Features: names, Window: w, InputSmoothing: cfg.Smoothing,
		Architecture: model.SpecArchitecture(net.Spec), Scaler: *scaler, Weights: net.Params,
		Training: model.Training{Rows: trainedOn, Seed: cfg.Seed},
		Metrics: map[string]float64{
			"target_cap": cfg.Cap, "val_rmse": valRMSE, "epochs": epochs, "members": float64(cfg.Members),
		},
	}
	if err := a.Seal(); err != nil {
		return nil, err
	}
	m, err := FromArtifact(a)
	if err != nil {
		return nil, err
	}
	m.Curve = curve
	return m, nil
}

// stack returns one network computing the mean of nets, which share an
// architecture ending in one linear layer: the hidden layers side by side
// (the first reads the whole input, the others block-diagonal) and the
// output layer weighting each member by 1/len(nets). It is exact, so a
// stacked ensemble is one artifact that predicts what the members' average
// does.
func stack(nets []*nn.Network) (*nn.Network, error) {
	if len(nets) == 1 {
		return nets[0], nil
	}
	k := len(nets)
	base := nets[0].Spec
	if base.Acts[len(base.Acts)-1] != nn.Linear {
		return nil, errors.New("rul: only networks with a linear output layer stack")
	}
	sizes := slices.Clone(base.Sizes)
	for i := 1; i < len(sizes)-1; i++ {
		sizes[i] *= k
	}
	out, err := nn.New(nn.Spec{Sizes: sizes, Acts: slices.Clone(base.Acts)}, 1)
	if err != nil {
		return nil, err
	}
	clear(out.Params)
	last := len(base.Acts) - 1
	for m, n := range nets {
		for l, src := range n.Layers {
			dst := out.Layers[l]
			// Member m's units of this layer are columns [m·Out, (m+1)·Out)
			// of dst (all of them in the output layer), and it reads rows
			// [m·In, (m+1)·In) of dst's input (all of them in the first).
			rowOff, colOff, scale := m*src.In, m*src.Out, 1.0
			if l == 0 {
				rowOff = 0
			}
			if l == last {
				colOff, scale = 0, 1/float64(k)
			}
			for i := range src.In {
				for j := range src.Out {
					dst.W[(rowOff+i)*dst.Out+colOff+j] += scale * src.W[i*src.Out+j]
				}
			}
			for j := range src.Out {
				dst.B[colOff+j] += scale * src.B[j]
			}
		}
	}
	return out, nil
}

// selectFeatures keeps columns whose absolute Pearson correlation with the
// target reaches minCorr.
func selectFeatures(rows [][]float64, target []float64, minCorr float64) []int {
	n := float64(len(rows))
	var mt float64
	for _, t := range target {
		mt += t
	}
	mt /= n
	var keep []int
	for j := range rows[0] {
		var mx float64
		for _, r := range rows {
			mx += r[j]
		}
		mx /= n
		var sxy, sxx, syy float64
		for i, r := range rows {
			dx, dy := r[j]-mx, target[i]-mt
			sxy += dx * dy
			sxx += dx * dx
			syy += dy * dy
		}
		if sxx <= 1e-12*(1+mx*mx)*n || syy == 0 {
			continue
		}
		if math.Abs(sxy/math.Sqrt(sxx*syy)) >= minCorr {
			keep = append(keep, j)
		}
	}
	return keep
}
