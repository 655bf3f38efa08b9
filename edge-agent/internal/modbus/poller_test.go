package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	mb "github.com/simonvetter/modbus"

	"github.com/pdmstream/pdm/edge-agent/internal/modbustest"
	"github.com/pdmstream/pdm/edge-agent/internal/source"
	pdmconfig "github.com/pdmstream/pdm/pdmkit/config"
)

func testLog(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

// plant loads testdata/plant.yaml pointed at srv.
func plant(t testing.TB, srv *modbustest.Server) Config {
	t.Helper()
	var c struct {
		Modbus Config `yaml:"modbus"`
	}
	if err := pdmconfig.Load("testdata/plant.yaml", &c); err != nil {
		t.Fatal(err)
	}
	c.Modbus.Devices[0].Address = srv.Addr()
	return c.Modbus
}

func newPollerT(t testing.TB, cfg Config) *Poller {
	t.Helper()
	ps, err := NewPollers(cfg, prometheus.NewRegistry(), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps[0].Close(context.Background()) })
	return ps[0]
}

// regs writes v as typ in the given orders, the way a device would.
func regs(typ valueType, wordLittle, byteLittle bool, v float64) []uint16 {
	p := point{typ: typ, wordLittle: wordLittle, byteLittle: byteLittle}
	var raw uint64
	switch typ {
	case typeUint16, typeUint32:
		raw = uint64(v)
	case typeInt16:
		raw = uint64(uint16(int16(v)))
	case typeInt32:
		raw = uint64(uint32(int32(v)))
	case typeFloat32:
		raw = uint64(math.Float32bits(float32(v)))
	case typeFloat64:
		raw = math.Float64bits(v)
	}
	return encode(p, raw)
}

// setPoll puts the plant's values of poll k into the server: every value
// changes with k in a known way.
func setPoll(srv *modbustest.Server, k int) {
	f := float64(k)
	srv.SetRegisters(1, "holding", 0, regs(typeUint16, false, false, 1000+f)...)
	srv.SetRegisters(1, "holding", 1, regs(typeInt16, false, false, -200+10*f)...)
	srv.SetRegisters(1, "holding", 2, regs(typeFloat32, false, false, 1.5*(f+1))...)
	srv.SetRegisters(1, "holding", 4, regs(typeUint32, true, false, 70000+1000*f)...)
	srv.SetRegisters(1, "holding", 6, regs(typeInt32, false, true, -100000-f)...)
	srv.SetRegisters(1, "holding", 8, regs(typeFloat64, true, true, 2.25+f)...)
	srv.SetRegisters(1, "holding", 20, regs(typeUint16, false, false, 500+f)...)
	srv.SetRegisters(1, "input", 0, regs(typeFloat32, true, false, 10.5+f)...)
	srv.SetRegisters(2, "input", 0, regs(typeFloat32, false, false, 21-f)...)
	srv.SetBits(1, "coil", 0, k%2 == 0, k%3 == 0)
	srv.SetBits(1, "coil", 3, true)
	srv.SetBits(1, "discrete", 0, k%2 == 1)
	srv.SetRegisters(1, "holding", 100, regs(typeInt16, false, false, 400+f)...)
}

// wantPoll is what poll k must read, slow group included or not.
func wantPoll(k int, slow bool) map[string]float64 {
	f := float64(k)
	b := func(on bool) float64 {
		if on {
			return 1
		}
		return 0
	}
	w := map[string]float64{
		"speed": 1000 + f, "temp": (-200 + 10*f) * 0.1, "flow": float64(float32(1.5 * (f + 1))), "energy": 70000 + 1000*f,
		"delta": -100000 - f, "pressure": 2.25 + f - 1, "setpoint": 500 + f, "current": float64(float32(10.5 + f)),
		"ambient": float64(float32(21 - f)), "running": b(k%2 == 0), "fault": b(k%3 == 0), "door": 1, "estop": b(k%2 == 1),
	}
	if slow {
		w["bearing_temp"] = (400 + f) * 0.1
	}
	return w
}

// The reads of one poll of the plant: the fewest its layout allows with
// max_gap 0 (a gap splits holding and coils), unit 2 apart.
var fastReads = []modbustest.Request{
	{Unit: 1, Table: "holding", Addr: 0, Quantity: 12},
	{Unit: 1, Table: "holding", Addr: 20, Quantity: 1},
	{Unit: 1, Table: "input", Addr: 0, Quantity: 2},
	{Unit: 1, Table: "coil", Addr: 0, Quantity: 2},
	{Unit: 1, Table: "coil", Addr: 3, Quantity: 1},
	{Unit: 1, Table: "discrete", Addr: 0, Quantity: 1},
	{Unit: 2, Table: "input", Addr: 0, Quantity: 2},
}
var slowReads = []modbustest.Request{{Unit: 1, Table: "holding", Addr: 100, Quantity: 1}}

