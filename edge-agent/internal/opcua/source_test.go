package opcua

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/pdmstream/pdm/edge-agent/internal/opcua/opcuatest"
	"github.com/pdmstream/pdm/edge-agent/internal/source"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// testConfig reads the given variables of srv as sensors of the same names
// of asset "pump-7".
func testConfig(srv *opcuatest.Server, vars ...string) Config {
	c := Default()
	c.Endpoint = srv.Endpoint()
	c.PublishingInterval = 50 * time.Millisecond
	c.Timeout = 2 * time.Second
	c.MaxReconnectInterval = 300 * time.Millisecond
	a := Asset{ID: "pump-7"}
	for _, v := range vars {
		a.Items = append(a.Items, Item{Node: opcuatest.NodeID(v), Sensor: v})
	}
	c.Assets = []Asset{a}
	return c
}

func newSource(t *testing.T, c Config) *Source {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := New(c, c.Assets[0], testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

type reading struct {
	sensors map[string]float64
	quality map[string]string
}

// await calls Next until a reading satisfies ok, within awaitFor, and
// returns it with the count of missed cycles on the way. Any error other
// than a missed cycle fails the test.
func await(t *testing.T, s *Source, ok func(reading) bool, what string) (reading, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), awaitFor)
	defer cancel()
	missed := 0
	var last reading
	var lastMissed error
	for {
		sensors, err := s.Next(ctx)
		if ctx.Err() != nil {
			t.Fatalf("no reading with %s within %s; last %+v, %d missed cycles (last: %v), %d sessions", what, awaitFor, last, missed, lastMissed, s.Sessions())
		}
		if errors.Is(err, source.ErrMissed) {
			missed++
			lastMissed = err
			continue
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		last = reading{sensors, s.Quality()}
		if ok(last) {
			return last, missed
		}
	}
}

// awaitFor is generous: the in-process server shares two cores with
// brokers and other test packages.
const awaitFor = 30 * time.Second

func equal(want map[string]float64) func(reading) bool {
	return func(r reading) bool { return maps.Equal(r.sensors, want) }
}

func TestValuesArrive(t *testing.T) {
	srv := opcuatest.New(t, opcuatest.Options{}, "vibration_rms", "bearing_temp", "flow")
	s := newSource(t, testConfig(srv, "vibration_rms", "bearing_temp", "flow"))
	// The subscription's initial values, then each change as the server
	// sends it, under the configured sensor names.
	r, _ := await(t, s, equal(map[string]float64{"vibration_rms": 0, "bearing_temp": 0, "flow": 0}), "initial values")
	if r.quality != nil {
		t.Fatalf("good values marked %v", r.quality)
	}
	for i := 1; i <= 5; i++ {
		srv.Set("vibration_rms", 2.5*float64(i))
		srv.Set("bearing_temp", 60+float64(i))
		want := map[string]float64{"vibration_rms": 2.5 * float64(i), "bearing_temp": 60 + float64(i), "flow": 0}
		if r, _ := await(t, s, equal(want), fmt.Sprint(want)); r.quality != nil {
			t.Fatalf("good values marked %v", r.quality)
		}
	}
	if s.Sessions() != 1 {
		t.Errorf("%d sessions, want 1", s.Sessions())
	}
}

// Bad values are left out and marked with their status name, Uncertain
// ones kept and marked, and both clear when the value is Good again.
func TestStatusCarriedThrough(t *testing.T) {
	srv := opcuatest.New(t, opcuatest.Options{}, "vibration_rms", "bearing_temp", "flow")
	c := testConfig(srv, "vibration_rms", "bearing_temp", "flow")
	c.Assets[0].Items = append(c.Assets[0].Items, Item{Node: opcuatest.NodeID("missing"), Sensor: "missing"})
	s := newSource(t, c)
	srv.Set("flow", 118)
	await(t, s, func(r reading) bool { return r.sensors["flow"] == 118 }, "flow 118")

	srv.SetStatus("flow", ua.StatusBadSensorFailure, 0)
	srv.SetStatus("bearing_temp", ua.StatusUncertainLastUsableValue, 61.5)
	r, _ := await(t, s, func(r reading) bool { _, has := r.sensors["flow"]; return !has && r.sensors["bearing_temp"] == 61.5 }, "flow bad and temp uncertain")
	want := map[string]string{"flow": "BadSensorFailure", "bearing_temp": "UncertainLastUsableValue", "missing": "BadNodeIdUnknown"}
	if !maps.Equal(r.quality, want) {
		t.Fatalf("quality %v, want %v", r.quality, want)
	}
	if !maps.Equal(r.sensors, map[string]float64{"vibration_rms": 0, "bearing_temp": 61.5}) {
		t.Fatalf("sensors %v", r.sensors)
	}
	// What the agent publishes is valid on the wire.
	wr := wire.Reading{Site: "s", Asset: "pump-7", Time: time.Now(), Seq: 1, Sensors: r.sensors, Quality: r.quality}
	if err := wire.DefaultLimits().Validate(&wr, time.Now()); err != nil {
		t.Fatalf("reading refused: %v", err)
	}

	srv.Set("flow", 117)
	srv.Set("bearing_temp", 62)
	r, _ = await(t, s, equal(map[string]float64{"vibration_rms": 0, "bearing_temp": 62, "flow": 117}), "recovered values")
	if !maps.Equal(r.quality, map[string]string{"missing": "BadNodeIdUnknown"}) {
		t.Fatalf("quality after recovery %v", r.quality)
	}

	// Nothing usable at all: a missed cycle, not a reading.
	only := testConfig(srv, "flow")
	srv.SetStatus("flow", ua.StatusBadCommunicationError, 0)
	s2 := newSource(t, only)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s2.Next(ctx); !errors.Is(err, source.ErrMissed) {
		t.Fatalf("only a bad value: %v, want a missed cycle", err)
	}
}

func TestStale(t *testing.T) {
	srv := opcuatest.New(t, opcuatest.Options{}, "a", "b")
	c := testConfig(srv, "a", "b")
	c.StaleAfter = 400 * time.Millisecond
	s := newSource(t, c)
	start := time.Now()
	srv.Set("b", 7)
	// a changes every 50 ms; b stays 7, so once 400 ms have passed since
	// the server sent it, it is held and marked stale.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				srv.Set("a", float64(i))
			}
		}
	}()
	defer func() { close(stop); <-done }()
	r, _ := await(t, s, func(r reading) bool { return r.quality["b"] == wire.QualityStale }, "b stale")
	if time.Since(start) < c.StaleAfter {
		t.Fatalf("b marked stale after %s, before stale_after (%s)", time.Since(start), c.StaleAfter)
	}
	if r.sensors["b"] != 7 || r.quality["a"] != "" {
		t.Fatalf("stale reading %+v", r)
	}
	srv.Set("b", 8)
	await(t, s, func(r reading) bool { return r.sensors["b"] == 8 && r.quality == nil }, "b fresh again")
}

