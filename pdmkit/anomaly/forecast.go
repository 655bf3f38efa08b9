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
// defaults noted.
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
	return c
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
// last row time. Calibration is out of sample: the error distribution
// comes from a network trained on the first 70% of every segment scoring
// the last 30% of each; the final network trains on all rows.
func TrainForecasterSegments(segs [][][]float64, from, to time.Time, features []string, cfg ForecasterConfig) (*Trained, error) {
	d := len(features)
	if d == 0 {
		return nil, fmt.Errorf("anomaly: no features")
	}
	cfg = cfg.withDefaults(d)
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
	spec := nn.Spec{Sizes: []int{cfg.Window * d, cfg.Hidden, cfg.Horizon * d}, Acts: []nn.Activation{nn.Tanh, nn.Linear}}
	fit := func(segs [][][]float64) (*nn.Network, []nn.EpochLoss, error) {
		x, y := forecastPairsAll(scaler, cfg.Window, cfg.Horizon, segs)
		if x == nil {
			return nil, nil, fmt.Errorf("anomaly: no segment is longer than window %d + horizon %d", cfg.Window, cfg.Horizon)
		}
		net, err := nn.New(spec, cfg.Seed)
		if err != nil {
			return nil, nil, err
		}
		res, err := net.Train(x, y, nn.TrainConfig{Optimizer: nn.Adam, LearningRate: 0.003, Epochs: cfg.Epochs, BatchSize: 32,
			L2: 1e-4, ValidationFraction: 0.2, Patience: 10, Seed: cfg.Seed})
		if err != nil {
			return nil, nil, fmt.Errorf("anomaly: training forecaster: %w", err)
		}
		return net, res.History, nil
	}
	heads := make([][][]float64, 0, len(segs))
	for _, seg := range segs {
		heads = append(heads, seg[:len(seg)*7/10])
	}
	probe, _, err := fit(heads)
	if err != nil {
		return nil, err
	}
	burn := cfg.Window + int(math.Ceil(1/cfg.Smoothing))
	var errs, acts []float64
	for _, seg := range segs {
		cut := len(seg) * 7 / 10
		if cut < cfg.Window {
			continue
		}
		fs := newForecastScorer(probe, scaler, cfg.Window, cfg.Horizon, cfg.Smoothing)
		for i, r := range seg[cut-cfg.Window:] {
			if e, ok := fs.step(r); ok && i > burn {
				errs, acts = append(errs, e), append(acts, fs.act)
			}
		}
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("anomaly: no segment is long enough to calibrate window %d (the last 30%% of a segment must exceed %d rows)", cfg.Window, burn-cfg.Window+1)
	}
	calib := fitCalibration(errs, acts)
	net, curve, err := fit(segs)
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
		Architecture: model.SpecArchitecture(spec), Scaler: *scaler, Weights: net.Params,
		Calibration: calib.artifact(cfg.Smoothing),
		Health:      health,
		Training:    model.Training{From: from, To: to, Rows: len(all), Seed: cfg.Seed},
		Metrics:     map[string]float64{"holdout_log_error_median": calib.steady.logMean},
	}
	return &Trained{Artifact: a, Curve: curve}, a.Seal()
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
