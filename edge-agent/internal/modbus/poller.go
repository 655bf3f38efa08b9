package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	mb "github.com/simonvetter/modbus"

	"github.com/pdmstream/pdm/edge-agent/internal/source"
	"github.com/pdmstream/pdm/pdmkit/retry"
)

// client is the part of simonvetter/modbus's ModbusClient the poller uses.
type client interface {
	SetUnitId(id uint8) error
	ReadRegisters(addr, quantity uint16, regType mb.RegType) ([]uint16, error)
	ReadCoils(addr, quantity uint16) ([]bool, error)
	ReadDiscreteInputs(addr, quantity uint16) ([]bool, error)
	Close() error
}

// dialTCP opens a Modbus TCP connection to addr (host:port). The library
// logs to stdout unless given a logger; its lines go to log at debug.
func dialTCP(addr string, timeout time.Duration, log *slog.Logger) (client, error) {
	c, err := mb.NewClient(&mb.ClientConfiguration{
		URL: "tcp://" + addr, Timeout: timeout, Logger: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	})
	if err != nil {
		return nil, err
	}
	if err := c.Open(); err != nil {
		return nil, err
	}
	return c, nil
}

// Poller polls one device and yields its readings: it is the device's
// source.Source.
//
// Schedule: every group has due times start + k·interval, all groups from
// one start, so groups whose intervals divide each other fall due together.
// Each call of Next waits for the earliest due time, reads every group due
// then, and returns one reading of their sensors, stamped (via Due) with
// that due time — or a missed cycle (an error wrapping source.ErrMissed).
// Every due time thus yields exactly one reading or one miss.
//
// Quality: a sensor whose read failed is left out of the reading, as is a
// value that decodes to NaN or ±Inf (devices use NaN to mark a bad
// sensor); both are counted (pdm_edge_modbus_values_omitted_total) and the
// sensor's pdm_edge_modbus_value_ok drops to 0. A poll with no value left
// is missed. A poll that could only start a whole interval (of its
// shortest group) after its due time is missed as late rather than read
// and stamped with a time its values do not belong to.
//
// Connection: opened at the first poll. An exception answer (illegal data
// address, device busy...) fails that read only. A timeout or any other
// error drops the connection; the rest of the poll's reads are not made.
// After a failed connect or a dropped connection the next attempt waits
// pdmkit/retry's jittered backoff (100ms doubling to reconnect_max); polls
// due before it are missed (reason backoff) without touching the network.
// The wait grows with consecutive failures and resets at the first read
// that succeeds.
//
// A Poller is used by one goroutine.
type Poller struct {
	asset, addr string
	timeout     time.Duration
	backoff     retry.Backoff
	groups      []*group
	log         *slog.Logger
	m           deviceMetrics
	ok          map[string]prometheus.Gauge // pdm_edge_modbus_value_ok by sensor
	dial        func(addr string, timeout time.Duration, log *slog.Logger) (client, error)

	c        client // nil while disconnected
	failures int    // consecutive failed connects or dropped connections
	retryAt  time.Time
	start    time.Time
	due      time.Time
	lastWarn time.Time
}

type group struct {
	name     string
	interval time.Duration
	reqs     []request
	sensors  []string
	n        int64 // polls taken (done or missed)
}

// NewPollers validates cfg and makes one Poller per device, its metrics on
// reg; it connects nothing. No devices, no pollers and no metrics.
func NewPollers(cfg Config, reg prometheus.Registerer, log *slog.Logger) ([]*Poller, error) {
	if len(cfg.Devices) == 0 {
		return nil, nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("modbus: %w", err)
	}
	m := NewMetrics(reg)
	var out []*Poller
	for i, d := range cfg.Devices {
		dev, _ := resolve(i, d) // valid: checked above
		out = append(out, newPoller(dev, m, log))
	}
	return out, nil
}

func newPoller(d device, m *Metrics, log *slog.Logger) *Poller {
	p := &Poller{
		asset: d.asset, addr: d.addr, timeout: d.timeout,
		backoff: retry.Backoff{Initial: min(100*time.Millisecond, d.reconnectMax), Max: d.reconnectMax},
		log:     log.With("component", "modbus", "asset", d.asset, "address", d.addr),
		ok:      map[string]prometheus.Gauge{},
		dial:    dialTCP,
	}
	var sensors []string
	for _, gs := range d.groups {
		g := &group{name: gs.name, interval: gs.interval, reqs: plan(gs.points, d.limits)}
		for _, pt := range gs.points {
			g.sensors = append(g.sensors, pt.sensor)
		}
		sensors = append(sensors, g.sensors...)
		p.groups = append(p.groups, g)
		var reads []string
		for _, r := range g.reqs {
			reads = append(reads, fmt.Sprintf("unit %d %s %d+%d", r.unit, r.table, r.addr, r.count))
		}
		p.log.Info("modbus group", "group", g.name, "interval", g.interval, "tags", len(gs.points),
			"requests", len(g.reqs), "reads", strings.Join(reads, ", "))
		for _, pt := range gs.points {
			p.log.Debug("modbus tag", "group", g.name, "sensor", pt.sensor, "unit_id", pt.unit, "table", pt.table,
				"address", pt.addr, "type", pt.typ, "scale", pt.scale, "offset", pt.offset, "unit", pt.eng)
		}
	}
	p.m = m.device(d.asset, sensors)
	for _, s := range sensors {
		p.ok[s] = m.valueOK.WithLabelValues(d.asset, s)
	}
	return p
}

