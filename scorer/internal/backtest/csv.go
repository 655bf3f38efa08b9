package backtest

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Table is a parsed input file: one row per data line, in file order.
type Table struct {
	// Sensors are the numeric columns fed to the detector, in file order.
	Sensors []string
	// TimeCol is the name of the time column ("" when the file has none).
	TimeCol string
	// Stamps are the time column's text per row (the row number without one).
	Stamps []string
	// Times are parsed times; without a parsable time column, row i is
	// i seconds after the Unix epoch (readings one second apart).
	Times []time.Time
	// Values[i][j] is sensor j at row i; NaN where the cell was empty or NaN.
	Values [][]float64
	// Labels are the label column (nil without --label-col).
	Labels []bool
	// Missing counts cells read as missing.
	Missing int
}

// ErrInput marks a problem with the input file (as opposed to an I/O error).
var ErrInput = errors.New("backtest: bad input")

// timeNames are the column names taken as the time column, case-insensitive.
var timeNames = []string{"timestamp", "datetime", "time", "date"}

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04", "2006/01/02 15:04:05"}

// ReadOptions says which columns are which.
type ReadOptions struct {
	TimeCol  string
	Exclude  []string
	LabelCol string
}

func inputErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInput, fmt.Sprintf(format, args...))
}

// ReadTable parses a CSV with a header. The delimiter (',' or ';') is the one
// the header line holds more of.
func ReadTable(r io.Reader, opt ReadOptions) (*Table, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(64 << 10)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("backtest: read: %w", err)
	}
	if len(bytes.TrimSpace(head)) == 0 {
		return nil, inputErr("empty file: expected a header line")
	}
	first := head
	if i := bytes.IndexByte(head, '\n'); i >= 0 {
		first = head[:i]
	}
	cr := csv.NewReader(br)
	cr.Comma = ','
	if bytes.Count(first, []byte{';'}) > bytes.Count(first, []byte{','}) {
		cr.Comma = ';'
	}
	cr.FieldsPerRecord = 0 // every row must have as many fields as the header
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, inputErr("header: %v", err)
	}
	header = slices.Clone(header)
	for i, h := range header {
		header[i] = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
	}
	idx := map[string]int{}
	for i, h := range header {
		if h == "" {
			return nil, inputErr("header column %d has no name", i+1)
		}
		if _, dup := idx[h]; dup {
			return nil, inputErr("header names column %q twice", h)
		}
		idx[h] = i
	}
	t := &Table{}
	timeIdx, labelIdx := -1, -1
	if opt.TimeCol != "" {
		i, ok := idx[opt.TimeCol]
		if !ok {
			return nil, inputErr("time column %q not in header %v", opt.TimeCol, header)
		}
		timeIdx = i
	} else {
		for i, h := range header {
			if slices.Contains(timeNames, strings.ToLower(h)) {
				timeIdx = i
				break
			}
		}
	}
	if timeIdx >= 0 {
		t.TimeCol = header[timeIdx]
	}
	if opt.LabelCol != "" {
		i, ok := idx[opt.LabelCol]
		if !ok {
			return nil, inputErr("label column %q not in header %v", opt.LabelCol, header)
		}
		labelIdx = i
	}
	skip := map[int]bool{timeIdx: true, labelIdx: true}
	for _, e := range opt.Exclude {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		i, ok := idx[e]
		if !ok {
			return nil, inputErr("excluded column %q not in header %v", e, header)
		}
		skip[i] = true
	}
	var cols []int
	for i, h := range header {
		if !skip[i] {
			cols = append(cols, i)
			t.Sensors = append(t.Sensors, h)
		}
	}
	if len(cols) == 0 {
		return nil, inputErr("no sensor columns left in header %v", header)
	}
	timeOK := timeIdx >= 0
	line := 1
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line++
		if err != nil {
			return nil, inputErr("line %d: %v", line, err)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		row := len(t.Values)
		vals := make([]float64, len(cols))
		for k, c := range cols {
			v, missing, err := parseCell(rec[c])
			if err != nil {
				return nil, inputErr("line %d, column %q: %q is not a number (exclude the column with --exclude-cols if it is not a sensor)", line, header[c], rec[c])
			}
			if missing {
				t.Missing++
			}
			vals[k] = v
		}
		t.Values = append(t.Values, vals)
		if timeIdx >= 0 {
			s := strings.TrimSpace(rec[timeIdx])
			t.Stamps = append(t.Stamps, s)
			ts, ok := parseTime(s)
			if !ok {
				timeOK = false
			}
			t.Times = append(t.Times, ts)
		} else {
			t.Stamps = append(t.Stamps, strconv.Itoa(row))
		}
		if labelIdx >= 0 {
			v, missing, err := parseCell(rec[labelIdx])
			if err != nil || missing {
				return nil, inputErr("line %d: label %q is not a number", line, rec[labelIdx])
			}
			t.Labels = append(t.Labels, v != 0)
		}
	}
	if len(t.Values) == 0 {
		return nil, inputErr("no data rows after the header")
	}
	if !timeOK {
		// Without usable times the rows are taken as one second apart, which
		// only affects forecast durations and lead times.
		t.Times = t.Times[:0]
		for i := range t.Values {
			t.Times = append(t.Times, time.Unix(int64(i), 0).UTC())
		}
	}
	for k, s := range t.Sensors {
		any := false
		for _, row := range t.Values {
			if !math.IsNaN(row[k]) {
				any = true
				break
			}
		}
		if !any {
			return nil, inputErr("sensor column %q has no numeric values", s)
		}
	}
	return t, nil
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
	for _, l := range timeLayouts {
		if ts, err := time.Parse(l, s); err == nil {
			return ts, true
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) && math.Abs(f) < 1e11 {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
	}
	return time.Time{}, false
}
