package anomaly

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/nn"
)

// OnlineConfig configures the detector a new asset gets before any trained
// model exists. Zero fields take the defaults noted (set in one place,
// OnlineConfig.withDefaults).
type OnlineConfig struct {
	// Name is reported as Result.Model (default "online-ae").
	Name string
	// Features are the sensors in input order. Empty: the sorted keys of the
	// first reading.
	Features []string
	// WarmupRows readings are learned as normal before scoring (default 400).
	WarmupRows int
	// Window is how many consecutive readings one network input spans
	// (default 4).
	Window int
	// Hidden is the bottleneck width of the autoencoder (default: a quarter
	// of the input width, at least 2).
	Hidden int
	// Smoothing is the weight of the newest error in each sensor's
	// exponential moving average (default 0.13; 1 means none).
	Smoothing float64
	// Epochs bounds each (re)training (default 60); Seed makes it
	// reproducible (default 1).
	Epochs int
	Seed   uint64
	// Frozen turns off continuous learning. By default (false) every
	// RetrainEvery scored readings (default 200) the network is retrained on
	// the warm-up plus those of the last HistoryRows readings (default 1000)
	// that passed the guard or were learnt as a new normal, as the trainer
	// would retrain it on a rolling history. LearnRecent works either way.
	Frozen       bool
	RetrainEvery int
	HistoryRows  int
	// AdaptBelow is the guard: a reading joins the training history only
	// when its score is below this level (default 0.9), and a retrain is
	// skipped when the median score since the last one exceeds DriftGuard
	// (default 0.75; normal data has a median near 0.5 by construction), so
	// a slow failure is not learned as normal.
	AdaptBelow float64
	DriftGuard float64
	// DriftRatio: the warm-up is cut into 8 blocks; a sensor whose block
	// means spread more than DriftRatio × its overall spread is slowly
	// drifting, so it is centred per window and used as context only
	// (default 0.6; white noise gives about 0.14 over 400 rows, a trend
	// close to 1).
	DriftRatio float64
}

// DefaultOnlineConfig returns the configuration with every default set.
func DefaultOnlineConfig() OnlineConfig { return OnlineConfig{}.withDefaults() }

func (c OnlineConfig) withDefaults() OnlineConfig {
	c.Name = cmp.Or(c.Name, "online-ae")
	c.WarmupRows = cmp.Or(c.WarmupRows, 400)
	c.Window = cmp.Or(c.Window, 4)
	c.Smoothing = cmp.Or(c.Smoothing, 0.13)
	c.Epochs = cmp.Or(c.Epochs, 60)
	c.Seed = cmp.Or(c.Seed, 1)
	c.RetrainEvery = cmp.Or(c.RetrainEvery, 200)
	c.HistoryRows = cmp.Or(c.HistoryRows, 1000)
	c.AdaptBelow = cmp.Or(c.AdaptBelow, 0.9)
	c.DriftGuard = cmp.Or(c.DriftGuard, 0.75)
	c.DriftRatio = cmp.Or(c.DriftRatio, 0.6)
	return c
}

// Validate rejects unusable settings, naming the values.
func (c OnlineConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Window < 1:
		return fmt.Errorf("anomaly: window (%d) must be at least 1", c.Window)
	case c.WarmupRows < c.Window+10:
		return fmt.Errorf("anomaly: warm-up rows (%d) must be at least window (%d) + 10", c.WarmupRows, c.Window)
	case !(c.Smoothing > 0 && c.Smoothing <= 1):
		return fmt.Errorf("anomaly: smoothing (%v) must be in (0, 1]", c.Smoothing)
	case c.Hidden < 0:
		return fmt.Errorf("anomaly: hidden (%d) must not be negative", c.Hidden)
	case !c.Frozen && c.RetrainEvery < 10:
		return fmt.Errorf("anomaly: retrain every (%d) must be at least 10", c.RetrainEvery)
	case c.HistoryRows < c.Window:
		return fmt.Errorf("anomaly: history rows (%d) must be at least the window (%d)", c.HistoryRows, c.Window)
	}
	seen := map[string]bool{}
	for _, f := range c.Features {
		if f == "" || seen[f] {
			return fmt.Errorf("anomaly: feature %q empty or repeated", f)
		}
		seen[f] = true
	}
	return nil
}

