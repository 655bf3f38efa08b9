package anomaly

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/nn"
)

// reconFit is how a reconstruction model is fitted, by the online learner
// on its warm-up and history and by TrainReconstruction on stored history:
// the same code, so an offline model and the online learner calibrate and
// score alike.
type reconFit struct {
	window, hidden int
	smoothing      float64
	epochs         int
	// seed drives training; initSeed the initial weights of new networks.
	seed, initSeed uint64
	// The online learner leaves the rest zero. members > 1 averages that
	// many networks into one (see averageNetworks); scale multiplies the
	// fitted scaler's deviations per feature; measure makes fit report
	// each feature's held-out residual (reconModel.resid).
	members int
	scale   []float64
	measure bool
}

// reconModel is a fitted reconstruction model.
type reconModel struct {
	net    *nn.Network
	scaler *nn.Scaler
	calib  calibration
	// curve is the learning curve of the final network.
	curve []nn.EpochLoss
	// resid is, when measured, each feature's mean squared reconstruction
	// error on the held-out blocks, before smoothing (0 for context).
	resid []float64
}

// cvBlocks is how many blocks each training segment is cut into for the
// out-of-sample calibration; blocks alternate between the two folds.
const cvBlocks = 8

func (f reconFit) burn() int { return f.window + int(math.Ceil(1/f.smoothing)) }

// fit fits scaler, network and calibration on segs (contiguous runs of
// raw rows), starting the network from init's weights when given.
func (f reconFit) fit(init *nn.Network, segs [][][]float64, centred []bool) (reconModel, error) {
	var m reconModel
	// The scaler follows everything normal, so a learnt operating point
	// far from the warm-up is scaled like the rest instead of sitting in
	// the compressed tails, where no network can fit it.
	s, err := fitScalerAll(segs)
	if err != nil {
		return m, err
	}
	for j := range f.scale {
		s.Std[j] *= f.scale[j]
	}
	m.scaler = s
	if f.measure {
		m.resid = make([]float64, len(s.Mean))
	}
	measured := 0
	if windows(s, centred, f.window, segs...) == nil {
		return m, fmt.Errorf("anomaly: too few rows for the window %d", f.window)
	}
	// Calibrate out of sample: two networks, each trained on alternate
	// blocks of every segment, score the blocks they did not see. Errors on
	// a network's own training rows are optimistic and would put the normal
	// band too low; alternating blocks (rather than halves) let both folds
	// see every operating state the data holds, such as both halves of a
	// duty cycle.
	var errs, acts []float64
	for fold := range 2 {
		var fit [][][]float64
		type span struct {
			seg  [][]float64
			from int
		}
		var held []span
		for _, seg := range segs {
			b := max(len(seg)/cvBlocks, f.window+1)
			for k, from := 0, 0; from < len(seg); k, from = k+1, from+b {
				to := min(from+b, len(seg))
				if k%2 == fold {
					fit = append(fit, seg[from:to])
				} else {
					held = append(held, span{seg[:to], from})
				}
			}
		}
		net, _, err := f.train(nil, s, centred, fit, uint64(fold+1))
		if err != nil {
			return m, err
		}
		for _, h := range held {
			e, a := f.replayErrors(net, s, centred, h.seg, max(h.from-f.burn(), 0), h.from)
			errs, acts = append(errs, e...), append(acts, a...)
			if f.measure {
				measured += f.replayResiduals(m.resid, net, s, centred, h.seg, h.from)
			}
		}
	}
	for j := range m.resid {
		m.resid[j] /= float64(max(measured, 1))
	}
	if m.net, m.curve, err = f.train(init, s, centred, segs, 0); err != nil {
		return m, err
	}
	m.calib = fitCalibration(errs, acts)
	return m, nil
}

