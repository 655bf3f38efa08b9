package history

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	ihttp "github.com/influxdata/influxdb-client-go/v2/api/http"
)

var t0 = time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)

// at returns t0 + d in Unix ns.
func at(d time.Duration) int64 { return t0.Add(d).UnixNano() }

func ts(d time.Duration) time.Time { return t0.Add(d) }

// segs describes segments as "start+n" in seconds after t0.
func segs(s *Series) string {
	var parts []string
	for _, sg := range s.Segments {
		parts = append(parts, fmt.Sprintf("%v+%d", sg.Start.Sub(t0), sg.N))
	}
	return strings.Join(parts, " ")
}

func gaps(s *Series) string {
	var parts []string
	for _, g := range s.Gaps {
		parts = append(parts, fmt.Sprintf("%v-%v(%d)", g.From.Sub(t0), g.To.Sub(t0), g.Steps))
	}
	return strings.Join(parts, " ")
}

func excluded(s *Series) string {
	var parts []string
	for _, e := range s.Excluded {
		parts = append(parts, fmt.Sprintf("%s%s:%v-%v(%d)", e.Reason, e.ID, e.From.Sub(t0), e.To.Sub(t0), e.Rows))
	}
	return strings.Join(parts, " ")
}

func TestBuilderSegmentsGapsExclusions(t *testing.T) {
	sec := int64(time.Second)
	tests := []struct {
		name     string
		rows     []int // seconds after t0 with a row
		excl     []Exclusion
		pad      time.Duration
		segs     string
		gaps     string
		excluded string
		kept     int
	}{
		{name: "contiguous", rows: secs(0, 10), segs: "0s+10"},
		{name: "gap inside", rows: append(secs(0, 3), secs(6, 10)...), segs: "0s+3 6s+4", gaps: "3s-6s(3)", kept: 7},
		{name: "leading and trailing gaps", rows: secs(2, 8), segs: "2s+6", gaps: "0s-2s(2) 8s-10s(2)", kept: 6},
		{name: "no data", gaps: "0s-10s(10)"},
		{
			name: "exclusion splits, windows it overlaps", rows: secs(0, 10),
			excl:     []Exclusion{{From: ts(3500 * time.Millisecond), To: ts(5200 * time.Millisecond), Reason: ReasonAlert, ID: "a"}},
			segs:     "0s+3 6s+4",
			excluded: "alerta:3s-6s(3)", kept: 7,
		},
		{
			name: "pad on both sides", rows: secs(0, 10), pad: time.Second,
			excl:     []Exclusion{{From: ts(4 * time.Second), To: ts(5 * time.Second), Reason: ReasonMaintenance}},
			segs:     "0s+3 6s+4",
			excluded: "maintenance:3s-6s(3)", kept: 7,
		},
		{
			name: "clipped to the range", rows: secs(0, 10),
			excl:     []Exclusion{{From: ts(-time.Hour), To: ts(2 * time.Second), Reason: ReasonAlert, ID: "old"}, {From: ts(9 * time.Second), To: ts(time.Hour), Reason: ReasonAbnormal}},
			segs:     "2s+7",
			excluded: "alertold:0s-2s(2) abnormal:9s-10s(1)", kept: 7,
		},
		{
			name: "overlap counted once, by the earlier", rows: secs(0, 10),
			excl:     []Exclusion{{From: ts(2 * time.Second), To: ts(6 * time.Second), Reason: ReasonAlert, ID: "x"}, {From: ts(4 * time.Second), To: ts(8 * time.Second), Reason: ReasonAbnormal}},
			segs:     "0s+2 8s+2",
			excluded: "alertx:2s-6s(4) abnormal:4s-8s(2)", kept: 4,
		},
		{
			name: "outside the range dropped", rows: secs(0, 10),
			excl: []Exclusion{{From: ts(-time.Hour), To: ts(-time.Minute), Reason: ReasonAlert, ID: "gone"}},
			segs: "0s+10",
		},
		{
			name: "exclusion over a gap", rows: append(secs(0, 3), secs(6, 10)...),
			excl:     []Exclusion{{From: ts(2 * time.Second), To: ts(7 * time.Second), Reason: ReasonAbnormal}},
			segs:     "0s+2 7s+3",
			gaps:     "3s-6s(3)",
			excluded: "abnormal:2s-7s(2)", kept: 5,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBuilder(sec, at(0), at(10*time.Second), []string{"x"}, true)
			b.exclude(tc.excl, int64(tc.pad))
			for _, r := range tc.rows {
				b.add(at(time.Duration(r)*time.Second), []float64{float64(r)})
			}
			s := b.finish("s", "a")
			if got := segs(s); got != tc.segs {
				t.Errorf("segments %q, want %q", got, tc.segs)
			}
			if got := gaps(s); got != tc.gaps {
				t.Errorf("gaps %q, want %q", got, tc.gaps)
			}
			if got := excluded(s); got != tc.excluded {
				t.Errorf("excluded %q, want %q", got, tc.excluded)
			}
			kept := tc.kept
			if kept == 0 && tc.excluded == "" && tc.gaps == "" {
				kept = len(tc.rows)
			}
			if s.Rows != kept || s.Read != len(tc.rows) {
				t.Errorf("rows %d read %d, want %d and %d", s.Rows, s.Read, kept, len(tc.rows))
			}
			removed := 0
			for _, e := range s.Excluded {
				removed += e.Rows
			}
			if s.Rows+removed != s.Read {
				t.Errorf("rows %d + excluded %d != read %d", s.Rows, removed, s.Read)
			}
			missing := 0
			for _, g := range s.Gaps {
				missing += g.Steps
			}
			if s.Read+missing != 10 {
				t.Errorf("read %d + gap steps %d != 10 steps", s.Read, missing)
			}
			for _, sg := range s.Segments {
				for i := range sg.N {
					if want := float64(sg.Time(i).Sub(t0) / time.Second); sg.Row(i)[0] != want {
						t.Fatalf("row at %v holds %v", sg.Time(i), sg.Row(i)[0])
					}
				}
			}
		})
	}
}

