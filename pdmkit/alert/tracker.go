package alert

import (
	"cmp"
	"fmt"
	"math"
	"time"
)

// Thresholds configure a Tracker. Scores are those of pdmkit/anomaly: 0.5
// is the median of normal operation.
type Thresholds struct {
	// Open: MinReadings consecutive scores at or above it open an alert.
	Open float64
	// Resolve: below Open; an open alert resolves once MinReadings
	// consecutive scores are below it.
	Resolve float64
	// Major and Critical are the scores of the higher severities.
	Major, Critical float64
	// MinReadings (default 3) and MinDuration (default 0) are how long a
	// score must stay past a level before the state changes: both must
	// hold, counted in readings and in reading time, so the same settings
	// suit one-second and five-minute data.
	MinReadings int
	MinDuration time.Duration
	// TopSensors is how many contributions an alert lists (default 3).
	TopSensors int
	// ForecastChange is the move of the forecast failure time, relative to
	// the time left until it, that makes an update (default 0.25).
	ForecastChange float64
}

// WithDefaults fills the zero fields that have defaults.
func (th Thresholds) WithDefaults() Thresholds {
	th.MinReadings = cmp.Or(th.MinReadings, 3)
	th.TopSensors = cmp.Or(th.TopSensors, 3)
	th.ForecastChange = cmp.Or(th.ForecastChange, 0.25)
	return th
}

// Validate rejects levels that cannot make a lifecycle, naming the values.
func (th Thresholds) Validate() error {
	switch {
	case !(th.Open > 0 && th.Open < 1):
		return fmt.Errorf("alert: open (%v) must be in (0, 1)", th.Open)
	case !(th.Resolve > 0 && th.Resolve < th.Open):
		return fmt.Errorf("alert: resolve (%v) must be in (0, open %v) for hysteresis", th.Resolve, th.Open)
	case !(th.Open <= th.Major && th.Major <= th.Critical && th.Critical < 1):
		return fmt.Errorf("alert: open (%v) ≤ major (%v) ≤ critical (%v) < 1 does not hold", th.Open, th.Major, th.Critical)
	case th.MinReadings < 0 || th.MinDuration < 0:
		return fmt.Errorf("alert: min readings (%d) and min duration (%s) must not be negative", th.MinReadings, th.MinDuration)
	}
	return nil
}

// Observation is one scored reading.
type Observation struct {
	Site, Asset string
	Seq         uint64
	Time        time.Time
	Score       float64
	WarmingUp   bool
	// Hold: the reading cannot tell whether an open alert's cause has
	// gone (it was taken while the machine moved); below the resolve level
	// it does not count towards resolving.
	Hold           bool
	Sensors        []Sensor
	Forecast       *Forecast
	Model, Version string
}

type phase int

const (
	idle phase = iota
	pending
	open
)

// Tracker follows one asset's alert of one kind. It is not safe for
// concurrent use; the owner of the asset holds one.
type Tracker struct {
	th    Thresholds
	kind  string
	phase phase
	// since/count: when and for how many readings the score has been past
	// the level that would change the state (Open while idle or pending,
	// Resolve while open).
	since time.Time
	count int
	// pendingSeq/pendingTime: the first reading of the current excursion.
	pendingSeq  uint64
	pendingTime time.Time
	peak        float64
	cur         Alert
}

// NewTracker returns an idle tracker.
func NewTracker(kind string, th Thresholds) *Tracker {
	return &Tracker{th: th.WithDefaults(), kind: kind}
}

// Current returns the open alert, if any.
func (t *Tracker) Current() (Alert, bool) {
	if t.phase != open {
		return Alert{}, false
	}
	return t.cur, true
}

// Open reports whether an alert is open.
func (t *Tracker) Open() bool { return t.phase == open }

// held counts one more reading past the level and reports whether the
// change it waits for is due.
func (t *Tracker) held(at time.Time) bool {
	if t.count == 0 {
		t.since = at
	}
	t.count++
	return t.count >= max(t.th.MinReadings, 1) && at.Sub(t.since) >= t.th.MinDuration
}

