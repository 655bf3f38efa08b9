package nn

import "math"

// adamConsts are the factors of one Adam step in precision T, laid out as
// the assembly kernels read them.
type adamConsts[T float] struct {
	b1, omb1 T // β₁, 1−β₁
	b2, omb2 T // β₂, 1−β₂
	step     T // lr / (1−β₁ᵗ)
	ic2s     T // 1 / √(1−β₂ᵗ)
	eps      T
}

func newAdamConsts[T float](lr, b1, b2, eps float64, t int) adamConsts[T] {
	return adamConsts[T]{
		b1: T(b1), omb1: T(1 - b1), b2: T(b2), omb2: T(1 - b2),
		step: T(lr / (1 - math.Pow(b1, float64(t)))),
		ic2s: T(1 / math.Sqrt(1-math.Pow(b2, float64(t)))),
		eps:  T(eps),
	}
}

// The vector kernels in use (kernel_amd64.go), otherwise the portable
// loops: adamStep* update p from the gradient g and the moments m1, m2
// (all the same length); l2grad* add the gradient of l2/2·‖w‖² to g and
// return ‖w‖².
var (
	adamStep   = adamGo[float64]
	adamStep32 = adamGo[float32]
	l2grad     = l2gradGo[float64]
	l2grad32   = l2gradGo[float32]
)

// adamGo is one Adam step, bias-corrected as PyTorch does: the step is
// lr/(1−β₁ᵗ)·m₁ / (√m₂/√(1−β₂ᵗ) + ε). The square root is correctly rounded
// in either precision, as the kernels' is.
func adamGo[T float](p, g, m1, m2 []T, c *adamConsts[T]) {
	g, m1, m2 = g[:len(p)], m1[:len(p)], m2[:len(p)]
	for i, gi := range g {
		a := c.b1*m1[i] + c.omb1*gi
		b := c.b2*m2[i] + c.omb2*gi*gi
		m1[i], m2[i] = a, b
		p[i] -= c.step * a / (T(math.Sqrt(float64(b)))*c.ic2s + c.eps)
	}
}

func l2gradGo[T float](g, w []T, l2 T) T {
	g = g[:len(w)]
	var s T
	for i, v := range w {
		g[i] += l2 * v
		s += v * v
	}
	return s
}

// adamFor and addL2 pick the step and the L2 term of precision T.
func adamFor[T float]() func(p, g, m1, m2 []T, c *adamConsts[T]) {
	var f any = adamStep
	if _, ok := any(T(0)).(float32); ok {
		f = adamStep32
	}
	return f.(func(p, g, m1, m2 []T, c *adamConsts[T]))
}

// addL2 adds the gradient of l2/2·‖w‖² to g and returns ‖w‖², in the
// precision of g and w.
func addL2[T float](g, w []T, l2 float64) float64 {
	if g64, ok := any(g).([]float64); ok {
		return l2grad(g64, any(w).([]float64), l2)
	}
	return float64(l2grad32(any(g).([]float32), any(w).([]float32), float32(l2)))
}
