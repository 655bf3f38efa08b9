package nn

import "math"

// adamConsts are the factors of one Adam step, laid out as adam4 reads
// them.
type adamConsts struct {
	b1, omb1 float64 // β₁, 1−β₁
	b2, omb2 float64 // β₂, 1−β₂
	step     float64 // lr / (1−β₁ᵗ)
	ic2s     float64 // 1 / √(1−β₂ᵗ)
	eps      float64
}

func newAdamConsts(lr, b1, b2, eps float64, t int) adamConsts {
	return adamConsts{
		b1: b1, omb1: 1 - b1, b2: b2, omb2: 1 - b2,
		step: lr / (1 - math.Pow(b1, float64(t))),
		ic2s: 1 / math.Sqrt(1-math.Pow(b2, float64(t))),
		eps:  eps,
	}
}

// adamStep updates p from the gradient g and the moments m1, m2 (all the
// same length); the assembly version where the CPU has it.
var adamStep = adamGo

// adamGo is one Adam step, bias-corrected as PyTorch does: the step is
// lr/(1−β₁ᵗ)·m₁ / (√m₂/√(1−β₂ᵗ) + ε).
func adamGo(p, g, m1, m2 []float64, c *adamConsts) {
	g, m1, m2 = g[:len(p)], m1[:len(p)], m2[:len(p)]
	for i, gi := range g {
		a := c.b1*m1[i] + c.omb1*gi
		b := c.b2*m2[i] + c.omb2*gi*gi
		m1[i], m2[i] = a, b
		p[i] -= c.step * a / (math.Sqrt(b)*c.ic2s + c.eps)
	}
}

// l2grad adds the gradient of l2/2·‖w‖² to g and returns ‖w‖²; the
// assembly version where the CPU has it.
var l2grad = l2gradGo

func l2gradGo(g, w []float64, l2 float64) float64 {
	g = g[:len(w)]
	s := 0.0
	for i, v := range w {
		g[i] += l2 * v
		s += v * v
	}
	return s
}