func secs(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func TestBuilderIgnoresRowsOutOfOrderOrRange(t *testing.T) {
	sec := int64(time.Second)
	b := newBuilder(sec, at(0), at(5*time.Second), []string{"x"}, true)
	for _, r := range []int{-1, 0, 1, 1, 0, 2, 5, 6} {
		b.add(at(time.Duration(r)*time.Second), []float64{float64(r)})
	}
	s := b.finish("s", "a")
	if segs(s) != "0s+3" || s.Read != 3 || gaps(s) != "3s-5s(2)" {
		t.Fatalf("segments %q read %d gaps %q", segs(s), s.Read, gaps(s))
	}
}

func TestBuilderSensorsGrowInSortedOrder(t *testing.T) {
	sec := int64(time.Second)
	b := newBuilder(sec, at(0), at(4*time.Second), nil, false)
	b.addSensors([]string{"temp"})
	b.add(at(0), []float64{20})
	b.addSensors([]string{"vib", "amp"}) // amp < temp < vib
	row := make([]float64, 3)
	row[b.index["amp"]], row[b.index["temp"]], row[b.index["vib"]] = 1, 21, 0.5
	b.add(at(time.Second), row)
	s := b.finish("s", "a")
	if !reflect.DeepEqual(s.Sensors, []string{"amp", "temp", "vib"}) {
		t.Fatalf("sensors %v", s.Sensors)
	}
	r0, r1 := s.Segments[0].Row(0), s.Segments[0].Row(1)
	if !math.IsNaN(r0[0]) || r0[1] != 20 || !math.IsNaN(r0[2]) || r1[0] != 1 || r1[1] != 21 || r1[2] != 0.5 {
		t.Fatalf("rows %v %v", r0, r1)
	}
	if !reflect.DeepEqual(s.Present, []int{1, 2, 1}) {
		t.Fatalf("present %v", s.Present)
	}
}

func TestFixedSensorsKeepOrderAndIgnoreOthers(t *testing.T) {
	b := newBuilder(int64(time.Second), at(0), at(2*time.Second), []string{"vib", "temp"}, true)
	b.addSensors([]string{"zz"})
	if !reflect.DeepEqual(b.sensors, []string{"vib", "temp"}) {
		t.Fatalf("sensors %v", b.sensors)
	}
}

// TestChunkCommitSortsAndMerges feeds a chunk as Flux's pivot can send it:
// a time first seen in a later field appended at the end, and one asset in
// two tables.
func TestChunkCommitSortsAndMerges(t *testing.T) {
	sec := time.Second
	c := newChunk([]string{"p1"})
	a := c.rows("p1")
	if c.rows("other") != nil {
		t.Fatal("rows of an asset not asked for")
	}
	x := a.column("x")
	for _, s := range []int{0, 1, 3} {
		a.cols[x][a.newRow(at(time.Duration(s)*sec))] = float64(s)
	}
	y := a.column("y") // a later table: y at 1 and 2
	for _, s := range []int{1, 2} {
		a.cols[y][a.newRow(at(time.Duration(s)*sec))] = 10 * float64(s)
	}
	b := newBuilder(int64(sec), at(0), at(4*sec), nil, false)
	c.commit(0, b)
	s := b.finish("s", "p1")
	if segs(s) != "0s+4" {
		t.Fatalf("segments %q", segs(s))
	}
	want := [][]float64{{0, math.NaN()}, {1, 10}, {math.NaN(), 20}, {3, math.NaN()}}
	for i, w := range want {
		if got := s.Segments[0].Row(i); !sameFloats(got, w) {
			t.Errorf("row %d: %v, want %v", i, got, w)
		}
	}
	c.reset()
	if len(a.times) != 0 || len(a.names) != 0 || len(a.cols) != 0 {
		t.Fatalf("reset left %d rows, %v", len(a.times), a.names)
	}
}

// TestChunkCommitAverages gives the stored points of two windows, out of
// order, as ResampleReader reads them: each window becomes one row, the
// mean of each sensor's values in it; a window with no value at all is no
// row.
func TestChunkCommitAverages(t *testing.T) {
	ms := time.Millisecond
	c := newChunk([]string{"p1"})
	a := c.rows("p1")
	x, y := a.column("x"), a.column("y")
	for _, p := range []struct {
		at   time.Duration
		x, y float64
	}{
		{1250 * ms, 4, math.NaN()}, {0, 1, 10}, {500 * ms, 2, math.NaN()}, {750 * ms, 3, 30}, {1000 * ms, 5, 50},
		{3000 * ms, math.NaN(), math.NaN()},
	} {
		i := a.newRow(at(p.at))
		a.cols[x][i], a.cols[y][i] = p.x, p.y
	}
	b := newBuilder(int64(time.Second), at(0), at(4*time.Second), nil, false)
	c.commit(0, b)
	s := b.finish("s", "p1")
	if segs(s) != "0s+2" || gaps(s) != "2s-4s(2)" {
		t.Fatalf("segments %q gaps %q", segs(s), gaps(s))
	}
	for i, w := range [][]float64{{2, 20}, {4.5, 50}} {
		if got := s.Segments[0].Row(i); !sameFloats(got, w) {
			t.Errorf("row %d: %v, want %v", i, got, w)
		}
	}
}

func sameFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && !(math.IsNaN(a[i]) && math.IsNaN(b[i])) {
			return false
		}
	}
	return true
}

