//go:build !purego

package nn

import "golang.org/x/sys/cpu"

// The AVX2/FMA kernels of kernel_amd64.s; see kernel[T], adamGo and
// l2gradGo.
//
//go:noescape
func kern4x8d(k int, a *float64, ars, aks uintptr, b *float64, ldb uintptr, c *float64, ldc uintptr, add bool)

//go:noescape
func kern4x16s(k int, a *float32, ars, aks uintptr, b *float32, ldb uintptr, c *float32, ldc uintptr, add bool)

//go:noescape
func adam4(n int, p, grad, m1, m2 *float64, c *adamConsts[float64])

//go:noescape
func adam8s(n int, p, grad, m1, m2 *float32, c *adamConsts[float32])

//go:noescape
func l2grad4(n int, grad, w *float64, l2 float64) float64

//go:noescape
func l2grad8s(n int, grad, w *float32, l2 float32) float32

func init() {
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		kernel64, kernel32 = kern4x8d, kern4x16s
		adamStep, adamStep32 = vector(adam4, 4), vector(adam8s, 8)
		l2grad, l2grad32 = vectorL2(l2grad4, 4), vectorL2(l2grad8s, 8)
		kernelName = "avx2-fma"
	}
}

// vector runs an Adam kernel of lanes elements at a time over the longest
// prefix it can take and the portable loop over the rest.
func vector[T float](kern func(n int, p, grad, m1, m2 *T, c *adamConsts[T]), lanes int) func(p, g, m1, m2 []T, c *adamConsts[T]) {
	return func(p, g, m1, m2 []T, c *adamConsts[T]) {
		n := len(p) / lanes * lanes
		if n > 0 {
			_, _, _ = g[n-1], m1[n-1], m2[n-1]
			kern(n, &p[0], &g[0], &m1[0], &m2[0], c)
		}
		adamGo(p[n:], g[n:], m1[n:], m2[n:], c)
	}
}

// vectorL2 is vector for an L2 kernel.
func vectorL2[T float](kern func(n int, grad, w *T, l2 T) T, lanes int) func(g, w []T, l2 T) T {
	return func(g, w []T, l2 T) T {
		n := len(w) / lanes * lanes
		var s T
		if n > 0 {
			_ = g[n-1]
			s = kern(n, &g[0], &w[0], l2)
		}
		return s + l2gradGo(g[n:], w[n:], l2)
	}
}