// ErrFeatures is returned by Observe when a reading lacks a feature or holds
// a non-finite value.
var ErrFeatures = errors.New("anomaly: reading does not match the features")

// Online is the online learner: warm-up, then score, optionally adapting.
// Its state is a deterministic function of the readings it has observed
// (and the LearnRecent calls between them), so replaying an asset's
// readings in order rebuilds it exactly.
type Online struct {
	cfg      OnlineConfig
	features []string
	x        []float64

	warm     [][]float64 // warm-up rows, kept as the anchor of every retrain
	warmFrom time.Time
	warmTo   time.Time

	net     *nn.Network
	scaler  *nn.Scaler
	centred []bool
	scorer  *reconScorer
	calib   calibration
	bands   bands
	version int

	recent     ring // the last HistoryRows readings, each marked normal or not
	sinceTrain int
	scores     []float64 // scores since the last retrain
}

// NewOnline returns an online detector. It validates and trains nothing.
func NewOnline(cfg OnlineConfig) (*Online, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := &Online{cfg: cfg, recent: newRing(cfg.HistoryRows)}
	if len(cfg.Features) > 0 {
		o.setFeatures(cfg.Features)
	}
	return o, nil
}

func (o *Online) setFeatures(f []string) {
	o.features = slices.Clone(f)
	o.x = make([]float64, len(f))
}

// Features returns the sensors in input order (nil before the first reading
// when they are taken from it).
func (o *Online) Features() []string { return slices.Clone(o.features) }

// Observe implements Detector.
func (o *Online) Observe(t time.Time, sensors map[string]float64) (Result, error) {
	if o.features == nil {
		keys := make([]string, 0, len(sensors))
		for k := range sensors {
			keys = append(keys, k)
		}
		if len(keys) == 0 {
			return Result{}, fmt.Errorf("%w: empty reading", ErrFeatures)
		}
		sort.Strings(keys)
		o.setFeatures(keys)
	}
	if err := gather(o.x, o.features, sensors); err != nil {
		return Result{}, err
	}
	res := Result{Model: o.cfg.Name, Version: o.Version()}
	if o.net == nil {
		if len(o.warm) == 0 {
			o.warmFrom = t
		}
		o.warm = append(o.warm, slices.Clone(o.x))
		o.warmTo = t
		res.WarmingUp = true
		if len(o.warm) < o.cfg.WarmupRows {
			return res, nil
		}
		if err := o.train(); err != nil {
			return Result{}, err
		}
		res.Version = o.Version()
		return res, nil
	}
	raw, ok := o.scorer.step(o.x)
	if !ok {
		res.WarmingUp = true
		return res, nil
	}
	res.Error = raw
	res.Evidence, res.Moving = o.bands.judge(o.calib, raw, o.scorer.act)
	res.Score = Score(res.Evidence)
	res.Contributions = contributions(o.features, o.scorer.ema, raw)
	o.recent.push(o.x, res.Score < o.cfg.AdaptBelow)
	if !o.cfg.Frozen {
		o.adapt(res)
	}
	return res, nil
}

// Version names the network the detector currently runs ("" during warm-up).
func (o *Online) Version() string {
	if o.net == nil {
		return ""
	}
	return fmt.Sprintf("online-%d", o.version)
}

// ErrorAt implements Calibrated.
func (o *Online) ErrorAt(z float64) float64 { return o.calib.errorAt(z) }

// LearnRecent implements Learner: the last n scored readings join the
// training history as normal and the network is retrained at once (the
// warm-up stays in it, so the old operating point stays normal too).
func (o *Online) LearnRecent(n int) error {
	if o.net == nil {
		return fmt.Errorf("anomaly: still warming up (%d of %d rows)", len(o.warm), o.cfg.WarmupRows)
	}
	o.recent.markLast(n)
	o.sinceTrain, o.scores = 0, o.scores[:0]
	return o.train()
}

