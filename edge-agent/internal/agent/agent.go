// Package agent assembles the edge agent: sources (simulated assets, CSV
// replay, Modbus TCP devices, OPC UA subscriptions) produce readings, each
// is validated, batched per asset and
// appended to the disk spool, and the publisher drains the spool to MQTT.
// Every reading goes through the spool, so a link outage or an agent restart
// changes nothing but latency.
//
// Sequence numbers are per asset and continue across restarts: the last one
// generated is stored with every spool commit, and records still in the
// spool are scanned at start.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pdmstream/pdm/edge-agent/internal/config"
	"github.com/pdmstream/pdm/edge-agent/internal/csvsource"
	"github.com/pdmstream/pdm/edge-agent/internal/modbus"
	"github.com/pdmstream/pdm/edge-agent/internal/opcua"
	"github.com/pdmstream/pdm/edge-agent/internal/publish"
	"github.com/pdmstream/pdm/edge-agent/internal/sim"
	"github.com/pdmstream/pdm/edge-agent/internal/source"
	"github.com/pdmstream/pdm/edge-agent/internal/spool"
	"github.com/pdmstream/pdm/pdmkit/httpauth"
	"github.com/pdmstream/pdm/pdmkit/telemetry"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// stream is one asset's source and where its readings go.
type stream struct {
	asset string
	src   source.Source
	// paced sources wait for their own schedule; unpaced ones are held back
	// by the spool backlog instead, so "as fast as possible" means as fast
	// as the broker acknowledges.
	paced bool
}

// Agent runs the sources, the spool and the publisher.
type Agent struct {
	cfg    config.Config
	log    *slog.Logger
	reg    *prometheus.Registry
	m      *metrics
	assets []*sim.Asset
	byID   map[string]*sim.Asset
	csv    *csvsource.File
	modbus []*modbus.Poller
	opcua  []*opcua.Source

	seqMu sync.Mutex
	seqs  map[string]uint64 // last sequence number generated per asset
	// spooled is the last sequence number per asset whose batch was
	// appended to the spool (or dropped as the spool was full): what a
	// restart must continue after. A batch still being filled is not in it,
	// since a crash loses it and its numbers can be used again.
	spooled map[string]uint64

	pubMu sync.Mutex
	pub   *publish.Publisher

	guard *httpauth.Guard // the control API's tokens
}

// New validates cfg and builds the simulated assets; it opens and connects
// nothing.
func New(cfg config.Config, log *slog.Logger) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("agent: config: %w", err)
	}
	a := &Agent{cfg: cfg, log: log, reg: telemetry.NewRegistry(), byID: map[string]*sim.Asset{}, seqs: map[string]uint64{}, spooled: map[string]uint64{}}
	a.m = newMetrics(a.reg)
	a.guard = httpauth.New(httpauth.Config{ReadToken: cfg.HTTP.ReadToken, WriteToken: cfg.HTTP.Token, Realm: "pdm-edge-agent",
		WriteKey: "http.token (PDM_AGENT_TOKEN)", ReadKey: "http.read_token (PDM_AGENT_READ_TOKEN)"})
	assets, _ := config.ParseAssets(cfg.Assets)
	step := simStep(cfg)
	for _, as := range assets {
		s, err := sim.New(as.ID, as.Kind, sim.Options{Seed: cfg.Seed, Step: step, TimeScale: cfg.TimeScale}, log)
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		a.assets = append(a.assets, s)
		a.byID[as.ID] = s
	}
	degs, _ := config.ParseDegrade(cfg.Degrade)
	for _, d := range degs {
		if err := a.byID[d.Asset].Schedule(d.Mode, d.After, d.TTF); err != nil {
			return nil, fmt.Errorf("agent: degrade: %w", err)
		}
	}
	if cfg.CSV.File != "" {
		f, err := csvsource.Open(cfg.CSV.File)
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		a.csv = f
	}
	pollers, err := modbus.NewPollers(cfg.Modbus, a.reg, log)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.modbus = pollers
	for _, as := range cfg.OPCUA.Assets {
		s, err := opcua.New(cfg.OPCUA, as, log)
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		a.opcua = append(a.opcua, s)
	}
	return a, nil
}

