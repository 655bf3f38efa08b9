// Package validate backtests a model on held-out history through the live
// decision (pdmkit/monitor, as the scorer runs it) and decides whether a
// candidate may replace the active version.
//
// Two questions are asked of each version, on the same data:
//
//   - Is it quiet on normal operation? The held-out history is normal by
//     construction (alerts, maintenance and abnormal labels were excluded
//     when it was read), so every alert event on it is a false alarm.
//   - Does it still see faults? Into copies of the held-out history, one
//     fault at a time is injected — a ramp on one sensor, from nothing to
//     a size, over a number of readings (Faults) —
//     and a fault counts as detected when an alert is open before it ends.
//     Sizes are in multiples of the sensor's spread on the held-out data.
//     A model trained on data that held a fault, or on too little data,
//     misses them or raises false alarms, and is not promoted. A fault is
//     not counted for a version whose alert is open there without it.
//
// A remaining-useful-life model is asked other questions (Runs): every
// held-out series is a run to failure; how far are its predictions from
// the true remaining life, does its alert open before the failure, and
// does it open while the run is still healthy?
//
// Invariant: Backtest and Runs are pure functions of their inputs; the
// same artifact and history give the same Metrics.
package validate

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/pdmstream/pdm/pdmkit/detect"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/monitor"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/pdmstream/pdm/trainer/internal/history"
)

// Faults configures the injected faults. Zero fields take the defaults
// noted.
type Faults struct {
	// Sizes are the ramps' ends in multiples of the sensor's spread (the
	// robust deviation of its values on the held-out history); one fault
	// of each size goes into each sensor, spread over the held-out
	// segments. Default 2, 4, 8, 16: a model that learnt a fault as normal,
	// or too little of normal, misses the small ones first.
	Sizes []float64
	// Readings is each ramp's length, default 60 or a quarter of the
	// segment, whichever is shorter.
	Readings int
}

// Metrics are one version's results on held-out history.
type Metrics struct {
	// Rows were scored (after each segment's first window); Skipped rows
	// of the held-out history had no value for a feature and were not.
	Rows    int `json:"rows"`
	Skipped int `json:"skipped_rows,omitempty"`
	// FalseAlarms are the alert events opened on the normal history.
	FalseAlarms int `json:"false_alarms"`
	// AlertRows had an alert open; MedianScore is the median score.
	AlertRows   int     `json:"alert_rows"`
	MedianScore float64 `json:"median_score"`
	// Injected faults, how many were Detected, and the Detection share.
	Injected  int     `json:"injected"`
	Detected  int     `json:"detected"`
	Detection float64 `json:"detection"`
	// MeanDelay is the mean number of readings from a detected fault's
	// start to its alert.
	MeanDelay float64 `json:"mean_delay_readings"`
	// BySensor is the detection share of each sensor's faults; Weakest
	// the lowest of them: a model that learnt one sensor's fault as normal
	// is blind there however well it sees the others.
	BySensor map[string]float64 `json:"by_sensor,omitempty"`
	Weakest  float64            `json:"weakest_sensor_detection"`
	// RMSE (remaining-useful-life models) is the error of the predicted
	// remaining life against the true one (capped as the model was
	// trained), in readings, over every scored reading; MeanLead the mean
	// readings from an alert's opening to its run's failure.
	RMSE     float64 `json:"rmse_readings,omitempty"`
	MeanLead float64 `json:"mean_lead_readings,omitempty"`
}

// Map is the metrics as an artifact's metrics map, keys prefixed.
func (m Metrics) Map(prefix string) map[string]float64 {
	return map[string]float64{
		prefix + "rows": float64(m.Rows), prefix + "false_alarms": float64(m.FalseAlarms),
		prefix + "median_score": m.MedianScore, prefix + "detection": m.Detection, prefix + "mean_delay_readings": m.MeanDelay,
		prefix + "rmse_readings": m.RMSE, prefix + "mean_lead_readings": m.MeanLead,
	}
}

