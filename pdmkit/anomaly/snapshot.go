package anomaly

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/pdmstream/pdm/pdmkit/nn"
)

// onlineSnapshot is the serialised state of an Online detector. Replaying
// readings rebuilds the same state; a snapshot only saves the retraining
// a replay would repeat.
type onlineSnapshot struct {
	Format     string       `json:"format"`
	Config     OnlineConfig `json:"config"`
	Features   []string     `json:"features"`
	Warm       [][]float64  `json:"warm"`
	WarmFrom   time.Time    `json:"warm_from"`
	WarmTo     time.Time    `json:"warm_to"`
	Spec       *nn.Spec     `json:"spec,omitempty"`
	Params     []float64    `json:"params,omitempty"`
	Scaler     *nn.Scaler   `json:"scaler,omitempty"`
	Centred    []bool       `json:"centred,omitempty"`
	LogMean    float64      `json:"log_mean"`
	LogStd     float64      `json:"log_std"`
	AlertOn    bool         `json:"alert_on"`
	AlertCount int          `json:"alert_count"`
	Version    int          `json:"version"`
	History    [][]float64  `json:"history,omitempty"`
	SinceTrain int          `json:"since_train"`
	Recent     []float64    `json:"recent,omitempty"`
	// Scorer state: the current window, how full it is, and the averages.
	Window       []float64   `json:"window,omitempty"`
	WindowFilled int         `json:"window_filled"`
	EMA          []float64   `json:"ema,omitempty"`
	Primed       bool        `json:"primed"`
	Trend        [][]float64 `json:"trend,omitempty"` // [seconds since T0, score], oldest first
	TrendT0      time.Time   `json:"trend_t0"`
}

const snapshotFormat = "pdm-online-snapshot-1"

// Snapshot serialises the detector's state so it can be restored without
// replaying (and retraining on) the asset's history.
func (o *Online) Snapshot() ([]byte, error) {
	s := onlineSnapshot{
		Format: snapshotFormat, Config: o.cfg, Features: o.features, Warm: o.warm, WarmFrom: o.warmFrom, WarmTo: o.warmTo,
		Centred: o.centred, LogMean: o.calib.logMean, LogStd: o.calib.logStd, AlertOn: o.hyst.on, AlertCount: o.hyst.count,
		Version: o.version, History: o.history, SinceTrain: o.sinceTrain, Recent: o.recent, Scaler: o.scaler,
	}
	if o.net != nil {
		s.Spec, s.Params = &o.net.Spec, o.net.Params
		sc := o.scorer
		s.Window, s.WindowFilled, s.EMA, s.Primed = sc.win.buf, sc.win.filled, sc.ema, sc.primed
	}
	tr := o.trend
	if tr.haveT0 {
		s.TrendT0 = tr.t0
		for i := 0; i < tr.size; i++ {
			k := (tr.head - tr.size + i + tr.n) % tr.n
			s.Trend = append(s.Trend, []float64{tr.t[k], tr.h[k]})
		}
	}
	return json.Marshal(&s)
}

// RestoreOnline rebuilds a detector from Snapshot's output. A snapshot that
// does not decode or is inconsistent is an error.
func RestoreOnline(b []byte) (*Online, error) {
	var s onlineSnapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("anomaly: snapshot: %w", err)
	}
	if s.Format != snapshotFormat {
		return nil, fmt.Errorf("anomaly: snapshot format %q, want %q", s.Format, snapshotFormat)
	}
	o, err := NewOnline(s.Config)
	if err != nil {
		return nil, fmt.Errorf("anomaly: snapshot: %w", err)
	}
	d := len(s.Features)
	if s.Features != nil {
		o.setFeatures(s.Features)
	}
	rowsOK := func(rows [][]float64) bool {
		for _, r := range rows {
			if len(r) != d {
				return false
			}
		}
		return true
	}
	if !rowsOK(s.Warm) || !rowsOK(s.History) {
		return nil, fmt.Errorf("anomaly: snapshot rows do not match %d features", d)
	}
	o.warm, o.warmFrom, o.warmTo = s.Warm, s.WarmFrom, s.WarmTo
	o.history, o.sinceTrain, o.recent, o.version = s.History, s.SinceTrain, s.Recent, s.Version
	o.hyst.on, o.hyst.count = s.AlertOn, s.AlertCount
	if s.Spec != nil {
		net, err := nn.FromParams(*s.Spec, s.Params)
		if err != nil {
			return nil, fmt.Errorf("anomaly: snapshot: %w", err)
		}
		w := o.cfg.Window
		if s.Scaler == nil || s.Scaler.Validate(d) != nil || len(s.Centred) != d || net.InputSize() != w*d ||
			net.OutputSize() != w*d || len(s.Window) != w*d || len(s.EMA) != d || s.WindowFilled < 0 || s.WindowFilled > w ||
			!(s.LogStd > 0) || math.IsNaN(s.LogMean) {
			return nil, fmt.Errorf("anomaly: snapshot state does not fit %d features and window %d", d, w)
		}
		o.net, o.scaler, o.centred = net, s.Scaler, s.Centred
		o.calib = calibrator{logMean: s.LogMean, logStd: s.LogStd}
		o.scorer = newReconScorer(net, s.Scaler, s.Centred, w, o.cfg.Smoothing)
		copy(o.scorer.win.buf, s.Window)
		o.scorer.win.filled = s.WindowFilled
		copy(o.scorer.ema, s.EMA)
		o.scorer.primed = s.Primed
	}
	if len(s.Trend) > o.trend.n {
		return nil, fmt.Errorf("anomaly: snapshot trend has %d points, capacity %d", len(s.Trend), o.trend.n)
	}
	for _, p := range s.Trend {
		if len(p) != 2 {
			return nil, fmt.Errorf("anomaly: snapshot trend point %v", p)
		}
		o.trend.t0, o.trend.haveT0 = s.TrendT0, true
		o.trend.t[o.trend.head], o.trend.h[o.trend.head] = p[0], p[1]
		o.trend.head = (o.trend.head + 1) % o.trend.n
		o.trend.size++
	}
	o.recent = slices.Clip(o.recent)
	return o, nil
}
