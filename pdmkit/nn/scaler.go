package nn

import (
	"fmt"
	"math"
)

// Scaler standardises features to zero mean and unit variance using
// statistics learned from training data; it is stored with the model so the
// scorer scales exactly as the trainer did.
type Scaler struct {
	Mean []float64 `json:"mean"`
	Std  []float64 `json:"std"`
}

// MinStd is the smallest standard deviation a scaler divides by, so a
// constant sensor in training neither divides by zero nor turns a tiny
// later change into an enormous z-score.
const MinStd = 1e-6

// FitScaler learns per-column mean and standard deviation from rows.
func FitScaler(rows [][]float64) (*Scaler, error) {
	if len(rows) == 0 {
		return nil, fmt.Errorf("nn: cannot fit a scaler on no rows")
	}
	d := len(rows[0])
	s := &Scaler{Mean: make([]float64, d), Std: make([]float64, d)}
	for i, r := range rows {
		if len(r) != d {
			return nil, fmt.Errorf("nn: row %d has %d columns, want %d", i, len(r), d)
		}
		for j, v := range r {
			s.Mean[j] += v
		}
	}
	n := float64(len(rows))
	for j := range s.Mean {
		s.Mean[j] /= n
	}
	for _, r := range rows {
		for j, v := range r {
			e := v - s.Mean[j]
			s.Std[j] += e * e
		}
	}
	for j := range s.Std {
		s.Std[j] = math.Max(math.Sqrt(s.Std[j]/n), MinStd)
	}
	return s, nil
}

// Validate reports a scaler that cannot be used with d features.
func (s *Scaler) Validate(d int) error {
	if len(s.Mean) != d || len(s.Std) != d {
		return fmt.Errorf("nn: scaler has %d means and %d deviations for %d features", len(s.Mean), len(s.Std), d)
	}
	for j := range s.Mean {
		if math.IsNaN(s.Mean[j]) || math.IsInf(s.Mean[j], 0) || !(s.Std[j] > 0) || math.IsInf(s.Std[j], 0) {
			return fmt.Errorf("nn: scaler feature %d has mean %v and deviation %v", j, s.Mean[j], s.Std[j])
		}
	}
	return nil
}

// Transform writes the scaled x into dst (which may alias x).
func (s *Scaler) Transform(dst, x []float64) {
	for j, v := range x {
		dst[j] = (v - s.Mean[j]) / s.Std[j]
	}
}

// Inverse undoes Transform.
func (s *Scaler) Inverse(dst, z []float64) {
	for j, v := range z {
		dst[j] = v*s.Std[j] + s.Mean[j]
	}
}
