package rul

import (
	"cmp"
	"fmt"
	"math"
	"time"

	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/model"
)

// Detector runs a RUL model over one asset's live readings for the alert
// decision (pdmkit/monitor), so a RUL model alerts the way the anomaly
// kinds do:
//
//   - the evidence is 4 · Warn / RUL: an alert opens (evidence 4) when the
//     predicted remaining life falls to Warn cycles and resolves (evidence
//     2) once it is back above twice that;
//   - every reading predicts the time to failure directly (RemainingLife):
//     the RUL in cycles times the readings' mean interval, give or take the
//     model's validation RMSE.
//
// Warn is the artifact's metrics.warn_cycles, default a quarter of the
// target cap. Readings are smoothed and windowed exactly as Predict does
// over the whole history, one reading at a time.
type Detector struct {
	m          *Model
	warn, rmse float64
	ema        []float64
	ring       [][]float64 // the last Window smoothed rows, oldest first
	n          int
	last       time.Time
	interval   float64 // mean seconds between readings
	rul        float64
	row        []float64
}

// NewDetector builds the live detector of a RUL artifact.
func NewDetector(a *model.Artifact) (*Detector, error) {
	m, err := FromArtifact(a)
	if err != nil {
		return nil, err
	}
	warn := cmp.Or(a.Metrics["warn_cycles"], m.cap/4)
	if !(warn > 0 && warn < m.cap) {
		return nil, fmt.Errorf("rul: warn_cycles (%v) must be in (0, the target cap %v)", warn, m.cap)
	}
	d := len(a.Features)
	return &Detector{m: m, warn: warn, rmse: a.Metrics["val_rmse"], ema: make([]float64, d), row: make([]float64, d)}, nil
}

// Observe takes the next reading and predicts the remaining life after it.
func (d *Detector) Observe(t time.Time, sensors map[string]float64) (anomaly.Result, error) {
	a := d.m.Artifact
	res := anomaly.Result{Model: a.Name, Version: a.Version}
	for j, f := range a.Features {
		v, ok := sensors[f]
		if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
			return res, fmt.Errorf("rul: sensor %q missing or not finite", f)
		}
		d.row[j] = v
	}
	alpha := a.InputSmoothing
	for j, v := range d.row {
		if d.n == 0 || alpha <= 0 || alpha >= 1 {
			d.ema[j] = v
		} else {
			d.ema[j] = alpha*v + (1-alpha)*d.ema[j]
		}
	}
	if d.n > 0 {
		dt := t.Sub(d.last).Seconds()
		d.interval += (dt - d.interval) / float64(d.n)
	}
	d.last = t
	d.n++
	if len(d.ring) == a.Window {
		copy(d.ring, d.ring[1:])
		d.ring = d.ring[:a.Window-1]
	}
	d.ring = append(d.ring, append([]float64(nil), d.ema...))
	// Predict pads a short history with its first row; so does the ring.
	rows := d.ring
	for len(rows) < a.Window {
		rows = append([][]float64{d.ring[0]}, rows...)
	}
	windowInto(d.m.in, &a.Scaler, rows, len(rows)-1, a.Window)
	d.rul = math.Max(0, math.Min(d.m.cap, d.m.net.Forward(d.m.in)[0]*d.m.cap))
	if d.n < a.Window {
		res.WarmingUp = true
		return res, nil
	}
	res.Evidence = 4 * d.warn / math.Max(d.rul, d.warn/100)
	res.Score = anomaly.Score(res.Evidence)
	res.Error = res.Evidence * res.Evidence
	return res, nil
}

// RemainingLife is the time to failure after the last reading, with a
// range of one validation RMSE either side; ok is false until the window
// is full or while the readings' interval is unknown.
func (d *Detector) RemainingLife() (ttf, low, high time.Duration, ok bool) {
	if d.n < d.m.Artifact.Window || !(d.interval > 0) {
		return 0, 0, 0, false
	}
	at := func(cycles float64) time.Duration {
		return time.Duration(math.Max(cycles, 0) * d.interval * float64(time.Second))
	}
	return at(d.rul), at(d.rul - d.rmse), at(d.rul + d.rmse), true
}

// RUL is the last prediction, in cycles.
func (d *Detector) RUL() float64 { return d.rul }
