//go:build !purego

package nn

import "golang.org/x/sys/cpu"

// The AVX2/FMA kernels of kernel_amd64.s; see kernel[T] and adamGo.
//
//go:noescape
func kern4x8d(k int, a *float64, ars, aks uintptr, b *float64, ldb uintptr, c *float64, ldc uintptr, add bool)

//go:noescape
func kern4x16s(k int, a *float32, ars, aks uintptr, b *float32, ldb uintptr, c *float32, ldc uintptr, add bool)

//go:noescape
func adam4(n int, p, grad, m1, m2 *float64, c *adamConsts)

func init() {
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		kernel64, kernel32 = kern4x8d, kern4x16s
		adamStep, l2grad = adamAVX, l2gradAVX
		kernelName = "avx2-fma"
	}
}

func adamAVX(p, g, m1, m2 []float64, c *adamConsts) {
	n := len(p) &^ 3
	if n > 0 {
		_, _, _ = g[n-1], m1[n-1], m2[n-1]
		adam4(n, &p[0], &g[0], &m1[0], &m2[0], c)
	}
	adamGo(p[n:], g[n:], m1[n:], m2[n:], c)
}

//go:noescape
func l2grad4(n int, grad, w *float64, l2 float64) float64

func l2gradAVX(g, w []float64, l2 float64) float64 {
	n := len(w) &^ 3
	s := 0.0
	if n > 0 {
		_ = g[n-1]
		s = l2grad4(n, &g[0], &w[0], l2)
	}
	return s + l2gradGo(g[n:], w[n:], l2)
}