func gather(dst []float64, features []string, sensors map[string]float64) error {
	for j, f := range features {
		v, ok := sensors[f]
		if !ok {
			return fmt.Errorf("%w: missing %q", ErrFeatures, f)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: %q is %v", ErrFeatures, f, v)
		}
		dst[j] = v
	}
	return nil
}

func contributions(features []string, per []float64, total float64) []Contribution {
	if !(total > 0) {
		return nil
	}
	c := make([]Contribution, len(features))
	for j, f := range features {
		c[j] = Contribution{Sensor: f, Share: per[j] / total}
	}
	sort.SliceStable(c, func(a, b int) bool { return c[a].Share > c[b].Share })
	return c
}

// fitScaler learns the scaler with a deviation floor relative to the mean:
// a sensor constant during warm-up still scores a later change, but a tiny
// quantisation step does not become thousands of deviations.
func fitScaler(rows [][]float64) (*nn.Scaler, error) {
	s, err := nn.FitScaler(rows)
	if err != nil {
		return nil, err
	}
	for j := range s.Std {
		s.Std[j] = math.Max(s.Std[j], math.Max(1e-3*math.Abs(s.Mean[j]), 1e-3))
	}
	return s, nil
}

// windows builds the training matrix from one or more contiguous segments
// of raw rows (windows never span two segments).
func windows(s *nn.Scaler, centred []bool, w int, segs ...[][]float64) *mat.Dense {
	d := len(s.Mean)
	n := 0
	for _, seg := range segs {
		n += max(len(seg)-w+1, 0)
	}
	if n == 0 {
		return nil
	}
	x := mat.NewDense(n, w*d, nil)
	r := 0
	z := make([]float64, d)
	for _, seg := range segs {
		win := newWindower(w, d)
		for _, row := range seg {
			scaleInto(z, s, row)
			win.push(z)
			if win.ready() {
				win.input(x.RawRowView(r), centred)
				r++
			}
		}
	}
	return x
}

func (o *Online) hidden() int {
	if o.cfg.Hidden > 0 {
		return o.cfg.Hidden
	}
	return max(2, o.cfg.Window*len(o.features)/4)
}

// fitScalerAll fits the scaler on every row of segs.
func fitScalerAll(segs [][][]float64) (*nn.Scaler, error) {
	var all [][]float64
	for _, seg := range segs {
		all = append(all, seg...)
	}
	return fitScaler(all)
}

// train fits scaler, network and calibration on the warm-up and the normal
// part of the recent history, then replays the newest rows through the
// scorer so its moving averages continue seamlessly.
func (o *Online) train() error {
	if o.centred == nil {
		o.centred = driftingFeatures(o.warm, o.cfg.DriftRatio)
	}
	segs := append([][][]float64{o.warm}, o.recent.normalRuns(o.cfg.Window)...)
	f := reconFit{window: o.cfg.Window, hidden: o.hidden(), smoothing: o.cfg.Smoothing, epochs: o.cfg.Epochs,
		seed: o.cfg.Seed + uint64(o.version)*7, initSeed: o.cfg.Seed}
	// Warm-started on retrains: the network moves from what it knew rather
	// than starting over, which keeps versions comparable.
	m, err := f.fit(o.net, segs, o.centred)
	if err != nil {
		return err
	}
	o.net, o.scaler, o.calib = m.net, m.scaler, m.calib
	o.version++
	// The scorer restarts from the newest rows replayed through the new
	// network, so its window and averages are full at the next reading and
	// hold no errors of the network it replaces.
	o.scorer = newReconScorer(o.net, o.scaler, o.centred, o.cfg.Window, o.cfg.Smoothing)
	tail := o.warm
	if n := len(o.recent.rows); n > 0 {
		tail = tail[:0:0]
		for i := max(n-2*f.burn(), 0); i < n; i++ {
			row, _ := o.recent.at(i)
			tail = append(tail, row)
		}
	}
	for _, row := range tail {
		o.scorer.step(row)
	}
	return nil
}

