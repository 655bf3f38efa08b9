package nn

import (
	"math"

	"gonum.org/v1/gonum/blas/blas64"
)

// workspace holds the buffers of a batch pass in precision T; they grow to
// the largest batch seen and are reused after that.
//
// Layouts, chosen so that no product has to copy a weight matrix: the
// forward pass is z = in·W (W read in place as the right operand); the
// deltas are kept transposed, δᵀ (Out×rows), so that the delta of the layer
// below is δᵀ_prev = W·δᵀ (W read in place as the left operand, δᵀ in
// place as the right) and bias gradients are sums of contiguous rows. Only
// the small δ (rows×Out) is packed, for dW = inᵀ·δ.
//
// A float64 workspace reads and trains the weights in Network.Params; a
// float32 one trains a float32 copy of them (params), which Train copies
// back into Params.
type workspace[T float] struct {
	cap, rows int
	rp        int   // row stride of δᵀ: rows rounded up to a panel, zero beyond rows
	z, a      [][]T // per layer, rows×Out
	dt        [][]T // per layer, Out×rp
	wop       []operand[T]
	dop       operand[T]
	grad      []T // like Params
	s         gemmScratch[T]

	params []T   // the weights in T: Params itself for float64
	w, b   [][]T // per layer, views into params
	x, y   []T   // a float32 pass's batch, converted
}

// workspaceFor returns n's workspace in precision T, bound to n's current
// parameters.
func workspaceFor[T float](n *Network) *workspace[T] {
	var w *workspace[T]
	switch ws := any(&n.ws).(type) {
	case *workspace[T]:
		w = ws
	default:
		if n.ws32 == nil {
			n.ws32 = &workspace[float32]{}
		}
		w = any(n.ws32).(*workspace[T])
	}
	if p, ok := any(n.Params).([]T); ok {
		w.params = p
	} else {
		if len(w.params) != len(n.Params) {
			w.params = make([]T, len(n.Params))
		}
		convert(w.params, n.Params)
	}
	w.w, w.b = w.w[:0], w.b[:0]
	off := 0
	for _, l := range n.Layers {
		w.w = append(w.w, w.params[off:off+l.In*l.Out])
		off += l.In * l.Out
		w.b = append(w.b, w.params[off:off+l.Out])
		off += l.Out
	}
	return w
}

func convert[T, S float](dst []T, src []S) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = T(v)
	}
}

func (w *workspace[T]) ensure(n *Network, rows int) {
	if w.cap < rows || len(w.z) != len(n.Layers) {
		w.cap = rows
		rp := roundUp(rows, nrFor[T]())
		w.z, w.a, w.dt = w.z[:0], w.a[:0], w.dt[:0]
		for _, l := range n.Layers {
			w.z = append(w.z, make([]T, rows*l.Out))
			w.a = append(w.a, make([]T, rows*l.Out))
			w.dt = append(w.dt, make([]T, l.Out*rp))
		}
		w.wop = make([]operand[T], len(n.Layers))
		w.rows = 0
	}
	if len(w.grad) != len(n.Params) {
		w.grad = make([]T, len(n.Params))
	}
	if w.rows != rows {
		w.rows, w.rp = rows, roundUp(rows, nrFor[T]())
		for i, l := range n.Layers {
			w.dt[i] = w.dt[i][:cap(w.dt[i])][:l.Out*w.rp]
			clear(w.dt[i])
		}
	}
}

func roundUp(n, m int) int { return (n + m - 1) / m * m }

// input returns m as a view in T: m itself for float64, a converted copy
// in buf otherwise.
func input[T float](m blas64.General, buf *[]T) view[T] {
	if d, ok := any(m.Data).([]T); ok {
		return view[T]{m.Rows, m.Cols, m.Stride, 1, d}
	}
	if cap(*buf) < m.Rows*m.Cols {
		*buf = make([]T, m.Rows*m.Cols)
	}
	d := (*buf)[:m.Rows*m.Cols]
	for r := 0; r < m.Rows; r++ {
		convert(d[r*m.Cols:(r+1)*m.Cols], m.Data[r*m.Stride:r*m.Stride+m.Cols])
	}
	return view[T]{m.Rows, m.Cols, m.Cols, 1, d}
}

// forwardBatch runs x through the network in float64 and returns the
// output, a view of the workspace.
func (n *Network) forwardBatch(x blas64.General) blas64.General {
	w := workspaceFor[float64](n)
	out := forward(n, w, view[float64]{x.Rows, x.Cols, x.Stride, 1, x.Data})
	return blas64.General{Rows: out.rows, Cols: out.cols, Stride: out.rs, Data: out.data}
}

// forward runs in through the network in w's precision and returns the
// output, a view of the workspace.
func forward[T float](n *Network, w *workspace[T], in view[T]) view[T] {
	w.ensure(n, in.rows)
	rows := in.rows
	for i := range n.Layers {
		l := &n.Layers[i]
		z, a := w.z[i][:rows*l.Out], w.a[i][:rows*l.Out]
		op := &w.wop[i]
		op.setDirect(w.w[i], l.In, l.Out, l.Out, nrFor[T](), false)
		gemm(in, op, z, l.Out, false, 0, op.panels(), &w.s)
		for r := 0; r < rows; r++ {
			zr := z[r*l.Out : (r+1)*l.Out]
			for j, b := range w.b[i] {
				zr[j] += b
			}
		}
		apply(l.Act, a, z)
		in = view[T]{rows, l.Out, l.Out, 1, a}
	}
	return in
}

