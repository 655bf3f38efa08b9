package cmapss

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

func row(unit, cycle int) string {
	f := []string{itoa(unit), itoa(cycle), "-0.0007", "-0.0004", "100.0"}
	for i := 0; i < 21; i++ {
		f = append(f, "1.5")
	}
	return strings.Join(f, " ") + "  \n"
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestReadSeries(t *testing.T) {
	in := row(1, 1) + row(1, 2) + row(2, 1) + "\n"
	s, err := ReadSeries(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 2 || len(s[0].Rows) != 2 || len(s[1].Rows) != 1 || s[0].Rows[0][0] != -0.0007 || len(s[0].Rows[0]) != 24 {
		t.Fatalf("%+v", s)
	}
	bad := []struct{ name, in string }{
		{"empty", ""},
		{"short line", "1 1 2\n"},
		{"text", strings.Replace(row(1, 1), "1.5", "x", 1)},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ReadSeries(strings.NewReader(tc.in)); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func TestScore(t *testing.T) {
	rmse, phm := Score([]float64{10, 20}, []float64{20, 10})
	want := math.Exp(10.0/13) - 1 + math.Exp(10.0/10) - 1
	if rmse != 10 || math.Abs(phm-want) > 1e-12 {
		t.Fatalf("rmse %v phm %v, want 10 and %v", rmse, phm, want)
	}
	r, err := ReadRUL(strings.NewReader("112 \n98\n\n"))
	if err != nil || len(r) != 2 || r[1] != 98 {
		t.Fatalf("%v %v", r, err)
	}
}

func TestWithCycle(t *testing.T) {
	s, err := ReadSeries(strings.NewReader(row(1, 1) + row(1, 2) + row(2, 1)))
	if err != nil {
		t.Fatal(err)
	}
	c := WithCycle(s)
	if len(c) != 2 || len(c[0].Rows[1]) != len(Features) || c[0].Rows[0][len(Columns)] != 1 || c[0].Rows[1][len(Columns)] != 2 ||
		c[1].Rows[0][len(Columns)] != 1 || len(s[0].Rows[0]) != len(Columns) || Features[len(Columns)] != "cycle" {
		t.Fatalf("%+v", c)
	}
}
