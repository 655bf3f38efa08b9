// Package csvsource replays a recorded CSV file of timestamped sensor
// columns as a source of readings, at a chosen speed.
//
// The file has a header row. The separator is ',' or ';', whichever the
// header holds more of; with ';' a decimal comma ("1,5") is accepted. The
// time column is the one named timestamp, datetime or time (any case); other
// columns are sensors, their names sanitised to the wire alphabet (spaces and
// other characters become '_'). An empty cell leaves that sensor out of the
// row; a row with no sensor values is skipped. Readings are re-stamped by the
// caller with the current time, so old recordings pass validation; only the
// spacing of the recorded timestamps is kept, divided by the speed.
package csvsource

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pdmstream/pdm/pdmkit/wire"
)

// Row is one line of the file.
type Row struct {
	// At is the recorded timestamp.
	At      time.Time
	Sensors map[string]float64
}

// File is a parsed recording.
type File struct {
	// Sensors are the sanitised sensor column names, in file order.
	Sensors []string
	// Rows in file order.
	Rows []Row
}

var timeColumns = map[string]bool{"timestamp": true, "datetime": true, "time": true}

var layouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02 15:04:05",
	"2006-01-02 15:04",
	"2006/01/02 15:04:05",
	"02.01.2006 15:04:05",
	"01/02/2006 15:04:05",
	"01/02/2006 15:04",
}

// ParseTime reads a timestamp in one of the common layouts, or Unix seconds.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f > 0 {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("csvsource: timestamp %q: unknown layout", s)
}

// Open parses the file at path.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("csvsource: %w", err)
	}
	defer f.Close()
	return Parse(f)
}

// Parse reads a recording.
func Parse(r io.Reader) (*File, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(4096)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("csvsource: %w", err)
	}
	first := string(head)
	if i := strings.IndexByte(first, '\n'); i >= 0 {
		first = first[:i]
	}
	sep := ','
	if strings.Count(first, ";") > strings.Count(first, ",") {
		sep = ';'
	}
	cr := csv.NewReader(br)
	cr.Comma = sep
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("csvsource: header: %w", err)
	}
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	timeCol := -1
	names := make([]string, len(header))
	seen := map[string]bool{}
	out := &File{}
	for i, h := range header {
		if timeCol < 0 && timeColumns[strings.ToLower(strings.TrimSpace(h))] {
			timeCol = i
			continue
		}
		n := wire.Sanitize(h)
		if n == "" || seen[n] || n == "seq" {
			n = fmt.Sprintf("col_%d", i)
		}
		seen[n] = true
		names[i] = n
		out.Sensors = append(out.Sensors, n)
	}
	if timeCol < 0 {
		return nil, fmt.Errorf("csvsource: header %q has no timestamp, datetime or time column", header)
	}
	line := 1
	for {
		rec, err := cr.Read()
		line++
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("csvsource: line %d: %w", line, err)
		}
		if timeCol >= len(rec) {
			continue
		}
		at, err := ParseTime(rec[timeCol])
		if err != nil {
			return nil, fmt.Errorf("csvsource: line %d: %w", line, err)
		}
		row := Row{At: at, Sensors: map[string]float64{}}
		for i, cell := range rec {
			if i == timeCol || i >= len(names) {
				continue
			}
			cell = strings.TrimSpace(cell)
			if cell == "" {
				continue
			}
			if sep == ';' {
				cell = strings.Replace(cell, ",", ".", 1)
			}
			v, err := strconv.ParseFloat(cell, 64)
			if err != nil {
				// Text in a numeric column (a status word, "n/a") is left
				// out like an empty cell; "NaN" parses and is left to
				// validation, which counts it.
				continue
			}
			row.Sensors[names[i]] = v
		}
		if len(row.Sensors) > 0 {
			out.Rows = append(out.Rows, row)
		}
	}
	if len(out.Rows) == 0 {
		return nil, errors.New("csvsource: no rows with sensor values")
	}
	return out, nil
}

// Player paces a File's rows.
type Player struct {
	f     *File
	speed float64
	loop  bool
	i     int
	start time.Time
	// shift adds the length of earlier passes when looping.
	shift time.Duration
	now   func() time.Time
}

// NewPlayer replays f at speed (1 real time, 10 ten times faster, 0 as fast
// as the caller takes rows), from the start again at the end when loop.
func NewPlayer(f *File, speed float64, loop bool) *Player {
	return &Player{f: f, speed: speed, loop: loop, now: time.Now}
}

// Next waits until the next row is due and returns its sensors; io.EOF at
// the end of the file when not looping.
func (p *Player) Next(ctx context.Context) (map[string]float64, error) {
	if err := p.wrap(); err != nil {
		return nil, err
	}
	row := p.f.Rows[p.i]
	if p.start.IsZero() {
		p.start = p.now()
	}
	if p.speed > 0 {
		if d := p.dueOf(p.i).Sub(p.now()); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
	}
	p.i++
	out := make(map[string]float64, len(row.Sensors))
	for k, v := range row.Sensors {
		out[k] = v
	}
	return out, nil
}

// wrap starts the next pass at the end of the file, or reports io.EOF.
func (p *Player) wrap() error {
	if p.i < len(p.f.Rows) {
		return nil
	}
	if !p.loop {
		return io.EOF
	}
	first, last := p.f.Rows[0].At, p.f.Rows[len(p.f.Rows)-1].At
	p.shift += last.Sub(first) + gap(p.f)
	p.i = 0
	return nil
}

// dueOf is when row i of the current pass is due.
func (p *Player) dueOf(i int) time.Time {
	if p.start.IsZero() {
		p.start = p.now()
	}
	offset := p.f.Rows[i].At.Sub(p.f.Rows[0].At) + p.shift
	if offset < 0 {
		offset = 0 // out-of-order rows play at once
	}
	return p.start.Add(time.Duration(float64(offset) / p.speed))
}

// gap is the typical spacing of rows, used between two passes of a loop.
func gap(f *File) time.Duration {
	if len(f.Rows) < 2 {
		return time.Second
	}
	d := f.Rows[len(f.Rows)-1].At.Sub(f.Rows[0].At) / time.Duration(len(f.Rows)-1)
	if d <= 0 {
		return time.Second
	}
	return d
}