// simStep is the simulated time between two readings of an asset: the time
// scale divided by the rate, or the time scale itself when the rate is 0
// (unpaced runs step as if at one reading per second).
func simStep(cfg config.Config) time.Duration {
	if cfg.Rate > 0 {
		return time.Duration(cfg.TimeScale / cfg.Rate * float64(time.Second))
	}
	return time.Duration(cfg.TimeScale * float64(time.Second))
}

// Registry is the agent's Prometheus registry.
func (a *Agent) Registry() *prometheus.Registry { return a.reg }

// AssetIDs lists every asset the agent publishes, sorted.
func (a *Agent) AssetIDs() []string {
	var ids []string
	for _, s := range a.assets {
		ids = append(ids, s.ID())
	}
	if a.csv != nil {
		ids = append(ids, a.cfg.CSV.Asset)
	}
	for _, p := range a.modbus {
		ids = append(ids, p.Asset())
	}
	for _, s := range a.opcua {
		ids = append(ids, s.ID())
	}
	sort.Strings(ids)
	return ids
}

// Run publishes until ctx ends, or — with a limit, or a CSV replay that
// reaches its end — until every reading was generated and acknowledged.
// It opens the spool, serves the admin HTTP server and connects the
// publisher, and on the way out flushes partial batches into the spool,
// publishes the offline status and closes everything.
func (a *Agent) Run(ctx context.Context) error {
	dir := a.cfg.Spool.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "pdm-edge-spool-")
		if err != nil {
			return fmt.Errorf("agent: spool: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
		a.log.Warn("spool.dir not set: using a temporary spool, readings survive link loss but not a restart", "dir", dir)
	}
	sp, err := spool.Open(dir, spool.Options{
		MaxBytes: a.cfg.Spool.MaxBytes, SegmentBytes: a.cfg.Spool.SegmentBytes, SyncInterval: a.cfg.Spool.SyncInterval,
	}, a.log.With("component", "spool"))
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer func() {
		if err := sp.Close(context.WithoutCancel(ctx)); err != nil {
			a.log.Error("spool close", "err", err)
		}
	}()
	if err := a.restoreSeqs(sp); err != nil {
		return err
	}
	ids := a.AssetIDs()
	var framer publish.Framer // nil: the JSON readings and the status below
	confirm := ""
	if a.cfg.MQTT.Payload == config.PayloadSparkplug {
		framer = publish.NewSparkplug(a.cfg.Site, a.cfg.AgentID)
	} else if a.cfg.MQTT.Confirm {
		confirm = wire.DeliveredFilter(a.cfg.Site)
	}
	tc, err := a.cfg.MQTT.TLS.Client()
	if err != nil {
		return fmt.Errorf("agent: mqtt.%w", err)
	}
	pub, err := publish.New(publish.Options{
		URL: a.cfg.MQTT.URL, ClientID: a.cfg.ClientID(),
		Username: a.cfg.MQTT.Username, Password: a.cfg.MQTT.Password, TLS: tc,
		Window: a.cfg.MQTT.Window, KeepAlive: a.cfg.MQTT.KeepAlive, MaxReconnectInterval: a.cfg.MQTT.MaxReconnectInterval,
		StatusTopic: wire.StatusTopic(a.cfg.Site, a.cfg.AgentID),
		Online:      func() []byte { return publish.StatusPayload(a.cfg.AgentID, "online", ids, time.Now()) },
		Offline:     func() []byte { return publish.StatusPayload(a.cfg.AgentID, "offline", ids, time.Now()) },
		Framer:      framer,
		Meta:        a.meta, ConfirmFilter: confirm,
		Published: a.m.published, Acked: a.m.acked, Reconnects: a.m.reconnects,
	}, a.log)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a.pubMu.Lock()
	a.pub = pub
	a.pubMu.Unlock()
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = pub.Close(cctx)
	}()

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tc, err := a.cfg.HTTP.TLS.Server()
		if err == nil && a.cfg.HTTP.Addr != "" {
			a.guard.LogMode(a.log.With("component", "http"))
		}
		if err == nil {
			err = telemetry.ServeTLS(runCtx, a.cfg.HTTP.Addr, tc, a.Handler(), a.log)
		}
		if err != nil {
			// The admin server is a side door: readings keep flowing without
			// it (two agents on one host, say), so this is logged, not fatal.
			a.log.Error("admin http server", "err", err)
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := telemetry.ServeAdmin(runCtx, a.cfg.HTTP.AdminAddr, a.log); err != nil {
			a.log.Error("profiles http server", "err", err)
		}
	}()
	pubErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		pubErr <- pub.Run(runCtx, sp)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			pending, bytes := sp.Stats()
			a.m.spoolRecords.Set(float64(pending))
			a.m.spoolBytes.Set(float64(bytes))
			a.m.connected.Set(b2f(pub.Connected()))
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
		}
	}()

	genDone := make(chan struct{})
	var gens sync.WaitGroup
	for _, st := range a.streams() {
		gens.Add(1)
		go func() {
			defer gens.Done()
			a.generate(runCtx, st, sp)
		}()
	}
	go func() { gens.Wait(); close(genDone) }()

	a.log.Info("edge agent running", "site", a.cfg.Site, "agent", a.cfg.AgentID, "assets", ids,
		"mqtt", a.cfg.MQTT.URL, "spool", dir, "limit", a.cfg.Limit, "rate", a.cfg.Rate, "batch", a.cfg.Batch)

	var result error
	finished := genDone
	if a.cfg.Limit == 0 && a.csv == nil {
		finished = nil // runs until ctx ends
	}
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case err := <-pubErr:
			result = err
			break wait
		case <-finished:
			// Every reading is in the spool; wait for the broker's acks.
			t := time.NewTicker(20 * time.Millisecond)
			for {
				if pending, _ := sp.Stats(); pending == 0 {
					t.Stop()
					a.log.Info("all readings acknowledged", "per_asset", a.cfg.Limit)
					break wait
				}
				select {
				case <-ctx.Done():
					t.Stop()
					break wait
				case err := <-pubErr:
					t.Stop()
					result = err
					break wait
				case <-t.C:
				}
			}
		}
	}
	stop()
	gens.Wait()
	wg.Wait()
	pending, _ := sp.Stats()
	a.log.Info("edge agent stopped", "spooled_messages", pending)
	return result
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (a *Agent) streams() []stream {
	var out []stream
	for _, s := range a.assets {
		out = append(out, stream{asset: s.ID(), src: &simSource{a: s, rate: a.cfg.Rate}, paced: a.cfg.Rate > 0})
	}
	if a.csv != nil {
		out = append(out, stream{
			asset: a.cfg.CSV.Asset,
			src:   csvsource.NewPlayer(a.csv, a.cfg.CSV.Speed, a.cfg.CSV.Loop),
			paced: a.cfg.CSV.Speed > 0,
		})
	}
	for _, p := range a.modbus { // paced by their poll intervals, stamped with due times
		out = append(out, stream{asset: p.Asset(), src: p, paced: true})
	}
	for _, s := range a.opcua {
		out = append(out, stream{asset: s.ID(), src: s, paced: true}) // paced by the server's notifications
	}
	return out
}

