// Package monitor is the one decision path from a reading to an alert: a
// Monitor owns one asset's detector and its alert lifecycle, and turns each
// reading into a score, an alert state and, when something changes, an
// alert event. The live scorer, `scorer backtest` and the trainer's
// validation all feed Monitors, so a backtest's alerts are the alerts
// operators would have received.
//
// Beyond the lifecycle of pdmkit/alert, a Monitor knows three things about
// plants:
//
//   - A persistent new operating point is normal. When an excursion under
//     an open alert has lasted the new-normal horizon and its deviation,
//     judged from the excursion's start, has stopped rising, the detector
//     learns it as normal and the alert resolves ("new_normal"). A
//     degradation keeps rising, so it is not learnt, nor is a failure level
//     that holds after a rise; an excursion that has not settled within
//     four horizons waits for an operator.
//   - A new operating point the model finds plausible raises no alert but
//     shifts the scores: when most quiet readings score above what one in
//     ten did after the detector was set, for two windows, at a settled
//     level, the Decision reports a drift once (the scorer then asks the
//     trainer for a model of the new normal).
//   - A forecast is only given where a failure level is known (configured,
//     or carried by the model), while an alert is open and its deviation
//     keeps rising: never on a resolving alert or a falling score.
//
// Invariants: a Monitor is a deterministic function of the readings and
// operator actions it was given, in order, so replaying them rebuilds it
// (same scores, same alert ids and events).
package monitor

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// Config is the decision's configuration. Zero fields take the defaults
// noted (WithDefaults); DefaultConfig has them all.
type Config struct {
	// Alert is the lifecycle: levels on the score and how long a score must
	// hold past them.
	Alert alert.Thresholds
	// NewNormal is the horizon within which a persistent new operating
	// point is learnt as normal: Readings (default 300) or Duration (default
	// 24h) of an open alert, whichever the data reaches first. Off turns
	// the automatic learning off (operators can still re-baseline).
	NewNormal Horizon
	// MaxRise is how much the deviation (the square root of the detector's
	// error, in standard deviations of the data it learnt) may still rise
	// across an excursion for it to count as settled (default 0.2). A
	// degradation keeps growing; a new operating point does not. One that
	// grows more slowly than this per horizon cannot be told from a new
	// operating point: give slow machines a longer horizon.
	MaxRise float64
	// TrendReadings is how many recent readings the forecast fits (default
	// 120). A forecast is given only while an alert is open and the
	// deviation keeps rising.
	TrendReadings int
	// FailureScore is the score at which the asset counts as failed, which
	// the forecast extrapolates to; a model's own health limit takes
	// precedence. Default 0: none, and then no forecast is given — an
	// online learner knows what normal looks like, not where failure lies,
	// and a time to an arbitrary level would not mean what it says. Set it
	// from experience with a class of machines, or train a model that
	// carries one.
	FailureScore float64
}

// Horizon bounds a duration in readings and in time; Off turns what it
// bounds off.
type Horizon struct {
	Readings int           `yaml:"readings" help:"readings of a settled excursion before it is normal"`
	Duration time.Duration `yaml:"duration" help:"reading time of a settled excursion before it is normal"`
	Off      bool          `yaml:"off" help:"never learn a new normal without an operator"`
}

// reached reports whether n readings spanning d reach frac of the horizon.
func (h Horizon) reached(n int, d time.Duration, frac float64) bool {
	return float64(n) >= frac*float64(h.Readings) || float64(d) >= frac*float64(h.Duration)
}

// DefaultConfig returns the configuration with every default set.
func DefaultConfig() Config { return Config{}.WithDefaults() }

// Default alert levels, as scores (see anomaly.Score): open at evidence 4
// held for three readings, resolve below evidence 2.
var defaultAlert = alert.Thresholds{
	Open: 0.986, Resolve: 0.93, Major: 0.995, Critical: 0.999,
}

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	if c.Alert.Open == 0 {
		c.Alert.Open, c.Alert.Resolve = defaultAlert.Open, defaultAlert.Resolve
		c.Alert.Major, c.Alert.Critical = cmp.Or(c.Alert.Major, defaultAlert.Major), cmp.Or(c.Alert.Critical, defaultAlert.Critical)
	}
	c.Alert = c.Alert.WithDefaults()
	c.NewNormal.Readings = cmp.Or(c.NewNormal.Readings, 300)
	c.NewNormal.Duration = cmp.Or(c.NewNormal.Duration, 24*time.Hour)
	c.MaxRise = cmp.Or(c.MaxRise, 0.2)
	c.TrendReadings = cmp.Or(c.TrendReadings, 120)
	return c
}