// The server stops and starts again on the same port: the source misses
// cycles while it is down, then opens a new session, subscribes again and
// the values resume, from the new session only.
func TestServerRestart(t *testing.T) {
	srv := opcuatest.New(t, opcuatest.Options{}, "x", "y")
	s := newSource(t, testConfig(srv, "x", "y"))
	srv.Set("x", 1)
	await(t, s, func(r reading) bool { return r.sensors["x"] == 1 }, "x 1")

	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	missed := 0
	for missed < 3 { // the lost session, then failed connection attempts
		_, err := s.Next(ctx)
		if !errors.Is(err, source.ErrMissed) {
			t.Fatalf("while the server is down: %v, want missed cycles", err)
		}
		missed++
	}
	srv.Set("x", 2) // changed while the server was away
	srv.Start()
	r, _ := await(t, s, func(r reading) bool { return len(r.sensors) == 2 }, "values after the restart")
	if !maps.Equal(r.sensors, map[string]float64{"x": 2, "y": 0}) {
		t.Fatalf("first reading after the restart %v, want the server's current values", r.sensors)
	}
	srv.Set("y", 3)
	await(t, s, equal(map[string]float64{"x": 2, "y": 3}), "a change after the restart")
	if s.Sessions() != 2 {
		t.Errorf("%d sessions, want 2", s.Sessions())
	}

	// Twice more, to show it is not a one-off.
	for i := 0; i < 2; i++ {
		srv.Stop()
		srv.Start()
		srv.Set("x", float64(10+i))
		await(t, s, func(r reading) bool { return r.sensors["x"] == float64(10+i) }, "values after another restart")
	}
	if s.Sessions() != 4 {
		t.Errorf("%d sessions after three restarts, want 4", s.Sessions())
	}
}

