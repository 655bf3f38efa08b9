package history

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/retry"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
)

// The scenario every integration test reads, 20 minutes at site "plant"
// from t0, readings every 250 ms:
//
//	p1: vib, temp; press only from 14:00; no readings in [5:00, 5:30);
//	    alert al-0 opened before the range, resolved at 0:40;
//	    alert al-1 opened 8:00 (first_ms 7:50), updated 8:10, resolved 8:30;
//	    maintenance 11:00 to 12:00.
//	p2: vib, temp; abnormal 3:00 to 3:20 ("bearing noise");
//	    alert al-2 opened 15:00 without first_ms, never resolved.
//
// Also written, and never to be read: p1 at another site, p3 at "plant",
// readings before and after the range, and a first value of p1's vib at
// 2:00.250 that the full data overwrites.
const (
	site      = "plant"
	rangeLen  = 20 * time.Minute
	cadenceMs = 250
	pad       = 2 * time.Second
)

// raw is the model of what is stored: asset → sensor → Unix ms → value.
type raw map[string]map[string]map[int64]float64

func (r raw) set(asset, sensor string, ms int64, v float64) {
	if r[asset] == nil {
		r[asset] = map[string]map[int64]float64{}
	}
	if r[asset][sensor] == nil {
		r[asset][sensor] = map[int64]float64{}
	}
	r[asset][sensor][ms] = v
}