// Asset is the asset id of the device's readings.
func (p *Poller) Asset() string { return p.asset }

// Due is the due time of the poll Next returned last: the reading's time.
func (p *Poller) Due() time.Time { return p.due }

// Close drops the connection; safe to call twice. Closing a Modbus TCP
// connection does not wait, so ctx is not consulted.
func (p *Poller) Close(context.Context) error {
	if p.c == nil {
		return nil
	}
	err := p.c.Close()
	p.c = nil
	p.m.connected.Set(0)
	return err
}

// Next waits for the next poll, makes it and returns its reading; see
// Poller for what a reading holds and when a poll is missed instead.
func (p *Poller) Next(ctx context.Context) (map[string]float64, error) {
	if p.start.IsZero() {
		p.start = time.Now().Truncate(time.Millisecond)
	}
	due, gs := p.next()
	p.due = due
	if !retry.Sleep(ctx, time.Until(due)) {
		return nil, ctx.Err()
	}
	shortest := gs[0].interval
	var sensors []string
	for _, g := range gs {
		g.n++
		shortest = min(shortest, g.interval)
		sensors = append(sensors, g.sensors...)
	}
	now := time.Now()
	if late := now.Sub(due); late >= shortest {
		return nil, p.miss(sensors, "late", fmt.Errorf("poll due %s would start %s late", due.Format(time.TimeOnly), late.Round(time.Millisecond)))
	}
	if p.c == nil {
		if wait := p.retryAt.Sub(now); wait > 0 {
			return nil, p.miss(sensors, "backoff", fmt.Errorf("not connected, next attempt in %s", wait.Round(time.Millisecond)))
		}
		if err := p.connect(); err != nil {
			return nil, p.miss(sensors, "connect", err)
		}
	}
	began := time.Now()
	pl := poll{reading: make(map[string]float64, len(sensors))}
	var firstErr error
	for _, g := range gs {
		for i := range g.reqs {
			if err := p.read(&g.reqs[i], &pl); err != nil && firstErr == nil {
				firstErr = err
			}
		}
	}
	p.m.pollTime.Observe(time.Since(began).Seconds())
	if len(pl.reading) > 0 {
		p.m.m.omitted.WithLabelValues(p.asset, "request").Add(float64(pl.failed))
		p.m.m.omitted.WithLabelValues(p.asset, "not_finite").Add(float64(pl.notFinite))
		return pl.reading, nil
	}
	if firstErr == nil {
		return nil, p.miss(nil, "bad_values", fmt.Errorf("all %d values NaN or infinite", pl.notFinite))
	}
	return nil, p.miss(nil, "failed", firstErr)
}

// poll is what one poll's reads gathered.
type poll struct {
	reading map[string]float64
	// failed and notFinite count the values left out: their read failed
	// (or was not made), or they decoded to NaN or ±Inf.
	failed, notFinite int
}

// next finds the earliest due time and the groups due then.
func (p *Poller) next() (time.Time, []*group) {
	var due time.Time
	var gs []*group
	for _, g := range p.groups {
		d := p.start.Add(time.Duration(g.n) * g.interval)
		switch {
		case gs == nil || d.Before(due):
			due, gs = d, []*group{g}
		case d.Equal(due):
			gs = append(gs, g)
		}
	}
	return due, gs
}

// miss counts a missed poll, marks its sensors not ok and returns the
// error for the agent.
func (p *Poller) miss(sensors []string, reason string, cause error) error {
	p.m.m.missed.WithLabelValues(p.asset, reason).Inc()
	for _, s := range sensors {
		p.ok[s].Set(0)
	}
	return fmt.Errorf("%w: modbus %s (%s): %s: %w", source.ErrMissed, p.asset, p.addr, reason, cause)
}