func sameValues(t *testing.T, what string, got, want map[string]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d sensors %v, want %d %v", what, len(got), got, len(want), want)
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok || math.Abs(g-w) > 1e-9*math.Max(1, math.Abs(w)) {
			t.Errorf("%s: %s = %v (present %v), want %v", what, k, g, ok, w)
		}
	}
}

func isLate(err error) bool {
	return errors.Is(err, source.ErrMissed) && strings.Contains(err.Error(), ": late: ")
}

// Against a real Modbus TCP server whose registers change every poll:
// every decoded value of every poll, the reads made (count, addresses,
// sizes), the due-time schedule and the request counter.
func TestPollDecodesEveryValue(t *testing.T) {
	srv := modbustest.Start(t)
	p := newPollerT(t, plant(t, srv))
	ctx := context.Background()
	total, slowPolls, late := 0, 0, 0
	var prevDue time.Time
	for k := 0; k < 9; {
		setPoll(srv, k)
		srv.ResetRequests()
		r, err := p.Next(ctx)
		if isLate(err) && late < 3 { // a stalled test machine: the next due time reads the same values
			late++
			t.Logf("poll %d missed as late: %v", k, err)
			continue
		}
		if err != nil {
			t.Fatalf("poll %d: %v", k, err)
		}
		slow := p.Due().Sub(p.start)%(300*time.Millisecond) == 0
		sameValues(t, fmt.Sprintf("poll %d", k), r, wantPoll(k, slow))
		want := fastReads
		if slow {
			want = append(append([]modbustest.Request(nil), fastReads...), slowReads...)
			slowPolls++
		}
		if got := srv.Requests(); !reflect.DeepEqual(got, want) {
			t.Fatalf("poll %d reads\n got %+v\nwant %+v", k, got, want)
		}
		total += len(want)
		if !prevDue.IsZero() && p.Due().Sub(prevDue)%(100*time.Millisecond) != 0 {
			t.Errorf("due times %s then %s: not on the 100ms schedule", prevDue, p.Due())
		}
		prevDue = p.Due()
		k++
	}
	if slowPolls < 2 {
		t.Errorf("slow group in %d of 9 polls, want 3 (every third)", slowPolls)
	}
	if got := testutil.ToFloat64(p.m.requests); got != float64(total) {
		t.Errorf("pdm_edge_modbus_requests_total %v, server answered %d", got, total)
	}
	if got := testutil.ToFloat64(p.m.connectOK); got != 1 {
		t.Errorf("%v connections for 9 polls, want 1", got)
	}
}

// An exception answer fails its read only: the reading has every other
// value, the exception is counted by kind and the connection stays. A NaN
// on the device is left out, not published.
func TestExceptionOmitsItsSensorsOnly(t *testing.T) {
	srv := modbustest.Start(t)
	p := newPollerT(t, plant(t, srv))
	setPoll(srv, 4)
	srv.SetRegisters(1, "holding", 2, 0x7fc0, 0x0000) // flow: float32 NaN
	srv.OnRequest(func(r modbustest.Request) (time.Duration, error) {
		if r.Unit == 2 {
			return 0, mb.ErrServerDeviceBusy
		}
		return 0, nil
	})
	for i := range 3 {
		r, err := p.Next(context.Background())
		if isLate(err) {
			continue
		}
		if err != nil {
			t.Fatalf("poll %d: %v", i, err)
		}
		want := wantPoll(4, false)
		delete(want, "ambient")
		delete(want, "flow")
		delete(r, "bearing_temp")
		sameValues(t, "poll with unit 2 busy", r, want)
	}
	m := p.m.m
	if got := testutil.ToFloat64(m.errors.WithLabelValues("line-7", "server_device_busy")); got != 3 {
		t.Errorf("server_device_busy errors %v, want 3", got)
	}
	if got := testutil.ToFloat64(m.omitted.WithLabelValues("line-7", "request")); got != 3 {
		t.Errorf("values omitted for a failed request %v, want 3", got)
	}
	if got := testutil.ToFloat64(m.omitted.WithLabelValues("line-7", "not_finite")); got != 3 {
		t.Errorf("NaN values omitted %v, want 3", got)
	}
	if a, f, s := testutil.ToFloat64(m.valueOK.WithLabelValues("line-7", "ambient")), testutil.ToFloat64(m.valueOK.WithLabelValues("line-7", "flow")),
		testutil.ToFloat64(m.valueOK.WithLabelValues("line-7", "speed")); a != 0 || f != 0 || s != 1 {
		t.Errorf("value_ok ambient %v flow %v speed %v, want 0 0 1", a, f, s)
	}
	if got := testutil.ToFloat64(p.m.connectOK); got != 1 {
		t.Errorf("%v connections: an exception must not drop the connection", got)
	}
}

