package history

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// describe writes segments, gaps and exclusions relative to s.From.
func describe(s *Series) string {
	var parts []string
	for _, sg := range s.Segments {
		parts = append(parts, fmt.Sprintf("seg %v+%d", sg.Start.Sub(s.From), sg.N))
	}
	for _, g := range s.Gaps {
		parts = append(parts, fmt.Sprintf("gap %v-%v(%d)", g.From.Sub(s.From), g.To.Sub(s.From), g.Steps))
	}
	for _, e := range s.Excluded {
		parts = append(parts, fmt.Sprintf("%s %v-%v(%d)", e.Reason, e.From.Sub(s.From), e.To.Sub(s.From), e.Rows))
	}
	return strings.Join(parts, ", ")
}

// rows returns every kept row of s.
func rows(s *Series) [][]float64 {
	var out [][]float64
	for _, sg := range s.Segments {
		for i := range sg.N {
			out = append(out, sg.Row(i))
		}
	}
	return out
}

func TestReadFile(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name     string
		file     string
		opt      FileOptions
		assets   []string
		sensors  []string
		from     time.Time
		describe []string // per asset
		rows     [][][]float64
	}{
		{
			name: "semicolon CSV with a label, 1s", file: "pump.csv",
			opt:    FileOptions{LabelCol: "anomaly", Exclude: []string{"changepoint"}},
			assets: []string{"pump"}, sensors: []string{"Accelerometer1RMS", "Current"},
			from:     time.Date(2020, 3, 9, 10, 34, 30, 0, time.UTC),
			describe: []string{"seg 0s+3, seg 5s+1, seg 8s+2, gap 3s-5s(2), abnormal 6s-8s(2)"},
			rows:     [][][]float64{{{1, 10}, {2, 11}, {3, nan}, {4, 13}, {7, 16}, {8, 17}}},
		},
		{
			name: "semicolon CSV resampled to 2s", file: "pump.csv",
			opt:    FileOptions{LabelCol: "anomaly", Exclude: []string{"changepoint"}, Step: 2 * time.Second, Sensors: []string{"Current", "Accelerometer1RMS"}},
			assets: []string{"pump"}, sensors: []string{"Current", "Accelerometer1RMS"},
			from:     time.Date(2020, 3, 9, 10, 34, 30, 0, time.UTC),
			describe: []string{"seg 0s+3, seg 8s+1, abnormal 6s-8s(1)"},
			rows:     [][][]float64{{{10.5, 1.5}, {nan, 3}, {13, 4}, {16.5, 7.5}}},
		},
		{
			name: "whitespace without header, one series per unit", file: "engines.txt",
			opt:    FileOptions{Columns: []string{"unit", "cycle", "setting1", "s1", "s2"}, AssetCol: "unit", TimeCol: "cycle", Exclude: []string{"setting1"}},
			assets: []string{"1", "2"}, sensors: []string{"s1", "s2"},
			from:     time.Unix(1, 0).UTC(),
			describe: []string{"seg 0s+3", "seg 0s+2"},
			rows:     [][][]float64{{{10, 100}, {11, 101}, {12, 102}}, {{20, 200}, {21, 201}}},
		},
		{
			name: "comma CSV, Unix seconds, missing cells", file: "flow.csv",
			assets: []string{"flow"}, sensors: []string{"flow", "pressure"},
			from:     time.Unix(1741000000, 0).UTC(),
			describe: []string{"seg 0s+2"},
			rows:     [][][]float64{{{2, 2}, {5, nan}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadFile(filepath.Join("testdata", tc.file), tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.assets) {
				t.Fatalf("%d series, want %d", len(got), len(tc.assets))
			}
			for i, s := range got {
				if s.Asset != tc.assets[i] || s.Site != "file" || !reflect.DeepEqual(s.Sensors, tc.sensors) {
					t.Errorf("series %d: %s/%s sensors %v", i, s.Site, s.Asset, s.Sensors)
				}
				if i == 0 && !s.From.Equal(tc.from) {
					t.Errorf("from %v, want %v", s.From, tc.from)
				}
				if d := describe(s); d != tc.describe[i] {
					t.Errorf("%s: %s\nwant %s", s.Asset, d, tc.describe[i])
				}
				r := rows(s)
				if len(r) != len(tc.rows[i]) || s.Rows != len(r) {
					t.Fatalf("%s: %d rows (Rows %d), want %d", s.Asset, len(r), s.Rows, len(tc.rows[i]))
				}
				for k := range r {
					if !sameFloats(r[k], tc.rows[i][k]) {
						t.Errorf("%s row %d: %v, want %v", s.Asset, k, r[k], tc.rows[i][k])
					}
				}
				if s.Hash != hashSeries(s.Sensors, s.Segments) {
					t.Error("hash not over the returned data")
				}
			}
		})
	}
}

