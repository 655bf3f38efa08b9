package corpus

import (
	"math"
	"slices"
	"testing"
)

// TestStreamsAreWellFormed: names are unique, times strictly increase at
// the stream's step, rows match the sensors and hold finite values, and the
// same call gives the same rows (the corpus is a function of its seeds).
func TestStreamsAreWellFormed(t *testing.T) {
	all := append(append(Healthy(), SetPoints()...), Fault(10, 2500, 30), Wear(2500, 3500, 2000), Ramp(2000, 3000, 5))
	again := append(append(Healthy(), SetPoints()...), Fault(10, 2500, 30), Wear(2500, 3500, 2000), Ramp(2000, 3000, 5))
	seen := map[string]bool{}
	for k, s := range all {
		if seen[s.Name] {
			t.Fatalf("name %q twice", s.Name)
		}
		seen[s.Name] = true
		if s.Warmup <= 0 || s.Warmup >= len(s.Rows) || len(s.Times) != len(s.Rows) {
			t.Fatalf("%s: warm-up %d of %d rows, %d times", s.Name, s.Warmup, len(s.Rows), len(s.Times))
		}
		for i, row := range s.Rows {
			if len(row) != len(s.Sensors) {
				t.Fatalf("%s row %d: %d values for %d sensors", s.Name, i, len(row), len(s.Sensors))
			}
			for _, v := range row {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("%s row %d: %v", s.Name, i, v)
				}
			}
			if i > 0 && s.Times[i].Sub(s.Times[i-1]) != s.Step {
				t.Fatalf("%s row %d: step %v, want %v", s.Name, i, s.Times[i].Sub(s.Times[i-1]), s.Step)
			}
			if !slices.Equal(row, again[k].Rows[i]) {
				t.Fatalf("%s row %d differs between two calls", s.Name, i)
			}
		}
		if (s.Labels != nil) != (s.Change >= 0 && s.Failure != -2 && s.Labels != nil) {
			t.Fatalf("%s: labels without a change", s.Name)
		}
	}
}

// TestShapes checks that each shape is what its name says.
func TestShapes(t *testing.T) {
	byName := map[string]Stream{}
	for _, s := range append(Healthy(), SetPoints()...) {
		byName[s.Name] = s
	}
	duty := byName["duty/period=288/on=144/sigma=0"]
	lows, highs := 0, 0
	for _, r := range duty.Rows[:288] {
		switch r[0] {
		case 5:
			lows++
		case 80:
			highs++
		}
	}
	if lows != 144 || highs != 144 {
		t.Errorf("noise-free 12 h / 12 h duty cycle: %d rows off and %d on in a day", lows, highs)
	}
	sp := byName["setpoint/50-65"]
	before, after := mean(sp.Rows[sp.Change-200:sp.Change]), mean(sp.Rows[sp.Change+10:sp.Change+210])
	if math.Abs(before-50) > 0.5 || math.Abs(after-65) > 0.5 {
		t.Errorf("set point: level %.2f before, %.2f after the change", before, after)
	}
	w := Wear(2500, 3500, -1)
	if w.Rows[3499][1]-w.Rows[2400][1] < 1.5 || !w.Labels[2500] || w.Labels[2499] {
		t.Errorf("wear: vibration %.2f → %.2f, labels %v %v", w.Rows[2400][1], w.Rows[3499][1], w.Labels[2499], w.Labels[2500])
	}
}

func mean(rows [][]float64) float64 {
	s := 0.0
	for _, r := range rows {
		s += r[0]
	}
	return s / float64(len(rows))
}