// Reading across unmapped addresses (max_gap 8 joins holding 0..11 with 20
// and coils 0..1 with 3) draws "illegal data address" from the device: why
// max_gap defaults to 0.
func TestGapOverUnmappedRegisters(t *testing.T) {
	srv := modbustest.Start(t)
	cfg := plant(t, srv)
	cfg.Devices[0].MaxGap = 8
	p := newPollerT(t, cfg)
	setPoll(srv, 0)
	r, err := p.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"speed", "temp", "flow", "energy", "delta", "pressure", "setpoint", "running", "fault", "door"} {
		if _, ok := r[s]; ok {
			t.Errorf("%s published from a read the device refused", s)
		}
	}
	if _, ok := r["current"]; !ok {
		t.Errorf("other reads lost too: %v", r)
	}
	if got := srv.Requests()[0]; got != (modbustest.Request{Unit: 1, Table: "holding", Addr: 0, Quantity: 21}) {
		t.Errorf("first read %+v, want holding 0+21 across the gap", got)
	}
	if got := testutil.ToFloat64(p.m.m.errors.WithLabelValues("line-7", "illegal_data_address")); got != 2 {
		t.Errorf("illegal_data_address %v, want 2 (holding 0+21, coil 0+4)", got)
	}
}

// A read that times out misses the whole poll (the connection is dropped,
// the poll's other reads are not made): no value is invented, the miss and
// the timeout are counted. Once the device answers again, readings resume
// on a new connection.
func TestTimeoutMissesPoll(t *testing.T) {
	srv := modbustest.Start(t)
	p := newPollerT(t, plant(t, srv))
	setPoll(srv, 1)
	srv.OnRequest(func(r modbustest.Request) (time.Duration, error) {
		if r.Table == "holding" && r.Addr == 0 {
			return 400 * time.Millisecond, nil // timeout is 200ms
		}
		return 0, nil
	})
	r, err := p.Next(context.Background())
	if !errors.Is(err, source.ErrMissed) || r != nil {
		t.Fatalf("poll with a timed-out read: %v, %v; want a miss and no reading", r, err)
	}
	if !errors.Is(err, mb.ErrRequestTimedOut) {
		t.Errorf("miss does not say why: %v", err)
	}
	if n := len(srv.Requests()); n != 1 {
		t.Errorf("%d reads after the timeout, want only the one that timed out", n)
	}
	m := p.m.m
	if got := testutil.ToFloat64(m.errors.WithLabelValues("line-7", "timeout")); got != 1 {
		t.Errorf("timeouts %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.missed.WithLabelValues("line-7", "failed")); got != 1 {
		t.Errorf("missed polls %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.omitted.WithLabelValues("line-7", "request")); got != 0 {
		t.Errorf("omitted %v: a missed poll publishes nothing to omit from", got)
	}
	if testutil.ToFloat64(p.m.connected) != 0 || testutil.ToFloat64(m.valueOK.WithLabelValues("line-7", "speed")) != 0 {
		t.Error("connection or value still marked good after the timeout")
	}

	srv.OnRequest(nil)
	setPoll(srv, 2)
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := p.Next(context.Background())
		if err == nil {
			delete(r, "bearing_temp")
			want := wantPoll(2, false)
			sameValues(t, "after the timeout", r, want)
			break
		}
		if !errors.Is(err, source.ErrMissed) || time.Now().After(deadline) {
			t.Fatalf("no reading after the device answered again: %v", err)
		}
	}
	if got := testutil.ToFloat64(p.m.connectOK); got != 2 {
		t.Errorf("%v connections, want 2 (the first dropped at the timeout)", got)
	}
}

// The server goes away and comes back: polls are missed while it is away
// (counted), connection attempts back off instead of following every poll,
// and readings resume with the right values when it returns.
func TestServerDownThenUp(t *testing.T) {
	srv := modbustest.Start(t)
	cfg := plant(t, srv)
	cfg.Devices[0].Groups[0].Interval = 20 * time.Millisecond
	cfg.Devices[0].Groups[1].Interval = 60 * time.Millisecond
	p := newPollerT(t, cfg)
	setPoll(srv, 3)
	ctx := context.Background()
	good := func() int {
		n := 0
		for range 5 {
			if _, err := p.Next(ctx); err == nil {
				n++
			}
		}
		return n
	}
	if n := good(); n < 3 {
		t.Fatalf("%d of 5 polls read with the server up", n)
	}
	srv.Stop()
	down := time.Now()
	var missed int
	for time.Since(down) < 1500*time.Millisecond {
		r, err := p.Next(ctx)
		if !errors.Is(err, source.ErrMissed) || r != nil {
			t.Fatalf("server down: reading %v, err %v; want a miss", r, err)
		}
		missed++
	}
	m := p.m.m
	attempts := testutil.ToFloat64(p.m.connectKO)
	backoff := testutil.ToFloat64(m.missed.WithLabelValues("line-7", "backoff"))
	t.Logf("server down 1.5s: %d polls missed, %v connection attempts, %v polls in backoff", missed, attempts, backoff)
	// Polls every 20ms, backoff 50..100ms then 100..200ms: at most ~15
	// attempts in 1.5s, against ~75 polls.
	if attempts < 3 || attempts > 20 || backoff < float64(missed)/2 {
		t.Errorf("%v connection attempts and %v polls in backoff for %d missed polls: not backing off", attempts, backoff, missed)
	}
	if testutil.ToFloat64(p.m.connected) != 0 {
		t.Error("connected gauge 1 with the server down")
	}

	srv.Start()
	setPoll(srv, 5)
	back := time.Now()
	for {
		r, err := p.Next(ctx)
		if err == nil {
			slow := p.Due().Sub(p.start)%(60*time.Millisecond) == 0
			sameValues(t, "after the server returned", r, wantPoll(5, slow))
			break
		}
		if time.Since(back) > 3*time.Second {
			t.Fatalf("no reading 3s after the server returned: %v", err)
		}
	}
	t.Logf("first reading %s after the server returned", time.Since(back).Round(time.Millisecond))
	if got := testutil.ToFloat64(p.m.connectOK); got != 2 {
		t.Errorf("%v successful connects, want 2", got)
	}
	if n := good(); n < 3 {
		t.Errorf("%d of 5 polls read after the reconnect", n)
	}
}

// A poll that could only start a whole interval after its due time is
// missed as late (its values would be stamped with a time they do not
// belong to); the schedule then continues on its due times.
func TestLatePollMissed(t *testing.T) {
	srv := modbustest.Start(t)
	cfg := plant(t, srv)
	cfg.Devices[0].Groups = cfg.Devices[0].Groups[:1]
	cfg.Devices[0].Groups[0].Interval = 200 * time.Millisecond
	p := newPollerT(t, cfg)
	setPoll(srv, 0)
	ctx := context.Background()
	if _, err := p.Next(ctx); err != nil {
		t.Fatal(err)
	}
	first := p.Due()
	time.Sleep(500 * time.Millisecond) // the poll due at +200ms is 300ms late; +400ms is 100ms late
	if _, err := p.Next(ctx); !isLate(err) {
		t.Fatalf("poll 300ms late: %v, want a late miss", err)
	}
	r, err := p.Next(ctx)
	if err != nil {
		t.Fatalf("poll 100ms late of 200ms: %v", err)
	}
	if d := p.Due().Sub(first); d != 400*time.Millisecond || len(r) != 13 {
		t.Errorf("reading due %s after the first with %d values, want 400ms and 13", d, len(r))
	}
	if got := testutil.ToFloat64(p.m.m.missed.WithLabelValues("line-7", "late")); got != 1 {
		t.Errorf("late polls %v, want 1", got)
	}
}

// The reads of one poll of the plant's fast group on loopback, as planned
// (7 reads) and with one read per tag (13): what coalescing saves.
func BenchmarkPollReads(b *testing.B) {
	srv := modbustest.Start(b)
	p := newPollerT(b, plant(b, srv))
	setPoll(srv, 0)
	if err := p.connect(); err != nil {
		b.Fatal(err)
	}
	coalesced := p.groups[0].reqs
	var perTag []request
	for _, r := range coalesced {
		for _, pt := range r.points {
			perTag = append(perTag, request{unit: pt.unit, table: pt.table, addr: pt.addr, count: uint16(pt.size()), points: []placed{{point: pt.point}}})
		}
	}
	for _, bc := range []struct {
		name string
		reqs []request
	}{{"coalesced", coalesced}, {"per-tag", perTag}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				pl := poll{reading: map[string]float64{}}
				for i := range bc.reqs {
					if err := p.read(&bc.reqs[i], &pl); err != nil {
						b.Fatal(err)
					}
				}
				if len(pl.reading) != 13 {
					b.Fatalf("%d values", len(pl.reading))
				}
			}
			b.ReportMetric(float64(len(bc.reqs)), "reads/poll")
		})
	}
}