// mean is what aggregateWindow should give for asset's sensor in
// [t, t+step): NaN without points.
func (r raw) mean(asset, sensor string, t time.Time, step time.Duration) float64 {
	sum, n := 0.0, 0
	for ms := t.UnixMilli(); ms < t.Add(step).UnixMilli(); ms++ {
		if v, ok := r[asset][sensor][ms]; ok {
			sum += v
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

// value is the known pattern: a function of asset, sensor and time.
func value(asset, sensor string, ms int64) float64 {
	s := float64(ms-t0.UnixMilli()) / 1000
	off := map[string]float64{"p1": 1, "p2": 5, "p3": 9}[asset]
	switch sensor {
	case "vib":
		return off + 0.001*s + 0.1*math.Sin(s/7)
	case "temp":
		return 40 + off + 0.01*s
	}
	return 3 + 0.0001*s
}

type influxEnv struct {
	url, bucket string
	raw         raw
}

// scenario writes the scenario into a fresh database and waits until
// InfluxDB returns all of it.
func scenario(t *testing.T) *influxEnv {
	t.Helper()
	base := stacktest.InfluxURL(t)
	env := &influxEnv{url: base, bucket: stacktest.InfluxBucket(t), raw: raw{}}
	ms := func(d time.Duration) int64 { return t0.Add(d).UnixMilli() }
	// The first value of p1's vib at 2:00.250, overwritten below.
	writeLines(t, env, []string{fmt.Sprintf("readings,site=%s,asset=p1 vib=999,temp=999,seq=0i %d", site, ms(120*time.Second+250*time.Millisecond))})
	var lines []string
	n := 0
	for m := ms(-time.Minute); m < ms(rangeLen+time.Minute); m += cadenceMs {
		d := time.Duration(m-t0.UnixMilli()) * time.Millisecond
		for _, a := range []string{"p1", "p2", "p3"} {
			if a == "p1" && d >= 5*time.Minute && d < 5*time.Minute+30*time.Second {
				continue
			}
			fields := []string{"vib", "temp"}
			if a == "p1" && d >= 14*time.Minute {
				fields = append(fields, "press")
			}
			var kv []string
			for _, f := range fields {
				v := value(a, f, m)
				kv = append(kv, fmt.Sprintf("%s=%s", f, fmtFloat(v)))
				if a != "p3" {
					env.raw.set(a, f, m, v)
				}
			}
			n++
			lines = append(lines, fmt.Sprintf("readings,site=%s,asset=%s %s,seq=%di %d", site, a, strings.Join(kv, ","), n, m))
		}
		lines = append(lines, fmt.Sprintf("readings,site=elsewhere,asset=p1 vib=-1,temp=-1 %d", m))
	}
	alert := func(asset, id, state string, d time.Duration, firstMs int64) string {
		first := ""
		if firstMs != 0 {
			first = fmt.Sprintf(",first_ms=%di", firstMs)
		}
		return fmt.Sprintf(`alerts,site=%s,asset=%s,kind=anomaly,severity=critical,state=%s id="%s",score=0.99,peak=0.99,revision=1i,first_seq=1i,last_seq=2i,model="online-ae",version="v1",top_sensor="vib",acked=false%s %d`,
			site, asset, state, id, first, ms(d))
	}
	ann := func(asset, kind string, from, to time.Duration, note string) string {
		return fmt.Sprintf(`annotations,site=%s,asset=%s,kind=%s end_ms=%di,note="%s" %d`, site, asset, kind, ms(to), note, ms(from))
	}
	lines = append(lines,
		alert("p1", "al-0", "opened", -5*time.Minute, ms(-5*time.Minute-10*time.Second)),
		alert("p1", "al-0", "resolved", 40*time.Second, ms(-5*time.Minute-10*time.Second)),
		alert("p1", "al-1", "opened", 8*time.Minute, ms(7*time.Minute+50*time.Second)),
		alert("p1", "al-1", "updated", 8*time.Minute+10*time.Second, ms(7*time.Minute+50*time.Second)),
		alert("p1", "al-1", "resolved", 8*time.Minute+30*time.Second, ms(7*time.Minute+50*time.Second)),
		alert("p2", "al-2", "opened", 15*time.Minute, 0),
		alert("p3", "al-3", "opened", time.Minute, 0),
		ann("p1", "maintenance", 11*time.Minute, 12*time.Minute, "bearing replaced"),
		ann("p2", "abnormal", 3*time.Minute, 3*time.Minute+20*time.Second, "bearing noise"),
		ann("p3", "maintenance", 0, 10*time.Minute, "never read"),
	)
	writeLines(t, env, lines)
	db, _, _ := strings.Cut(env.bucket, "/")
	want := n
	stacktest.Eventually(t, 30*time.Second, func() bool {
		return influxCount(t, base, db, "SELECT count(seq) FROM readings WHERE site = 'plant'") == want
	}, "readings not all visible in %s", db)
	return env
}

func fmtFloat(v float64) string { return fmt.Sprintf("%.17g", v) }

// writeLines writes line protocol (ms precision) through the write API
// 1.8 and 2.x share.
func writeLines(t testing.TB, env *influxEnv, lines []string) {
	t.Helper()
	stacktest.InfluxWrite(t, env.url, env.bucket, lines)
}

// influxCount runs an InfluxQL count and returns its value (0 for none).
func influxCount(t testing.TB, base, db, q string) int {
	t.Helper()
	resp, err := stacktest.InfluxQuery(t, base, url.Values{"db": {db}, "q": {q}})
	if err != nil {
		t.Fatalf("influxql: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		Results []struct {
			Series []struct {
				Values [][]any `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("influxql: %v", err)
	}
	if len(out.Results) == 0 || len(out.Results[0].Series) == 0 || len(out.Results[0].Series[0].Values) == 0 {
		return 0
	}
	v, _ := out.Results[0].Series[0].Values[0][1].(float64)
	return int(v)
}

// logBuffer collects a test's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// count returns the number of lines holding s.
func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newReader(t testing.TB, cfg Config, logs io.Writer) *Reader {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	cfg.Token = stacktest.InfluxToken(t)
	if cfg.Backoff == (retry.Backoff{}) {
		cfg.Backoff = retry.Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond}
	}
	r, err := New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

func baseQuery(assets ...string) Query {
	return Query{Site: site, Assets: assets, From: t0, To: t0.Add(rangeLen), Step: time.Second, Pad: pad}
}

// recorder is a Reporter that keeps every report.
type recorder struct{ rows, chunk, chunks []int }

func (r *recorder) Report(rows, chunk, chunks int) {
	r.rows, r.chunk, r.chunks = append(r.rows, rows), append(r.chunk, chunk), append(r.chunks, chunks)
}

// want is what the scenario must give per asset.
var want = map[string]struct {
	sensors            []string
	segs, gaps, excl   string
	rows, read         int
	present            []int
	excludedIDsOrNotes []string
}{
	"p1": {
		sensors: []string{"press", "temp", "vib"},
		segs:    "42s+258 5m30s+138 8m32s+146 12m2s+478",
		gaps:    "5m0s-5m30s(30)",
		excl:    "alertal-0:0s-42s(42) alertal-1:7m48s-8m32s(44) maintenance:10m58s-12m2s(64)",
		rows:    1020, read: 1170, present: []int{360, 1020, 1020},
		excludedIDsOrNotes: []string{"al-0", "al-1", "bearing replaced"},
	},
	"p2": {
		sensors: []string{"temp", "vib"},
		segs:    "0s+178 3m22s+696",
		excl:    "abnormal:2m58s-3m22s(24) alertal-2:14m58s-20m0s(302)",
		rows:    874, read: 1200, present: []int{874, 874},
		excludedIDsOrNotes: []string{"bearing noise", "al-2"},
	},
}

// checkSeries compares s with the scenario: structure, then every value
// against the mean of the points written in its window.
func checkSeries(t *testing.T, env *influxEnv, s *Series) {
	t.Helper()
	w, ok := want[s.Asset]
	if !ok {
		t.Fatalf("unexpected asset %q", s.Asset)
	}
	if !reflect.DeepEqual(s.Sensors, w.sensors) {
		t.Errorf("%s: sensors %v, want %v", s.Asset, s.Sensors, w.sensors)
	}
	if got := segs(s); got != w.segs {
		t.Errorf("%s: segments %q\nwant %q", s.Asset, got, w.segs)
	}
	if got := gaps(s); got != w.gaps {
		t.Errorf("%s: gaps %q, want %q", s.Asset, got, w.gaps)
	}
	if got := excluded(s); got != w.excl {
		t.Errorf("%s: excluded %q\nwant %q", s.Asset, got, w.excl)
	}
	for i, e := range s.Excluded {
		if i < len(w.excludedIDsOrNotes) && e.ID+e.Note != w.excludedIDsOrNotes[i] {
			t.Errorf("%s: exclusion %d names %q%q, want %q", s.Asset, i, e.ID, e.Note, w.excludedIDsOrNotes[i])
		}
	}
	if s.Rows != w.rows || s.Read != w.read || !reflect.DeepEqual(s.Present, w.present) {
		t.Errorf("%s: rows %d read %d present %v, want %d %d %v", s.Asset, s.Rows, s.Read, s.Present, w.rows, w.read, w.present)
	}
	if s.Site != site || s.Step != time.Second || !s.From.Equal(t0) || !s.To.Equal(t0.Add(rangeLen)) {
		t.Errorf("%s: site %q step %v range %v-%v", s.Asset, s.Site, s.Step, s.From, s.To)
	}
	bad := 0
	for _, sg := range s.Segments {
		for i := range sg.N {
			for j, name := range s.Sensors {
				got, exp := sg.Row(i)[j], env.raw.mean(s.Asset, name, sg.Time(i), s.Step)
				if math.IsNaN(got) != math.IsNaN(exp) || math.Abs(got-exp) > 1e-9*max(1, math.Abs(exp)) {
					if bad++; bad <= 5 {
						t.Errorf("%s %s at %v: %v, want %v", s.Asset, name, sg.Time(i).Sub(t0), got, exp)
					}
				}
			}
		}
	}
}

// sameSeries fails unless a and b hold the same data.
func sameSeries(t *testing.T, what string, a, b *Series) {
	t.Helper()
	if a.Hash != b.Hash || segs(a) != segs(b) || gaps(a) != gaps(b) || excluded(a) != excluded(b) ||
		!reflect.DeepEqual(a.Sensors, b.Sensors) || a.Rows != b.Rows || a.Read != b.Read || !reflect.DeepEqual(a.Present, b.Present) {
		t.Errorf("%s: %s differs:\n%s %s %s %v %d\n%s %s %s %v %d", what, a.Asset, a.Hash, segs(a), excluded(a), a.Sensors, a.Rows, b.Hash, segs(b), excluded(b), b.Sensors, b.Rows)
	}
}

func TestReadScenario(t *testing.T) {
	env := scenario(t)
	ctx := context.Background()
	readers := map[Resample]*Reader{
		ResampleServer: newReader(t, Config{URL: env.url, Bucket: env.bucket}, nil),
		ResampleReader: newReader(t, Config{URL: env.url, Bucket: env.bucket, Resample: ResampleReader}, nil),
	}
	first := map[string]*Series{} // by resample and asset
	tests := []struct {
		name     string
		resample Resample
		assets   []string
		chunk    time.Duration
	}{
		{"p1 one chunk", ResampleServer, []string{"p1"}, time.Hour},
		{"p2 one chunk", ResampleServer, []string{"p2"}, time.Hour},
		{"p1 in 37s chunks", ResampleServer, []string{"p1"}, 37 * time.Second},
		{"p2 in 37s chunks", ResampleServer, []string{"p2"}, 37 * time.Second},
		{"class p1+p2, default chunk", ResampleServer, []string{"p1", "p2"}, 0},
		{"class p2+p1 in 1m chunks", ResampleServer, []string{"p2", "p1"}, time.Minute},
		{"mean in the reader, class, one chunk", ResampleReader, []string{"p1", "p2"}, time.Hour},
		{"mean in the reader, class, 37s chunks", ResampleReader, []string{"p1", "p2"}, 37 * time.Second},
		{"mean in the reader, p1, default chunk", ResampleReader, []string{"p1"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := baseQuery(tc.assets...)
			q.Chunk = tc.chunk
			rep := &recorder{}
			got, err := readers[tc.resample].Read(ctx, q, rep)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.assets) {
				t.Fatalf("%d series for %d assets", len(got), len(tc.assets))
			}
			total := 0
			for i, s := range got {
				if s.Asset != tc.assets[i] {
					t.Fatalf("series %d is %s, want %s", i, s.Asset, tc.assets[i])
				}
				checkSeries(t, env, s)
				total += s.Rows
				key := string(tc.resample) + "/" + s.Asset
				if f, ok := first[key]; ok {
					sameSeries(t, tc.name+" vs the first read", f, s)
				} else {
					first[key] = s
				}
			}
			if len(rep.chunk) == 0 || rep.chunk[len(rep.chunk)-1] != rep.chunks[0] || rep.rows[len(rep.rows)-1] != total {
				t.Errorf("progress: chunks %v of %v, rows %v; want up to the last chunk and %d rows", rep.chunk, rep.chunks, rep.rows, total)
			}
			if tc.resample == ResampleServer && len(rep.chunk) != q.plan().chunks() {
				t.Errorf("%d reports, want one per chunk (%d)", len(rep.chunk), q.plan().chunks())
			}
			for i := 1; i < len(rep.rows); i++ {
				if rep.rows[i] < rep.rows[i-1] {
					t.Errorf("progress rows went back: %v", rep.rows)
				}
			}
		})
	}
	for _, a := range []string{"p1", "p2"} {
		s, r := first["server/"+a], first["reader/"+a]
		t.Logf("%s: hash with the mean in InfluxDB %s, in the reader %s (equal: %v)", a, s.Hash[:12], r.Hash[:12], s.Hash == r.Hash)
	}
}

func TestReadSensorsGiven(t *testing.T) {
	env := scenario(t)
	r := newReader(t, Config{URL: env.url, Bucket: env.bucket}, nil)
	q := baseQuery("p2")
	q.Sensors = []string{"vib", "press"} // press is not stored for p2
	got, err := r.Read(context.Background(), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := got[0]
	if !reflect.DeepEqual(s.Sensors, []string{"vib", "press"}) || !reflect.DeepEqual(s.Present, []int{874, 0}) || segs(s) != want["p2"].segs {
		t.Fatalf("sensors %v present %v segments %q", s.Sensors, s.Present, segs(s))
	}
	for _, sg := range s.Segments {
		for i := range sg.N {
			if v, exp := sg.Row(i)[0], env.raw.mean("p2", "vib", sg.Time(i), time.Second); math.Abs(v-exp) > 1e-9*max(1, math.Abs(exp)) || !math.IsNaN(sg.Row(i)[1]) {
				t.Fatalf("row at %v: %v, want [%v NaN]", sg.Time(i).Sub(t0), sg.Row(i), exp)
			}
		}
	}
}

// TestReadHashFollowsData changes one stored value: the hash changes, the
// row of that window alone differs, and reading again gives the new hash.
func TestReadHashFollowsData(t *testing.T) {
	env := scenario(t)
	r := newReader(t, Config{URL: env.url, Bucket: env.bucket}, nil)
	ctx := context.Background()
	read := func() *Series {
		t.Helper()
		got, err := r.Read(ctx, baseQuery("p2"), nil)
		if err != nil {
			t.Fatal(err)
		}
		return got[0]
	}
	before := read()
	if again := read(); again.Hash != before.Hash {
		t.Fatal("the same data read twice hashes differently")
	}
	m := t0.Add(60*time.Second + 500*time.Millisecond).UnixMilli()
	v := value("p2", "vib", m) + 1
	writeLines(t, env, []string{fmt.Sprintf("readings,site=%s,asset=p2 vib=%s %d", site, fmtFloat(v), m)})
	var after *Series
	stacktest.Eventually(t, 30*time.Second, func() bool { after = read(); return after.Hash != before.Hash }, "hash unchanged after a value changed")
	diffs := 0
	for k, sg := range after.Segments {
		for i := range sg.N {
			for j := range after.Sensors {
				if d := sg.Row(i)[j] - before.Segments[k].Row(i)[j]; d != 0 {
					diffs++
					if !sg.Time(i).Equal(t0.Add(60*time.Second)) || after.Sensors[j] != "vib" || math.Abs(d-0.25) > 1e-9 {
						t.Errorf("%s at %v changed by %v", after.Sensors[j], sg.Time(i).Sub(t0), d)
					}
				}
			}
		}
	}
	if diffs != 1 {
		t.Errorf("%d values changed, want 1", diffs)
	}
	if again := read(); again.Hash != after.Hash {
		t.Error("hash not stable after the change")
	}
}

func TestReadErrors(t *testing.T) {
	env := scenario(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		bucket string
		edit   func(*Query)
		is     error
		msg    string
	}{
		{name: "unknown database", bucket: "no_such_db_" + strings.ReplaceAll(stacktest.Unique("x"), "-", "_") + "/autogen", is: ErrRejected, msg: "no database"},
		{name: "empty range", edit: func(q *Query) { q.From, q.To = t0.Add(-48*time.Hour), t0.Add(-47*time.Hour) }, is: ErrNoData, msg: "no readings stored"},
		{name: "unknown asset", edit: func(q *Query) { q.Assets = []string{"p9"} }, is: ErrNoData, msg: "no readings stored"},
		{name: "all excluded", edit: func(q *Query) { q.From, q.To = t0.Add(15*time.Minute), t0.Add(16*time.Minute) }, is: ErrNoData, msg: "all 60 rows excluded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := &logBuffer{}
			r := newReader(t, Config{URL: env.url, Bucket: cmpOr(tc.bucket, env.bucket)}, logs)
			q := baseQuery("p2")
			if tc.edit != nil {
				tc.edit(&q)
			}
			got, err := r.Read(ctx, q, nil)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v with %q", err, tc.is, tc.msg)
			}
			t.Logf("%v", err)
			if logs.count("influxdb is failing") != 0 {
				t.Errorf("a permanent error was retried:\n%s", logs)
			}
			var nd *NoDataError
			if errors.As(err, &nd) {
				if len(got) != 1 || got[0].Rows != 0 || nd.Site != site {
					t.Errorf("no data: %d series, %+v", len(got), nd)
				}
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestReadRetries shows InfluxDB failing in three ways during a read, each
// retried to the same result as a read that never failed, with one log
// line when the failures start and one when they end.
func TestReadRetries(t *testing.T) {
	env := scenario(t)
	ctx := context.Background()
	q := baseQuery("p1", "p2")
	q.Chunk = 2 * time.Minute
	direct, err := newReader(t, Config{URL: env.url, Bucket: env.bucket}, nil).Read(ctx, q, nil)
	if err != nil {
		t.Fatal(err)
	}
	upstream := strings.TrimPrefix(env.url, "http://")
	target, _ := url.Parse(env.url)

	t.Run("nothing listening, then the server", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		var dials atomic.Int32
		client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{Timeout: time.Second}).DialContext(ctx, network, a)
		}}}
		logs := &logBuffer{}
		r := newReader(t, Config{URL: "http://" + addr, Bucket: env.bucket, HTTPClient: client}, logs)
		done := make(chan error, 1)
		var got []*Series
		go func() { var err error; got, err = r.Read(ctx, q, nil); done <- err }()
		stacktest.Eventually(t, 30*time.Second, func() bool { return dials.Load() >= 5 }, "fewer than 5 connection attempts")
		stacktest.Proxy(t, addr, upstream)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		checkRecovered(t, logs, "connection refused")
		for i := range got {
			sameSeries(t, "after the outage", direct[i], got[i])
		}
	})

	t.Run("503 five times", func(t *testing.T) {
		var served atomic.Int32
		rp := httputil.NewSingleHostReverseProxy(target)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if served.Add(1) <= 5 {
				http.Error(w, "overloaded", http.StatusServiceUnavailable)
				return
			}
			rp.ServeHTTP(w, req)
		}))
		t.Cleanup(srv.Close)
		logs := &logBuffer{}
		got, err := newReader(t, Config{URL: srv.URL, Bucket: env.bucket}, logs).Read(ctx, q, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkRecovered(t, logs, "failed_attempts=5")
		for i := range got {
			sameSeries(t, "after 503s", direct[i], got[i])
		}
	})

	t.Run("response cut short mid-chunk", func(t *testing.T) {
		var chunks atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			body, _ := io.ReadAll(req.Body)
			if !bytes.Contains(body, []byte(`\"readings\"`)) || chunks.Add(1) != 3 {
				req.Body = io.NopCloser(bytes.NewReader(body))
				httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, req)
				return
			}
			// The third chunk's first attempt: half the response, then the
			// connection drops.
			up, err := http.NewRequest(req.Method, env.url+req.URL.RequestURI(), bytes.NewReader(body))
			if err != nil {
				panic(err)
			}
			up.Header = req.Header.Clone()
			resp, err := http.DefaultTransport.RoundTrip(up)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			full, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for k, v := range resp.Header {
				w.Header()[k] = v
			}
			w.Header().Del("Content-Length")
			w.WriteHeader(resp.StatusCode)
			_, _ = w.Write(full[:len(full)/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}))
		t.Cleanup(srv.Close)
		logs := &logBuffer{}
		got, err := newReader(t, Config{URL: srv.URL, Bucket: env.bucket}, logs).Read(ctx, q, nil)
		if err != nil {
			t.Fatal(err)
		}
		if chunks.Load() <= int32(q.plan().chunks()) {
			t.Fatalf("%d chunk requests for %d chunks: no retry happened", chunks.Load(), q.plan().chunks())
		}
		checkRecovered(t, logs, "readings chunk 3/10")
		for i := range got {
			sameSeries(t, "after a cut", direct[i], got[i])
		}
	})

	t.Run("down for longer than retry_for", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		logs := &logBuffer{}
		_, err = newReader(t, Config{URL: "http://" + addr, Bucket: env.bucket, RetryFor: 300 * time.Millisecond}, logs).Read(ctx, q, nil)
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("got %v, want ErrUnavailable", err)
		}
		if logs.count("influxdb is failing") != 1 {
			t.Errorf("want one failure line:\n%s", logs)
		}
	})
}

// checkRecovered wants exactly one line when failing started (naming
// what) and one when InfluxDB answered again.
func checkRecovered(t *testing.T, logs *logBuffer, what string) {
	t.Helper()
	if logs.count("influxdb is failing") != 1 || logs.count("influxdb answers again") != 1 || !strings.Contains(logs.String(), what) {
		t.Errorf("want one failure line and one recovery line mentioning %q:\n%s", what, logs)
	}
	t.Logf("logs:\n%s", logs)
}