func (p *Poller) connect() error {
	c, err := p.dial(p.addr, p.timeout, p.log)
	if err != nil {
		p.m.connectKO.Inc()
		p.failed()
		p.warn("modbus connect failed", "err", err, "failures", p.failures, "retry_in", time.Until(p.retryAt).Round(time.Millisecond))
		return err
	}
	p.m.connectOK.Inc()
	p.m.connected.Set(1)
	p.c = c
	p.log.Info("modbus connected", "after_failures", p.failures)
	return nil
}

// failed records a failed connect or a dropped connection and sets the
// time of the next attempt.
func (p *Poller) failed() {
	p.failures++
	p.retryAt = time.Now().Add(p.backoff.Next(p.failures - 1))
}

// read makes request r and puts the values of its points into pl, or
// leaves them all out if it fails.
func (p *Poller) read(r *request, pl *poll) error {
	if p.c == nil { // dropped earlier in this poll
		p.omit(r, pl)
		return nil
	}
	var (
		regs []uint16
		bits []bool
		err  error
	)
	p.m.requests.Inc()
	if err = p.c.SetUnitId(r.unit); err == nil {
		switch r.table {
		case holding:
			regs, err = p.c.ReadRegisters(r.addr, r.count, mb.HOLDING_REGISTER)
		case input:
			regs, err = p.c.ReadRegisters(r.addr, r.count, mb.INPUT_REGISTER)
		case coil:
			bits, err = p.c.ReadCoils(r.addr, r.count)
		case discrete:
			bits, err = p.c.ReadDiscreteInputs(r.addr, r.count)
		}
	}
	if err == nil && len(regs) < int(r.count) && len(bits) < int(r.count) {
		err = fmt.Errorf("%w: %d values for %d asked", mb.ErrProtocolError, max(len(regs), len(bits)), r.count)
	}
	if err != nil {
		kind := errKind(err)
		p.m.m.errors.WithLabelValues(p.asset, kind).Inc()
		p.omit(r, pl)
		err = fmt.Errorf("unit %d %s %d+%d: %w", r.unit, r.table, r.addr, r.count, err)
		if exception(kind) {
			p.warn("modbus exception", "err", err)
			return err
		}
		p.warn("modbus read failed, dropping the connection", "err", err)
		p.Close(context.Background())
		p.failed()
		return err
	}
	p.failures = 0
	for _, pt := range r.points {
		var v float64
		if r.table.bits() {
			v = pt.decodeBit(bits[pt.off])
		} else {
			v = pt.decodeRegisters(regs[pt.off : pt.off+pt.size()])
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			pl.notFinite++
			p.ok[pt.sensor].Set(0)
			continue
		}
		pl.reading[pt.sensor] = v
		p.ok[pt.sensor].Set(1)
	}
	return nil
}

// omit leaves the values of r out of pl.
func (p *Poller) omit(r *request, pl *poll) {
	pl.failed += len(r.points)
	for _, pt := range r.points {
		p.ok[pt.sensor].Set(0)
	}
}

// warn logs at most every 10 s per device; the counters have the numbers.
func (p *Poller) warn(msg string, args ...any) {
	if time.Since(p.lastWarn) < 10*time.Second {
		return
	}
	p.lastWarn = time.Now()
	p.log.Warn(msg, args...)
}

// errKinds maps the client library's errors to the kind label.
var errKinds = []struct {
	err  error
	kind string
}{
	{mb.ErrRequestTimedOut, "timeout"},
	{mb.ErrIllegalFunction, "illegal_function"},
	{mb.ErrIllegalDataAddress, "illegal_data_address"},
	{mb.ErrIllegalDataValue, "illegal_data_value"},
	{mb.ErrServerDeviceFailure, "server_device_failure"},
	{mb.ErrAcknowledge, "acknowledge"},
	{mb.ErrServerDeviceBusy, "server_device_busy"},
	{mb.ErrMemoryParityError, "memory_parity_error"},
	{mb.ErrGWPathUnavailable, "gateway_path_unavailable"},
	{mb.ErrGWTargetFailedToRespond, "gateway_target_failed"},
	{mb.ErrBadUnitId, "bad_unit_id"},
	{mb.ErrProtocolError, "protocol"},
	{mb.ErrShortFrame, "protocol"},
	{mb.ErrBadTransactionId, "protocol"},
	{mb.ErrUnknownProtocolId, "protocol"},
	{mb.ErrBadCRC, "protocol"},
}

func errKind(err error) string {
	for _, e := range errKinds {
		if errors.Is(err, e.err) {
			return e.kind
		}
	}
	if strings.HasPrefix(err.Error(), "unknown exception code") {
		return "exception_other"
	}
	return "io"
}

// exception reports whether kind is an answer from the device, after
// which the connection is still in step and stays open.
func exception(kind string) bool {
	switch kind {
	case "timeout", "io", "protocol":
		return false
	}
	return true
}