// simSource paces a simulated asset at rate readings per second. Each
// reading is stamped with its due time, start + n/rate, so a simulated
// asset's readings are exactly 1/rate apart (to the millisecond), as a
// PLC sampled on a fixed cycle would be, whatever the scheduler's jitter.
type simSource struct {
	a     *sim.Asset
	rate  float64
	n     int64
	start time.Time
	due   time.Time
}

// Due is the sampling time of the reading Next returned last (zero when
// unpaced).
func (s *simSource) Due() time.Time { return s.due }

func (s *simSource) Next(ctx context.Context) (map[string]float64, error) {
	if s.rate > 0 {
		if s.start.IsZero() {
			s.start = time.Now().Truncate(time.Millisecond)
		}
		due := s.start.Add(time.Duration(float64(s.n) / s.rate * float64(time.Second)))
		s.due = due
		if d := time.Until(due); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
		s.n++
	}
	return s.a.Next(time.Now()), nil
}

// appender is the spool as generate uses it.
type appender interface {
	Append(data []byte) error
	Unread() uint64
}

// closer is a source holding a connection: a Modbus device, an OPC UA
// session.
type closer interface {
	Close(ctx context.Context) error
}

// generate reads one stream, validates, batches and spools its readings
// until ctx ends, the source ends, or the limit is reached. A partial batch
// is spooled on the way out.
func (a *Agent) generate(ctx context.Context, st stream, sp appender) {
	log := a.log.With("asset", st.asset)
	if c, ok := st.src.(closer); ok { // a connection to a device
		defer c.Close(context.WithoutCancel(ctx))
	}
	limits := wire.DefaultLimits()
	topic := wire.ReadingsTopic(a.cfg.Site, st.asset)
	batch := make([]wire.Reading, 0, a.cfg.Batch)
	backlog := uint64(4 * a.cfg.MQTT.Window)
	var lastDropLog, lastSpoolLog, lastMissLog time.Time
	marker, _ := st.src.(source.Marker)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		// While the spool is full every batch fails: log the first and
		// then every 10 s; the counter has the exact number.
		if err := a.spoolBatch(sp, topic, batch); err != nil && time.Since(lastSpoolLog) > 10*time.Second {
			lastSpoolLog = time.Now()
			log.Error("readings not spooled", "err", err, "readings", len(batch), "last_seq", batch[len(batch)-1].Seq)
		}
		batch = batch[:0]
	}
	defer flush()
	// Timestamps of one asset strictly increase at the wire's millisecond
	// resolution: downstream a reading's point is identified by asset and
	// time, so two readings in one millisecond would overwrite each other.
	// Unpaced (rate 0) this runs ahead of the clock by 1 ms per reading
	// beyond 1,000 per second, which the wire's future limit bounds.
	var last time.Time
	for n := 0; a.cfg.Limit == 0 || n < a.cfg.Limit; {
		if !st.paced {
			for sp.Unread() > backlog {
				select {
				case <-ctx.Done():
					return
				case <-time.After(2 * time.Millisecond):
				}
			}
		}
		sensors, err := st.src.Next(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, io.EOF) {
			log.Info("source ended")
			return
		}
		if errors.Is(err, source.ErrMissed) {
			a.m.missed.WithLabelValues(st.asset).Inc()
			if time.Since(lastMissLog) > 10*time.Second {
				lastMissLog = time.Now()
				log.Warn("no reading this cycle", "err", err)
			}
			continue
		}
		if err != nil {
			log.Error("source failed", "err", err)
			return
		}
		now := time.Now()
		ts := now.Truncate(time.Millisecond)
		if d, ok := st.src.(interface{ Due() time.Time }); ok && st.paced {
			ts = d.Due().Truncate(time.Millisecond)
		}
		if !ts.After(last) {
			ts = last.Add(time.Millisecond)
		}
		a.m.generated.WithLabelValues(st.asset).Inc()
		r := wire.Reading{Site: a.cfg.Site, Asset: st.asset, Time: ts, Seq: a.peekSeq(st.asset), Sensors: sensors}
		if marker != nil {
			r.Quality = marker.Quality()
		}
		if err := limits.Validate(&r, now); err != nil {
			a.m.dropped.WithLabelValues(string(wire.CodeOf(err))).Inc()
			if time.Since(lastDropLog) > 10*time.Second {
				lastDropLog = time.Now()
				log.Warn("dropping invalid reading", "err", err)
			}
			continue
		}
		for sensor, mark := range r.Quality {
			a.m.marked.WithLabelValues(st.asset, sensor, wire.QualityClass(mark)).Inc()
		}
		last = ts
		a.takeSeq(st.asset)
		batch = append(batch, r)
		n++
		if len(batch) == a.cfg.Batch {
			flush()
		}
	}
}

