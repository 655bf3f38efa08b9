package nn

import "unsafe"

// float is the precision of a batch pass: float64 for Gradient, Loss and
// Predict, and for Train unless TrainConfig.Float32.
type float interface{ float32 | float64 }

// kernel computes one tile of C = A·B: C[0:4][0:nr] is set to (add false)
// or incremented by (add true) Σ_l A(r, l)·B(l, 0:nr) over k values of l,
// where A(r, l) is at a + r·ars + l·aks and B(l, ·) at b + l·ldb, and C's
// rows are ldc apart (all in bytes).
type kernel[T float] func(k int, a *T, ars, aks uintptr, b *T, ldb uintptr, c *T, ldc uintptr, add bool)

// Panel widths: 8 float64 or 16 float32 are two 256-bit registers.
const (
	nr64 = 8
	nr32 = 16
	mr   = 4 // rows of a tile
)

// The kernels in use: assembly where the CPU has it (kernel_amd64.go),
// otherwise the portable one. The float32 kernel does twice the
// multiply-adds per instruction (BenchmarkGemm).
var (
	kernel64   kernel[float64] = kernGo[float64](nr64)
	kernel32   kernel[float32] = kernGo[float32](nr32)
	kernelName                 = "go"
)

// kernGo is the portable kernel. Its sums run in the same order as the
// assembly's but without fused multiply-adds, so results may differ in the
// last bits between the two.
func kernGo[T float](nr int) kernel[T] {
	return func(k int, a *T, ars, aks uintptr, b *T, ldb uintptr, c *T, ldc uintptr, add bool) {
		var acc [mr][nr32]T
		for l := 0; l < k; l++ {
			row := unsafe.Slice((*T)(unsafe.Add(unsafe.Pointer(b), uintptr(l)*ldb)), nr)
			for r := 0; r < mr; r++ {
				v := *(*T)(unsafe.Add(unsafe.Pointer(a), uintptr(r)*ars+uintptr(l)*aks))
				for j, bj := range row {
					acc[r][j] += v * bj
				}
			}
		}
		for r := 0; r < mr; r++ {
			row := unsafe.Slice((*T)(unsafe.Add(unsafe.Pointer(c), uintptr(r)*ldc)), nr)
			for j := range row {
				if add {
					row[j] += acc[r][j]
				} else {
					row[j] = acc[r][j]
				}
			}
		}
	}
}

func kernelFor[T float]() (kernel[T], int) {
	var k any
	var nr int
	switch any(T(0)).(type) {
	case float64:
		k, nr = kernel64, nr64
	default:
		k, nr = kernel32, nr32
	}
	return k.(kernel[T]), nr
}

// view is a strided matrix: element (i, j) is data[i·rs + j·cs]. A
// transposed view swaps rs and cs.
type view[T float] struct {
	rows, cols int
	rs, cs     int
	data       []T
}

func (v view[T]) t() view[T] { return view[T]{v.cols, v.rows, v.cs, v.rs, v.data} }

// operand is the B of a product, k×n, cut into panels of nr columns. The
// first direct panels are read in place (data, row stride ld); the others
// are packed, k×nr each and zero-padded, in pk.
type operand[T float] struct {
	k, n, nr int
	data     []T
	ld       int
	direct   int
	pk       []T
}

func (o *operand[T]) panels() int { return (o.n + o.nr - 1) / o.nr }

// setDirect reads b (k×n, row stride ld) in place. With padded, b's rows
// are zero beyond n up to a multiple of nr and every panel is read in
// place; otherwise the last partial panel is packed.
func (o *operand[T]) setDirect(b []T, k, n, ld, nr int, padded bool) {
	o.k, o.n, o.nr, o.data, o.ld = k, n, nr, b, ld
	o.direct = n / nr
	if padded || o.direct == o.panels() {
		o.direct = o.panels()
		return
	}
	o.grow(k * nr)
	j0 := o.direct * nr
	for l := 0; l < k; l++ {
		d := o.pk[l*nr : l*nr+nr]
		copy(d, b[l*ld+j0:l*ld+n])
		clear(d[n-j0:])
	}
}

