package anomaly

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/nn"
)

// ForecasterConfig configures TrainForecaster. Zero fields take the
// defaults noted; the defaults train what TrainForecaster always trained.
type ForecasterConfig struct {
	Name, Version, ParentVersion string
	// Window readings in (default 16), Horizon steps out (default 4).
	Window, Horizon int
	// Hidden units (default 2×features, at least 8).
	Hidden int
	// Smoothing: as in OnlineConfig (default 0.1).
	Smoothing float64
	// HealthLimit, when set, is the score at which the asset counts as
	// failed for the time-to-failure forecast (default: the decision's own
	// failure level, see pdmkit/monitor).
	HealthLimit float64
	// Epochs (default 100) and Seed (default 1).
	Epochs int
	Seed   uint64
	// L2 is the weight decay of training (default 1e-4).
	L2 float64
	// Members is how many networks (seeds Seed, Seed+1, …) are trained and
	// averaged (default 1). Their average is stored as one network whose
	// hidden layer holds the members' side by side, which is exactly the
	// mean of their forecasts for this two-layer shape, so the scorer runs
	// an ensemble as one model. Averaging cancels much of what each member
	// fits to noise in a short history.
	Members int
	// CalibrationFolds, when 2 or more, calibrates on every row: each
	// segment is cut into 8 blocks, block k belongs to fold k mod
	// CalibrationFolds, and networks trained without a fold score it. The
	// default (0) trains on the first 70 % of each segment and scores the
	// last 30 %, which sees only the newest states of a short history.
	CalibrationFolds int
	// ResidualScale measures each feature's one-step residual out of
	// sample (with CalibrationFolds, or the 70/30 split) and multiplies its
	// scale by the residual's deviation (at least ResidualFloor, default
	// 0.05), then trains again on that scale: each sensor's error then
	// counts in units of how well it is normally predicted rather than of
	// how much it varies, so a sensor the process pins down tightly (a
	// controlled loop) is heard when it breaks away, and a noisy one does
	// not drown the others. Default false.
	ResidualScale bool
	ResidualFloor float64
}

func (c ForecasterConfig) withDefaults(d int) ForecasterConfig {
	c.Name = cmp.Or(c.Name, "forecaster")
	c.Version = cmp.Or(c.Version, "1")
	c.Window = cmp.Or(c.Window, 16)
	c.Horizon = cmp.Or(c.Horizon, 4)
	c.Hidden = cmp.Or(c.Hidden, max(8, 2*d))
	c.Smoothing = cmp.Or(c.Smoothing, 0.1)
	c.Epochs = cmp.Or(c.Epochs, 100)
	c.Seed = cmp.Or(c.Seed, 1)
	c.L2 = cmp.Or(c.L2, 1e-4)
	c.Members = cmp.Or(c.Members, 1)
	c.ResidualFloor = cmp.Or(c.ResidualFloor, 0.05)
	return c
}

// validate rejects settings that cannot train, naming the values.
func (c ForecasterConfig) validate() error {
	switch {
	case c.Window < 1 || c.Horizon < 1:
		return fmt.Errorf("anomaly: window (%d) and horizon (%d) must be at least 1", c.Window, c.Horizon)
	case c.Hidden < 1:
		return fmt.Errorf("anomaly: hidden (%d) must be at least 1", c.Hidden)
	case !(c.Smoothing > 0 && c.Smoothing <= 1):
		return fmt.Errorf("anomaly: smoothing (%v) must be in (0, 1]", c.Smoothing)
	case c.Epochs < 1 || c.Members < 1:
		return fmt.Errorf("anomaly: epochs (%d) and members (%d) must be at least 1", c.Epochs, c.Members)
	case c.L2 < 0:
		return fmt.Errorf("anomaly: L2 (%v) must not be negative", c.L2)
	case c.CalibrationFolds == 1 || c.CalibrationFolds < 0 || c.CalibrationFolds > cvBlocks:
		return fmt.Errorf("anomaly: calibration folds (%d) must be 0 (the 70/30 split) or 2 to %d", c.CalibrationFolds, cvBlocks)
	case !(c.ResidualFloor > 0 && c.ResidualFloor <= 1):
		return fmt.Errorf("anomaly: residual floor (%v) must be in (0, 1]", c.ResidualFloor)
	}
	return nil
}