func nrFor[T float]() int {
	_, nr := kernelFor[T]()
	return nr
}

func (n *Network) gradient(x, y blas64.General, loss Loss, l2 float64) (float64, []float64) {
	w := workspaceFor[float64](n)
	return backprop(n, w, x, y, loss, l2, nil), w.grad
}

// backprop computes the loss and its gradient into w.grad, in w's
// precision. With an updater, each layer's parameters are updated as soon
// as their gradient is complete and the layer below no longer needs their
// old values (its delta is computed first), while they are still in cache;
// a non-finite data loss returns before any update.
func backprop[T float](n *Network, w *workspace[T], x, y blas64.General, loss Loss, l2 float64, u *updater[T]) float64 {
	xin := input(x, &w.x)
	yin := xin
	if &y.Data[0] != &x.Data[0] {
		yin = input(y, &w.y)
	}
	out := forward(n, w, xin)
	rows := x.Rows
	rp := w.rp
	L := len(n.Layers)
	val := outputDelta(w.dt[L-1], rp, out, w.z[L-1], yin, loss)
	if math.IsNaN(val) || math.IsInf(val, 0) {
		return val
	}
	if loss == MSE {
		backwardT(n.Layers[L-1].Act, w.dt[L-1], rp, w.z[L-1], w.a[L-1], rows, n.Layers[L-1].Out)
	}
	nr := nrFor[T]()
	grad := w.grad
	off := len(n.Params)
	for i := L - 1; i >= 0; i-- {
		l := &n.Layers[i]
		end := off
		off -= l.In*l.Out + l.Out
		gW := grad[off : off+l.In*l.Out]
		gB := grad[off+l.In*l.Out : end]
		dt := w.dt[i]
		if i > 0 {
			// δᵀ_prev = W·δᵀ, then times f' of the layer below.
			prev := w.dt[i-1]
			w.dop.setDirect(dt, l.Out, rows, rp, nr, true)
			gemm(view[T]{l.In, l.Out, l.Out, 1, w.w[i]}, &w.dop, prev, rp, false, 0, w.dop.panels(), &w.s)
			backwardT(n.Layers[i-1].Act, prev, rp, w.z[i-1], w.a[i-1], rows, l.In)
		}
		in := xin
		if i > 0 {
			in = view[T]{rows, l.In, l.In, 1, w.a[i-1]}
		}
		// dW = inᵀ·δ, with δ (rows×Out) packed from δᵀ.
		setPacked(&w.dop, view[T]{rows, l.Out, 1, rp, dt}, nr)
		gemm(in.t(), &w.dop, gW, l.Out, false, 0, w.dop.panels(), &w.s)
		for j := range gB {
			var s T
			for _, v := range dt[j*rp : j*rp+rows] {
				s += v
			}
			gB[j] = s
		}
		if l2 > 0 {
			val += 0.5 * l2 * addL2(gW, w.w[i], l2)
		}
		if u != nil {
			u.update(w.params[off:end], grad[off:end], off)
		}
	}
	return val
}

// outputDelta writes dLoss/dOutput (for MSE) or dLoss/dLogits (softmax
// cross-entropy), transposed, into dt (row stride rp) and returns the loss.
func outputDelta[T float](dt []T, rp int, out view[T], z []T, y view[T], loss Loss) float64 {
	rows, cols := out.rows, out.cols
	total := 0.0
	switch loss {
	case MSE:
		scale := 1 / float64(rows*cols)
		for r := 0; r < rows; r++ {
			o := out.data[r*out.rs : r*out.rs+cols]
			t := y.data[r*y.rs : r*y.rs+cols]
			for j := range o {
				e := float64(o[j] - t[j])
				total += e * e
				dt[j*rp+r] = T(2 * e * scale)
			}
		}
		return total * scale
	case SoftmaxCrossEntropy:
		scale := 1 / float64(rows)
		var buf [64]float64
		for r := 0; r < rows; r++ {
			zz := z[r*cols : (r+1)*cols]
			t := y.data[r*y.rs : r*y.rs+cols]
			var dd []float64
			if cols <= len(buf) {
				dd = buf[:cols]
			} else {
				dd = make([]float64, cols)
			}
			m := float64(zz[0])
			for _, v := range zz {
				m = math.Max(m, float64(v))
			}
			sum := 0.0
			for j, v := range zz {
				dd[j] = math.Exp(float64(v) - m)
				sum += dd[j]
			}
			logSum := math.Log(sum) + m
			for j := range dd {
				dd[j] /= sum
				tj := float64(t[j])
				total -= tj * (float64(zz[j]) - logSum)
				dt[j*rp+r] = T((dd[j] - tj) * scale)
			}
		}
		return total * scale
	}
	panic("nn: unknown loss")
}

func (n *Network) evalLoss(x, y blas64.General, loss Loss) float64 {
	w := workspaceFor[float64](n)
	out := forward(n, w, view[float64]{x.Rows, x.Cols, x.Stride, 1, x.Data})
	L := len(n.Layers)
	return outputDelta(w.dt[L-1], w.rp, out, w.z[L-1], view[float64]{y.Rows, y.Cols, y.Stride, 1, y.Data}, loss)
}