func TestHash(t *testing.T) {
	build := func(rows []int, vals func(int) float64, chunks int) *Series {
		b := newBuilder(int64(time.Second), at(0), at(10*time.Second), nil, false)
		b.addSensors([]string{"x", "y"})
		for k, r := range rows {
			if chunks > 1 && k%chunks == 0 {
				b.reserve(b.rows() + 3)
			}
			b.add(at(time.Duration(r)*time.Second), []float64{vals(r), -vals(r)})
		}
		return b.finish("s", "a")
	}
	id := func(r int) float64 { return float64(r) }
	base := build(secs(0, 10), id, 1)
	if again := build(secs(0, 10), id, 3); again.Hash != base.Hash {
		t.Error("same data, grown differently: different hash")
	}
	if one := build(secs(0, 10), func(r int) float64 { return float64(r) + float64(btoi(r == 4))*1e-12 }, 1); one.Hash == base.Hash {
		t.Error("one value changed: same hash")
	}
	if moved := build(append(secs(0, 4), secs(5, 11)...), id, 1); moved.Hash == base.Hash {
		t.Error("a row at another time: same hash")
	}
	nan1 := build(secs(0, 3), func(int) float64 { return math.NaN() }, 1)
	nan2 := build(secs(0, 3), func(int) float64 { return math.Float64frombits(0x7ff8000000000abc) }, 1)
	if nan1.Hash != nan2.Hash {
		t.Error("NaNs with different bits hash differently")
	}
	if len(base.Hash) != 64 {
		t.Errorf("hash %q is not hex SHA-256", base.Hash)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestAlertExclusions(t *testing.T) {
	from, to := at(0), at(time.Hour)
	ms := func(d time.Duration) int64 { return t0.Add(d).UnixMilli() }
	tests := []struct {
		name   string
		events []alertEvent
		want   string // id:from-to after t0
	}{
		{"episode from first_ms to resolved", []alertEvent{
			{id: "a", state: "opened", at: at(10 * time.Minute), firstMs: ms(9 * time.Minute)},
			{id: "a", state: "updated", at: at(12 * time.Minute), firstMs: ms(9 * time.Minute)},
			{id: "a", state: "resolved", at: at(20 * time.Minute), firstMs: ms(9 * time.Minute)},
		}, "a:9m0s-20m0s"},
		{"no first_ms: from the opened event", []alertEvent{
			{id: "b", state: "opened", at: at(10 * time.Minute)}, {id: "b", state: "resolved", at: at(11 * time.Minute)},
		}, "b:10m0s-11m0s"},
		{"never resolved: to the range end", []alertEvent{{id: "c", state: "opened", at: at(50 * time.Minute)}}, "c:50m0s-1h0m0s"},
		{"opened before the range, resolved inside", []alertEvent{
			{id: "d", state: "opened", at: at(-2 * time.Hour), firstMs: ms(-3 * time.Hour)}, {id: "d", state: "resolved", at: at(5 * time.Minute)},
		}, "d:-3h0m0s-5m0s"},
		{"only resolved seen: from the range start", []alertEvent{{id: "e", state: "resolved", at: at(5 * time.Minute)}}, "e:0s-5m0s"},
		{"only updated with first_ms", []alertEvent{{id: "f", state: "updated", at: at(5 * time.Minute), firstMs: ms(-time.Minute)}}, "f:-1m0s-1h0m0s"},
		{"two alerts", []alertEvent{
			{id: "g", state: "opened", at: at(time.Minute)}, {id: "h", state: "opened", at: at(2 * time.Minute)}, {id: "g", state: "resolved", at: at(3 * time.Minute)},
		}, "g:1m0s-3m0s h:2m0s-1h0m0s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var parts []string
			for _, e := range alertExclusions(tc.events, from, to) {
				if e.Reason != ReasonAlert {
					t.Errorf("reason %q", e.Reason)
				}
				parts = append(parts, fmt.Sprintf("%s:%v-%v", e.ID, e.From.Sub(t0), e.To.Sub(t0)))
			}
			if got := strings.Join(parts, " "); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAnnotationExclusions(t *testing.T) {
	to := at(time.Hour)
	ms := func(d time.Duration) int64 { return t0.Add(d).UnixMilli() }
	anns := []annotation{
		{kind: "abnormal", start: at(30 * time.Minute), endMs: ms(31 * time.Minute), note: "noise"},
		{kind: "maintenance", start: at(10 * time.Minute), endMs: ms(20 * time.Minute)},
		{kind: "maintenance", start: at(50 * time.Minute)}, // still open
		{kind: "shift-change", start: at(5 * time.Minute), endMs: ms(6 * time.Minute)},
		{kind: "abnormal", start: at(40 * time.Minute), endMs: ms(39 * time.Minute)},
	}
	ex, ignored := annotationExclusions(anns, to)
	var parts []string
	for _, e := range ex {
		parts = append(parts, fmt.Sprintf("%s:%v-%v:%s", e.Reason, e.From.Sub(t0), e.To.Sub(t0), e.Note))
	}
	want := "maintenance:10m0s-20m0s: abnormal:30m0s-31m0s:noise maintenance:50m0s-1h0m0s:"
	if got := strings.Join(parts, " "); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if len(ignored) != 2 {
		t.Errorf("ignored %v, want the unknown kind and the backwards span", ignored)
	}
}

func TestPlan(t *testing.T) {
	q := Query{Site: "s", Assets: []string{"a", "b"}, From: t0.Add(1500 * time.Millisecond), To: t0.Add(time.Hour + 500*time.Millisecond), Step: time.Second}
	p := q.plan()
	if p.from != at(2*time.Second) || p.to != at(time.Hour) {
		t.Fatalf("range %v to %v, want rounded inward", unixTime(p.from), unixTime(p.to))
	}
	if p.chunk != int64(50_000*time.Second) || p.pad != int64(3*time.Second) || p.lookback != int64(DefaultLookback) {
		t.Fatalf("chunk %v pad %v lookback %v", time.Duration(p.chunk), time.Duration(p.pad), time.Duration(p.lookback))
	}
	q.Chunk, q.Pad = 1500*time.Millisecond, -1
	p = q.plan()
	if p.chunk != int64(time.Second) || p.pad != 0 || p.chunks() != 3598 {
		t.Fatalf("chunk %v pad %v chunks %d", time.Duration(p.chunk), p.pad, p.chunks())
	}
	q.Chunk = 7 * time.Minute
	p = q.plan()
	last, end := p.chunkRange(p.chunks() - 1)
	if end != p.to || last >= end || p.chunks() != 9 {
		t.Fatalf("%d chunks, last %v-%v", p.chunks(), unixTime(last), unixTime(end))
	}
}

func TestQueryValidate(t *testing.T) {
	ok := Query{Site: "s", Assets: []string{"a"}, From: t0, To: t0.Add(time.Hour), Step: time.Second}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(*Query)
		want string
	}{
		{"bad site", func(q *Query) { q.Site = "a b" }, "site"},
		{"no assets", func(q *Query) { q.Assets = nil }, "no assets"},
		{"asset twice", func(q *Query) { q.Assets = []string{"a", "a"} }, "twice"},
		{"bad asset", func(q *Query) { q.Assets = []string{`a"`} }, "asset"},
		{"seq as sensor", func(q *Query) { q.Sensors = []string{"seq"} }, "sensor"},
		{"step too short", func(q *Query) { q.Step = time.Microsecond }, "step"},
		{"chunk below step", func(q *Query) { q.Chunk = time.Millisecond }, "chunk (1ms) cannot be shorter than step (1s)"},
		{"empty range", func(q *Query) { q.To = q.From.Add(500 * time.Millisecond) }, "no whole step"},
		{"backwards", func(q *Query) { q.To = q.From.Add(-time.Hour) }, "no whole step"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := ok
			tc.edit(&q)
			if err := q.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestRefused(t *testing.T) {
	netErr := &url.Error{Op: "Post", URL: "http://x", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", ihttp.NewError(netErr), false},
		{"cut short", io.ErrUnexpectedEOF, false},
		{"503", &ihttp.Error{StatusCode: 503, Code: "unavailable"}, false},
		{"502", &ihttp.Error{StatusCode: 502}, false},
		{"429", &ihttp.Error{StatusCode: 429}, false},
		{"500 unknown", &ihttp.Error{StatusCode: 500, Code: "500 Internal Server Error", Message: "engine: shard closed"}, false},
		{"1.8 no database", &ihttp.Error{StatusCode: 500, Code: "500 Internal Server Error", Message: "failed to initialize execute state: no database"}, true},
		{"1.8 type error", &ihttp.Error{StatusCode: 500, Message: `type error 1:58-1:63: undefined identifier "bogus"`}, true},
		{"2.x bucket not found", &ihttp.Error{StatusCode: 404, Code: "not found", Message: `failed to initialize execute state: could not find bucket "x"`}, true},
		{"2.x bad request", &ihttp.Error{StatusCode: 400, Code: "invalid"}, true},
		{"401", &ihttp.Error{StatusCode: 401}, true},
		{"error table in the stream", errors.New("unsupported aggregate column type string"), true},
		{"1.8 syntax error", &ihttp.Error{StatusCode: 500, Message: "loc 1:37-1:53: expected RPAREN, got EOF"}, true},
		{"cut short, flattened by the client", errors.New("unexpected EOF,unexpected EOF"), false},
		{"gzip cut short", errors.New("gzip: invalid header"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := refused(tc.err); got != tc.want {
				t.Fatalf("refused(%v) = %v", tc.err, got)
			}
		})
	}
}

func TestFlux(t *testing.T) {
	got := readingsFlux("pdm/autogen", "s1", []string{"p1", "p2"}, nil, at(0), at(time.Hour), 5*time.Minute)
	for _, want := range []string{
		`from(bucket: "pdm/autogen")`,
		`range(start: 2025-03-03T00:00:00Z, stop: 2025-03-03T00:59:59.999999999Z)`,
		`r._measurement == "readings" and r.site == "s1" and (r.asset == "p1" or r.asset == "p2")`,
		`r._field != "seq"`,
		`aggregateWindow(every: 300s, fn: mean, createEmpty: false, timeSrc: "_start")`,
		`pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("flux lacks %s:\n%s", want, got)
		}
	}
	if got := readingsFlux("b", "s", []string{"a"}, []string{"x", "y"}, at(0), at(time.Second), 250*time.Millisecond); !strings.Contains(got, `filter(fn: (r) => r._field == "x" or r._field == "y")`) || !strings.Contains(got, "every: 250ms") {
		t.Errorf("sensor filter or step:\n%s", got)
	}
	if got := fluxString("a\"b\\c${d}"); got != `"a\"b\\c\${d}"` {
		t.Errorf("fluxString: %s", got)
	}
}
