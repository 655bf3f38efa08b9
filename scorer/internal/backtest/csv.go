package backtest

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/pdmstream/pdm/pdmkit/table"
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

// ReadOptions says which columns are which.
type ReadOptions struct {
	TimeCol  string
	Exclude  []string
	LabelCol string
}

func inputErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInput, fmt.Sprintf(format, args...))
}

// ReadTable parses a data file with a header (pdmkit/table: a CSV with
// ',' or ';', or whitespace-separated columns).
func ReadTable(r io.Reader, opt ReadOptions) (*Table, error) {
	tr, err := table.NewReader(r, nil)
	if err != nil {
		return nil, inputErr("%v", err)
	}
	lay, err := tr.Layout(table.Columns{Time: opt.TimeCol, Label: opt.LabelCol, Exclude: opt.Exclude})
	if err != nil {
		return nil, inputErr("%v", err)
	}
	header := tr.Header
	t := &Table{Sensors: lay.Sensors}
	if lay.Time >= 0 {
		t.TimeCol = header[lay.Time]
	}
	timeOK := lay.Time >= 0
	for {
		rec, err := tr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, inputErr("%v", err)
		}
		row := len(t.Values)
		vals := make([]float64, len(lay.Cols))
		for k, c := range lay.Cols {
			v, missing, err := table.Cell(rec[c])
			if err != nil {
				return nil, inputErr("line %d, column %q: %q is not a number (exclude the column with --exclude-cols if it is not a sensor)", tr.Line, header[c], rec[c])
			}
			if missing {
				t.Missing++
			}
			vals[k] = v
		}
		t.Values = append(t.Values, vals)
		if lay.Time >= 0 {
			s := strings.TrimSpace(rec[lay.Time])
			t.Stamps = append(t.Stamps, s)
			ts, ok := table.Time(s)
			if !ok {
				timeOK = false
			}
			t.Times = append(t.Times, ts)
		} else {
			t.Stamps = append(t.Stamps, strconv.Itoa(row))
		}
		if lay.Label >= 0 {
			v, missing, err := table.Cell(rec[lay.Label])
			if err != nil || missing {
				return nil, inputErr("line %d: label %q is not a number", tr.Line, rec[lay.Label])
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