// forecastPairs builds (window → next horizon rows) training pairs from a
// contiguous run of raw rows.
func forecastPairs(s *nn.Scaler, w, h int, rows [][]float64) (x, y *mat.Dense) {
	d := len(s.Mean)
	n := len(rows) - w - h + 1
	if n <= 0 {
		return nil, nil
	}
	z := make([][]float64, len(rows))
	for i, r := range rows {
		z[i] = make([]float64, d)
		scaleInto(z[i], s, r)
	}
	x, y = mat.NewDense(n, w*d, nil), mat.NewDense(n, h*d, nil)
	for i := 0; i < n; i++ {
		xr, yr := x.RawRowView(i), y.RawRowView(i)
		for p := 0; p < w; p++ {
			copy(xr[p*d:], z[i+p])
		}
		for p := 0; p < h; p++ {
			copy(yr[p*d:], z[i+w+p])
		}
	}
	return x, y
}

// TrainForecaster trains a forecaster on a contiguous stretch of normal
// readings (rows[i] in features order, times[i] its time) and returns a
// sealed artifact. It is TrainForecasterSegments on one segment.
func TrainForecaster(rows [][]float64, times []time.Time, features []string, cfg ForecasterConfig) (*model.Artifact, error) {
	if len(features) == 0 || len(rows) != len(times) || len(rows) == 0 {
		return nil, fmt.Errorf("anomaly: %d features, %d rows, %d times", len(features), len(rows), len(times))
	}
	tr, err := TrainForecasterSegments([][][]float64{rows}, times[0], times[len(times)-1], features, cfg)
	if err != nil {
		return nil, err
	}
	return tr.Artifact, nil
}

