package sink_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api/write"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/pdmstream/pdm/scorer/internal/backtest"
	"github.com/pdmstream/pdm/scorer/internal/sink"
	"github.com/pdmstream/pdm/scorer/internal/stream"
)

// The data page: its schema examples are the points the writers make, and
// every query on it runs against a day written as the pipeline writes it,
// giving the answer the page states.

const dataDoc = "../../../docs/data.md"

// docDay is the example day of docs/data.md; the test moves every time
// literal of the page by the distance from docDay to its own day.
var docDay = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// section is what docs/data.md says after one <!-- marker -->: the fenced
// blocks up to the next marker or heading, by language.
type section struct {
	name   string
	blocks map[string][]string
}

var markerRE = regexp.MustCompile(`^<!-- (query|point|export):? ?(.*?) -->$`)

// readDoc returns the page's sections by marker ("query: NAME",
// "point: NAME", "export").
func readDoc(t *testing.T) map[string]*section {
	t.Helper()
	f, err := os.Open(dataDoc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]*section{}
	var cur *section
	var lang string
	var block []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case in && line == "```":
			if cur != nil {
				cur.blocks[lang] = append(cur.blocks[lang], strings.Join(block, "\n"))
			}
			in, block = false, nil
		case in:
			block = append(block, line)
		case strings.HasPrefix(line, "```"):
			in, lang = true, strings.TrimPrefix(line, "```")
		case strings.HasPrefix(line, "#"):
			cur = nil
		default:
			if m := markerRE.FindStringSubmatch(line); m != nil {
				name := strings.TrimSpace(m[1] + " " + m[2])
				if out[name] != nil {
					t.Fatalf("%s: marker %q twice", dataDoc, name)
				}
				cur = &section{name: name, blocks: map[string][]string{}}
				out[name] = cur
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// one returns the section's only block of lang.
func (s *section) one(t *testing.T, lang string) string {
	t.Helper()
	if s == nil || len(s.blocks[lang]) != 1 {
		t.Fatalf("%s: section %v wants exactly one ```%s block", dataDoc, s, lang)
	}
	return s.blocks[lang][0]
}

// TestDataDocPoints: the page's example points are what the writers make
// of the example values: the historian's line for the example reading (the
// same line is checked against the historian's own code in
// ingest/internal/historian), the scorer's for a score and an alert event.
func TestDataDocPoints(t *testing.T) {
	doc := readDoc(t)
	var r wire.Reading
	if err := r.UnmarshalJSON([]byte(doc["point readings json"].one(t, "json"))); err != nil {
		t.Fatal(err)
	}
	check := func(what string, p *write.Point, precision time.Duration) {
		t.Helper()
		got := strings.TrimSuffix(write.PointToLineProtocol(p, precision), "\n")
		if want := doc["point "+what].one(t, "text"); got != want {
			t.Errorf("%s point:\n got %s\nwant %s (%s)", what, got, want, dataDoc)
		}
	}
	check("readings", readingPoint(r), time.Millisecond)

	at := docDay.Add(10*time.Hour + 20*time.Minute)
	check("scores", sink.ScorePoint(&stream.Score{Site: "plant-a", Asset: "pump-2", Seq: 621, Time: at, Score: 0.9, Alert: true,
		Contributions: []alert.Sensor{{Name: "vibration_rms", Share: 0.8}, {Name: "bearing_temp", Share: 0.2}},
		Forecast:      &alert.Forecast{TimeToFailure: 7200, Low: 5400, High: 9000},
		Model:         "online-ae", Version: "v1"}), time.Nanosecond)

	first := docDay.Add(10 * time.Hour)
	check("alerts", sink.AlertPoint(&alert.Alert{ID: alert.ID("pump-2", alert.KindAnomaly, 601), Site: "plant-a", Asset: "pump-2",
		Kind: alert.KindAnomaly, State: alert.Opened, Severity: alert.Warning, Score: 0.9, Peak: 0.9,
		TopSensors: []alert.Sensor{{Name: "vibration_rms", Share: 0.8}}, Forecast: &alert.Forecast{TimeToFailure: 7200, Low: 5400, High: 9000},
		Model: "online-ae", Version: "v1", FirstSeq: 601, LastSeq: 606, FirstTime: first, LastTime: first.Add(5 * time.Minute), Revision: 1}), time.Nanosecond)
}

// readingPoint is the historian's point of a reading
// (ingest/internal/historian appendPoints; the page's example line pins
// both to the same text).
func readingPoint(r wire.Reading) *write.Point {
	fields := make(map[string]any, len(r.Sensors)+1)
	for k, v := range r.Sensors {
		fields[k] = v
	}
	fields["seq"] = int64(r.Seq)
	return write.NewPoint("readings", map[string]string{"site": r.Site, "asset": r.Asset}, fields, r.Time)
}

// The example day. Minute i of the day is reading seq i+1 of every asset.
type asset struct {
	site, name string
	k          int // offset of its values
	minutes    int // readings from the day's start, one a minute (0: until now)
	scored     int // scores from the day's start
}

var fleet = []asset{
	{site: "plant-a", name: "pump-1", k: 0, scored: 1440},
	{site: "plant-a", name: "pump-2", k: 1, scored: 1440},
	{site: "plant-b", name: "fan-1", k: 2, minutes: 1200, scored: 1200},
}

const warmup = 20 // the first scores of each asset are warm-up

func sensors(a asset, i int) map[string]float64 {
	h, m := (i/60)%24, i%60
	// A steady level with a little deterministic noise, and pump-2's step.
	noise := float64((i*37+a.k*11)%21-10) / 200
	vib := 1.0 + 0.5*float64(a.k) + noise
	if a.name == "pump-2" && i >= 600 && i < 660 {
		vib = 4.0 + noise
	}
	if a.name == "fan-1" {
		return map[string]float64{"vibration_rms": vib, "motor_current": 12 + float64(m)/100}
	}
	return map[string]float64{"vibration_rms": vib, "bearing_temp": 50 + 10*float64(a.k) + float64(h) + (float64(m)-29.5)/100}
}

func version(a asset, i int) string {
	if a.name == "pump-1" && i >= 720 {
		return "v2"
	}
	return "v1"
}

// plateaus makes each version's score distribution: shares of 40%, 35%,
// 22% and 3% of the readings, so p50, p90 and p99 lie well inside one.
var plateaus = map[string][4]float64{"v1": {0.1, 0.2, 0.5, 0.95}, "v2": {0.05, 0.15, 0.4, 0.9}}

func scoreOf(a asset, i int) float64 {
	if i < warmup {
		return 0.99
	}
	p := plateaus[version(a, i)]
	switch j := i % 100; {
	case j < 40:
		return p[0]
	case j < 75:
		return p[1]
	case j < 97:
		return p[2]
	}
	return p[3]
}

// event is one alert event of the day, at minute at (minutes before the
// day when negative).
type event struct {
	asset      string
	first, at  int
	state      alert.State
	severity   alert.Severity
	resolution string
	ttf        float64
	acked      bool
}

var events = []event{
	{asset: "pump-2", first: 600, at: 605, state: alert.Opened, severity: alert.Warning, ttf: 7200},
	{asset: "pump-2", first: 600, at: 620, state: alert.Updated, severity: alert.Major, ttf: 6000},
	{asset: "pump-2", first: 600, at: 660, state: alert.Resolved, severity: alert.Major, resolution: alert.Recovered},
	{asset: "pump-1", first: 780, at: 783, state: alert.Opened, severity: alert.Warning},
	{asset: "pump-1", first: 780, at: 813, state: alert.Resolved, severity: alert.Warning, resolution: alert.NewNormal},
	{asset: "pump-1", first: 900, at: 902, state: alert.Opened, severity: alert.Major},
	{asset: "pump-1", first: 900, at: 910, state: alert.Updated, severity: alert.Major, acked: true},
	{asset: "pump-1", first: 900, at: 920, state: alert.Resolved, severity: alert.Major, resolution: alert.Operator, acked: true},
	{asset: "fan-1", first: 1080, at: 1084, state: alert.Opened, severity: alert.Critical, ttf: 1800},
	// Ten days before the day: outside "the last seven days", inside 30.
	{asset: "pump-1", first: -14400, at: -14395, state: alert.Opened, severity: alert.Warning},
	{asset: "pump-1", first: -14400, at: -14385, state: alert.Resolved, severity: alert.Warning, resolution: alert.Recovered},
}

// underAlert reports whether an alert of a was open at minute i.
func underAlert(a asset, i int) bool {
	open := -1
	for _, e := range events {
		if e.asset != a.name {
			continue
		}
		switch {
		case e.state == alert.Opened:
			open = e.at
		case e.state == alert.Resolved && open >= 0 && i >= open && i < e.at:
			return true
		case e.state == alert.Resolved:
			open = -1
		}
	}
	return open >= 0 && i >= open
}

func fleetAsset(name string) asset {
	for _, a := range fleet {
		if a.name == name {
			return a
		}
	}
	panic(name)
}

// writeDay writes the day starting at day: readings as the historian
// writes them (its client settings, its points), scores and alert events
// through the scorer's InfluxDB output. It returns each asset's last
// reading minute.
func writeDay(t *testing.T, base, bucket string, day time.Time) map[string]int {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	last := map[string]int{}
	client := influxdb2.NewClientWithOptions(base, stacktest.InfluxToken(t), influxdb2.DefaultOptions().SetPrecision(time.Millisecond).SetHTTPRequestTimeout(30))
	defer client.Close()
	w := client.WriteAPIBlocking("", bucket)
	var points []*write.Point
	for _, a := range fleet {
		n := a.minutes
		if n == 0 {
			n = int(now.Sub(day)/time.Minute) - 1 // up to a minute or two ago
		}
		last[a.name] = n - 1
		for i := range n {
			r := wire.Reading{Site: a.site, Asset: a.name, Seq: uint64(i + 1), Time: day.Add(time.Duration(i) * time.Minute), Sensors: sensors(a, i)}
			points = append(points, readingPoint(r))
		}
	}
	for len(points) > 0 {
		n := min(len(points), 5000)
		if err := w.WritePoint(ctx, points[:n]...); err != nil {
			t.Fatal(err)
		}
		points = points[n:]
	}

	var b stream.Batch
	for _, a := range fleet {
		for i := range a.scored {
			s := stream.Score{Site: a.site, Asset: a.name, Seq: uint64(i + 1), Time: day.Add(time.Duration(i) * time.Minute),
				Score: scoreOf(a, i), Alert: underAlert(a, i), WarmingUp: i < warmup, Model: "online-ae", Version: version(a, i)}
			share := 0.5
			if underAlert(a, i) && a.name == "pump-2" {
				share = 0.8
			}
			for name := range sensors(a, i) {
				c := alert.Sensor{Name: name, Share: 1 - share}
				if name == "vibration_rms" {
					c.Share = share
				}
				s.Contributions = append(s.Contributions, c)
			}
			b.Scores = append(b.Scores, s)
		}
	}
	revisions := map[string]int{}
	peak := map[string]float64{}
	for _, e := range events {
		a := fleetAsset(e.asset)
		id := alert.ID(a.name, alert.KindAnomaly, uint64(e.first+1))
		revisions[id]++
		score := 0.9 + 0.01*float64(revisions[id])
		if e.state == alert.Resolved {
			score = 0.2
		}
		peak[id] = max(peak[id], score)
		al := alert.Alert{ID: id, Site: a.site, Asset: a.name, Kind: alert.KindAnomaly, State: e.state, Severity: e.severity,
			Score: score, Peak: peak[id], TopSensors: []alert.Sensor{{Name: "vibration_rms", Share: 0.8}},
			Model: "online-ae", Version: version(a, e.at), FirstSeq: uint64(e.first + 1), LastSeq: uint64(e.at + 1),
			FirstTime: day.Add(time.Duration(e.first) * time.Minute), LastTime: day.Add(time.Duration(e.at) * time.Minute),
			Resolution: e.resolution, Revision: revisions[id], Acked: e.acked}
		if e.ttf > 0 {
			al.Forecast = &alert.Forecast{TimeToFailure: e.ttf, Low: e.ttf * 0.75, High: e.ttf * 1.25}
		}
		b.Alerts = append(b.Alerts, al)
	}
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped"})
	out := sink.NewInflux(base, stacktest.InfluxToken(t), "", bucket, 1000, dropped, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer out.Close(context.Background())
	if err := out.Write(ctx, &b); err != nil {
		t.Fatal(err)
	}
	stacktest.Eventually(t, time.Minute, func() bool { return out.Queued() == 0 }, "scores and alerts not written: %v queued", func() any { return out.Queued() })
	return last
}

// row is one row of an answer: column → value, numbers as float64, times
// as time.Time, the time column named "time" in both languages.
type row map[string]any

func fluxRows(t *testing.T, base, q string) ([]row, error) {
	t.Helper()
	c := influxdb2.NewClient(base, stacktest.InfluxToken(t))
	defer c.Close()
	res, err := c.QueryAPI("").Query(context.Background(), q)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	var out []row
	for res.Next() {
		r := row{}
		for k, v := range res.Record().Values() {
			switch k {
			case "result", "table", "_start", "_stop":
				continue
			case "_time":
				k = "time"
			}
			r[k] = normal(v)
		}
		out = append(out, r)
	}
	return out, res.Err()
}

func normal(v any) any {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case uint64:
		return float64(x)
	case json.Number:
		f, _ := x.Float64()
		return f
	}
	return v
}

// influxQLRows runs the statements; with more than one, each row says
// which in "statement".
func influxQLRows(t *testing.T, base, db, q string) ([]row, error) {
	t.Helper()
	resp, err := stacktest.InfluxQuery(t, base, url.Values{"db": {db}, "q": {q}, "epoch": {"ms"}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Results []struct {
			Error  string
			Series []struct {
				Tags    map[string]string
				Columns []string
				Values  [][]any
			}
		}
		Error string
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		return nil, fmt.Errorf("%s: %w", resp.Status, err)
	}
	if body.Error != "" {
		return nil, fmt.Errorf("%s", body.Error)
	}
	var out []row
	for i, res := range body.Results {
		if res.Error != "" {
			return nil, fmt.Errorf("statement %d: %s", i, res.Error)
		}
		for _, s := range res.Series {
			for _, vals := range s.Values {
				r := row{}
				for k, v := range s.Tags {
					r[k] = v
				}
				for j, c := range s.Columns {
					r[c] = normal(vals[j])
				}
				if ms, ok := r["time"].(float64); ok {
					r["time"] = time.UnixMilli(int64(ms)).UTC()
				}
				if len(body.Results) > 1 {
					r["statement"] = float64(i)
				}
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// matches reports whether got has every column of want with its value; a
// nil in want means the column is absent or null.
func matches(want, got row) bool {
	for k, w := range want {
		g := got[k]
		switch w := w.(type) {
		case nil:
			if g != nil {
				return false
			}
		case float64:
			f, ok := g.(float64)
			if !ok || math.Abs(f-w) > 1e-9*math.Max(1, math.Abs(w)) {
				return false
			}
		case time.Time:
			tm, ok := g.(time.Time)
			if !ok || !tm.Equal(w) {
				return false
			}
		default:
			if g != w {
				return false
			}
		}
	}
	return true
}

// sameRows compares as multisets: each wanted row matches one row got.
func sameRows(want, got []row) error {
	if len(want) != len(got) {
		return fmt.Errorf("%d rows, want %d", len(got), len(want))
	}
	used := make([]bool, len(got))
next:
	for _, w := range want {
		for j, g := range got {
			if !used[j] && matches(w, g) {
				used[j] = true
				continue next
			}
		}
		return fmt.Errorf("no row %v", w)
	}
	return nil
}

func showRows(rows []row) string {
	var b strings.Builder
	for i, r := range rows {
		if i == 20 {
			fmt.Fprintf(&b, "  ... %d more\n", len(rows)-i)
			break
		}
		keys := make([]string, 0, len(r))
		for k := range r {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString(" ")
		for _, k := range keys {
			v := r[k]
			if tm, ok := v.(time.Time); ok {
				v = tm.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(&b, " %s=%v", k, v)
		}
		b.WriteString("\n")
	}
	return b.String()
}

var timeRE = regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z`)

// localize points a query of the page at the test's database and day.
func localize(q, db string, shift time.Duration) string {
	q = strings.ReplaceAll(q, `"pdm/autogen"`, `"`+db+`/autogen"`)
	q = strings.ReplaceAll(q, `ON "pdm"`, `ON "`+db+`"`)
	return timeRE.ReplaceAllStringFunc(q, func(s string) string {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			panic(err)
		}
		return tm.Add(shift).Format(time.RFC3339)
	})
}

// answers are the page's answers for the day, per query: flux, and
// influxql when it differs.
func answers(day time.Time, last map[string]int) map[string][2][]row {
	at := func(i int) time.Time { return day.Add(time.Duration(i) * time.Minute) }
	both := func(rows []row) [2][]row { return [2][]row{rows, rows} }
	out := map[string][2][]row{}

	out["retention"] = [2][]row{
		{{"retentionPolicy": "autogen", "retentionPeriod": 0.0}},
		{{"name": "autogen", "duration": "0s", "default": true}},
	}
	id := func(asset string, first int) string { return alert.ID(asset, alert.KindAnomaly, uint64(first+1)) }
	out["alerts-last-week"] = both([]row{
		{"time": at(605), "site": "plant-a", "asset": "pump-2", "severity": "warning", "id": id("pump-2", 600), "first_ms": float64(at(600).UnixMilli()), "ttf_seconds": 7200.0, "peak": 0.91},
		{"time": at(783), "site": "plant-a", "asset": "pump-1", "severity": "warning", "id": id("pump-1", 780), "first_ms": float64(at(780).UnixMilli()), "ttf_seconds": nil},
		{"time": at(902), "site": "plant-a", "asset": "pump-1", "severity": "major", "id": id("pump-1", 900), "first_ms": float64(at(900).UnixMilli()), "ttf_seconds": nil},
		{"time": at(1084), "site": "plant-b", "asset": "fan-1", "severity": "critical", "id": id("fan-1", 1080), "first_ms": float64(at(1080).UnixMilli()), "ttf_seconds": 1800.0},
	})

	var around []row
	pump2 := fleetAsset("pump-2")
	for i := 590; i < 670; i++ {
		s := sensors(pump2, i)
		around = append(around, row{"time": at(i), "seq": float64(i + 1), "bearing_temp": s["bearing_temp"], "vibration_rms": s["vibration_rms"]})
	}
	out["readings-around-alert"] = both(around)

	out["false-alarm-share"] = [2][]row{
		{{"asset": "pump-1", "resolved": 3.0, "no_fault": 2.0, "share": 2.0 / 3}, {"asset": "pump-2", "resolved": 1.0, "no_fault": 0.0, "share": 0.0}},
		{{"statement": 0.0, "asset": "pump-1", "resolved": 3.0}, {"statement": 0.0, "asset": "pump-2", "resolved": 1.0}, {"statement": 1.0, "asset": "pump-1", "no_fault": 2.0}},
	}

	var quantiles []row
	for _, v := range []string{"v1", "v2"} {
		p := plateaus[v]
		quantiles = append(quantiles, row{"model": "online-ae", "version": v, "p50": p[1], "p90": p[2], "p99": p[3]})
	}
	out["score-quantiles"] = both(quantiles)

	var latest []row
	for _, a := range fleet {
		i := last[a.name]
		r := row{"time": at(i), "site": a.site, "asset": a.name, "seq": float64(i + 1), "bearing_temp": nil}
		for k, v := range sensors(a, i) {
			r[k] = v
		}
		latest = append(latest, r)
	}
	out["latest-reading"] = both(latest)

	var hourly []row
	pump1 := fleetAsset("pump-1")
	for h := range 24 {
		var vib float64
		for m := range 60 {
			vib += sensors(pump1, h*60+m)["vibration_rms"] / 60
		}
		hourly = append(hourly, row{"time": day.Add(time.Duration(h) * time.Hour), "bearing_temp": 50 + float64(h), "vibration_rms": vib})
	}
	out["hourly-mean"] = both(hourly)

	out["stale-assets"] = [2][]row{
		{{"time": at(1199), "site": "plant-b", "asset": "fan-1"}},
		{
			{"time": at(1199), "site": "plant-b", "asset": "fan-1", "seq": 1200.0},
			{"time": at(last["pump-1"]), "site": "plant-a", "asset": "pump-1", "seq": float64(last["pump-1"] + 1)},
			{"time": at(last["pump-2"]), "site": "plant-a", "asset": "pump-2", "seq": float64(last["pump-2"] + 1)},
		},
	}

	out["alerts-by-severity"] = both([]row{
		{"site": "plant-a", "severity": "warning", "alerts": 2.0},
		{"site": "plant-a", "severity": "major", "alerts": 1.0},
		{"site": "plant-b", "severity": "critical", "alerts": 1.0},
	})

	out["time-under-alert"] = [2][]row{
		{{"asset": "pump-2", "seconds": 3600.0, "readings": 60.0}, {"asset": "pump-1", "seconds": 3180.0, "readings": 53.0}},
		{{"asset": "pump-2", "readings": 60.0}, {"asset": "pump-1", "readings": 53.0}},
	}

	out["sensor-shares"] = both([]row{{"mean_share_vibration_rms": 0.8, "mean_share_bearing_temp": 0.2}})
	return out
}

// checkQuantileFixture: p50, p90 and p99 of each version's scores (warm-up
// left out) are the plateaus the answers name, by either rank rule, so
// the answer does not hang on how a quantile picks its rank.
func checkQuantileFixture(t *testing.T) {
	t.Helper()
	byVersion := map[string][]float64{}
	for _, a := range fleet {
		for i := warmup; i < a.scored; i++ {
			byVersion[version(a, i)] = append(byVersion[version(a, i)], scoreOf(a, i))
		}
	}
	for v, s := range byVersion {
		slices.Sort(s)
		p := plateaus[v]
		for k, q := range []float64{0.5, 0.9, 0.99} {
			n := float64(len(s))
			lo, hi := s[int(math.Max(math.Ceil(q*n)-1, 0))], s[int(math.Floor(q*n+0.5))-1]
			if lo != p[k+1] || hi != p[k+1] {
				t.Fatalf("fixture: %s q%v is %v..%v, not the plateau %v", v, q, lo, hi, p[k+1])
			}
		}
	}
}

// TestDataDocQueries runs every query of docs/data.md, in Flux and in
// InfluxQL, on a day written as the pipeline writes it, and checks the
// page's answers; then the page's export to CSV and `scorer backtest` on
// the file.
func TestDataDocQueries(t *testing.T) {
	base := stacktest.InfluxURL(t)
	bucket := stacktest.InfluxBucket(t)
	db, _, _ := strings.Cut(bucket, "/")
	checkQuantileFixture(t)
	doc := readDoc(t)

	// Yesterday, or the day before shortly after midnight: the whole day
	// and at least two hours after it have readings.
	day := time.Now().UTC().Add(-26 * time.Hour).Truncate(24 * time.Hour)
	shift := day.Sub(docDay)
	last := writeDay(t, base, bucket, day)
	want := answers(day, last)

	var queries []string
	for name := range doc {
		if q, ok := strings.CutPrefix(name, "query "); ok {
			queries = append(queries, q)
		}
	}
	sort.Strings(queries)
	for q := range want {
		if !slices.Contains(queries, q) {
			t.Errorf("%s has no query %q", dataDoc, q)
		}
	}
	if len(queries) < 11 {
		t.Errorf("%s has %d queries, want the retention query and ten questions", dataDoc, len(queries))
	}
	for _, name := range queries {
		s := doc["query "+name]
		w, ok := want[name]
		if !ok {
			t.Errorf("%s: query %q has no answer in this test", dataDoc, name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			for k, lang := range []string{"flux", "influxql"} {
				q := localize(s.one(t, lang), db, shift)
				var got []row
				var err error
				if lang == "flux" {
					got, err = fluxRows(t, base, q)
				} else {
					got, err = influxQLRows(t, base, db, q)
				}
				if err != nil {
					t.Errorf("%s: %v\n%s", lang, err, q)
					continue
				}
				if err := sameRows(w[k], got); err != nil {
					t.Errorf("%s: %v; got\n%s%s", lang, err, showRows(got), q)
				}
			}
		})
	}

	t.Run("export", func(t *testing.T) { checkExport(t, doc["export"].one(t, "sh"), base, db, day, shift) })
}

// checkExport runs the page's export command (curl) against the test's
// InfluxDB, then its `scorer backtest` line on the file: the CSV holds the
// window's readings one minute apart, and the backtest of that window
// sees pump-2's vibration step.
func checkExport(t *testing.T, script, base, db string, day time.Time, shift time.Duration) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("the export command needs curl: %v", err)
	}
	dir := t.TempDir()
	var shell []string
	var backtestArgs []string
	for _, line := range strings.Split(script, "\n") {
		if rest, ok := strings.CutPrefix(line, "scorer backtest "); ok {
			backtestArgs = strings.Fields(rest)
			continue
		}
		line = strings.ReplaceAll(line, "http://127.0.0.1:8086", base)
		line = strings.ReplaceAll(line, "db=pdm ", "db="+db+" ")
		shell = append(shell, localize(line, db, shift))
	}
	if backtestArgs == nil {
		t.Fatalf("%s: the export block has no scorer backtest line", dataDoc)
	}
	// The script reads the local stack's token from where make up keeps it.
	secrets := filepath.Join(dir, ".stack", "secrets", "influx")
	if err := os.MkdirAll(secrets, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secrets, "admin.token"), []byte(stacktest.InfluxToken(t)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", strings.Join(shell, "\n"))
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("export: %v: %s\n%s", err, out, strings.Join(shell, "\n"))
	}

	f, err := os.Open(filepath.Join(dir, "pump-2.csv"))
	if err != nil {
		t.Fatal(err)
	}
	tab, err := backtest.ReadTable(f, backtest.ReadOptions{Exclude: []string{"name", "tags"}})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tab.Sensors, []string{"bearing_temp", "vibration_rms"}) || len(tab.Values) != 360 || tab.TimeCol != "time" {
		t.Fatalf("exported table: sensors %v, %d rows, time column %q; want bearing_temp and vibration_rms, 360 rows, time", tab.Sensors, len(tab.Values), tab.TimeCol)
	}
	if !tab.Times[0].Equal(day.Add(6*time.Hour)) || tab.Times[1].Sub(tab.Times[0]) != time.Minute {
		t.Fatalf("exported times start %v, step %v; want %v, 1m", tab.Times[0], tab.Times[1].Sub(tab.Times[0]), day.Add(6*time.Hour))
	}

	t.Chdir(dir) // the command's file names are relative, as on the page
	if err := backtest.Command(context.Background(), backtestArgs); err != nil {
		t.Fatalf("scorer backtest %v: %v", backtestArgs, err)
	}
	scores, err := os.ReadFile(filepath.Join(dir, "pump-2.scores.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(scores)), "\n"); len(lines) != 361 || lines[0] != backtest.Header {
		t.Fatalf("backtest output: %d lines, header %q; want the header and 360 rows", len(lines), lines[0])
	}
	evs, err := os.ReadFile(filepath.Join(dir, "pump-2.alerts.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	opened := false
	for _, l := range strings.Split(strings.TrimSpace(string(evs)), "\n") {
		var a alert.Alert
		if err := json.Unmarshal([]byte(l), &a); err == nil && a.State == alert.Opened &&
			!a.FirstTime.Before(day.Add(10*time.Hour)) && a.FirstTime.Before(day.Add(11*time.Hour)) {
			opened = true
		}
	}
	if !opened {
		t.Fatalf("the backtest of the exported window opened no alert in the vibration step at 10:00; events:\n%s", evs)
	}
}
