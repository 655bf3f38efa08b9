package stream

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/monitor"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/pdmstream/pdm/scorer/internal/registry"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// Resolver is the part of the registry the loop uses.
type Resolver interface {
	Resolve(site, asset string) registry.Binding
	Refuse(v *registry.Version, reason string)
	RecordShadow(active, shadow *registry.Version, a, s anomaly.Result, aOpen, sOpen bool)
}

// onlineKey marks the online learner, used while an asset has no model.
const onlineKey = "online"

// processor scores the readings of one partition. It is owned by that
// partition's goroutine.
type processor struct {
	partition int
	history   int
	coldStart int
	decision  monitor.Config
	res       Resolver
	online    func() (anomaly.Detector, error)
	catalog   *Catalog
	m         *Metrics
	log       *slog.Logger
	limits    wire.Limits
	assets    map[string]*assetState
	// Forgetting idle assets (Options.IdleAfter, MaxAssets): newest is
	// the latest reading time seen, since the readings since the last sweep.
	idleAfter time.Duration
	maxAssets int
	newest    time.Time
	since     int
	// Reordering (see hold): readings wait at most reorderWait for a
	// missing earlier reading of their asset; waiting is the assets with
	// readings held.
	reorderWait time.Duration
	waiting     map[string]*assetState
}

// maxHeld bounds the readings one asset may hold while it waits for a
// missing one.
const maxHeld = 1024

// sweepEvery is how many readings pass between sweeps for idle assets.
const sweepEvery = 4096

type histEntry struct {
	t       time.Time
	sensors map[string]float64
}

// assetState is everything kept per asset.
type assetState struct {
	name     string
	site     string
	lastSeq  uint64
	lastTime time.Time
	sensors  []string

	// mon decides for the asset: its detector (the active version, or the
	// online learner) and its alert lifecycle.
	mon     *monitor.Monitor
	key     string
	ver     *registry.Version
	scored  prometheus.Counter
	errs    prometheus.Counter
	latency prometheus.Observer

	// shadow is the shadow version's own decision path, compared with the
	// active one and never published.
	shadow    *monitor.Monitor
	shadowVer *registry.Version
	shadowDif prometheus.Observer

	// refused and shadowRefused remember the version refused last, so it
	// is reported once.
	refused       string
	shadowRefused string

	hist    []histEntry
	histPos int

	// online counts the readings scored by the online learner since the
	// asset last asked for a model of its own.
	online int

	// held are readings past a gap in the asset's sequence, in seq order,
	// waiting for the missing ones; missed are the latest gaps given up.
	held   []heldReading
	missed []seqRange
}

// heldReading is a reading waiting for an earlier one, with the message
// it came in (its value dropped) and when it began to wait.
type heldReading struct {
	r     wire.Reading
	msg   kafka.Message
	emit  bool
	since time.Time
}

type seqRange struct{ from, to uint64 }

// maxMissed bounds the given-up gaps an asset remembers, to tell a late
// reading from a repeat.
const maxMissed = 8

func newProcessor(partition int, o *Options, res Resolver, catalog *Catalog, m *Metrics, log *slog.Logger) *processor {
	limits := wire.DefaultLimits()
	// Readings were validated at ingest; the scorer must still score old
	// ones on replay, so it does not judge timestamps against now.
	limits.MaxPast, limits.MaxFuture = 100*365*24*time.Hour, 100*365*24*time.Hour
	return &processor{
		partition: partition, history: o.History, coldStart: o.ColdStart, decision: o.Decision, res: res, online: o.Online,
		catalog: catalog, m: m, log: log.With("partition", partition), limits: limits,
		assets:    map[string]*assetState{},
		idleAfter: cmp.Or(o.IdleAfter, 7*24*time.Hour), maxAssets: cmp.Or(o.MaxAssets, 100_000),
		reorderWait: o.ReorderWait, waiting: map[string]*assetState{},
	}
}

// handle scores every reading of one message. With emit false (replay) it
// only rebuilds state.
func (p *processor) handle(msg *kafka.Message, emit bool, b *Batch) {
	items, err := p.limits.Decode(msg.Value, time.Now())
	if err != nil {
		p.m.Invalid.Inc()
		if emit {
			p.log.Debug("message refused", "offset", msg.Offset, "err", err)
		}
		return
	}
	for i := range items {
		if items[i].Err != nil {
			p.m.Invalid.Inc()
			continue
		}
		p.reading(&items[i].Reading, msg, emit, b)
	}
}

