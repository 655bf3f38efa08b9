package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestGemmMatchesNaive checks the packed product, in both precisions and
// with both kernels, against a plain triple loop, for normal and transposed
// operands and shapes that leave partial tiles and panels.
func TestGemmMatchesNaive(t *testing.T) {
	t.Run("float64", func(t *testing.T) {
		testGemm(t, &kernel64, kernGo[float64](nr64), nr64, 1e-12)
	})
	t.Run("float32", func(t *testing.T) {
		testGemm(t, &kernel32, kernGo[float32](nr32), nr32, 1e-5)
	})
}

func testGemm[T float](t *testing.T, active *kernel[T], portable kernel[T], nr int, tol float64) {
	rng := rand.New(rand.NewPCG(1, 2))
	saved := *active
	defer func() { *active = saved }()
	for _, name := range []string{kernelName, "go"} {
		if name == "go" {
			*active = portable
		}
		for _, sh := range [][3]int{{1, 1, 1}, {4, 8, 1}, {3, 5, 7}, {32, 64, 416}, {416, 64, 32}, {17, 33, 9}, {5, 16, 2}, {32, 1, 32}} {
			m, n, k := sh[0], sh[1], sh[2]
			for _, ta := range []bool{false, true} {
				for _, tb := range []bool{false, true} {
					for _, add := range []bool{false, true} {
						t.Run(fmt.Sprintf("%s/%dx%dx%d/ta=%v/tb=%v/add=%v", name, m, n, k, ta, tb, add), func(t *testing.T) {
							a := randView[T](rng, m, k, ta)
							b := randView[T](rng, k, n, tb)
							ldc := n + 3
							c := make([]T, m*ldc)
							want := make([]float64, m*ldc)
							for i := range c {
								c[i] = T(rng.NormFloat64())
								want[i] = float64(c[i])
							}
							for i := 0; i < m; i++ {
								for j := 0; j < n; j++ {
									s := 0.0
									for l := 0; l < k; l++ {
										s += float64(a.data[i*a.rs+l*a.cs]) * float64(b.data[l*b.rs+j*b.cs])
									}
									if add {
										want[i*ldc+j] += s
									} else {
										want[i*ldc+j] = s
									}
								}
							}
							var p operand[T]
							if tb {
								setPacked(&p, b, nr)
							} else {
								p.setDirect(b.data, k, n, n, nr, false)
							}
							np := p.panels()
							var s gemmScratch[T]
							// Two calls over a split of the panels must equal one.
							gemm(a, &p, c, ldc, add, 0, np/2, &s)
							gemm(a, &p, c, ldc, add, np/2, np, &s)
							for i := range c {
								if d := math.Abs(float64(c[i]) - want[i]); d > tol*(1+math.Abs(want[i]))*float64(k) {
									t.Fatalf("element %d: %v, want %v", i, c[i], want[i])
								}
							}
						})
					}
				}
			}
		}
	}
}

func randView[T float](rng *rand.Rand, rows, cols int, transposed bool) view[T] {
	d := make([]T, rows*cols)
	for i := range d {
		d[i] = T(rng.NormFloat64())
	}
	if transposed {
		return view[T]{cols, rows, rows, 1, d}.t()
	}
	return view[T]{rows, cols, cols, 1, d}
}

// BenchmarkGemm times the products of one training step of the largest
// layers: the 416-input autoencoder (batch 32), the 52-sensor forecaster
// and the RUL regressor at batch 128.
func BenchmarkGemm(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sh := range []struct {
		name    string
		m, n, k int
		ta, tb  bool
	}{
		{"forward-32x64x416", 32, 64, 416, false, false},
		{"dW-416x64x32", 416, 64, 32, true, false},
		{"dX-32x416x64", 32, 416, 64, false, true},
		{"forward-32x104x832", 32, 104, 832, false, false},
		{"dW-832x104x32", 832, 104, 32, true, false},
		{"forward-128x64x750", 128, 64, 750, false, false},
		{"dW-750x64x128", 750, 64, 128, true, false},
	} {
		b.Run("float64/"+sh.name, func(b *testing.B) { benchGemm[float64](b, rng, nr64, sh.m, sh.n, sh.k, sh.ta, sh.tb) })
		b.Run("float32/"+sh.name, func(b *testing.B) { benchGemm[float32](b, rng, nr32, sh.m, sh.n, sh.k, sh.ta, sh.tb) })
	}
}

// The B operand is read in place (the layout Train keeps its weights in).
func benchGemm[T float](b *testing.B, rng *rand.Rand, nr, m, n, k int, ta, tb bool) {
	a, bm := randView[T](rng, m, k, ta), randView[T](rng, k, n, false)
	c := make([]T, m*n)
	var p operand[T]
	p.setDirect(bm.data, k, n, n, nr, false)
	var s gemmScratch[T]
	for b.Loop() {
		gemm(a, &p, c, n, false, 0, p.panels(), &s)
	}
	b.ReportMetric(float64(2*m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// TestAdamKernelMatchesPortable: the vector Adam steps give the same bits
// as the portable loop, on a length that leaves a tail, in both
// precisions.
func TestAdamKernelMatchesPortable(t *testing.T) {
	testAdamKernel(t, adamStep)
	testAdamKernel(t, adamStep32)
}

func testAdamKernel[T float](t *testing.T, step func(p, g, m1, m2 []T, c *adamConsts[T])) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 103
	mk := func(f func() float64) []T {
		v := make([]T, n)
		for i := range v {
			v[i] = T(f())
		}
		return v
	}
	p, g, m1, m2 := mk(rng.NormFloat64), mk(rng.NormFloat64), mk(rng.NormFloat64), mk(rng.Float64)
	p2, m12, m22 := slices.Clone(p), slices.Clone(m1), slices.Clone(m2)
	for t := 1; t <= 3; t++ {
		c := newAdamConsts[T](0.01, 0.9, 0.999, 1e-8, t)
		step(p, g, m1, m2, &c)
		adamGo(p2, g, m12, m22, &c)
	}
	for i := range p {
		if p[i] != p2[i] || m1[i] != m12[i] || m2[i] != m22[i] {
			t.Fatalf("%s %T: element %d: %v %v %v, portable %v %v %v", kernelName, p[i], i, p[i], m1[i], m2[i], p2[i], m12[i], m22[i])
		}
	}
}

func TestL2KernelMatchesPortable(t *testing.T) {
	testL2Kernel(t, l2grad, 1e-12)
	testL2Kernel(t, l2grad32, 1e-5)
}

func testL2Kernel[T float](t *testing.T, l2 func(g, w []T, l2 T) T, tol float64) {
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 37
	w, g := make([]T, n), make([]T, n)
	for i := range w {
		w[i], g[i] = T(rng.NormFloat64()), T(rng.NormFloat64())
	}
	g2 := slices.Clone(g)
	s, s2 := l2(g, w, 0.1), l2gradGo(g2, w, 0.1)
	if math.Abs(float64(s-s2)) > tol*float64(s2) {
		t.Fatalf("%T: sum of squares %v, portable %v", s, s, s2)
	}
	for i := range g {
		if g[i] != g2[i] {
			t.Fatalf("%T: element %d: %v, portable %v", s, i, g[i], g2[i])
		}
	}
}
