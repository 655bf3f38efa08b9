package backtest

import (
	"encoding/json"

	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/pdmstream/pdm/pdmkit/alert"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// synth writes a CSV of n rows with a shift in "flow" from row shiftAt on,
// labelled in "anomaly".
func synth(t *testing.T, n, shiftAt int, sep string) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	fmt.Fprintf(&b, "datetime%sflow%scurrent%sanomaly%snote\n", sep, sep, sep, sep)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		s := math.Sin(float64(i) / 3)
		flow := 32 + s + 0.3*rng.NormFloat64()
		lab := 0
		if i >= shiftAt {
			flow -= 1.5
			lab = 1
		}
		fmt.Fprintf(&b, "%s%s%.4f%s%.4f%s%d%sx\n", t0.Add(time.Duration(i)*time.Second).Format("2006-01-02 15:04:05"), sep, flow, sep, 2+0.5*s+0.1*rng.NormFloat64(), sep, lab, sep)
	}
	return b.String()
}

// TestBacktestWritesEvents: --events receives the alert events as the
// scorer publishes them, in order, and the alert column is 1 exactly while
// one is open.
func TestBacktestWritesEvents(t *testing.T) {
	tab, err := ReadTable(strings.NewReader(synth(t, 1100, 600, ",")), ReadOptions{LabelCol: "anomaly", Exclude: []string{"note"}})
	if err != nil {
		t.Fatal(err)
	}
	var out, events bytes.Buffer
	if _, err := Run(context.Background(), tab, &out, Options{WarmupRows: 300, Events: &events, Asset: "pump-9"}); err != nil {
		t.Fatal(err)
	}
	var evs []alert.Alert
	dec := json.NewDecoder(&events)
	for dec.More() {
		var a alert.Alert
		if err := dec.Decode(&a); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, a)
	}
	if len(evs) < 2 || evs[0].State != alert.Opened || evs[len(evs)-1].State != alert.Resolved || evs[0].Asset != "pump-9" || evs[0].ID != evs[len(evs)-1].ID {
		t.Fatalf("events %+v", evs)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")[1:]
	open := func(seq uint64) bool { return strings.Split(lines[seq-1], ",")[2] == "1" }
	if open(evs[0].LastSeq-1) || !open(evs[0].LastSeq) || !open(evs[len(evs)-1].LastSeq-1) || open(evs[len(evs)-1].LastSeq) {
		t.Fatalf("alert column around opened (seq %d) and resolved (seq %d) does not match the events", evs[0].LastSeq, evs[len(evs)-1].LastSeq)
	}
}

func runString(t *testing.T, in string, warm int, opt ReadOptions) (*Summary, string, error) {
	t.Helper()
	tab, err := ReadTable(strings.NewReader(in), opt)
	if err != nil {
		return nil, "", err
	}
	var out bytes.Buffer
	sum, err := Run(context.Background(), tab, &out, Options{WarmupRows: warm})
	return sum, out.String(), err
}

func TestBacktestDetectsAndReports(t *testing.T) {
	for _, sep := range []string{",", ";"} {
		t.Run("sep"+sep, func(t *testing.T) {
			in := synth(t, 1100, 600, sep)
			sum, out, err := runString(t, in, 300, ReadOptions{LabelCol: "anomaly", Exclude: []string{"note"}})
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if lines[0] != Header || len(lines) != 1101 {
				t.Fatalf("header %q, %d lines", lines[0], len(lines))
			}
			if !strings.HasPrefix(lines[1], "2026-01-01 00:00:00,0,0,,") {
				t.Errorf("first row %q", lines[1])
			}
			m := sum.Metrics
			if m == nil || m.Precision < 0.95 || m.TP < 280 || m.FAR > 5 || m.Events != 1 || m.Detected != 1 {
				t.Fatalf("metrics %+v", m)
			}
			// The shift holds steady for 500 readings, past the new-normal
			// horizon: one alert, learnt as the new normal before the end.
			if sum.Opened != 1 || sum.Resolutions[alert.NewNormal] != 1 {
				t.Errorf("%d opened, resolutions %v: want one alert resolved as the new normal", sum.Opened, sum.Resolutions)
			}
			if mid := strings.Split(lines[800], ","); mid[2] != "1" || mid[3] != "flow" {
				t.Errorf("row 800 %q: want an open alert on flow", lines[800])
			}
		})
	}
}