func (p *processor) asset(r *wire.Reading) *assetState {
	st := p.assets[r.Asset]
	if st == nil {
		st = &assetState{name: r.Asset, site: r.Site}
		if p.history > 0 {
			st.hist = make([]histEntry, 0, p.history)
		}
		p.assets[r.Asset] = st
	}
	if st.site != r.Site || st.sensors == nil || len(r.Sensors) != len(st.sensors) || !sameKeys(r.Sensors, st.sensors) {
		st.site = r.Site
		st.sensors = make([]string, 0, len(r.Sensors))
		for k := range r.Sensors {
			st.sensors = append(st.sensors, k)
		}
		slices.Sort(st.sensors)
		p.catalog.set(r.Asset, r.Site, slices.Clone(st.sensors))
	}
	return st
}

func sameKeys(m map[string]float64, keys []string) bool {
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			return false
		}
	}
	return true
}

// reading scores r in its asset's sequence order. At-least-once delivery
// upstream can repeat a reading, and two bridges sharing a subscription
// can put an asset's readings out of order in Kafka: a reading that skips
// ahead of the next expected seq is held until the missing ones arrive,
// for at most reorderWait (see flush) or maxHeld readings, and a gap given
// up is scored past; a missing reading arriving after that is late and
// not scored (its successors were, and a detector only moves forward).
// A sequence number that restarts with a newer timestamp is an agent
// reset.
func (p *processor) reading(r *wire.Reading, msg *kafka.Message, emit bool, b *Batch) {
	st := p.asset(r)
	switch {
	case r.Seq <= st.lastSeq && !r.Time.After(st.lastTime):
		if st.gaveUp(r.Seq) {
			p.m.Late.Inc()
		} else {
			p.m.Dupes.Inc()
		}
		return
	case r.Seq <= st.lastSeq:
		p.giveUp(st, b, len(st.held)) // reset: what waited is older
	case p.reorderWait > 0 && (st.lastSeq > 0 && r.Seq > st.lastSeq+1 || st.lastSeq == 0 && r.Seq > 1 && r.Seq <= maxHeld):
		// An asset not seen before whose seq is low has just started:
		// its first readings may still be on their way.
		p.hold(st, r, msg, emit, b)
		return
	}
	p.score(st, r, msg, emit, b)
	p.release(st, b)
}

// hold keeps r until the readings before it arrive.
func (p *processor) hold(st *assetState, r *wire.Reading, msg *kafka.Message, emit bool, b *Batch) {
	i, found := slices.BinarySearchFunc(st.held, r.Seq, func(h heldReading, seq uint64) int { return cmp.Compare(h.r.Seq, seq) })
	if found {
		p.m.Dupes.Inc()
		return
	}
	m := *msg
	m.Value, m.Key, m.Headers = nil, nil, nil
	st.held = slices.Insert(st.held, i, heldReading{r: *r, msg: m, emit: emit, since: time.Now()})
	p.waiting[r.Asset] = st
	if len(st.held) > maxHeld {
		p.giveUp(st, b, 1)
	}
}

// release scores the held readings that follow the asset's last one.
func (p *processor) release(st *assetState, b *Batch) {
	for len(st.held) > 0 && st.held[0].r.Seq == st.lastSeq+1 {
		h := st.held[0]
		st.held = st.held[1:]
		p.score(st, &h.r, &h.msg, h.emit, b)
	}
	if len(st.held) == 0 {
		st.held = nil
		delete(p.waiting, st.name)
	}
}

// giveUp scores past the first n gaps before held readings.
func (p *processor) giveUp(st *assetState, b *Batch, n int) {
	for range n {
		if len(st.held) == 0 {
			return
		}
		h := st.held[0]
		st.held = st.held[1:]
		if h.r.Seq > st.lastSeq+1 {
			st.missed = append(st.missed, seqRange{st.lastSeq + 1, h.r.Seq - 1})
			if len(st.missed) > maxMissed {
				st.missed = st.missed[1:]
			}
		}
		p.score(st, &h.r, &h.msg, h.emit, b)
		p.release(st, b)
	}
}

// flush gives up the gaps readings have waited on for reorderWait.
func (p *processor) flush(now time.Time, b *Batch) {
	for _, st := range p.waiting {
		for len(st.held) > 0 && now.Sub(st.held[0].since) >= p.reorderWait {
			p.giveUp(st, b, 1)
		}
	}
}

// heldFrom is the offset of the first message with a held reading, or -1:
// commits must not pass it, or a crash would lose the reading.
func (p *processor) heldFrom() int64 {
	from := int64(-1)
	for _, st := range p.waiting {
		for _, h := range st.held {
			if from < 0 || h.msg.Offset < from {
				from = h.msg.Offset
			}
		}
	}
	return from
}

// gaveUp reports whether seq lies in a gap the asset scored past.
func (st *assetState) gaveUp(seq uint64) bool {
	for _, g := range st.missed {
		if seq >= g.from && seq <= g.to {
			return true
		}
	}
	return false
}

