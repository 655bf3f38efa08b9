package nn

import (
	"math"

	"gonum.org/v1/gonum/blas/blas64"
)

// workspace holds the buffers of a batch pass; they grow to the largest
// batch seen and are reused after that.
//
// Layouts, chosen so that no product has to copy a weight matrix: the
// forward pass is z = in·W (W read in place as the right operand); the
// deltas are kept transposed, δᵀ (Out×rows), so that the delta of the layer
// below is δᵀ_prev = W·δᵀ (W read in place as the left operand, δᵀ in
// place as the right) and bias gradients are sums of contiguous rows. Only
// the small δ (rows×Out) is packed, for dW = inᵀ·δ.
type workspace struct {
	cap, rows int
	rp        int         // row stride of δᵀ: rows rounded up to a panel, zero beyond rows
	z, a      [][]float64 // per layer, rows×Out
	dt        [][]float64 // per layer, Out×rp
	wop       []operand[float64]
	dop       operand[float64]
	grad      []float64 // like Params
	s         gemmScratch[float64]
}

func (n *Network) ensure(rows int) {
	w := &n.ws
	if w.cap < rows || len(w.z) != len(n.Layers) {
		w.cap = rows
		rp := roundUp(rows, nr64)
		w.z, w.a, w.dt = w.z[:0], w.a[:0], w.dt[:0]
		for _, l := range n.Layers {
			w.z = append(w.z, make([]float64, rows*l.Out))
			w.a = append(w.a, make([]float64, rows*l.Out))
			w.dt = append(w.dt, make([]float64, l.Out*rp))
		}
		w.wop = make([]operand[float64], len(n.Layers))
		w.rows = 0
	}
	if len(w.grad) != len(n.Params) {
		w.grad = make([]float64, len(n.Params))
	}
	if w.rows != rows {
		w.rows, w.rp = rows, roundUp(rows, nr64)
		for i, l := range n.Layers {
			w.dt[i] = w.dt[i][:cap(w.dt[i])][:l.Out*w.rp]
			clear(w.dt[i])
		}
	}
}

func roundUp(n, m int) int { return (n + m - 1) / m * m }

// forwardBatch runs x through the network and returns the output, a view
// of the workspace.
func (n *Network) forwardBatch(x blas64.General) blas64.General {
	n.ensure(x.Rows)
	w := &n.ws
	rows := x.Rows
	in := view[float64]{rows, x.Cols, x.Stride, 1, x.Data}
	for i := range n.Layers {
		l := &n.Layers[i]
		z, a := w.z[i][:rows*l.Out], w.a[i][:rows*l.Out]
		op := &w.wop[i]
		op.setDirect(l.W, l.In, l.Out, l.Out, nr64, false)
		gemm(in, op, z, l.Out, false, 0, op.panels(), &w.s)
		for r := 0; r < rows; r++ {
			zr := z[r*l.Out : (r+1)*l.Out]
			for j, b := range l.B {
				zr[j] += b
			}
		}
		l.Act.apply(a, z)
		in = view[float64]{rows, l.Out, l.Out, 1, a}
	}
	last := n.Layers[len(n.Layers)-1].Out
	return blas64.General{Rows: rows, Cols: last, Stride: last, Data: in.data}
}

func (n *Network) gradient(x, y blas64.General, loss Loss, l2 float64) (float64, []float64) {
	return n.backprop(x, y, loss, l2, nil), n.ws.grad
}

// backprop computes the loss and its gradient into n.ws.grad. With an
// updater, each layer's parameters are updated as soon as their gradient is
// complete and the layer below no longer needs their old values (its delta
// is computed first), while they are still in cache; a non-finite data
// loss returns before any update.
func (n *Network) backprop(x, y blas64.General, loss Loss, l2 float64, u *updater) float64 {
	out := n.forwardBatch(x)
	w := &n.ws
	rows, rp := x.Rows, w.rp
	L := len(n.Layers)
	val := outputDelta(w.dt[L-1], rp, out, w.z[L-1], y, loss)
	if math.IsNaN(val) || math.IsInf(val, 0) {
		return val
	}
	if loss == MSE {
		n.Layers[L-1].Act.backwardT(w.dt[L-1], rp, w.z[L-1], w.a[L-1], rows, n.Layers[L-1].Out)
	}
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
			w.dop.setDirect(dt, l.Out, rows, rp, nr64, true)
			gemm(view[float64]{l.In, l.Out, l.Out, 1, l.W}, &w.dop, prev, rp, false, 0, w.dop.panels(), &w.s)
			n.Layers[i-1].Act.backwardT(prev, rp, w.z[i-1], w.a[i-1], rows, l.In)
		}
		in := view[float64]{rows, x.Cols, x.Stride, 1, x.Data}
		if i > 0 {
			in = view[float64]{rows, l.In, l.In, 1, w.a[i-1]}
		}
		// dW = inᵀ·δ, with δ (rows×Out) packed from δᵀ.
		setPacked(&w.dop, view[float64]{rows, l.Out, 1, rp, dt}, nr64)
		gemm(in.t(), &w.dop, gW, l.Out, false, 0, w.dop.panels(), &w.s)
		for j := range gB {
			s := 0.0
			for _, v := range dt[j*rp : j*rp+rows] {
				s += v
			}
			gB[j] = s
		}
		if l2 > 0 {
			val += 0.5 * l2 * l2grad(gW, l.W, l2)
		}
		if u != nil {
			u.update(n.Params[off:end], grad[off:end], off)
		}
	}
	return val
}

// outputDelta writes dLoss/dOutput (for MSE) or dLoss/dLogits (softmax
// cross-entropy), transposed, into dt (row stride rp) and returns the loss.
func outputDelta(dt []float64, rp int, out blas64.General, z []float64, y blas64.General, loss Loss) float64 {
	rows, cols := out.Rows, out.Cols
	total := 0.0
	switch loss {
	case MSE:
		scale := 1 / float64(rows*cols)
		for r := 0; r < rows; r++ {
			o := out.Data[r*out.Stride : r*out.Stride+cols]
			t := y.Data[r*y.Stride : r*y.Stride+cols]
			for j := range o {
				e := o[j] - t[j]
				total += e * e
				dt[j*rp+r] = 2 * e * scale
			}
		}
		return total * scale
	case SoftmaxCrossEntropy:
		scale := 1 / float64(rows)
		var buf [64]float64
		for r := 0; r < rows; r++ {
			zz := z[r*cols : (r+1)*cols]
			t := y.Data[r*y.Stride : r*y.Stride+cols]
			var dd []float64
			if cols <= len(buf) {
				dd = buf[:cols]
			} else {
				dd = make([]float64, cols)
			}
			m := zz[0]
			for _, v := range zz {
				m = math.Max(m, v)
			}
			sum := 0.0
			for j, v := range zz {
				dd[j] = math.Exp(v - m)
				sum += dd[j]
			}
			logSum := math.Log(sum) + m
			for j := range dd {
				dd[j] /= sum
				total -= t[j] * (zz[j] - logSum)
				dt[j*rp+r] = (dd[j] - t[j]) * scale
			}
		}
		return total * scale
	}
	panic("nn: unknown loss")
}

func (n *Network) evalLoss(x, y blas64.General, loss Loss) float64 {
	out := n.forwardBatch(x)
	L := len(n.Layers)
	return outputDelta(n.ws.dt[L-1], n.ws.rp, out, n.ws.z[L-1], y, loss)
}