// Runs backtests a remaining-useful-life model on held-out runs to
// failure (each series one run, its last row the failure). Injected and
// Detected count runs, and a run is detected when an alert is open at its
// last reading, having opened before it; FalseAlarms are alerts that
// opened while the true remaining life was above the model's target cap
// (the run still healthy by the model's own definition).
func Runs(a *model.Artifact, held []*history.Series, decision monitor.Config) (Metrics, Trace, error) {
	var m Metrics
	var tr Trace
	var scores []float64
	capped := a.Metrics["target_cap"]
	var se float64
	var leads int
	for _, s := range held {
		if s == nil {
			continue
		}
		if err := a.CheckFeatures(s.Sensors); err != nil {
			return m, tr, fmt.Errorf("validate: %s: %w", s.Asset, err)
		}
		det, err := detect.New(a)
		if err != nil {
			return m, tr, fmt.Errorf("validate: %w", err)
		}
		life, ok := det.(interface{ RUL() float64 })
		if !ok {
			return m, tr, fmt.Errorf("validate: a %s model does not predict remaining life", a.Kind)
		}
		mon, err := monitor.New(det, decision)
		if err != nil {
			return m, tr, fmt.Errorf("validate: %w", err)
		}
		n := 0
		for _, sg := range s.Segments {
			n += sg.N
		}
		features := featureMask(a, s.Sensors)
		m.Injected++
		opened, i := -1, 0
		r := wire.Reading{Site: s.Site, Asset: s.Asset, Sensors: make(map[string]float64, len(s.Sensors))}
		var d monitor.Decision
		for _, sg := range s.Segments {
			for k := range sg.N {
				if fill(&r, s.Sensors, sg.Row(k), features) {
					m.Skipped++
					i++
					continue
				}
				r.Seq, r.Time = uint64(i+1), sg.Time(k)
				if d, err = mon.Observe(&r); err != nil {
					return m, tr, fmt.Errorf("validate: %s row %d: %w", s.Asset, i, err)
				}
				left := float64(n - 1 - i)
				if !d.WarmingUp {
					m.Rows++
					e := life.RUL() - math.Min(capped, left)
					se += e * e
					scores = append(scores, d.Score)
					tr.Times, tr.Scores, tr.Open = append(tr.Times, r.Time), append(tr.Scores, d.Score), append(tr.Open, d.Open)
					if d.Open {
						m.AlertRows++
					}
				}
				if d.Event != nil && d.Event.State == "opened" {
					if left > capped {
						m.FalseAlarms++
					} else {
						opened = i
					}
				}
				i++
			}
		}
		if d.Open && opened >= 0 && opened < n-1 {
			m.Detected++
			leads += n - 1 - opened
		}
	}
	if m.Injected == 0 || m.Rows == 0 {
		return m, tr, fmt.Errorf("validate: no held-out run longer than the window (%d)", a.Window)
	}
	sort.Float64s(scores)
	m.MedianScore = scores[len(scores)/2]
	m.RMSE = math.Sqrt(se / float64(m.Rows))
	m.Detection = float64(m.Detected) / float64(m.Injected)
	m.Weakest = m.Detection
	if m.Detected > 0 {
		m.MeanLead = float64(leads) / float64(m.Detected)
	}
	return m, tr, nil
}

// Trace is one version's decision over the held-out history (the normal
// copy), for plots: per row its time, score and whether an alert was open.
type Trace struct {
	Times  []time.Time
	Scores []float64
	Open   []bool
}

// Backtest runs a fresh decision over every held-out segment of every
// series for the artifact a, then once per injected fault.
func Backtest(a *model.Artifact, held []*history.Series, decision monitor.Config, f Faults) (Metrics, Trace, error) {
	if len(f.Sizes) == 0 {
		f.Sizes = []float64{2, 4, 8, 16}
	}
	var m Metrics
	var tr Trace
	var scores []float64
	type segRef struct {
		s   *history.Series
		seg history.Segment
	}
	var segs []segRef
	for _, s := range held {
		if s == nil {
			continue
		}
		if err := a.CheckFeatures(s.Sensors); err != nil {
			return m, tr, fmt.Errorf("validate: %s: %w", s.Asset, err)
		}
		for _, seg := range s.Segments {
			if seg.Len() > 2*a.Window {
				segs = append(segs, segRef{s, seg})
			}
		}
	}
	if len(segs) == 0 {
		return m, tr, fmt.Errorf("validate: no held-out segment longer than twice the window (%d)", 2*a.Window)
	}
	normal := make([][]scored, len(segs))
	for k, r := range segs {
		out, err := run(a, r.s, r.seg, decision, nil)
		if err != nil {
			return m, tr, err
		}
		normal[k] = out
		for i, d := range out {
			if d.Skipped {
				m.Skipped++
				continue
			}
			if d.WarmingUp {
				continue
			}
			m.Rows++
			scores = append(scores, d.Score)
			if d.Open {
				m.AlertRows++
			}
			if d.Event != nil && d.Event.State == "opened" {
				m.FalseAlarms++
			}
			tr.Times = append(tr.Times, r.seg.Time(i))
			tr.Scores = append(tr.Scores, d.Score)
			tr.Open = append(tr.Open, d.Open)
		}
	}
	sort.Float64s(scores)
	if len(scores) > 0 {
		m.MedianScore = scores[len(scores)/2]
	}
	// Faults: per sensor, one ramp of each size, each in the segment next
	// in turn, starting after the detector's first window and settling.
	k := 0
	delays := 0
	m.BySensor = map[string]float64{}
	m.Weakest = 1
	for j, name := range segs[0].s.Sensors {
		if !slices.Contains(a.Features, name) {
			continue
		}
		injected, detected := 0, 0
		for _, size := range f.Sizes {
			r, quiet := segs[k%len(segs)], normal[k%len(segs)]
			k++
			n := r.seg.Len()
			length := cmp.Or(f.Readings, min(60, n/4))
			start := min(2*a.Window+20, n-length)
			if start < a.Window || length < 3 {
				continue
			}
			if slices.ContainsFunc(quiet[start:start+length], func(d scored) bool { return d.Open }) {
				continue // the version alerts there anyway: a detection would not be the fault's
			}
			spread := spreadOf(r.seg, j)
			fault := func(i int, row []float64) {
				if i >= start && i < start+length {
					row[j] += size * spread * float64(i-start+1) / float64(length)
				}
			}
			out, err := run(a, r.s, r.seg, decision, fault)
			if err != nil {
				return m, tr, err
			}
			m.Injected++
			injected++
			for i := start; i < start+length; i++ {
				if out[i].Open {
					m.Detected++
					detected++
					delays += i - start
					break
				}
			}
		}
		if injected > 0 {
			share := float64(detected) / float64(injected)
			m.BySensor[name] = share
			m.Weakest = min(m.Weakest, share)
		}
	}
	if m.Injected == 0 {
		m.Weakest = 0
	}
	if m.Injected > 0 {
		m.Detection = float64(m.Detected) / float64(m.Injected)
	}
	if m.Detected > 0 {
		m.MeanDelay = float64(delays) / float64(m.Detected)
	}
	return m, tr, nil
}