// Next ends with the context, connected or not.
func TestNextEndsWithContext(t *testing.T) {
	srv := opcuatest.New(t, opcuatest.Options{}, "x")
	s := newSource(t, testConfig(srv, "x"))
	await(t, s, func(r reading) bool { return true }, "a reading")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := s.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("connected: %v", err)
	}
	srv.Stop()
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := s.Next(ctx2); !errors.Is(err, context.Canceled) && !errors.Is(err, source.ErrMissed) {
		t.Fatalf("cancelled: %v", err)
	}
	s.Close(context.Background())
	s.Close(context.Background()) // twice is fine
}

func TestStatusName(t *testing.T) {
	for code, want := range map[ua.StatusCode]string{
		ua.StatusGood:                      "Good",
		ua.StatusBadSensorFailure:          "BadSensorFailure",
		ua.StatusBadNodeIDUnknown:          "BadNodeIdUnknown",
		ua.StatusUncertainLastUsableValue:  "UncertainLastUsableValue",
		ua.StatusBadSensorFailure | 0x0400: "BadSensorFailure", // info bits ignored
		ua.StatusBadTCPEndpointURLInvalid:  "BadTcpEndpointUrlInvalid",
		ua.StatusBad:                       "Bad",
		ua.StatusUncertain:                 "Uncertain",
		0x80FF0000:                         "bad", // unknown code: its class
		0xC0000000:                         "bad", // reserved severity
	} {
		got := statusName(code)
		if got != want {
			t.Errorf("statusName(%#x) = %q, want %q", uint32(code), got, want)
		}
		if code>>30 != 0 && wire.QualityClass(got) == "" {
			t.Errorf("statusName(%#x) = %q is not a wire quality mark", uint32(code), got)
		}
	}
}

func TestNumber(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want float64
		bad  string
	}{
		{2.5, 2.5, ""}, {float32(1.5), 1.5, ""}, {int32(-3), -3, ""}, {uint16(7), 7, ""}, {int64(1 << 40), 1 << 40, ""},
		{true, 1, ""}, {false, 0, ""},
		{"hot", 0, "BadTypeMismatch"}, {[]float64{1, 2}, 0, "BadTypeMismatch"},
	} {
		got, bad := number(ua.MustVariant(tc.v))
		if got != tc.want || bad != tc.bad {
			t.Errorf("number(%#v) = %v %q, want %v %q", tc.v, got, bad, tc.want, tc.bad)
		}
	}
	if _, bad := number(nil); bad != wire.QualityBad {
		t.Errorf("no value: %q", bad)
	}
	if _, bad := number(ua.MustVariant(nan())); bad != wire.QualityBad {
		t.Errorf("NaN: %q", bad)
	}
}

func nan() float64 { return math.NaN() }

// freezer forwards TCP connections to target and, while frozen, holds
// every byte back without closing anything: a server that hangs with its
// connections open.
type freezer struct {
	ln     net.Listener
	target string // set before the first connection
	frozen atomic.Bool
}

func newFreezer(t *testing.T) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		defer dst.Close()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			for f.frozen.Load() {
				time.Sleep(5 * time.Millisecond)
			}
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", f.target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, u)
			mu.Unlock()
			wg.Add(2)
			go pipe(u, c)
			go pipe(c, u)
		}
	}()
	return f
}

func (f *freezer) endpoint() string { return "opc.tcp://" + f.ln.Addr().String() }