// train trains a network on the windows of segs, from init's weights when
// given (the network is cloned, not changed).
func (f reconFit) train(init *nn.Network, s *nn.Scaler, centred []bool, segs [][][]float64, salt uint64) (*nn.Network, []nn.EpochLoss, error) {
	if f.members > 1 && init == nil {
		nets := make([]*nn.Network, f.members)
		curves := make([][]nn.EpochLoss, f.members)
		one := f
		one.members = 0
		for k := range nets {
			var err error
			if nets[k], curves[k], err = one.train(nil, s, centred, segs, salt+uint64(k)*memberSalt); err != nil {
				return nil, nil, err
			}
		}
		net, err := averageNetworks(nets)
		return net, meanCurve(curves), err
	}
	x := windows(s, centred, f.window, segs...)
	if x == nil {
		return nil, nil, fmt.Errorf("anomaly: too few rows for the window %d", f.window)
	}
	var net *nn.Network
	if init != nil {
		net = init.Clone()
	} else {
		in := f.window * len(s.Mean)
		spec := nn.Spec{Sizes: []int{in, f.hidden, in}, Acts: []nn.Activation{nn.Tanh, nn.Linear}}
		var err error
		if net, err = nn.New(spec, f.initSeed+salt); err != nil {
			return nil, nil, err
		}
	}
	res, err := net.Train(x, x, nn.TrainConfig{
		Optimizer: nn.Adam, LearningRate: 0.005, Epochs: f.epochs, BatchSize: 32,
		L2: 1e-4, ValidationFraction: 0.2, Patience: 8, Seed: f.seed + salt, Float32: true,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("anomaly: training: %w", err)
	}
	return net, res.History, nil
}

// replayErrors runs rows[start:] through a fresh scorer and returns the
// smoothed errors and changes of rows[from:]; the rows before from only
// fill the window and the moving averages.
func (f reconFit) replayErrors(net *nn.Network, s *nn.Scaler, centred []bool, rows [][]float64, start, from int) (errs, acts []float64) {
	sc := newReconScorer(net, s, centred, f.window, f.smoothing)
	for i := start; i < len(rows); i++ {
		if e, ok := sc.step(rows[i]); ok && i >= from {
			errs, acts = append(errs, e), append(acts, sc.act)
		}
	}
	return errs, acts
}

// memberSalt separates the seeds of an ensemble's members from those of
// the calibration folds (salts 1 and 2) and the final network (0).
const memberSalt = 1000

// replayResiduals adds, per feature, the unsmoothed window errors of
// rows[from:] (replayed from the start of rows) to sum and returns how
// many rows it added.
func (f reconFit) replayResiduals(sum []float64, net *nn.Network, s *nn.Scaler, centred []bool, rows [][]float64, from int) int {
	sc := newReconScorer(net, s, centred, f.window, 1)
	n := 0
	for i := max(from-f.window, 0); i < len(rows); i++ {
		if _, ok := sc.step(rows[i]); ok && i >= from {
			for j, e := range sc.ema {
				sum[j] += e
			}
			n++
		}
	}
	return n
}

// ReconstructionConfig configures TrainReconstruction. Zero fields take
// the online learner's defaults (see OnlineConfig).
type ReconstructionConfig struct {
	Name, Version, ParentVersion string
	// Window readings per input (default 4); Hidden the bottleneck width
	// (default a quarter of the input, at least 2); Smoothing the weight
	// of the newest error in each sensor's moving average (default 0.13).
	Window, Hidden int
	Smoothing      float64
	// DriftRatio: see OnlineConfig. Default 0: no sensor is centred. The
	// online learner centres slowly drifting sensors because its short
	// warm-up has not seen their range; stored history spanning days has
	// (a daily cycle there is normal variation, not drift), and centring
	// would hide a level fault in such a sensor.
	DriftRatio float64
	// Epochs bound the training (default 60); Seed makes it reproducible
	// (default 1).
	Epochs int
	Seed   uint64
	// HealthLimit, when set, is the score at which the asset counts as
	// failed, carried in the artifact for forecasts.
	HealthLimit float64
	// Members is how many networks are trained and averaged into the
	// model, as for a forecaster (default 1, the online learner's one).
	Members int
	// ResidualScale measures each scored feature's reconstruction error on
	// the calibration's held-out blocks and multiplies its scale by the
	// error's deviation (at least ResidualFloor, default 0.05), then fits
	// again on that scale, so each sensor's error counts in units of how
	// well the others explain it, not of how much it varies (see
	// ForecasterConfig.ResidualScale). Default false.
	ResidualScale bool
	ResidualFloor float64
}

// Trained is a trained model artifact and its learning curve.
type Trained struct {
	Artifact *model.Artifact
	Curve    []nn.EpochLoss
}

// TrainReconstruction trains a reconstruction model on stored normal
// history — segs are contiguous runs of rows in features order, times the
// first and last row time — exactly as the online learner trains on its
// warm-up, and returns the sealed artifact.
func TrainReconstruction(segs [][][]float64, from, to time.Time, features []string, cfg ReconstructionConfig) (*Trained, error) {
	o := OnlineConfig{Name: cfg.Name, Features: features, Window: cfg.Window, Hidden: cfg.Hidden, Smoothing: cfg.Smoothing,
		Epochs: cfg.Epochs, Seed: cfg.Seed, Frozen: true}.withDefaults()
	d := len(features)
	if d == 0 {
		return nil, fmt.Errorf("anomaly: no features")
	}
	var all [][]float64
	for k, seg := range segs {
		for i, r := range seg {
			if len(r) != d {
				return nil, fmt.Errorf("anomaly: segment %d row %d has %d values for %d features", k, i, len(r), d)
			}
			for _, v := range r {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return nil, fmt.Errorf("anomaly: segment %d row %d holds %v", k, i, v)
				}
			}
		}
		all = append(all, seg...)
	}
	if need := 2 * cvBlocks * (o.Window + 1); len(all) < need {
		return nil, fmt.Errorf("anomaly: %d rows are too few to train and calibrate a window of %d (need %d)", len(all), o.Window, need)
	}
	centred := make([]bool, d)
	if cfg.DriftRatio > 0 {
		centred = driftingFeatures(all, cfg.DriftRatio)
	}
	hidden := o.Hidden
	if hidden == 0 {
		hidden = max(2, o.Window*d/4)
	}
	if cfg.Members < 0 || cfg.ResidualFloor < 0 || cfg.ResidualFloor > 1 {
		return nil, fmt.Errorf("anomaly: members (%d) must not be negative and residual floor (%v) must be in (0, 1]", cfg.Members, cfg.ResidualFloor)
	}
	f := reconFit{window: o.Window, hidden: hidden, smoothing: o.Smoothing, epochs: o.Epochs, seed: o.Seed, initSeed: o.Seed,
		members: cfg.Members, measure: cfg.ResidualScale}
	m, err := f.fit(nil, segs, centred)
	if err != nil {
		return nil, err
	}
	if cfg.ResidualScale {
		floor := cmp.Or(cfg.ResidualFloor, 0.05)
		f.scale, f.measure = make([]float64, d), false
		for j := range f.scale {
			f.scale[j] = 1 // context features are not scored: their scale stays
			if !centred[j] || !slices.Contains(centred, false) {
				f.scale[j] = math.Max(math.Sqrt(m.resid[j]), floor)
			}
		}
		if m, err = f.fit(nil, segs, centred); err != nil {
			return nil, err
		}
	}
	a := &model.Artifact{
		Kind: model.Reconstruction, Name: cfg.Name, Version: cfg.Version, ParentVersion: cfg.ParentVersion, CreatedAt: to,
		Features: slices.Clone(features), Window: o.Window, Centred: centredNames(features, centred),
		Architecture: model.SpecArchitecture(m.net.Spec), Scaler: *m.scaler, Weights: m.net.Params,
		Calibration: m.calib.artifact(o.Smoothing),
		Training:    model.Training{From: from, To: to, Rows: len(all), Seed: o.Seed},
	}
	if cfg.HealthLimit > 0 {
		a.Health = &model.Health{Limit: cfg.HealthLimit, StepSeconds: to.Sub(from).Seconds() / float64(max(len(all)-1, 1))}
	}
	return &Trained{Artifact: a, Curve: m.curve}, a.Seal()
}