// run scores one segment through a fresh detector and decision, with
// fault applied to each row when given. A row without a value for one of
// the model's features is not scored, as the live scorer refuses such a
// reading: its decision is the previous one's open state, marked
// Skipped, and the detector never sees it.
func run(a *model.Artifact, s *history.Series, seg history.Segment, decision monitor.Config, fault func(int, []float64)) ([]scored, error) {
	det, err := detect.New(a)
	if err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	mon, err := monitor.New(det, decision)
	if err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	features := featureMask(a, s.Sensors)
	out := make([]scored, seg.Len())
	row := make([]float64, len(s.Sensors))
	r := wire.Reading{Site: s.Site, Asset: s.Asset, Sensors: make(map[string]float64, len(s.Sensors))}
	open := false
	for i := range seg.Len() {
		copy(row, seg.Row(i))
		if fault != nil {
			fault(i, row)
		}
		if fill(&r, s.Sensors, row, features) {
			out[i] = scored{Decision: monitor.Decision{Open: open}, Skipped: true}
			continue
		}
		r.Seq, r.Time = uint64(i+1), seg.Time(i)
		d, err := mon.Observe(&r)
		if err != nil {
			return nil, fmt.Errorf("validate: %s row %d: %w", s.Asset, i, err)
		}
		out[i], open = scored{Decision: d}, d.Open
	}
	return out, nil
}

// featureMask tells which of sensors are the model's features.
func featureMask(a *model.Artifact, sensors []string) []bool {
	mask := make([]bool, len(sensors))
	for j, name := range sensors {
		mask[j] = slices.Contains(a.Features, name)
	}
	return mask
}

// fill sets r's sensors to row's values, leaving out those without one
// (NaN: a gap in the history), as an edge agent publishes only what it
// read; missing is true when a feature has no value.
func fill(r *wire.Reading, sensors []string, row []float64, features []bool) (missing bool) {
	clear(r.Sensors)
	for j, name := range sensors {
		if math.IsNaN(row[j]) {
			missing = missing || features[j]
			continue
		}
		r.Sensors[name] = row[j]
	}
	return missing
}

// scored is one row's decision; Skipped rows were not scored.
type scored struct {
	monitor.Decision
	Skipped bool
}

// spreadOf is sensor j's spread: the robust deviation (1.4826 · median
// absolute deviation) of its values; a floor keeps a constant sensor's
// faults visible.
func spreadOf(seg history.Segment, j int) float64 {
	vals := make([]float64, seg.Len())
	for i := range vals {
		vals[i] = seg.Row(i)[j]
	}
	sort.Float64s(vals)
	med := vals[len(vals)/2]
	dev := make([]float64, len(vals))
	for i, v := range vals {
		dev[i] = math.Abs(v - med)
	}
	sort.Float64s(dev)
	return math.Max(1.4826*dev[len(dev)/2], math.Max(1e-3*math.Abs(med), 1e-6))
}