// spoolBatch encodes a batch as one MQTT message and appends it; what it
// cannot store it counts as dropped.
func (a *Agent) spoolBatch(sp appender, topic string, batch []wire.Reading) error {
	var (
		payload []byte
		err     error
	)
	if len(batch) == 1 {
		payload, err = batch[0].MarshalJSON()
	} else {
		payload, err = wire.EncodeBatch(batch)
	}
	if err != nil {
		// Validated readings always encode; count rather than crash.
		a.m.dropped.WithLabelValues("encode").Add(float64(len(batch)))
		return fmt.Errorf("encode readings: %w", err)
	}
	env := publish.Envelope{Topic: topic, Count: len(batch), LastSeq: batch[len(batch)-1].Seq, Payload: payload}
	err = sp.Append(env.Encode())
	a.seqMu.Lock()
	a.spooled[batch[0].Asset] = env.LastSeq
	a.seqMu.Unlock()
	if err != nil {
		reason := "spool_error"
		if errors.Is(err, spool.ErrFull) {
			reason = "spool_full"
		}
		a.m.dropped.WithLabelValues(reason).Add(float64(len(batch)))
		return err
	}
	return nil
}

func (a *Agent) peekSeq(asset string) uint64 {
	a.seqMu.Lock()
	defer a.seqMu.Unlock()
	return a.seqs[asset] + 1
}

