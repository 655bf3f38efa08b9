package nn

import (
	"fmt"
	"math"
)

// Activation is an element-wise non-linearity applied after a dense layer.
type Activation int

// The supported activations. Their names are what artifacts store.
const (
	Linear Activation = iota
	Sigmoid
	Tanh
	ReLU
	LeakyReLU
)

// leakySlope is the slope of LeakyReLU below zero.
const leakySlope = 0.01

var activationNames = [...]string{"linear", "sigmoid", "tanh", "relu", "leaky_relu"}

func (a Activation) String() string {
	if a < 0 || int(a) >= len(activationNames) {
		return fmt.Sprintf("activation(%d)", int(a))
	}
	return activationNames[a]
}

// ParseActivation is the inverse of String.
func ParseActivation(s string) (Activation, error) {
	for i, n := range activationNames {
		if n == s {
			return Activation(i), nil
		}
	}
	return 0, fmt.Errorf("nn: unknown activation %q", s)
}

// apply writes f(z) into dst (dst and z may be the same slice).
func apply[T float](a Activation, dst, z []T) {
	switch a {
	case Linear:
		if &dst[0] != &z[0] {
			copy(dst, z)
		}
	case Sigmoid:
		for i, v := range z {
			dst[i] = T(sigmoid(float64(v)))
		}
	case Tanh:
		if d, ok := any(dst).([]float64); ok {
			for i, v := range any(z).([]float64) {
				d[i] = math.Tanh(v)
			}
			break
		}
		// math.Tanh of a widened float32 runs at a quarter of its speed on
		// float64 (measured); this form has float32's precision.
		for i, v := range z {
			e := math.Exp(2 * float64(v))
			dst[i] = T(1 - 2/(e+1))
		}
	case ReLU:
		for i, v := range z {
			dst[i] = max(v, 0)
		}
	case LeakyReLU:
		for i, v := range z {
			if v < 0 {
				v *= leakySlope
			}
			dst[i] = v
		}
	default:
		panic("nn: unknown activation")
	}
}

func sigmoid(v float64) float64 {
	if v >= 0 {
		return 1 / (1 + math.Exp(-v))
	}
	e := math.Exp(v)
	return e / (1 + e)
}

// backwardT multiplies a transposed gradient by f': dt[j·rp + r] is the
// gradient of element (r, j) of z and out (rows×cols, row-major).
func backwardT[T float](a Activation, dt []T, rp int, z, out []T, rows, cols int) {
	if a == Linear {
		return
	}
	for j := 0; j < cols; j++ {
		g := dt[j*rp : j*rp+rows]
		switch a {
		case Sigmoid:
			for r := range g {
				o := out[r*cols+j]
				g[r] *= o * (1 - o)
			}
		case Tanh:
			for r := range g {
				o := out[r*cols+j]
				g[r] *= 1 - o*o
			}
		case ReLU:
			for r := range g {
				if z[r*cols+j] <= 0 {
					g[r] = 0
				}
			}
		case LeakyReLU:
			for r := range g {
				if z[r*cols+j] <= 0 {
					g[r] *= leakySlope
				}
			}
		default:
			panic("nn: unknown activation")
		}
	}
}