// TrainForecasterSegments trains a forecaster on stored normal history:
// segs are contiguous runs of rows one step apart in features order (no
// input window or target spans two segments, so a gap or a second asset
// never becomes a transition the model learns), from and to the first and
// last row time. Calibration is out of sample (see
// ForecasterConfig.CalibrationFolds); the final network trains on all
// rows.
func TrainForecasterSegments(segs [][][]float64, from, to time.Time, features []string, cfg ForecasterConfig) (*Trained, error) {
	d := len(features)
	if d == 0 {
		return nil, fmt.Errorf("anomaly: no features")
	}
	cfg = cfg.withDefaults(d)
	if err := cfg.validate(); err != nil {
		return nil, err
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
	if len(all) < 4*(cfg.Window+cfg.Horizon) {
		return nil, fmt.Errorf("anomaly: %d rows are too few for window %d and horizon %d (need %d)", len(all), cfg.Window, cfg.Horizon, 4*(cfg.Window+cfg.Horizon))
	}
	scaler, err := fitScaler(all)
	if err != nil {
		return nil, err
	}
	f := forecastFit{cfg: cfg, spec: nn.Spec{Sizes: []int{cfg.Window * d, cfg.Hidden, cfg.Horizon * d}, Acts: []nn.Activation{nn.Tanh, nn.Linear}}}
	errs, acts, resid, err := f.heldOut(scaler, segs)
	if err != nil {
		return nil, err
	}
	if cfg.ResidualScale {
		for j := range scaler.Std {
			scaler.Std[j] *= math.Max(math.Sqrt(resid[j]), cfg.ResidualFloor)
		}
		if errs, acts, _, err = f.heldOut(scaler, segs); err != nil {
			return nil, err
		}
	}
	calib := fitCalibration(errs, acts)
	net, curve, err := f.train(scaler, segs)
	if err != nil {
		return nil, err
	}
	step := to.Sub(from).Seconds() / float64(max(len(all)-1, 1))
	if !(step > 0) {
		step = 1
	}
	var health *model.Health
	if cfg.HealthLimit > 0 {
		health = &model.Health{Limit: cfg.HealthLimit, StepSeconds: step}
	}
	a := &model.Artifact{
		Kind: model.Forecaster, Name: cfg.Name, Version: cfg.Version, ParentVersion: cfg.ParentVersion,
		CreatedAt: to, Features: slices.Clone(features), Window: cfg.Window, Horizon: cfg.Horizon,
		Architecture: model.SpecArchitecture(net.Spec), Scaler: *scaler, Weights: net.Params,
		Calibration: calib.artifact(cfg.Smoothing),
		Health:      health,
		Training:    model.Training{From: from, To: to, Rows: len(all), Seed: cfg.Seed},
		Metrics:     map[string]float64{"holdout_log_error_median": calib.steady.logMean},
	}
	return &Trained{Artifact: a, Curve: curve}, a.Seal()
}

// forecastFit is how a forecaster is fitted.
type forecastFit struct {
	cfg  ForecasterConfig
	spec nn.Spec
}

// train trains cfg.Members networks on the windows of segs and returns
// their average as one network, with the members' mean learning curve.
func (f forecastFit) train(s *nn.Scaler, segs [][][]float64) (*nn.Network, []nn.EpochLoss, error) {
	c := f.cfg
	x, y := forecastPairsAll(s, c.Window, c.Horizon, segs)
	if x == nil {
		return nil, nil, fmt.Errorf("anomaly: no segment is longer than window %d + horizon %d", c.Window, c.Horizon)
	}
	nets := make([]*nn.Network, c.Members)
	var curves [][]nn.EpochLoss
	for m := range nets {
		seed := c.Seed + uint64(m)
		net, err := nn.New(f.spec, seed)
		if err != nil {
			return nil, nil, err
		}
		res, err := net.Train(x, y, nn.TrainConfig{Optimizer: nn.Adam, LearningRate: 0.003, Epochs: c.Epochs, BatchSize: 32,
			L2: c.L2, ValidationFraction: 0.2, Patience: 10, Seed: seed, Float32: true})
		if err != nil {
			return nil, nil, fmt.Errorf("anomaly: training forecaster: %w", err)
		}
		nets[m] = net
		curves = append(curves, res.History)
	}
	if len(nets) == 1 {
		return nets[0], curves[0], nil
	}
	net, err := averageNetworks(nets)
	return net, meanCurve(curves), err
}

// heldOut returns the smoothed errors of rows scored by networks that did
// not train on them, and each feature's mean squared one-step residual on
// those rows (in s's units).
func (f forecastFit) heldOut(s *nn.Scaler, segs [][][]float64) (errs, acts, resid []float64, err error) {
	c := f.cfg
	burn := c.Window + int(math.Ceil(1/c.Smoothing))
	d := len(s.Mean)
	resid = make([]float64, d)
	n := 0
	// replay scores rows[start:] with net and keeps what rows[from:] give.
	replay := func(net *nn.Network, rows [][]float64, start, from int) {
		fs := newForecastScorer(net, s, c.Window, c.Horizon, c.Smoothing)
		raw := newForecastScorer(net, s, c.Window, c.Horizon, 1)
		for i := start; i < len(rows); i++ {
			e, ok := fs.step(rows[i])
			raw.step(rows[i])
			if ok && i >= from {
				errs, acts = append(errs, e), append(acts, fs.act)
				for j, v := range raw.ema {
					resid[j] += v
				}
				n++
			}
		}
	}
	if c.CalibrationFolds == 0 {
		heads := make([][][]float64, 0, len(segs))
		for _, seg := range segs {
			heads = append(heads, seg[:len(seg)*7/10])
		}
		probe, _, err := f.train(s, heads)
		if err != nil {
			return nil, nil, nil, err
		}
		for _, seg := range segs {
			cut := len(seg) * 7 / 10
			if cut < c.Window {
				continue
			}
			// The first burn rows after the window only fill the moving
			// averages; the rows before cut fill the window.
			replay(probe, seg, cut-c.Window, cut-c.Window+burn+1)
		}
	} else {
		type span struct {
			seg      [][]float64
			from, to int
		}
		for fold := range c.CalibrationFolds {
			var fit [][][]float64
			var held []span
			for _, seg := range segs {
				b := max(len(seg)/cvBlocks, c.Window+c.Horizon+1)
				run := -1 // start of the current run of training blocks
				for k, from := 0, 0; from < len(seg); k, from = k+1, from+b {
					to := min(from+b, len(seg))
					if k%c.CalibrationFolds == fold {
						if run >= 0 {
							fit = append(fit, seg[run:from])
							run = -1
						}
						held = append(held, span{seg, from, to})
					} else if run < 0 {
						run = from
					}
				}
				if run >= 0 {
					fit = append(fit, seg[run:])
				}
			}
			net, _, err := f.train(s, fit)
			if err != nil {
				return nil, nil, nil, err
			}
			for _, h := range held {
				replay(net, h.seg[:h.to], max(h.from-burn, 0), h.from)
			}
		}
	}
	if len(errs) == 0 {
		return nil, nil, nil, fmt.Errorf("anomaly: no segment is long enough to calibrate window %d (the held-out part of a segment must exceed %d rows)", c.Window, burn+1)
	}
	for j := range resid {
		resid[j] /= float64(n)
	}
	return errs, acts, resid, nil
}

// averageNetworks returns one network computing the mean of nets' outputs:
// nets share a two-layer shape (any hidden activation, linear output), so
// the average is their hidden layers side by side and their output layers
// stacked, scaled by 1/len(nets).
func averageNetworks(nets []*nn.Network) (*nn.Network, error) {
	s := nets[0].Spec
	if len(s.Sizes) != 3 || s.Acts[1] != nn.Linear {
		return nil, fmt.Errorf("anomaly: only two-layer networks with a linear output average into one, have %v", s.Sizes)
	}
	in, h, out := s.Sizes[0], s.Sizes[1], s.Sizes[2]
	k := len(nets)
	spec := nn.Spec{Sizes: []int{in, k * h, out}, Acts: slices.Clone(s.Acts)}
	avg, err := nn.New(spec, 1)
	if err != nil {
		return nil, err
	}
	l1, l2 := avg.Layers[0], avg.Layers[1]
	clear(l2.B)
	for m, n := range nets {
		a, b := n.Layers[0], n.Layers[1]
		for i := range in {
			copy(l1.W[i*k*h+m*h:i*k*h+(m+1)*h], a.W[i*h:(i+1)*h])
		}
		copy(l1.B[m*h:(m+1)*h], a.B)
		for i := range h {
			for o := range out {
				l2.W[(m*h+i)*out+o] = b.W[i*out+o] / float64(k)
			}
		}
		for o := range out {
			l2.B[o] += b.B[o] / float64(k)
		}
	}
	return avg, nil
}

// meanCurve averages learning curves epoch by epoch over the members that
// ran that epoch.
func meanCurve(curves [][]nn.EpochLoss) []nn.EpochLoss {
	var out []nn.EpochLoss
	for e := 0; ; e++ {
		var sum nn.EpochLoss
		n := 0
		for _, c := range curves {
			if e < len(c) {
				sum.Train += c[e].Train
				sum.Val += c[e].Val
				n++
			}
		}
		if n == 0 {
			return out
		}
		out = append(out, nn.EpochLoss{Train: sum.Train / float64(n), Val: sum.Val / float64(n)})
	}
}

// forecastPairsAll stacks the training pairs of every segment.
func forecastPairsAll(s *nn.Scaler, w, h int, segs [][][]float64) (x, y *mat.Dense) {
	var xs, ys []*mat.Dense
	n := 0
	for _, seg := range segs {
		if sx, sy := forecastPairs(s, w, h, seg); sx != nil {
			xs, ys = append(xs, sx), append(ys, sy)
			r, _ := sx.Dims()
			n += r
		}
	}
	switch len(xs) {
	case 0:
		return nil, nil
	case 1:
		return xs[0], ys[0]
	}
	d := len(s.Mean)
	x, y = mat.NewDense(n, w*d, nil), mat.NewDense(n, h*d, nil)
	r := 0
	for k := range xs {
		m, _ := xs[k].Dims()
		x.Slice(r, r+m, 0, w*d).(*mat.Dense).Copy(xs[k])
		y.Slice(r, r+m, 0, h*d).(*mat.Dense).Copy(ys[k])
		r += m
	}
	return x, y
}

// forecastScorer keeps the prediction made at the previous reading and
// scores each new reading by how far it lands from it: per feature, the
// squared one-step residual, smoothed; the raw error is their sum.
type forecastScorer struct {
	net    *nn.Network
	scaler *nn.Scaler
	alpha  float64
	win    windower
	z      []float64
	pred   []float64 // one-step prediction for the next reading
	have   bool
	ema    []float64
	primed bool
	next   []float64 // full horizon of the last forecast, scaled
	act    float64   // the window's change, smoothed (see reconScorer)
}

func newForecastScorer(net *nn.Network, s *nn.Scaler, window, horizon int, alpha float64) *forecastScorer {
	d := len(s.Mean)
	return &forecastScorer{net: net, scaler: s, alpha: alpha, win: newWindower(window, d), z: make([]float64, d),
		pred: make([]float64, d), ema: make([]float64, d), next: make([]float64, horizon*d)}
}

func (f *forecastScorer) step(x []float64) (raw float64, ok bool) {
	scaleInto(f.z, f.scaler, x)
	if f.have {
		a := f.alpha
		if !f.primed {
			a, f.primed = 1, true
		}
		for j, v := range f.z {
			e := v - f.pred[j]
			f.ema[j] = a*e*e + (1-a)*f.ema[j]
			raw += f.ema[j]
		}
		ok = true
	}
	f.win.push(f.z)
	if f.win.ready() {
		c := f.win.change()
		if f.primed {
			f.act = f.alpha*c + (1-f.alpha)*f.act
		} else {
			f.act = c
		}
	}
	if f.win.ready() {
		out := f.net.Forward(f.win.buf)
		copy(f.next, out)
		copy(f.pred, out[:len(f.pred)])
		f.have = true
	}
	return raw, ok
}

// ModelDetector scores readings with a trained model artifact
// (reconstruction or forecaster). Its state is a function of the readings
// observed since it was built (and the LearnRecent calls between them), so
// replaying them rebuilds it.
type ModelDetector struct {
	a        *model.Artifact
	features []string
	x        []float64
	recon    *reconScorer
	fore     *forecastScorer
	calib    calibration
	bands    bands
	errs     []float64 // recent raw errors, oldest first, for LearnRecent
	acts     []float64 // and the change at each
}

// recentErrors is how many raw errors a ModelDetector keeps for LearnRecent.
const recentErrors = 1000

// FromArtifact builds the detector an artifact describes. RUL artifacts
// are not stream detectors (see package rul).
func FromArtifact(a *model.Artifact) (*ModelDetector, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if a.Kind != model.Reconstruction && a.Kind != model.Forecaster {
		return nil, fmt.Errorf("%w: a %s model is not a stream detector", model.ErrInvalid, a.Kind)
	}
	net, err := a.Network()
	if err != nil {
		return nil, err
	}
	c := a.Calibration
	s := &nn.Scaler{Mean: slices.Clone(a.Scaler.Mean), Std: slices.Clone(a.Scaler.Std)}
	m := &ModelDetector{a: a, features: slices.Clone(a.Features), x: make([]float64, len(a.Features)),
		calib: calibrationOf(c)}
	if a.Kind == model.Reconstruction {
		centred := make([]bool, len(a.Features))
		for j, f := range a.Features {
			centred[j] = slices.Contains(a.Centred, f)
		}
		m.recon = newReconScorer(net, s, centred, a.Window, c.Smoothing)
	} else {
		m.fore = newForecastScorer(net, s, a.Window, a.Horizon, c.Smoothing)
	}
	return m, nil
}

// Features returns the sensors the model reads, in order.
func (m *ModelDetector) Features() []string { return slices.Clone(m.features) }

// HealthLimit is the score at which the model says the asset has failed,
// when the artifact sets one (0 otherwise).
func (m *ModelDetector) HealthLimit() float64 {
	if m.a.Health == nil {
		return 0
	}
	return m.a.Health.Limit
}

// Observe implements Detector. Until the model's first window is full the
// result says WarmingUp.
func (m *ModelDetector) Observe(t time.Time, sensors map[string]float64) (Result, error) {
	if err := gather(m.x, m.features, sensors); err != nil {
		return Result{}, err
	}
	res := Result{Model: m.a.Name, Version: m.a.Version}
	var raw, act float64
	var ok bool
	var per []float64
	if m.recon != nil {
		raw, ok = m.recon.step(m.x)
		per, act = m.recon.ema, m.recon.act
	} else {
		raw, ok = m.fore.step(m.x)
		per, act = m.fore.ema, m.fore.act
	}
	if !ok {
		res.WarmingUp = true
		return res, nil
	}
	if len(m.errs) == recentErrors {
		m.errs, m.acts = append(m.errs[:0], m.errs[1:]...), append(m.acts[:0], m.acts[1:]...)
	}
	m.errs, m.acts = append(m.errs, raw), append(m.acts, act)
	res.Error = raw
	res.Evidence, res.Moving = m.bands.judge(m.calib, raw, act)
	res.Score = Score(res.Evidence)
	res.Contributions = contributions(m.features, per, raw)
	return res, nil
}

// ErrorAt implements Calibrated.
func (m *ModelDetector) ErrorAt(z float64) float64 { return m.calib.errorAt(z) }

// LearnRecent implements Learner. A trained network cannot be retrained
// here without the data it learnt from, so the detector widens its normal
// band instead: the calibration moves to cover the errors of the last n
// readings as well as the model's own, until a model trained on the new
// operating point replaces it.
func (m *ModelDetector) LearnRecent(n int) error {
	n = min(n, len(m.errs))
	if n < 10 {
		return fmt.Errorf("anomaly: %d recent errors are too few to learn from", n)
	}
	m.calib = m.calib.widened(fitCalibration(m.errs[len(m.errs)-n:], m.acts[len(m.acts)-n:]))
	return nil
}
