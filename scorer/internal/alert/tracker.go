package alert

import (
	"math"
	"time"
)

// Thresholds configure a Tracker.
type Thresholds struct {
	// Open: a score at or above it starts the count towards an alert.
	Open float64
	// Resolve: below Open; an open alert resolves once the score stays below
	// it, and a pending alert is abandoned when the score falls below it.
	Resolve float64
	// Major and Critical are the scores of the higher severities.
	Major, Critical float64
	// MinDuration is how long (in reading time) a score must stay past a
	// threshold before the state changes.
	MinDuration time.Duration
	// TopSensors is how many contributions an alert lists. Default 3.
	TopSensors int
	// ForecastChange is the relative change in time to failure that makes
	// an update. Default 0.25.
	ForecastChange float64
}

// Observation is one scored reading.
type Observation struct {
	Site, Asset    string
	Seq            uint64
	Time           time.Time
	Score          float64
	WarmingUp      bool
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
// concurrent use; the scorer owns one per asset.
type Tracker struct {
	th    Thresholds
	kind  string
	phase phase
	// pendingSeq/pendingTime: the first reading of the current excursion.
	pendingSeq  uint64
	pendingTime time.Time
	peak        float64
	// belowSince is when the score of an open alert last went below Resolve;
	// zero while it is above.
	belowSince time.Time
	cur        Alert
}

// NewTracker returns an idle tracker.
func NewTracker(kind string, th Thresholds) *Tracker {
	if th.TopSensors <= 0 {
		th.TopSensors = 3
	}
	if th.ForecastChange <= 0 {
		th.ForecastChange = 0.25
	}
	return &Tracker{th: th, kind: kind}
}

// Current returns the open alert, if any.
func (t *Tracker) Current() (Alert, bool) {
	if t.phase != open {
		return Alert{}, false
	}
	return t.cur, true
}

// Observe advances the state machine by one reading and returns the event
// it causes, if any. Readings while the detector warms up never open an
// alert but count as below the resolve threshold for an open one.
func (t *Tracker) Observe(o Observation) (Alert, bool) {
	score := o.Score
	if o.WarmingUp || math.IsNaN(score) {
		score = 0
	}
	switch t.phase {
	case idle:
		if score >= t.th.Open {
			t.phase, t.pendingSeq, t.pendingTime, t.peak = pending, o.Seq, o.Time, score
			return t.maybeOpen(o, score)
		}
	case pending:
		if score < t.th.Resolve {
			t.phase = idle
			return Alert{}, false
		}
		t.peak = math.Max(t.peak, score)
		return t.maybeOpen(o, score)
	case open:
		t.peak = math.Max(t.peak, score)
		if score < t.th.Resolve {
			if t.belowSince.IsZero() {
				t.belowSince = o.Time
			}
			if o.Time.Sub(t.belowSince) >= t.th.MinDuration {
				t.fill(o, score)
				t.cur.State = Resolved
				at := o.Time
				t.cur.ResolvedAt = &at
				t.cur.Revision++
				t.phase, t.belowSince = idle, time.Time{}
				return t.cur, true
			}
			t.touch(o, score)
			return Alert{}, false
		}
		t.belowSince = time.Time{}
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
	}
	return Alert{}, false
}

// Ack records an operator's acknowledgement of the open alert with id and
// returns the updated alert to publish. Acknowledging twice changes nothing.
func (t *Tracker) Ack(id, by string, at time.Time) (Alert, bool) {
	if t.phase != open || t.cur.ID != id {
		return Alert{}, false
	}
	if t.cur.Acked {
		return t.cur, true
	}
	t.cur.Acked, t.cur.AckedBy, t.cur.AckedAt = true, by, &at
	t.cur.State = Updated
	t.cur.Revision++
	return t.cur, true
}

func (t *Tracker) maybeOpen(o Observation, score float64) (Alert, bool) {
	if o.Time.Sub(t.pendingTime) < t.th.MinDuration {
		return Alert{}, false
	}
	t.phase = open
	t.belowSince = time.Time{}
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
	return t.cur, true
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
	base := math.Max(math.Abs(prev.TimeToFailure), 1)
	return math.Abs(cur.TimeToFailure-prev.TimeToFailure)/base > t.th.ForecastChange
}