func (o *Online) adapt(res Result) {
	o.sinceTrain++
	o.scores = append(o.scores, res.Score)
	if o.sinceTrain < o.cfg.RetrainEvery {
		return
	}
	sorted := slices.Clone(o.scores)
	sort.Float64s(sorted)
	drifting := quantile(sorted, 0.5) > o.cfg.DriftGuard
	o.sinceTrain, o.scores = 0, o.scores[:0]
	if drifting || o.recent.normal < o.cfg.RetrainEvery/2 {
		return
	}
	// A failed retrain keeps the current network; the next one tries again.
	_ = o.train()
}

// Artifact exports the current network as a reconstruction model artifact,
// so what the online learner found can be versioned and served like any
// trained model.
func (o *Online) Artifact(name, version, parent string, created time.Time) (*model.Artifact, error) {
	if o.net == nil {
		return nil, fmt.Errorf("anomaly: still warming up (%d of %d rows)", len(o.warm), o.cfg.WarmupRows)
	}
	a := &model.Artifact{
		Kind: model.Reconstruction, Name: name, Version: version, ParentVersion: parent, CreatedAt: created,
		Features: slices.Clone(o.features), Window: o.cfg.Window,
		Centred:      centredNames(o.features, o.centred),
		Architecture: model.SpecArchitecture(o.net.Spec),
		Scaler:       nn.Scaler{Mean: slices.Clone(o.scaler.Mean), Std: slices.Clone(o.scaler.Std)},
		Weights:      slices.Clone(o.net.Params),
		Calibration:  o.calib.artifact(o.cfg.Smoothing),
		Training:     model.Training{From: o.warmFrom, To: o.warmTo, Rows: len(o.warm) + o.recent.normal, Seed: o.cfg.Seed},
	}
	return a, a.Seal()
}

func centredNames(features []string, centred []bool) []string {
	var out []string
	for j, c := range centred {
		if c {
			out = append(out, features[j])
		}
	}
	return out
}

// ring holds the last rows a detector scored, oldest first, each marked
// normal (it joins retraining) or not.
type ring struct {
	rows   [][]float64
	ok     []bool
	head   int // index of the oldest row once full
	normal int // rows marked normal
}

func newRing(n int) ring { return ring{rows: make([][]float64, 0, n), ok: make([]bool, 0, n)} }

func (r *ring) push(x []float64, normal bool) {
	if len(r.rows) < cap(r.rows) {
		r.rows = append(r.rows, slices.Clone(x))
		r.ok = append(r.ok, normal)
	} else {
		if r.ok[r.head] {
			r.normal--
		}
		copy(r.rows[r.head], x)
		r.ok[r.head] = normal
		r.head = (r.head + 1) % len(r.rows)
	}
	if normal {
		r.normal++
	}
}

// at returns the i-th oldest row and its mark.
func (r *ring) at(i int) ([]float64, *bool) {
	k := (r.head + i) % len(r.rows)
	return r.rows[k], &r.ok[k]
}

// markLast marks the newest n rows normal.
func (r *ring) markLast(n int) {
	for i := max(len(r.rows)-n, 0); i < len(r.rows); i++ {
		if _, ok := r.at(i); !*ok {
			*ok = true
			r.normal++
		}
	}
}

// normalRuns returns the runs of consecutive normal rows at least minLen
// long, oldest first.
func (r *ring) normalRuns(minLen int) [][][]float64 {
	var runs [][][]float64
	var cur [][]float64
	for i := range r.rows {
		row, ok := r.at(i)
		if *ok {
			cur = append(cur, row)
			continue
		}
		if len(cur) >= minLen {
			runs = append(runs, cur)
		}
		cur = nil
	}
	if len(cur) >= minLen {
		runs = append(runs, cur)
	}
	return runs
}
