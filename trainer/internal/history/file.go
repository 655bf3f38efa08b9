package history

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pdmstream/pdm/pdmkit/table"
)

// FileOptions say how to read a data file into Series. Three layouts are
// read: a CSV with a header, ',' or ';' separated (whichever the header
// line holds more of); a whitespace-separated file with a header; and a
// whitespace-separated file without one, whose Columns are given (the
// C-MAPSS layout).
type FileOptions struct {
	// Site and Asset name the Series (default "file" and the file's base
	// name without extension; with AssetCol the asset is its value).
	Site, Asset string
	// Columns are the column names of a file without a header line; when
	// set, the first line is data.
	Columns []string
	// TimeCol is the time column: RFC 3339 or "2006-01-02 15:04:05"-style
	// text, or a number of Unix seconds (below 1e11) or milliseconds.
	// Default: the first column named timestamp, datetime, time or date,
	// case-insensitive; without one, data row k of an asset is at k × Step
	// after the Unix epoch.
	TimeCol string
	// AssetCol, when set, splits the rows into one Series per value of the
	// column (C-MAPSS "unit"), in order of first appearance.
	AssetCol string
	// LabelCol, when set, marks rows that are not normal operation: a step
	// with a non-zero label is excluded as ReasonAbnormal.
	LabelCol string
	// Exclude are columns that are not sensors.
	Exclude []string
	// Sensors, when set, are the columns read, in this order; default
	// every other column, in file order.
	Sensors []string
	// Step is the resampling step (default 1s): rows in one window
	// [t, t+Step) are averaged, as InfluxDB's aggregateWindow does.
	Step time.Duration
}

// ReadFile reads the file at path; see FileOptions.
func ReadFile(path string, opt FileOptions) ([]*Series, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	defer f.Close()
	if opt.Asset == "" && opt.AssetCol == "" {
		opt.Asset = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	s, err := ReadTable(f, opt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

func inputErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInput, fmt.Sprintf(format, args...))
}

// ReadTable reads a data file from r into one Series per asset; see
// FileOptions. Rows of an asset must be in time order. A file gives its
// own range: From is the first row's step, To one step past the last.
func ReadTable(r io.Reader, opt FileOptions) ([]*Series, error) {
	step := int64(cmp.Or(opt.Step, time.Second))
	if step < int64(time.Millisecond) {
		return nil, fmt.Errorf("history: step (%v) must be at least 1ms", opt.Step)
	}
	tr, err := table.NewReader(r, opt.Columns)
	if err != nil {
		return nil, inputErr("%v", err)
	}
	lay, err := tr.Layout(table.Columns{Time: opt.TimeCol, Asset: opt.AssetCol, Label: opt.LabelCol, Exclude: opt.Exclude, Sensors: opt.Sensors})
	if err != nil {
		return nil, inputErr("%v", err)
	}
	header := tr.Header
	site := cmp.Or(opt.Site, "file")
	var assets []string
	states := map[string]*fileAsset{}
	for {
		rec, err := tr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, inputErr("%v", err)
		}
		line := tr.Line
		asset := cmp.Or(opt.Asset, "file")
		if lay.Asset >= 0 {
			asset = strings.TrimSpace(rec[lay.Asset])
		}
		st := states[asset]
		if st == nil {
			st = &fileAsset{sums: make([]float64, len(lay.Cols)), counts: make([]int, len(lay.Cols)), row: make([]float64, len(lay.Cols)), window: math.MinInt64}
			states[asset] = st
			assets = append(assets, asset)
		}
		var t int64
		if lay.Time >= 0 {
			ts, ok := table.Time(rec[lay.Time])
			if !ok {
				return nil, inputErr("line %d: time %q is not a time (RFC 3339, 2006-01-02 15:04:05 or Unix seconds)", line, rec[lay.Time])
			}
			t = ts.UnixNano()
		} else {
			t = int64(st.n) * step
		}
		st.n++
		label := false
		if lay.Label >= 0 {
			v, missing, err := table.Cell(rec[lay.Label])
			if err != nil || missing {
				return nil, inputErr("line %d: label %q is not a number", line, rec[lay.Label])
			}
			label = v != 0
		}
		w := floorStep(t, step)
		if w < st.window {
			return nil, inputErr("line %d: time %s is before the previous row's; rows of asset %s must be in time order", line, unixTime(t).Format(time.RFC3339Nano), asset)
		}
		if w != st.window {
			st.flush(step, lay.Sensors)
			st.window = w
		}
		for k, c := range lay.Cols {
			v, missing, err := table.Cell(rec[c])
			if err != nil {
				return nil, inputErr("line %d, column %q: %q is not a number (list it in Exclude if it is not a sensor)", line, header[c], rec[c])
			}
			if !missing {
				st.sums[k] += v
				st.counts[k]++
			}
		}
		st.label = st.label || label
		st.any = true
	}
	if len(assets) == 0 {
		return nil, inputErr("no data rows")
	}
	out := make([]*Series, 0, len(assets))
	for _, a := range assets {
		st := states[a]
		st.flush(step, lay.Sensors)
		out = append(out, st.b.finish(site, a))
	}
	return out, nil
}

// fileAsset is one asset's window being averaged and its builder.
type fileAsset struct {
	b      *builder
	n      int   // data rows seen
	window int64 // the current window's start; MinInt64 before the first
	sums   []float64
	counts []int
	row    []float64
	label  bool
	any    bool // the window has rows
}

// flush hands the current window to the builder: labelled, it is excluded;
// with no value at all (every cell missing), it is no row, as a step
// without readings in InfluxDB.
func (f *fileAsset) flush(step int64, sensors []string) {
	if !f.any {
		return
	}
	if f.b == nil {
		f.b = newBuilder(step, f.window, math.MaxInt64, sensors, true)
	}
	f.b.to = f.window + step
	some := false
	for k := range f.row {
		f.row[k] = math.NaN()
		if f.counts[k] > 0 {
			f.row[k] = f.sums[k] / float64(f.counts[k])
			some = true
		}
	}
	switch {
	case f.label:
		f.b.addExcluded(f.window, ReasonAbnormal, "labelled in the file")
	case some:
		f.b.add(f.window, f.row)
	}
	clear(f.sums)
	clear(f.counts)
	f.label, f.any = false, false
}
