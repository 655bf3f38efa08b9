package table

import (
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

func readAll(t *testing.T, text string, columns []string, c Columns) (Layout, [][]string, error) {
	t.Helper()
	r, err := NewReader(strings.NewReader(text), columns)
	if err != nil {
		return Layout{}, nil, err
	}
	lay, err := r.Layout(c)
	if err != nil {
		return lay, nil, err
	}
	var recs [][]string
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return lay, recs, nil
		}
		if err != nil {
			return lay, recs, err
		}
		recs = append(recs, append([]string(nil), rec...))
	}
}

func TestLayouts(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		columns    []string
		sensors    string
		rows       int
	}{
		{"comma", "timestamp,a,b\n1,2,3\n\n4,5,6\n", nil, "a,b", 2},
		{"semicolon beats comma", "\ufefftime ; a;b\n1;2,5;3\n", nil, "a,b", 1},
		{"whitespace header", "time a  b\n1 2 3\n", nil, "a,b", 1},
		{"no header", "1 2 3\n4 5 6\n", []string{"unit", "a", "b"}, "unit,a,b", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lay, recs, err := readAll(t, tc.text, tc.columns, Columns{})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(lay.Sensors, ","); got != tc.sensors || len(recs) != tc.rows {
				t.Fatalf("sensors %s, %d rows; want %s, %d", got, len(recs), tc.sensors, tc.rows)
			}
		})
	}
}

func TestErrorsNameTheLineAndColumn(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		c          Columns
		want       string
	}{
		{"empty", " \n", Columns{}, "empty file"},
		{"ragged", "t,a\n1,2\n3\n", Columns{}, "line 3 has 1 fields, want 2"},
		{"unknown label", "t,a\n1,2\n", Columns{Label: "l"}, `label column "l" not in header`},
		{"twice", "t,a,a\n", Columns{}, `column "a" twice`},
		{"sensor is the label", "t,a,l\n", Columns{Label: "l", Sensors: []string{"l"}}, "also the time"},
		{"nothing left", "time,l\n", Columns{Label: "l"}, "no sensor columns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := readAll(t, tc.text, nil, tc.c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestCellsAndTimes(t *testing.T) {
	for in, want := range map[string]float64{" 2.5 ": 2.5, "-1e3": -1000} {
		if v, missing, err := Cell(in); err != nil || missing || v != want {
			t.Errorf("Cell(%q) = %v %v %v", in, v, missing, err)
		}
	}
	for _, in := range []string{"", "NaN", "na", "NULL", "none", "+Inf"} {
		if v, missing, err := Cell(in); err != nil || !missing || !math.IsNaN(v) {
			t.Errorf("Cell(%q) = %v %v %v, want missing", in, v, missing, err)
		}
	}
	if _, _, err := Cell("abc"); err == nil {
		t.Error("Cell(abc) parsed")
	}
	want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, in := range []string{"2026-01-02T03:04:05Z", "2026-01-02 03:04:05", "1767323045", "1767323045000"} {
		if got, ok := Time(in); !ok || !got.Equal(want) {
			t.Errorf("Time(%q) = %v %v", in, got, ok)
		}
	}
	if _, ok := Time("yesterday"); ok {
		t.Error("Time(yesterday) parsed")
	}
}