// Validate rejects settings that cannot decide, naming the values.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if err := c.Alert.Validate(); err != nil {
		return err
	}
	switch {
	case c.NewNormal.Readings < 2*max(c.Alert.MinReadings, 1):
		return fmt.Errorf("monitor: new-normal readings (%d) must be at least twice the alert's min readings (%d)", c.NewNormal.Readings, c.Alert.MinReadings)
	case c.NewNormal.Duration < 0:
		return fmt.Errorf("monitor: new-normal duration (%s) must not be negative", c.NewNormal.Duration)
	case !(c.MaxRise > 0):
		return fmt.Errorf("monitor: max rise (%v) must be positive", c.MaxRise)
	case c.TrendReadings < 10:
		return fmt.Errorf("monitor: trend readings (%d) must be at least 10", c.TrendReadings)
	case !(c.FailureScore >= 0 && c.FailureScore < 1):
		return fmt.Errorf("monitor: failure score (%v) must be in [0, 1)", c.FailureScore)
	}
	return nil
}

// Decision is what the Monitor made of one reading.
type Decision struct {
	anomaly.Result
	// Open is true while an alert is open after this reading.
	Open bool
	// Learning is true while the monitor takes readings as the new normal
	// after an operator said so (no alert opens meanwhile).
	Learning bool
	// Forecast is the time to failure as of this reading, when the open
	// alert's trend gives one (the alert itself carries the last one
	// published; see alert.Thresholds.ForecastChange).
	Forecast *alert.Forecast
	// Drift is true on the reading at which the scores of quiet readings
	// (no alert open) have shifted to a new, settled level since the
	// detector was set: the asset needs a model of its new normal though
	// nothing alerted. It is reported once per shift.
	Drift bool
	// Since is, with Drift or an alert resolved as the new normal, when
	// the new normal began (the shift's or the excursion's start).
	Since time.Time
	// Event is the alert event this reading caused, if any.
	Event *alert.Alert
}

// Monitor decides for one asset. It is not safe for concurrent use.
type Monitor struct {
	cfg     Config
	det     anomaly.Detector
	tracker *alert.Tracker
	trend   *trend
	drift   *drift
	limit   float64 // evidence of the failure level, NaN for none
	// excursion counts the readings since the score last left the normal
	// band (rose to Resolve or above) on the way to the current alert;
	// excursionFrom is the first one's time, and ex the deviation since
	// then (oldest first, at most exSpan horizons of it).
	excursion     int
	excursionFrom time.Time
	ex            []point
	// relearn > 0: readings still to take as normal after an operator's
	// re-baseline; learnt is how many have been taken so far.
	relearn, learnt int
}

type point struct {
	t   time.Time
	dev float64 // the square root of the detector's error
}

// New returns a Monitor for det. cfg is validated.
func New(det anomaly.Detector, cfg Config) (*Monitor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	m := &Monitor{cfg: cfg, tracker: alert.NewTracker(alert.KindAnomaly, cfg.Alert), trend: newTrend(cfg.TrendReadings),
		drift: newDrift(cfg.NewNormal, cfg.MaxRise)}
	m.SetDetector(det)
	return m, nil
}

// SetDetector swaps the detector (a new model version) under the running
// lifecycle: an open alert stays open and the new detector's scores
// decide from the next reading on.
func (m *Monitor) SetDetector(det anomaly.Detector) {
	m.det = det
	m.trend.reset()
	m.drift.reset()
	m.ex = m.ex[:0]
	m.limit = math.NaN()
	if m.cfg.FailureScore > 0 {
		m.limit = anomaly.Evidence(m.cfg.FailureScore)
	}
	if h, ok := det.(interface{ HealthLimit() float64 }); ok && h.HealthLimit() > 0 {
		m.limit = anomaly.Evidence(h.HealthLimit())
	}
}

// Detector returns the detector in use.
func (m *Monitor) Detector() anomaly.Detector { return m.det }

// Current returns the open alert, if any.
func (m *Monitor) Current() (alert.Alert, bool) { return m.tracker.Current() }