// Observe advances the state machine by one reading and returns the event
// it causes, if any. Readings while the detector warms up never open an
// alert but count as below the resolve level for an open one.
func (t *Tracker) Observe(o Observation) (Alert, bool) {
	score := o.Score
	if o.WarmingUp || math.IsNaN(score) {
		score = 0
	}
	switch t.phase {
	case idle, pending:
		if score < t.th.Open {
			t.phase, t.count = idle, 0
			return Alert{}, false
		}
		if t.phase == idle {
			t.phase, t.pendingSeq, t.pendingTime, t.peak = pending, o.Seq, o.Time, score
		}
		t.peak = math.Max(t.peak, score)
		if !t.held(o.Time) {
			return Alert{}, false
		}
		return t.openAlert(o, score), true
	}
	t.peak = math.Max(t.peak, score)
	if score < t.th.Resolve && o.Hold {
		t.touch(o, score)
		return Alert{}, false
	}
	if score < t.th.Resolve {
		if t.held(o.Time) {
			return t.resolve(o, score, Recovered), true
		}
		t.touch(o, score)
		return Alert{}, false
	}
	t.count = 0
	prevSev, prevFc := t.cur.Severity, t.cur.Forecast
	t.fill(o, score)
	if sev := t.severity(score); sev.rank() > prevSev.rank() {
		t.cur.Severity = sev
	}
	if t.cur.Severity != prevSev || t.forecastChanged(prevFc, t.cur.Forecast) {
		t.cur.State = Updated
		t.cur.Revision++
		return t.cur, true
	}
	t.cur.Forecast = prevFc
	return Alert{}, false
}

// Resolve ends the open alert now for the given reason (NewNormal or
// Operator), as of the reading o; an alert that was about to open no
// longer will.
func (t *Tracker) Resolve(o Observation, reason string) (Alert, bool) {
	if t.phase != open {
		t.phase, t.count = idle, 0
		return Alert{}, false
	}
	return t.resolve(o, o.Score, reason), true
}

func (t *Tracker) resolve(o Observation, score float64, reason string) Alert {
	t.fill(o, score)
	t.cur.Forecast = nil
	t.cur.State = Resolved
	at := o.Time
	t.cur.ResolvedAt = &at
	t.cur.Resolution = reason
	t.cur.Revision++
	t.phase, t.count = idle, 0
	return t.cur
}

// Ack records an operator's acknowledgement of the open alert with id and
// returns the updated alert to publish. Acknowledging twice changes nothing.
func (t *Tracker) Ack(id, by, reason string, at time.Time) (Alert, bool) {
	if t.phase != open || t.cur.ID != id {
		return Alert{}, false
	}
	if t.cur.Acked {
		return t.cur, true
	}
	t.cur.Acked, t.cur.AckedBy, t.cur.AckedAt, t.cur.Reason = true, by, &at, reason
	t.cur.State = Updated
	t.cur.Revision++
	return t.cur, true
}

func (t *Tracker) openAlert(o Observation, score float64) Alert {
	t.phase, t.count = open, 0
	t.cur = Alert{
		ID:        ID(o.Asset, t.kind, t.pendingSeq),
		Kind:      t.kind,
		State:     Opened,
		FirstSeq:  t.pendingSeq,
		FirstTime: t.pendingTime,
		Revision:  1,
	}
	t.fill(o, score)
	t.cur.Severity = t.severity(t.peak)
	return t.cur
}

// fill copies the latest reading's facts into the current alert.
func (t *Tracker) fill(o Observation, score float64) {
	t.cur.Site, t.cur.Asset = o.Site, o.Asset
	t.cur.Score, t.cur.Peak = score, t.peak
	t.cur.Model, t.cur.Version = o.Model, o.Version
	t.cur.LastSeq, t.cur.LastTime = o.Seq, o.Time
	n := min(len(o.Sensors), t.th.TopSensors)
	t.cur.TopSensors = append([]Sensor(nil), o.Sensors[:n]...)
	if o.Forecast != nil {
		f := *o.Forecast
		t.cur.Forecast = &f
	} else {
		t.cur.Forecast = nil
	}
}

// touch records the latest reading without making an event.
func (t *Tracker) touch(o Observation, score float64) {
	t.cur.Score = score
	t.cur.LastSeq, t.cur.LastTime = o.Seq, o.Time
}

func (t *Tracker) severity(score float64) Severity {
	switch {
	case score >= t.th.Critical:
		return Critical
	case score >= t.th.Major:
		return Major
	}
	return Warning
}

func (t *Tracker) forecastChanged(prev, cur *Forecast) bool {
	switch {
	case prev == nil && cur == nil:
		return false
	case prev == nil || cur == nil:
		return true
	}
	// The failure time, not the time to it, is compared: the time to it
	// shrinks by itself as readings pass.
	base := math.Max(math.Abs(cur.TimeToFailure), 1)
	return math.Abs(cur.FailureAt.Sub(prev.FailureAt).Seconds())/base > t.th.ForecastChange
}
