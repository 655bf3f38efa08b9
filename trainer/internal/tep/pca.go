package tep

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"
)

// PCA is the classical monitoring baseline: standardise on the training
// rows, keep the leading principal components that explain Share of the
// variance, and score each row by Hotelling's T² (its distance inside the
// kept subspace, in units of each component's variance) and by SPE, the
// squared prediction error (Q: its squared distance from the subspace).
type PCA struct {
	mean, std []float64
	vecs      *mat.Dense // d × k, the kept loadings
	vars      []float64  // the kept components' variances
	// K is how many components are kept, Explained their share of the
	// variance.
	K         int
	Explained float64
	// LimitT2 and LimitSPE are the 99th percentiles of the statistics on
	// the training rows, the textbook control limits.
	LimitT2, LimitSPE float64
}

// FitPCA fits the baseline on rows (one sample each), keeping the fewest
// components that explain at least share of the standardised variance.
func FitPCA(rows [][]float64, share float64) (*PCA, error) {
	n := len(rows)
	if n < 3 {
		return nil, fmt.Errorf("tep: PCA needs at least 3 rows, have %d", n)
	}
	d := len(rows[0])
	p := &PCA{mean: make([]float64, d), std: make([]float64, d)}
	col := make([]float64, n)
	for j := range d {
		for i, r := range rows {
			col[i] = r[j]
		}
		p.mean[j], p.std[j] = stat.MeanStdDev(col, nil)
		if !(p.std[j] > 0) {
			p.std[j] = 1 // constant in training: any change is all residual
		}
	}
	x := mat.NewDense(n, d, nil)
	for i, r := range rows {
		p.scale(x.RawRowView(i), r)
	}
	var pc stat.PC
	if !pc.PrincipalComponents(x, nil) {
		return nil, fmt.Errorf("tep: PCA: the decomposition failed")
	}
	vars := pc.VarsTo(nil)
	var vecs mat.Dense
	pc.VectorsTo(&vecs)
	total := 0.0
	for _, v := range vars {
		total += v
	}
	sum := 0.0
	for p.K < len(vars) && sum < share*total {
		sum += vars[p.K]
		p.K++
	}
	p.Explained = sum / total
	p.vars = vars[:p.K]
	p.vecs = mat.DenseCopyOf(vecs.Slice(0, d, 0, p.K))
	t2, spe := make([]float64, n), make([]float64, n)
	for i, r := range rows {
		t2[i], spe[i] = p.Stats(r)
	}
	p.LimitT2, p.LimitSPE = percentile(t2, 0.99), percentile(spe, 0.99)
	return p, nil
}

func (p *PCA) scale(dst, r []float64) {
	for j, v := range r {
		dst[j] = (v - p.mean[j]) / p.std[j]
	}
}

// Stats returns T² and SPE of one row.
func (p *PCA) Stats(r []float64) (t2, spe float64) {
	d := len(p.mean)
	z := make([]float64, d)
	p.scale(z, r)
	res := append([]float64(nil), z...)
	for k := range p.K {
		s := 0.0
		for j := range d {
			s += z[j] * p.vecs.At(j, k)
		}
		t2 += s * s / p.vars[k]
		for j := range d {
			res[j] -= s * p.vecs.At(j, k)
		}
	}
	for _, v := range res {
		spe += v * v
	}
	return t2, spe
}

// percentile is the q-quantile of v (linear interpolation), v unchanged.
func percentile(v []float64, q float64) float64 {
	s := append([]float64(nil), v...)
	slices.Sort(s)
	if len(s) == 0 {
		return math.NaN()
	}
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	f := pos - float64(i)
	return s[i]*(1-f) + s[i+1]*f
}