// score runs r, the asset's next reading, through its decision.
func (p *processor) score(st *assetState, r *wire.Reading, msg *kafka.Message, emit bool, b *Batch) {
	st.lastSeq, st.lastTime = r.Seq, r.Time
	if r.Time.After(p.newest) {
		p.newest = r.Time
	}
	if p.since++; p.since >= sweepEvery || len(p.assets) > p.maxAssets {
		p.sweep(r.Asset)
	}

	bind := p.res.Resolve(r.Site, r.Asset)
	p.ensure(r, st, bind.Active)
	p.ensureShadow(r, st, bind.Shadow)

	var d monitor.Decision
	err := errNoDetector
	if st.mon != nil {
		start := time.Now()
		d, err = st.mon.Observe(r)
		st.latency.Observe(time.Since(start).Seconds())
	}
	name, version := onlineKey, onlineKey
	if st.ver != nil {
		name, version = st.ver.Name, st.ver.Version
	} else if d.Model != "" {
		name, version = d.Model, d.Version
	}
	var shadow *ShadowScore
	if st.shadow != nil {
		if sd, serr := st.shadow.Observe(r); serr == nil && err == nil && emit {
			shadow = &ShadowScore{Version: st.shadowVer.Version, Score: sd.Score, Alert: sd.Open}
			p.res.RecordShadow(st.ver, st.shadowVer, d.Result, sd.Result, d.Open, sd.Open)
			st.shadowDif.Observe(math.Abs(d.Score - sd.Score))
		}
	}
	p.remember(st, r)
	if !emit {
		p.m.Replayed.Inc()
		return
	}
	s := Score{
		ID: ScoreID(r.Asset, r.Seq), Site: r.Site, Asset: r.Asset, Seq: r.Seq, Time: r.Time,
		Model: name, Version: version, Shadow: shadow, Alert: d.Open, Forecast: d.Forecast, Sensors: r.Sensors,
		Source: Source{Partition: msg.Partition, Offset: msg.Offset, Time: msg.Time}, ScoredAt: time.Now().UTC(),
	}
	if err != nil {
		if st.errs != nil {
			st.errs.Inc()
		}
		s.Error = err.Error()
	} else {
		st.scored.Inc()
		s.Score, s.WarmingUp = d.Score, d.WarmingUp
		s.Contributions = monitor.Sensors(d.Contributions)
	}
	b.Scores = append(b.Scores, s)
	if ev := d.Event; ev != nil {
		p.m.Alerts.WithLabelValues(string(ev.State), string(ev.Severity)).Inc()
		b.Alerts = append(b.Alerts, *ev)
		switch ev.Resolution {
		case alert.NewNormal:
			b.Requests = append(b.Requests, wire.TrainingRequest{Site: r.Site, Asset: r.Asset, Reason: wire.ReasonDrift, By: "scorer", At: r.Time, Since: d.Since})
		case alert.Operator:
			b.Requests = append(b.Requests, wire.TrainingRequest{Site: r.Site, Asset: r.Asset, Reason: wire.ReasonOperator, By: ev.AckedBy, At: r.Time, Since: ev.FirstTime})
		}
	}
	if d.Drift {
		b.Requests = append(b.Requests, wire.TrainingRequest{Site: r.Site, Asset: r.Asset, Reason: wire.ReasonDrift, By: "scorer", At: r.Time, Since: d.Since})
	}
	if st.ver == nil && err == nil && !d.WarmingUp && p.coldStart > 0 {
		if st.online++; st.online >= p.coldStart {
			st.online = 0
			b.Requests = append(b.Requests, wire.TrainingRequest{Site: r.Site, Asset: r.Asset, Reason: wire.ReasonColdStart, By: "scorer", At: r.Time})
		}
	}
}

// ensure makes st's detector the one for v (nil: the online learner),
// warming a new one on the asset's recent readings. A version that does
// not fit the asset is refused and the current detector keeps scoring.
func (p *processor) ensure(r *wire.Reading, st *assetState, v *registry.Version) {
	key := onlineKey
	if v != nil {
		key = v.Key()
	}
	if st.mon != nil && (st.key == key || st.refused == key) {
		return
	}
	det, err := p.build(r, v)
	if err != nil && v == nil {
		p.log.Error("online learner unavailable", "asset", r.Asset, "err", err)
		return
	}
	if err != nil {
		st.refused = key
		p.m.Refused.WithLabelValues(v.Name, v.Version).Inc()
		p.res.Refuse(v, refusal(r, st, err))
		p.log.Warn("model version refused; keeping the current one", "asset", r.Asset, "model", v.Name, "version", v.Version, "current", st.key, "err", err)
		if st.mon != nil {
			return
		}
		v, key = nil, onlineKey
		if det, err = p.online(); err != nil {
			p.log.Error("online learner unavailable", "asset", r.Asset, "err", err)
			return
		}
	}
	p.warm(st, det)
	if st.mon != nil {
		p.log.Info("model swapped", "asset", r.Asset, "from", st.key, "to", key, "seq", r.Seq)
		st.mon.SetDetector(det)
	} else if st.mon, err = monitor.New(det, p.decision); err != nil {
		p.log.Error("alert decision unavailable", "asset", r.Asset, "err", err)
		return
	}
	st.key, st.ver, st.refused = key, v, ""
	name, version := onlineKey, onlineKey
	if v != nil {
		name, version = v.Name, v.Version
	}
	p.m.Swaps.WithLabelValues(name, version).Inc()
	st.scored = p.m.Scored.WithLabelValues(name, version)
	st.errs = p.m.Errors.WithLabelValues(name, version)
	st.latency = p.m.Observe.WithLabelValues(name, version)
}