// setPacked packs all of b, converting it to T.
func setPacked[T, S float](o *operand[T], b view[S], nr int) {
	k, n := b.rows, b.cols
	o.k, o.n, o.nr, o.direct = k, n, nr, 0
	np := o.panels()
	o.grow(np * k * nr)
	for q := 0; q < np; q++ {
		j0 := q * nr
		w := min(nr, n-j0)
		dst := o.pk[q*k*nr : (q+1)*k*nr]
		if w < nr {
			clear(dst)
		}
		if b.cs == 1 {
			for l := 0; l < k; l++ {
				d, src := dst[l*nr:l*nr+w], b.data[l*b.rs+j0:l*b.rs+j0+w]
				for j, v := range src {
					d[j] = T(v)
				}
			}
			continue
		}
		// A column of a transposed matrix is a row of the original.
		for j := 0; j < w; j++ {
			src := b.data[(j0+j)*b.cs:]
			for l := 0; l < k; l++ {
				dst[l*nr+j] = T(src[l*b.rs])
			}
		}
	}
}

func (o *operand[T]) grow(n int) {
	if cap(o.pk) < n {
		o.pk = make([]T, n)
	}
	o.pk = o.pk[:n]
}

func (o *operand[T]) panel(q int) (*T, int) {
	if q < o.direct {
		return &o.data[q*o.nr], o.ld
	}
	return &o.pk[(q-o.direct)*o.k*o.nr], o.nr
}

// gemmScratch holds a tile and a padded copy of leftover rows of A.
type gemmScratch[T float] struct {
	tile []T // mr×nr
	apad []T // mr×k
}

// gemm sets (add false) or increments (add true) c, m×n with row stride
// ldc, by a·b, where a is m×k. Panels [q0, q1) of b only, so that callers
// can split the columns of a product between goroutines: every element is
// computed the same way whatever the split.
func gemm[T float](a view[T], b *operand[T], c []T, ldc int, add bool, q0, q1 int, s *gemmScratch[T]) {
	kern, nr := kernelFor[T]()
	m, k := a.rows, b.k
	if m == 0 || k == 0 {
		if !add {
			for i := 0; i < m; i++ {
				clear(c[i*ldc+q0*nr : i*ldc+min(q1*nr, b.n)])
			}
		}
		return
	}
	size := uintptr(unsafe.Sizeof(T(0)))
	ars, aks := uintptr(a.rs)*size, uintptr(a.cs)*size
	if len(s.tile) < mr*nr {
		s.tile = make([]T, mr*nr)
	}
	full := m / mr * mr
	if rem := m - full; rem > 0 {
		if cap(s.apad) < mr*k {
			s.apad = make([]T, mr*k)
		}
		s.apad = s.apad[:mr*k]
		for r := 0; r < mr; r++ {
			row := s.apad[r*k : (r+1)*k]
			if r >= rem {
				clear(row)
				continue
			}
			for l := range row {
				row[l] = a.data[(full+r)*a.rs+l*a.cs]
			}
		}
	}
	for q := q0; q < q1; q++ {
		j0 := q * nr
		w := min(nr, b.n-j0)
		bp, ld := b.panel(q)
		ldb := uintptr(ld) * size
		for i := 0; i < full; i += mr {
			ap := &a.data[i*a.rs]
			if w == nr {
				kern(k, ap, ars, aks, bp, ldb, &c[i*ldc+j0], uintptr(ldc)*size, add)
				continue
			}
			kern(k, ap, ars, aks, bp, ldb, &s.tile[0], uintptr(nr)*size, false)
			s.put(c[i*ldc+j0:], ldc, mr, w, nr, add)
		}
		if full < m {
			kern(k, &s.apad[0], uintptr(k)*size, size, bp, ldb, &s.tile[0], uintptr(nr)*size, false)
			s.put(c[full*ldc+j0:], ldc, m-full, w, nr, add)
		}
	}
}

// put writes rows×w of the tile into c.
func (s *gemmScratch[T]) put(c []T, ldc, rows, w, nr int, add bool) {
	for r := 0; r < rows; r++ {
		dst, src := c[r*ldc:r*ldc+w], s.tile[r*nr:r*nr+w]
		if add {
			for j, v := range src {
				dst[j] += v
			}
		} else {
			copy(dst, src)
		}
	}
}