// Observe scores one reading and advances the alert lifecycle. A reading
// the detector cannot score returns its error together with a Decision:
// it counts as a quiet reading for the lifecycle, so an alert does not
// stay open on readings nobody could score.
func (m *Monitor) Observe(r *wire.Reading) (Decision, error) {
	res, err := m.det.Observe(r.Time, r.Sensors)
	d := Decision{Result: res}
	if err != nil {
		d.Result = anomaly.Result{WarmingUp: true}
	} else if !res.WarmingUp {
		m.trend.add(r.Time, math.Sqrt(res.Error))
	}
	obs := alert.Observation{
		Site: r.Site, Asset: r.Asset, Seq: r.Seq, Time: r.Time, Score: d.Score, WarmingUp: d.WarmingUp, Hold: d.Moving,
		Sensors: Sensors(d.Contributions), Model: d.Model, Version: d.Version,
	}
	if m.relearn > 0 {
		d.Learning = true
		obs.WarmingUp = true
		if !d.WarmingUp {
			m.relearn--
			m.learnt++
		}
		if m.relearn == 0 {
			_ = m.learn(m.learnt) // a detector that cannot learn keeps its normal
			m.learnt = 0
		}
	}
	// A settled excursion under an open alert that has lasted the horizon
	// is learnt before the lifecycle sees the reading, and the alert
	// resolves as the new normal.
	if m.follow(r.Time, d) && m.learn(m.excursion-m.excursion/4) == nil {
		d.Since = m.excursionFrom
		if ev, ok := m.tracker.Resolve(obs, alert.NewNormal); ok {
			d.Event = &ev
		}
		return d, err
	}
	// A forecast is worked out while the score is past the resolve level;
	// it is given only with an alert open (from the reading that opens it).
	if !obs.WarmingUp && d.Score >= m.cfg.Alert.Resolve {
		obs.Forecast = m.forecast(r.Time)
	}
	if ev, ok := m.tracker.Observe(obs); ok {
		d.Event = &ev
	}
	d.Open = m.tracker.Open()
	if !obs.WarmingUp && !d.Open && d.Event == nil {
		d.Drift, d.Since = m.drift.add(r.Time, d.Score, math.Sqrt(d.Error))
	}
	if d.Open {
		d.Forecast = obs.Forecast
	}
	return d, err
}

// follow keeps the excursion's deviation and reports whether it is to be
// learnt now: an alert is open on it, and it has lasted the horizon and
// settled. (The oldest quarter of the excursion holds the change itself
// and its settling; only the settled rest is learnt.)
func (m *Monitor) follow(t time.Time, d Decision) bool {
	if d.WarmingUp || d.Learning || (!m.tracker.Open() && d.Score < m.cfg.Alert.Resolve) {
		m.excursion, m.ex = 0, m.ex[:0]
		return false
	}
	if m.excursion == 0 {
		m.excursionFrom = t
	}
	m.excursion++
	h := m.cfg.NewNormal
	if h.reached(m.excursion, t.Sub(m.excursionFrom), exSpan) {
		return false
	}
	m.ex = append(m.ex, point{t, math.Sqrt(d.Error)})
	return !h.Off && m.tracker.Open() && h.reached(m.excursion, t.Sub(m.excursionFrom), 1) && m.settled()
}

// exSpan is how many horizons an excursion may last and still be learnt
// without an operator. Its growth is judged from its start: a degradation
// that stops growing at its failure level is still a rise over the whole
// excursion, and one whose growth a daily load cycle hides for hours does
// not pass as settled.
const exSpan = 4

// settled reports whether the excursion has stopped growing: its oldest
// quarter is the change and its settling, and the rest must be flat.
func (m *Monitor) settled() bool {
	return flat(m.ex[len(m.ex)/4:], m.cfg.MaxRise)
}

// flat reports whether a deviation series has stopped growing: the mean
// of its newest quarter is at most maxRise above that of its oldest, a
// line fitted to it rises by at most maxRise, and its slope is not
// significantly positive.
func flat(pts []point, maxRise float64) bool {
	q := len(pts) / 4
	if q < 2 {
		return false
	}
	if mean(pts[len(pts)-q:])-mean(pts[:q]) > maxRise {
		return false
	}
	var st, sd float64
	for _, p := range pts {
		st += p.t.Sub(pts[0].t).Seconds()
		sd += p.dev
	}
	n := float64(len(pts))
	mt, md := st/n, sd/n
	var stt, std float64
	for _, p := range pts {
		dt := p.t.Sub(pts[0].t).Seconds() - mt
		stt += dt * dt
		std += dt * (p.dev - md)
	}
	if stt == 0 {
		return true
	}
	slope := std / stt
	span := pts[len(pts)-1].t.Sub(pts[0].t).Seconds()
	if slope*span > maxRise {
		return false
	}
	// A rise too small to pass MaxRise but steady enough to be real is a
	// slow degradation: not settled while the slope is significantly
	// positive (over 3 standard errors, widened for the autocorrelation
	// of the smoothed errors, as in the forecast).
	var sse, lag, prev float64
	for i, p := range pts {
		r := p.dev - (md + slope*(p.t.Sub(pts[0].t).Seconds()-mt))
		sse += r * r
		if i > 0 {
			lag += r * prev
		}
		prev = r
	}
	se := math.Sqrt(sse/math.Max(n-2, 1)) / math.Sqrt(stt)
	if sse > 0 {
		if rho := math.Min(lag/sse, 0.99); rho > 0 {
			se *= math.Sqrt((1 + rho) / (1 - rho))
		}
	}
	return slope <= 3*se
}

