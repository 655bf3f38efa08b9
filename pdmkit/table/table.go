// Package table reads the data files people bring to the system — a
// plant's export, a benchmark's text files — the one way the scorer's
// backtest and the trainer's history both read them:
//
//   - a CSV with a header, ',' or ';' separated (whichever the header line
//     holds more of), a BOM and spaces around names ignored;
//   - a whitespace-separated file with a header (a header line with
//     neither ',' nor ';');
//   - a whitespace-separated file without one, whose column names are
//     given (the C-MAPSS layout).
//
// Cells: numbers; empty, NaN, NA, null, none (any case) and non-finite
// values are missing. Times: RFC 3339, "2006-01-02 15:04:05"-style text, or
// Unix seconds (below 1e11) or milliseconds. Errors name the line and the
// column; they are the caller's to mark as bad input.
package table

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

// Reader reads the records of one file.
type Reader struct {
	// Header is the column names, as given or from the first line.
	Header []string
	// Line is the file line of the last record read (1 is the first line).
	Line int
	next func() ([]string, error)
}

// NewReader reads r's header (or takes columns as the header of a file
// without one) and returns a reader of its records.
func NewReader(r io.Reader, columns []string) (*Reader, error) {
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
		return &Reader{Header: slices.Clone(columns), next: fields()}, nil
	}
	head, err := br.Peek(64 << 10)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("read: %w", err)
	}
	if len(bytes.TrimSpace(head)) == 0 {
		return nil, errors.New("empty file: expected a header line")
	}
	first := head
	if i := bytes.IndexByte(head, '\n'); i >= 0 {
		first = head[:i]
	}
	rd := &Reader{Line: 1}
	semi, comma := bytes.Count(first, []byte{';'}), bytes.Count(first, []byte{','})
	if semi == 0 && comma == 0 {
		rd.next = fields()
	} else {
		cr := csv.NewReader(br)
		cr.Comma = ','
		if semi > comma {
			cr.Comma = ';'
		}
		cr.FieldsPerRecord = -1 // checked by Read, with the line number
		cr.ReuseRecord = true
		rd.next = cr.Read
	}
	h, err := rd.next()
	if err != nil {
		return nil, fmt.Errorf("header: %v", err)
	}
	rd.Header = slices.Clone(h)
	for i := range rd.Header {
		rd.Header[i] = strings.TrimSpace(strings.TrimPrefix(rd.Header[i], "\ufeff"))
	}
	return rd, nil
}

// Read returns the next record with as many fields as the header, skipping
// blank lines; io.EOF after the last. The record is reused by the next
// call.
func (r *Reader) Read() ([]string, error) {
	for {
		rec, err := r.next()
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		r.Line++
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", r.Line, err)
		}
		if len(rec) == 0 || len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if len(rec) != len(r.Header) {
			return nil, fmt.Errorf("line %d has %d fields, want %d (%s)", r.Line, len(rec), len(r.Header), strings.Join(r.Header, ","))
		}
		return rec, nil
	}
}

// Columns names a file's special columns; empty names mean none (Time:
// the first column named timestamp, datetime, time or date, any case).
// Sensors, when set, are the sensor columns in that order; otherwise every
// column not special or excluded is one.
type Columns struct {
	Time, Asset, Label string
	Exclude, Sensors   []string
}

// Layout is where each column is: -1 for none.
type Layout struct {
	Time, Asset, Label int
	// Cols are the sensor columns and Sensors their names.
	Cols    []int
	Sensors []string
}

// TimeNames are the column names taken as the time column.
var TimeNames = []string{"timestamp", "datetime", "time", "date"}

// Layout places c in the header.
func (r *Reader) Layout(c Columns) (Layout, error) {
	lay := Layout{Time: -1, Asset: -1, Label: -1}
	idx := map[string]int{}
	for i, h := range r.Header {
		if h == "" {
			return lay, fmt.Errorf("header column %d has no name", i+1)
		}
		if _, dup := idx[h]; dup {
			return lay, fmt.Errorf("header names column %q twice", h)
		}
		idx[h] = i
	}
	find := func(what, name string) (int, error) {
		if name == "" {
			return -1, nil
		}
		i, ok := idx[name]
		if !ok {
			return -1, fmt.Errorf("%s column %q not in header %v", what, name, r.Header)
		}
		return i, nil
	}
	var err error
	if lay.Time, err = find("time", c.Time); err != nil {
		return lay, err
	}
	if c.Time == "" {
		for i, h := range r.Header {
			if slices.Contains(TimeNames, strings.ToLower(h)) {
				lay.Time = i
				break
			}
		}
	}
	if lay.Asset, err = find("asset", c.Asset); err != nil {
		return lay, err
	}
	if lay.Label, err = find("label", c.Label); err != nil {
		return lay, err
	}
	skip := map[int]bool{lay.Time: true, lay.Asset: true, lay.Label: true}
	for _, e := range c.Exclude {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		i, err := find("excluded", e)
		if err != nil {
			return lay, err
		}
		skip[i] = true
	}
	if len(c.Sensors) > 0 {
		for _, s := range c.Sensors {
			i, err := find("sensor", s)
			if err != nil {
				return lay, err
			}
			if skip[i] {
				return lay, fmt.Errorf("sensor %q is also the time, asset, label or an excluded column", s)
			}
			lay.Cols, lay.Sensors = append(lay.Cols, i), append(lay.Sensors, s)
		}
	} else {
		for i, h := range r.Header {
			if !skip[i] {
				lay.Cols, lay.Sensors = append(lay.Cols, i), append(lay.Sensors, h)
			}
		}
	}
	if len(lay.Cols) == 0 {
		return lay, fmt.Errorf("no sensor columns left in header %v", r.Header)
	}
	return lay, nil
}

// Cell parses a number; missing is true (and v NaN) for an empty, NaN, NA,
// null or none cell and for a non-finite number.
func Cell(s string) (v float64, missing bool, err error) {
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

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04", "2006/01/02 15:04:05"}

// Time parses a time cell: the layouts above, or Unix seconds (below 1e11)
// or milliseconds.
func Time(s string) (time.Time, bool) {
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