func TestReadTableLayoutsAndErrors(t *testing.T) {
	good := []struct {
		name, text string
		opt        FileOptions
		describe   string
	}{
		{"whitespace with header", "time x y\n0 1 2\n1 2 3\n", FileOptions{}, "seg 0s+2"},
		{"no time column: one step per row", "x,y\n1,2\n3,4\n5,6\n", FileOptions{Step: time.Minute}, "seg 0s+3"},
		{"rows with every cell missing are no row", "time;x\n0;1\n1;\n2;3\n", FileOptions{}, "seg 0s+1, seg 2s+1, gap 1s-2s(1)"},
		{"BOM and spaces in the header", "\ufefftimestamp , x\n2025-01-01T00:00:00Z,1\n", FileOptions{}, "seg 0s+1"},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadTable(strings.NewReader(tc.text), tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if d := describe(got[0]); d != tc.describe {
				t.Errorf("%s, want %s", d, tc.describe)
			}
		})
	}
	bad := []struct {
		name, text string
		opt        FileOptions
		want       string
	}{
		{"empty", "", FileOptions{}, "empty file"},
		{"header only", "time,x\n", FileOptions{}, "no data rows"},
		{"time backwards", "time,x\n5,1\n3,2\n", FileOptions{}, "line 3: time 1970-01-01T00:00:03Z is before"},
		{"not a number", "time,x\n0,abc\n", FileOptions{}, `line 2, column "x": "abc" is not a number`},
		{"bad time", "time,x\nyesterday,1\n", FileOptions{}, `line 2: time "yesterday"`},
		{"unknown time column", "t,x\n0,1\n", FileOptions{TimeCol: "when"}, `time column "when" not in`},
		{"field count", "time,x\n0,1,2\n", FileOptions{}, "line 2 has 3 fields, want 2"},
		{"label not a number", "time,x,l\n0,1,yes\n", FileOptions{LabelCol: "l"}, `label "yes"`},
		{"no sensors left", "time,l\n0,1\n", FileOptions{LabelCol: "l"}, "no sensor columns"},
		{"sensor that is the label", "time,x,l\n0,1,0\n", FileOptions{LabelCol: "l", Sensors: []string{"l"}}, "also the time"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadTable(strings.NewReader(tc.text), tc.opt)
			if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInput with %q", err, tc.want)
			}
		})
	}
}

// datasets is the shared folder of public benchmark data, beside the
// repository.
const datasets = "../../../../shared/datasets"

// TestReadBenchmarkFiles reads the real SKAB and C-MAPSS files when the
// shared data sets are there.
func TestReadBenchmarkFiles(t *testing.T) {
	skab := filepath.Join(datasets, "skab", "valve1", "1.csv")
	cmapss := filepath.Join(datasets, "cmapss-fd001", "train_FD001.txt")
	for _, p := range []string{skab, cmapss} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s not there (the shared data sets, see ../shared/datasets/README.md): %v", p, err)
		}
	}
	t.Run("SKAB valve1/1.csv", func(t *testing.T) {
		got, err := ReadFile(skab, FileOptions{LabelCol: "anomaly", Exclude: []string{"changepoint"}})
		if err != nil {
			t.Fatal(err)
		}
		s := got[0]
		removed := 0
		for _, e := range s.Excluded {
			removed += e.Rows
		}
		if len(s.Sensors) != 8 || s.Read != 1145 || s.Rows+removed != s.Read || removed == 0 {
			t.Fatalf("sensors %v, read %d, kept %d, excluded %d; want 8 sensors and 1145 rows", s.Sensors, s.Read, s.Rows, removed)
		}
		t.Logf("%s: %d rows kept, %d excluded in %d spans, %d segments, %d gaps", s.Asset, s.Rows, removed, len(s.Excluded), len(s.Segments), len(s.Gaps))
	})
	t.Run("C-MAPSS train_FD001", func(t *testing.T) {
		cols := []string{"unit", "cycle", "setting1", "setting2", "setting3"}
		for i := 1; i <= 21; i++ {
			cols = append(cols, fmt.Sprintf("s%d", i))
		}
		got, err := ReadFile(cmapss, FileOptions{Columns: cols, AssetCol: "unit", TimeCol: "cycle"})
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, s := range got {
			total += s.Rows
			if len(s.Segments) != 1 || len(s.Sensors) != 24 {
				t.Fatalf("unit %s: %d segments, %d sensors", s.Asset, len(s.Segments), len(s.Sensors))
			}
		}
		if len(got) != 100 || total != 20631 {
			t.Fatalf("%d units, %d rows; want 100 and 20631", len(got), total)
		}
	})
}

// TestFileAndInfluxAgree writes the scenario's p2 readings in a range
// without exclusions to a CSV and reads them at the readings' own cadence
// (one point per step, so no mean is taken): file and InfluxDB give the
// same sensors, segments and hash.
func TestFileAndInfluxAgree(t *testing.T) {
	env := scenario(t)
	from, to := t0.Add(4*time.Minute), t0.Add(6*time.Minute)
	var b strings.Builder
	b.WriteString("timestamp,temp,vib\n")
	for m := from.UnixMilli(); m < to.UnixMilli(); m += cadenceMs {
		fmt.Fprintf(&b, "%s,%s,%s\n", time.UnixMilli(m).UTC().Format(time.RFC3339Nano), fmtFloat(value("p2", "temp", m)), fmtFloat(value("p2", "vib", m)))
	}
	files, err := ReadTable(strings.NewReader(b.String()), FileOptions{Site: site, Asset: "p2", Step: cadenceMs * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	q := baseQuery("p2")
	q.From, q.To, q.Step = from, to, cadenceMs*time.Millisecond
	db, err := newReader(t, Config{URL: env.url, Bucket: env.bucket}, nil).Read(context.Background(), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, d := files[0], db[0]
	if d.Rows != 480 || len(d.Excluded) != 0 {
		t.Fatalf("influx: %d rows, %d exclusions; want 480 and none", d.Rows, len(d.Excluded))
	}
	sameSeries(t, "file vs influxdb", d, f)
}