func mean(ps []point) float64 {
	s := 0.0
	for _, p := range ps {
		s += p.dev
	}
	return s / float64(len(ps))
}

// errNotLearner: the detector cannot take readings as normal.
var errNotLearner = errors.New("monitor: the detector cannot learn a new normal")

func (m *Monitor) learn(n int) error {
	l, ok := m.det.(anomaly.Learner)
	if !ok {
		return errNotLearner
	}
	if err := l.LearnRecent(n); err != nil {
		return err
	}
	m.trend.reset()
	m.drift.reset()
	m.excursion, m.ex = 0, m.ex[:0]
	return nil
}

// NewNormal is an operator's "this is the new normal" at time at: the open
// alert, if any, resolves now (resolution "operator", acknowledged by by
// with reason), and the asset's readings from the excursion's start and
// over the next half horizon are learnt as normal, with no alert opening
// meanwhile. It returns the resolving event, if an alert was open.
func (m *Monitor) NewNormal(by, reason string, at time.Time) (alert.Alert, bool) {
	if _, ok := m.det.(anomaly.Learner); !ok {
		return alert.Alert{}, false
	}
	m.learnt = 0
	m.relearn = max(m.cfg.NewNormal.Readings/2, 1)
	m.excursion, m.ex = 0, m.ex[:0]
	m.drift.reset()
	cur, ok := m.tracker.Current()
	if !ok {
		return alert.Alert{}, false
	}
	obs := alert.Observation{Site: cur.Site, Asset: cur.Asset, Seq: cur.LastSeq, Time: cur.LastTime, Score: cur.Score,
		Model: cur.Model, Version: cur.Version, Sensors: cur.TopSensors}
	ev, _ := m.tracker.Resolve(obs, alert.Operator)
	ev.ResolvedAt = &at
	ev.Acked, ev.AckedBy, ev.AckedAt, ev.Reason = true, by, &at, reason
	return ev, true
}

// Ack records an operator's acknowledgement of the open alert id. With
// reason "new_normal" it is NewNormal instead.
func (m *Monitor) Ack(id, by, reason string, at time.Time) (alert.Alert, bool) {
	if cur, ok := m.tracker.Current(); !ok || cur.ID != id {
		return alert.Alert{}, false
	}
	if reason == alert.NewNormal {
		return m.NewNormal(by, reason, at)
	}
	return m.tracker.Ack(id, by, reason, at)
}

// LifePredictor is a detector that predicts the time to failure itself (a
// remaining-useful-life model, pdmkit/rul): its forecast is its own
// prediction rather than a trend extrapolated to a failure level.
type LifePredictor interface {
	RemainingLife() (ttf, low, high time.Duration, ok bool)
}

func (m *Monitor) forecast(t time.Time) *alert.Forecast {
	if p, ok := m.det.(LifePredictor); ok {
		ttf, low, high, ok := p.RemainingLife()
		if !ok {
			return nil
		}
		return &alert.Forecast{TimeToFailure: ttf.Seconds(), Low: low.Seconds(), High: high.Seconds(), FailureAt: t.Add(ttf)}
	}
	c, ok := m.det.(anomaly.Calibrated)
	if !ok || math.IsNaN(m.limit) {
		return nil
	}
	ttf, low, high, ok := m.trend.forecast(math.Sqrt(c.ErrorAt(m.limit)))
	if !ok {
		return nil
	}
	return &alert.Forecast{TimeToFailure: ttf.Seconds(), Low: low.Seconds(), High: high.Seconds(), FailureAt: t.Add(ttf)}
}

// Sensors are a result's contributions as an alert's sensors.
func Sensors(cs []anomaly.Contribution) []alert.Sensor {
	if len(cs) == 0 {
		return nil
	}
	out := make([]alert.Sensor, len(cs))
	for i, c := range cs {
		out[i] = alert.Sensor{Name: c.Sensor, Share: c.Share}
	}
	return out
}