func TestBacktestDefaultWarmup(t *testing.T) {
	if DefaultWarmup(2000) != 300 || DefaultWarmup(100000) != 1000 {
		t.Fatal("default warm-up is 15% of rows, at most 1000")
	}
	sum, _, err := runString(t, synth(t, 1000, 1000, ","), 0, ReadOptions{Exclude: []string{"note", "anomaly"}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Warmup != 150 {
		t.Fatalf("warm-up %d", sum.Warmup)
	}
}

func TestBacktestBadInput(t *testing.T) {
	good := synth(t, 400, 400, ",")
	lines := strings.Split(good, "\n")
	withLine := func(i int, s string) string {
		c := append([]string(nil), lines...)
		c[i] = s
		return strings.Join(c, "\n")
	}
	cases := []struct {
		name string
		in   string
		warm int
		opt  ReadOptions
		want string // substring of the error; "" means it must succeed
	}{
		{"empty file", "", 10, ReadOptions{}, "empty file"},
		{"header only", "time,a\n", 10, ReadOptions{}, "no data rows"},
		{"non-numeric column", good, 100, ReadOptions{}, `column "note"`},
		{"missing label column", good, 100, ReadOptions{LabelCol: "label", Exclude: []string{"note"}}, `label column "label" not in header`},
		{"missing excluded column", good, 100, ReadOptions{Exclude: []string{"nope"}}, `excluded column "nope"`},
		{"missing time column", good, 100, ReadOptions{TimeCol: "ts"}, `time column "ts"`},
		{"text in a cell", withLine(50, "2026-01-01 00:00:49,abc,2,0,x"), 100, ReadOptions{Exclude: []string{"note"}}, `line 51, column "flow": "abc"`},
		{"ragged row", withLine(50, "2026-01-01 00:00:49,1"), 100, ReadOptions{Exclude: []string{"note"}}, "line 51"},
		{"fewer rows than warm-up", good, 500, ReadOptions{Exclude: []string{"note"}}, "warm-up needs 500"},
		{"all sensors excluded", good, 100, ReadOptions{Exclude: []string{"note", "flow", "current", "anomaly"}}, "no sensor columns"},
		{"column never numeric", "t,a,b\n1,,1\n2,NaN,2\n", 1, ReadOptions{}, `"a" has no numeric values`},
		{"duplicate header", "t,a,a\n1,1,1\n", 1, ReadOptions{}, "twice"},
		{"NaN rows are carried forward", withLine(50, "2026-01-01 00:00:49,NaN,,0,x"), 100, ReadOptions{Exclude: []string{"note"}}, ""},
		{"constant sensor", strings.ReplaceAll(good, ",x", ",7"), 100, ReadOptions{}, ""},
		{"one sensor", "time,a\n" + strings.Repeat("1,5\n2,5.5\n", 100), 50, ReadOptions{}, ""},
		{"no time column", "a,b\n" + strings.Repeat("1,5\n2,5.5\n", 100), 50, ReadOptions{}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runString(t, tc.in, tc.warm, tc.opt)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("want success, got %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if !errors.Is(err, ErrInput) {
				t.Errorf("error %v does not wrap ErrInput", err)
			}
		})
	}
}

func TestLeadingMissingRowsAreSkipped(t *testing.T) {
	in := "t,a,b\n1,,1\n" + strings.Repeat("2,1,2\n3,2,1\n", 60)
	sum, out, err := runString(t, in, 50, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Skipped != 1 || !strings.Contains(out, "\n1,0,0,,\n") {
		t.Fatalf("skipped %d, out starts %q", sum.Skipped, out[:60])
	}
}

func TestEvaluate(t *testing.T) {
	l := []bool{false, false, true, true, true, false, true, true}
	a := []bool{false, true, false, true, true, false, false, false}
	times := make([]time.Time, len(l))
	for i := range times {
		times[i] = time.Unix(int64(i), 0)
	}
	m := Evaluate(l, a, times)
	if m.TP != 2 || m.FP != 1 || m.FN != 3 || m.TN != 2 || m.Events != 2 || m.Detected != 1 {
		t.Fatalf("%+v", m)
	}
	if math.Abs(m.F1-2/(2+2.0)) > 1e-12 || m.MeanDelay != time.Second || m.MeanLead != time.Second {
		t.Fatalf("%+v", m)
	}
}

func TestCommand(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	if err := os.WriteFile(in, []byte(synth(t, 600, 400, ";")), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.csv")
	var log bytes.Buffer
	err := command(context.Background(), []string{"--in", in, "--out", out, "--warmup-rows", "200", "--label-col", "anomaly", "--exclude-cols", "note"}, &log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "F1 ") || !strings.Contains(log.String(), "mean lead") {
		t.Fatalf("log %q", log.String())
	}
	if err := command(context.Background(), []string{"--in", in}, &log); err == nil {
		t.Fatal("missing --out accepted")
	}
}

func FuzzReadTable(f *testing.F) {
	f.Add([]byte("datetime;a;b;anomaly\n2020-01-01 00:00:00;1;2;0\n2020-01-01 00:00:01;NaN;3;1\n"))
	f.Add([]byte("a,b\n1,2\n,\n\"x\",3\n"))
	f.Add([]byte("\ufefftime,v\n1e308,1e-308\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, err := ReadTable(bytes.NewReader(b), ReadOptions{LabelCol: ""})
		if err != nil {
			return
		}
		if len(tab.Values) != len(tab.Times) || len(tab.Values) != len(tab.Stamps) {
			t.Fatalf("rows %d times %d stamps %d", len(tab.Values), len(tab.Times), len(tab.Stamps))
		}
		// A parsed table must run (or fail with an error) without panicking;
		// long inputs are skipped so every execution stays fast.
		if len(tab.Values) > 500 {
			return
		}
		var out bytes.Buffer
		_, _ = Run(context.Background(), tab, &out, Options{WarmupRows: 20, Detector: testDetector})
	})
}