func (p *processor) ensureShadow(r *wire.Reading, st *assetState, v *registry.Version) {
	if v == nil {
		st.shadow, st.shadowVer = nil, nil
		return
	}
	if st.shadowVer == v {
		return
	}
	det, err := p.build(r, v)
	if err != nil {
		if st.shadowRefused != v.Key() {
			st.shadowRefused = v.Key()
			p.res.Refuse(v, refusal(r, st, err))
			p.log.Warn("shadow version refused", "asset", r.Asset, "model", v.Name, "version", v.Version, "err", err)
		}
		st.shadow, st.shadowVer = nil, nil
		return
	}
	p.warm(st, det)
	mon, err := monitor.New(det, p.decision)
	if err != nil {
		st.shadow, st.shadowVer = nil, nil
		return
	}
	st.shadow, st.shadowVer = mon, v
	st.shadowDif = p.m.ShadowDif.WithLabelValues(v.Name, v.Version)
}

// refusal names the asset that refused a version and what it reports.
func refusal(r *wire.Reading, st *assetState, err error) string {
	return fmt.Sprintf("asset %s of site %q (reports %v): %v", r.Asset, r.Site, st.sensors, err)
}

func (p *processor) build(r *wire.Reading, v *registry.Version) (anomaly.Detector, error) {
	if v == nil {
		return p.online()
	}
	if err := v.Artifact.CheckFeatures(keys(r.Sensors)); err != nil {
		return nil, err
	}
	return v.New()
}

func keys(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// warm feeds the asset's recent readings to a new detector, oldest first.
func (p *processor) warm(st *assetState, det anomaly.Detector) {
	n := len(st.hist)
	for i := range n {
		e := st.hist[(st.histPos+i)%n]
		_, _ = det.Observe(e.t, e.sensors)
	}
}

func (p *processor) remember(st *assetState, r *wire.Reading) {
	if p.history == 0 {
		return
	}
	e := histEntry{t: r.Time, sensors: r.Sensors}
	if len(st.hist) < p.history {
		st.hist = append(st.hist, e)
		return
	}
	st.hist[st.histPos] = e
	st.histPos = (st.histPos + 1) % p.history
}

// sweep forgets the assets (other than keep) silent for idleAfter, then,
// while more than maxAssets remain, the longest silent ones; never one
// with an open alert, whose lifecycle must go on when it returns.
func (p *processor) sweep(keep string) {
	p.since = 0
	var quiet []string
	for name, st := range p.assets {
		if name == keep || st.open() || len(st.held) > 0 {
			continue
		}
		if p.newest.Sub(st.lastTime) > p.idleAfter {
			p.forget(name)
			continue
		}
		quiet = append(quiet, name)
	}
	if over := len(p.assets) - p.maxAssets; over > 0 {
		slices.SortFunc(quiet, func(a, b string) int { return p.assets[a].lastTime.Compare(p.assets[b].lastTime) })
		for _, name := range quiet[:min(over, len(quiet))] {
			p.forget(name)
		}
	}
}

func (p *processor) forget(asset string) {
	delete(p.assets, asset)
	delete(p.waiting, asset)
	p.catalog.remove(asset)
	p.m.Forgotten.Inc()
}

// open reports whether the asset has an open alert, live or in shadow.
func (st *assetState) open() bool {
	for _, m := range []*monitor.Monitor{st.mon, st.shadow} {
		if m == nil {
			continue
		}
		if _, ok := m.Current(); ok {
			return true
		}
	}
	return false
}

// ackAlert records an operator's acknowledgement if this partition holds
// the alert.
func (p *processor) ackAlert(id, by, reason string, at time.Time) (alert.Alert, bool) {
	for _, st := range p.assets {
		if st.mon == nil {
			continue
		}
		if a, ok := st.mon.Ack(id, by, reason, at); ok {
			return a, true
		}
	}
	return alert.Alert{}, false
}

// errNoDetector marks a reading no detector could score.
var errNoDetector = errors.New("no detector for asset")