func (a *Agent) takeSeq(asset string) {
	a.seqMu.Lock()
	defer a.seqMu.Unlock()
	a.seqs[asset]++
}

// meta is stored with each spool commit: the last sequence number spooled
// per asset.
func (a *Agent) meta() []byte {
	a.seqMu.Lock()
	defer a.seqMu.Unlock()
	b, _ := json.Marshal(a.spooled)
	return b
}

// restoreSeqs continues every asset's sequence after the last one stored
// with a commit or still waiting in the spool.
func (a *Agent) restoreSeqs(sp *spool.Spool) error {
	a.seqMu.Lock()
	defer a.seqMu.Unlock()
	if m := sp.Meta(); len(m) > 0 {
		if err := json.Unmarshal(m, &a.seqs); err != nil {
			a.log.Warn("spool cursor meta unreadable; sequence numbers restart from the spool contents", "err", err)
			a.seqs = map[string]uint64{}
		}
	}
	var pending int
	err := sp.Scan(func(data []byte) error {
		env, err := publish.DecodeEnvelope(data)
		if err != nil {
			return nil
		}
		pending++
		if _, asset, _, err := wire.ParseTopic(env.Topic); err == nil && env.LastSeq > a.seqs[asset] {
			a.seqs[asset] = env.LastSeq
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	for k, v := range a.seqs {
		a.spooled[k] = v
	}
	if pending > 0 || len(a.seqs) > 0 {
		a.log.Info("spool restored", "pending_messages", pending, "last_seq", a.seqs)
	}
	return nil
}

// Ready reports whether the broker link is up.
func (a *Agent) Ready(context.Context) error {
	a.pubMu.Lock()
	pub := a.pub
	a.pubMu.Unlock()
	if pub == nil || !pub.Connected() {
		return errors.New("mqtt not connected")
	}
	return nil
}