// A server that stops answering without closing its connection: the quiet
// session is probed after opcua.timeout, the probe fails, the session is
// dropped, and values resume once the server answers again.
func TestHungServerProbed(t *testing.T) {
	f := newFreezer(t)
	srv := opcuatest.New(t, opcuatest.Options{Advertise: []string{f.ln.Addr().String()}}, "x")
	f.target = strings.TrimPrefix(srv.Endpoint(), "opc.tcp://")
	c := testConfig(srv, "x")
	c.Endpoint = f.endpoint()
	c.Timeout = 500 * time.Millisecond
	s := newSource(t, c)
	srv.Set("x", 1)
	await(t, s, func(r reading) bool { return r.sensors["x"] == 1 }, "x 1")

	f.frozen.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := s.Next(ctx)
	if !errors.Is(err, source.ErrMissed) || !strings.Contains(err.Error(), "probe") {
		t.Fatalf("hung server: %v after %s, want a missed cycle from the probe", err, time.Since(start))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("hung server noticed after %s (timeout %s)", d, c.Timeout)
	}
	f.frozen.Store(false)
	srv.Set("x", 2)
	await(t, s, func(r reading) bool { return r.sensors["x"] == 2 }, "x 2 after the server answers again")
	if s.Sessions() < 2 {
		t.Errorf("%d sessions, want a new one after the probe failed", s.Sessions())
	}
}

// TestProbeRecoversLostValues: the probe of a quiet session reads every
// item and takes the values that differ from what it holds, whether the
// item was never heard in this session (its initial notification left
// out) or its last change was lost; unchanged values are left as they are.
func TestProbeRecoversLostValues(t *testing.T) {
	srv := opcuatest.New(t, opcuatest.Options{}, "a", "b", "c")
	srv.Set("a", 1.5)
	srv.Set("b", 2.5)
	s := newSource(t, testConfig(srv, "a", "b", "c"))
	await(t, s, equal(map[string]float64{"a": 1.5, "b": 2.5, "c": 0}), "the values")
	heldAt := s.items[0].at

	srv.Set("b", 3.5)                                // Next is not called: as if this notification were lost
	srv.SetStatus("c", ua.StatusBadSensorFailure, 0) // and this one
	s.items[0] = item{sensor: "a"}                   // as if a's initial notification never came
	changed, err := s.probe(context.Background())
	if err != nil || !changed {
		t.Fatalf("probe: changed %v, %v", changed, err)
	}
	got, quality := s.reading()
	if !maps.Equal(got, map[string]float64{"a": 1.5, "b": 3.5}) || !maps.Equal(quality, map[string]string{"c": "BadSensorFailure"}) {
		t.Errorf("after the probe: %v %v", got, quality)
	}
	at := s.items[1].at
	if changed, err := s.probe(context.Background()); err != nil || changed {
		t.Errorf("second probe: changed %v, %v (nothing changed on the server)", changed, err)
	}
	if s.items[1].at != at || heldAt.IsZero() {
		t.Errorf("an unchanged value was taken again (at %v, was %v): it would never go stale", s.items[1].at, at)
	}
}

// The server's keep-alive answers a quiet publish request well before the
// client gives up on it (opcua.timeout), so no change is sent in the
// answer to an abandoned request.
func TestKeepAliveWithinTimeout(t *testing.T) {
	for _, c := range []struct{ interval, timeout time.Duration }{
		{50 * time.Millisecond, 2 * time.Second},
		{time.Second, 10 * time.Second},
		{100 * time.Millisecond, 100 * time.Millisecond},
		{time.Second, 3 * time.Second},
	} {
		cfg := Config{PublishingInterval: c.interval, Timeout: c.timeout}
		n := keepAliveCount(cfg)
		// The server answers after n+1 empty intervals.
		if d := time.Duration(n+1) * c.interval; n < 1 || (d > c.timeout/2 && n > 1) {
			t.Errorf("interval %s, timeout %s: keep-alive count %d answers after %s", c.interval, c.timeout, n, d)
		}
	}
}
