package history

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
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

// timeNames are the column names taken as the time column, as the
// scorer's backtest takes them.
var timeNames = []string{"timestamp", "datetime", "time", "date"}

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04", "2006/01/02 15:04:05"}

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
	next, header, err := fileRows(r, opt.Columns)
	if err != nil {
		return nil, err
	}
	lay, err := layoutOf(header, opt)
	if err != nil {
		return nil, err
	}
	site := cmp.Or(opt.Site, "file")
	var (
		assets []string
		states = map[string]*fileAsset{}
		line   = 0
	)
	if opt.Columns == nil {
		line = 1
	}
	for {
		rec, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		line++
		if err != nil {
			return nil, inputErr("line %d: %v", line, err)
		}
		if len(rec) == 0 || len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if len(rec) != len(header) {
			return nil, inputErr("line %d has %d fields, want %d (%s)", line, len(rec), len(header), strings.Join(header, ","))
		}
		asset := cmp.Or(opt.Asset, "file")
		if lay.asset >= 0 {
			asset = strings.TrimSpace(rec[lay.asset])
		}
		st := states[asset]
		if st == nil {
			st = &fileAsset{sums: make([]float64, len(lay.cols)), counts: make([]int, len(lay.cols)), row: make([]float64, len(lay.cols)), window: math.MinInt64}
			states[asset] = st
			assets = append(assets, asset)
		}
		var t int64
		if lay.time >= 0 {
			ts, ok := parseTime(rec[lay.time])
			if !ok {
				return nil, inputErr("line %d: time %q is not a time (RFC 3339, 2006-01-02 15:04:05 or Unix seconds)", line, rec[lay.time])
			}
			t = ts.UnixNano()
		} else {
			t = int64(st.n) * step
		}
		st.n++
		label := false
		if lay.label >= 0 {
			v, missing, err := parseCell(rec[lay.label])
			if err != nil || missing {
				return nil, inputErr("line %d: label %q is not a number", line, rec[lay.label])
			}
			label = v != 0
		}
		w := floorStep(t, step)
		if w < st.window {
			return nil, inputErr("line %d: time %s is before the previous row's; rows of asset %s must be in time order", line, unixTime(t).Format(time.RFC3339Nano), asset)
		}
		if w != st.window {
			st.flush(step, lay.sensors)
			st.window = w
		}
		for k, c := range lay.cols {
			v, missing, err := parseCell(rec[c])
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
		st.flush(step, lay.sensors)
		out = append(out, st.b.finish(site, a))
	}
	return out, nil
}

// fileLayout is which column is which.
type fileLayout struct {
	time, asset, label int // -1: none
	cols               []int
	sensors            []string
}

func layoutOf(header []string, opt FileOptions) (fileLayout, error) {
	lay := fileLayout{time: -1, asset: -1, label: -1}
	idx := map[string]int{}
	for i, h := range header {
		if h == "" {
			return lay, inputErr("column %d has no name", i+1)
		}
		if _, dup := idx[h]; dup {
			return lay, inputErr("column %q named twice", h)
		}
		idx[h] = i
	}
	find := func(what, name string) (int, error) {
		if name == "" {
			return -1, nil
		}
		i, ok := idx[name]
		if !ok {
			return -1, inputErr("%s column %q not in %v", what, name, header)
		}
		return i, nil
	}
	var err error
	if lay.time, err = find("time", opt.TimeCol); err != nil {
		return lay, err
	}
	if opt.TimeCol == "" {
		for i, h := range header {
			if slices.Contains(timeNames, strings.ToLower(h)) {
				lay.time = i
				break
			}
		}
	}
	if lay.asset, err = find("asset", opt.AssetCol); err != nil {
		return lay, err
	}
	if lay.label, err = find("label", opt.LabelCol); err != nil {
		return lay, err
	}
	skip := map[int]bool{lay.time: true, lay.asset: true, lay.label: true}
	for _, e := range opt.Exclude {
		i, err := find("excluded", strings.TrimSpace(e))
		if err != nil {
			return lay, err
		}
		skip[i] = true
	}
	if len(opt.Sensors) > 0 {
		for _, s := range opt.Sensors {
			i, err := find("sensor", s)
			if err != nil {
				return lay, err
			}
			if skip[i] {
				return lay, inputErr("sensor %q is also the time, asset, label or an excluded column", s)
			}
			lay.cols, lay.sensors = append(lay.cols, i), append(lay.sensors, s)
		}
	} else {
		for i, h := range header {
			if !skip[i] {
				lay.cols, lay.sensors = append(lay.cols, i), append(lay.sensors, h)
			}
		}
	}
	if len(lay.cols) == 0 {
		return lay, inputErr("no sensor columns left in %v", header)
	}
	return lay, nil
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

// fileRows returns a reader of records and the header: the given columns
// and whitespace-separated lines, or the first line's names and a CSV
// reader (',' or ';', the one the header holds more of) or, for a header
// with neither, whitespace-separated lines.
func fileRows(r io.Reader, columns []string) (next func() ([]string, error), header []string, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	fields := func() func() ([]string, error) {
		sc := bufio.NewScanner(br)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		return func() ([]string, error) {
			if !sc.Scan() {
				if err := sc.Err(); err != nil {
					return nil, err
				}
				return nil, io.EOF
			}
			return strings.Fields(sc.Text()), nil
		}
	}
	if len(columns) > 0 {
		return fields(), columns, nil
	}
	head, err := br.Peek(64 << 10)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, nil, fmt.Errorf("history: read: %w", err)
	}
	if len(bytes.TrimSpace(head)) == 0 {
		return nil, nil, inputErr("empty file: expected a header line")
	}
	first := head
	if i := bytes.IndexByte(head, '\n'); i >= 0 {
		first = head[:i]
	}
	clean := func(h []string) []string {
		h = slices.Clone(h)
		for i := range h {
			h[i] = strings.TrimSpace(strings.TrimPrefix(h[i], "\ufeff"))
		}
		return h
	}
	semi, comma := bytes.Count(first, []byte{';'}), bytes.Count(first, []byte{','})
	if semi == 0 && comma == 0 {
		next = fields()
		h, err := next()
		if err != nil {
			return nil, nil, inputErr("header: %v", err)
		}
		return next, clean(h), nil
	}
	cr := csv.NewReader(br)
	cr.Comma = ','
	if semi > comma {
		cr.Comma = ';'
	}
	cr.FieldsPerRecord = -1 // checked by the caller, with the line number
	cr.ReuseRecord = true
	h, err := cr.Read()
	if err != nil {
		return nil, nil, inputErr("header: %v", err)
	}
	return cr.Read, clean(h), nil
}

func parseCell(s string) (v float64, missing bool, err error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", "nan", "na", "null", "none":
		return math.NaN(), true, nil
	}
	v, err = strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false, err
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return math.NaN(), true, nil
	}
	return v, false, nil
}

func parseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, l := range timeLayouts {
		if ts, err := time.Parse(l, s); err == nil {
			return ts, true
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) >= 1e14 {
		return time.Time{}, false
	}
	if math.Abs(f) >= 1e11 {
		return time.UnixMilli(int64(f)).UTC(), true
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), true
}
