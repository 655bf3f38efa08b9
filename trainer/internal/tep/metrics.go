package tep

import (
	"math"
	"slices"
)

// scored returns the values of v that are not NaN (NaN marks a row the
// detector did not score: its window was still filling).
func scored(v []float64) []float64 {
	out := make([]float64, 0, len(v))
	for _, x := range v {
		if !math.IsNaN(x) {
			out = append(out, x)
		}
	}
	return out
}

// threshold5 is the equal-FAR threshold: a value above it is flagged, and
// at most 5 % of the scored normal values are above it (the empirical 95th
// percentile; ties can only lower the share).
func threshold5(normal []float64) float64 {
	s := scored(normal)
	if len(s) == 0 {
		return math.Inf(1)
	}
	slices.Sort(s)
	k := int(math.Ceil(0.95*float64(len(s)))) - 1
	return s[max(k, 0)]
}

// above is the share of v[from:] above t; unscored rows count as not
// flagged.
func above(v []float64, from int, t float64) float64 {
	n := 0
	for _, x := range v[from:] {
		if x > t {
			n++
		}
	}
	return float64(n) / float64(len(v)-from)
}

// share is the share of flags[from:] that are set.
func share(flags []bool, from int) float64 {
	n := 0
	for _, f := range flags[from:] {
		if f {
			n++
		}
	}
	return float64(n) / float64(len(flags)-from)
}

// auc is the area under the ROC curve of pos (faulty rows) against neg
// (normal rows): the probability that a faulty row scores above a normal
// one, ties counting half (Mann–Whitney). Unscored rows of pos count as
// the lowest score, so a detector gains nothing from not scoring.
func auc(neg, pos []float64) float64 {
	n := scored(neg)
	if len(n) == 0 || len(pos) == 0 {
		return math.NaN()
	}
	slices.Sort(n)
	var sum float64
	for _, p := range pos {
		if math.IsNaN(p) {
			continue
		}
		lo, _ := slices.BinarySearch(n, p)
		hi := lo
		for hi < len(n) && n[hi] == p {
			hi++
		}
		sum += float64(lo) + 0.5*float64(hi-lo)
	}
	return sum / float64(len(n)*len(pos))
}

// firstFrom is the first index at or after from where flags is set, -1
// for none.
func firstFrom(flags []bool, from int) int {
	for i := from; i < len(flags); i++ {
		if flags[i] {
			return i
		}
	}
	return -1
}