// Rule is the promotion rule a candidate must pass on the held-out
// history.
type Rule struct {
	// MaxFalseAlarms is the most alert events a candidate may raise on the
	// held-out normal history (and at most the active version's, when that
	// raised more). Default 0.
	MaxFalseAlarms int `yaml:"max_false_alarms" help:"alert events a candidate may raise on held-out normal history"`
	// MinDetection is the least share of injected faults the candidate
	// must detect, unless the active version detects less (then the
	// candidate must not be worse than it by more than Tolerance). Default
	// 0.5.
	MinDetection float64 `yaml:"min_detection" help:"share of injected faults a candidate must detect"`
	// Tolerance is how much lower than the active version's the
	// candidate's detection may be, beyond the sampling error of the
	// injected faults (see worse). Default 0.05.
	Tolerance float64 `yaml:"tolerance" help:"how much worse than the active version's detection a candidate may be"`
}

// worse reports whether a detection share c of nc faults is lower than a of
// na by more than tol plus one standard error of the difference (the
// two-proportion test's, pooled). A short hold-out gives few faults, and
// 3 against 5 detected of 24 is chance, not a worse model.
func worse(c float64, nc int, a float64, na int, tol float64) bool {
	if nc <= 0 || na <= 0 {
		return c < a-tol
	}
	p := (c*float64(nc) + a*float64(na)) / float64(nc+na)
	se := math.Sqrt(p * (1 - p) * (1/float64(nc) + 1/float64(na)))
	return c < a-tol-se
}

// perSensor is how many faults each sensor got, about.
func (m Metrics) perSensor() int { return m.Injected / max(1, len(m.BySensor)) }

// Decide says whether the candidate may replace the active version (nil:
// there is none), and why.
func Decide(cand Metrics, active *Metrics, r Rule) (bool, string) {
	switch {
	case cand.FalseAlarms > r.MaxFalseAlarms && (active == nil || cand.FalseAlarms > active.FalseAlarms):
		return false, fmt.Sprintf("the candidate raised %d false alarms on %d held-out normal readings (allowed %d%s)",
			cand.FalseAlarms, cand.Rows, r.MaxFalseAlarms, activeNote(active, func(m *Metrics) string { return fmt.Sprint(m.FalseAlarms) }))
	case cand.Detection < r.MinDetection && (active == nil || active.Injected == 0 || active.Detection >= r.MinDetection):
		return false, fmt.Sprintf("the candidate detected %d of %d %s (%.0f%%, needs %.0f%%)",
			cand.Detected, cand.Injected, cand.events(), 100*cand.Detection, 100*r.MinDetection)
	case active != nil && active.Injected > 0 && worse(cand.Detection, cand.Injected, active.Detection, active.Injected, r.Tolerance):
		return false, fmt.Sprintf("the candidate detected %d of %d %s (%.0f%%), the active version %d of %d (%.0f%%): worse by more than chance and the tolerance of %.0f points",
			cand.Detected, cand.Injected, cand.events(), 100*cand.Detection, active.Detected, active.Injected, 100*active.Detection, 100*r.Tolerance)
	case active != nil && cand.RMSE > 0 && active.RMSE > 0 && cand.RMSE > active.RMSE*(1+r.Tolerance):
		return false, fmt.Sprintf("the candidate's remaining-life error is %.1f readings, the active version's %.1f (tolerance %.0f%%)",
			cand.RMSE, active.RMSE, 100*r.Tolerance)
	case active != nil && active.Injected > 0 && worse(cand.Weakest, cand.perSensor(), active.Weakest, active.perSensor(), r.Tolerance):
		return false, fmt.Sprintf("the candidate's weakest sensor detection is %.0f%% (%v), the active version's %.0f%% (%v): it has learnt to miss faults there",
			100*cand.Weakest, cand.BySensor, 100*active.Weakest, active.BySensor)
	}
	if active == nil {
		why := fmt.Sprintf("no active version; the candidate raised %d false alarms on %d held-out readings and detected %.0f%% of %s",
			cand.FalseAlarms, cand.Rows, 100*cand.Detection, cand.events())
		if cand.RMSE > 0 {
			why += fmt.Sprintf(", remaining-life error %.1f readings", cand.RMSE)
		}
		return true, why
	}
	return true, fmt.Sprintf("not worse than the active version: %d false alarms (active %d), detection %.0f%% (active %.0f%%), median score %.2f (active %.2f)",
		cand.FalseAlarms, active.FalseAlarms, 100*cand.Detection, 100*active.Detection, cand.MedianScore, active.MedianScore)
}

// events names what Injected counts: faults injected into normal history,
// or, for a remaining-life model, held-out runs to their failure.
func (m Metrics) events() string {
	if m.RMSE > 0 {
		return "held-out runs to failure (an alert open at the failure)"
	}
	return "injected faults"
}

func activeNote(active *Metrics, f func(*Metrics) string) string {
	if active == nil {
		return ""
	}
	return "; the active version raised " + f(active)
}
