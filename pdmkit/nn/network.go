package nn

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"
)

// Dense is a fully connected layer: out = Act(in·W + B). W is In×Out,
// row-major; W and B are views into the owning Network's Params.
type Dense struct {
	In, Out int
	Act     Activation
	W       []float64
	B       []float64
}

// Spec describes an architecture: Sizes[0] inputs, then one dense layer per
// following size with Acts[i] after layer i. len(Acts) == len(Sizes)-1.
type Spec struct {
	Sizes []int
	Acts  []Activation
}

// Validate reports an inconsistent architecture.
func (s Spec) Validate() error {
	if len(s.Sizes) < 2 {
		return fmt.Errorf("nn: architecture needs at least 2 sizes, got %d", len(s.Sizes))
	}
	if len(s.Acts) != len(s.Sizes)-1 {
		return fmt.Errorf("nn: %d activations for %d layers", len(s.Acts), len(s.Sizes)-1)
	}
	for i, n := range s.Sizes {
		if n <= 0 || n > 1<<16 {
			return fmt.Errorf("nn: size %d of layer %d out of range", n, i)
		}
	}
	for i, a := range s.Acts {
		if a < Linear || a > LeakyReLU {
			return fmt.Errorf("nn: unknown activation %d at layer %d", int(a), i)
		}
	}
	return nil
}

// NumParams is the length of the parameter vector of this architecture.
func (s Spec) NumParams() int {
	n := 0
	for i := 1; i < len(s.Sizes); i++ {
		n += s.Sizes[i-1]*s.Sizes[i] + s.Sizes[i]
	}
	return n
}

// Network is a stack of dense layers.
type Network struct {
	Spec   Spec
	Layers []Dense
	// Params holds every weight and bias, layer by layer (W then B).
	Params []float64

	// Buffers for the single-window forward pass, one per layer.
	z, a [][]float64
	// Batch-pass buffers: float64, and float32 for TrainConfig.Float32.
	ws   workspace[float64]
	ws32 *workspace[float32]
}

// New builds a network with weights drawn from a seeded generator (Glorot
// uniform for saturating activations, He for rectifiers) and zero biases.
func New(spec Spec, seed uint64) (*Network, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	n := newShell(spec, make([]float64, spec.NumParams()))
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	for _, l := range n.Layers {
		limit := math.Sqrt(6 / float64(l.In+l.Out))
		if l.Act == ReLU || l.Act == LeakyReLU {
			limit = math.Sqrt(6 / float64(l.In))
		}
		for i := range l.W {
			l.W[i] = (2*rng.Float64() - 1) * limit
		}
	}
	return n, nil
}

// FromParams builds a network over an existing parameter vector (copied), as
// an artifact loader does. Non-finite parameters are an error.
func FromParams(spec Spec, params []float64) (*Network, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if len(params) != spec.NumParams() {
		return nil, fmt.Errorf("nn: %d parameters for an architecture that needs %d", len(params), spec.NumParams())
	}
	for i, v := range params {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("nn: parameter %d is not finite", i)
		}
	}
	return newShell(spec, append([]float64(nil), params...)), nil
}

func newShell(spec Spec, params []float64) *Network {
	n := &Network{Spec: Spec{Sizes: append([]int(nil), spec.Sizes...), Acts: append([]Activation(nil), spec.Acts...)}, Params: params}
	off := 0
	for i := 1; i < len(spec.Sizes); i++ {
		in, out := spec.Sizes[i-1], spec.Sizes[i]
		l := Dense{In: in, Out: out, Act: spec.Acts[i-1]}
		l.W = params[off : off+in*out : off+in*out]
		off += in * out
		l.B = params[off : off+out : off+out]
		off += out
		n.Layers = append(n.Layers, l)
		n.z = append(n.z, make([]float64, out))
		n.a = append(n.a, make([]float64, out))
	}
	return n
}

// Clone returns a network with a copy of the parameters and its own buffers.
func (n *Network) Clone() *Network { return newShell(n.Spec, append([]float64(nil), n.Params...)) }

// InputSize and OutputSize are the widths of the first and last layer.
func (n *Network) InputSize() int  { return n.Spec.Sizes[0] }
func (n *Network) OutputSize() int { return n.Spec.Sizes[len(n.Spec.Sizes)-1] }

// Forward runs one window through the network and returns the output. The
// returned slice is owned by the network and overwritten by the next call;
// the call allocates nothing. It panics if len(x) is not the input size,
// which is a programming error.
func (n *Network) Forward(x []float64) []float64 {
	if len(x) != n.InputSize() {
		panic("nn: input size mismatch")
	}
	in := x
	for i := range n.Layers {
		l := &n.Layers[i]
		z := n.z[i]
		copy(z, l.B)
		// z = Wᵀ·in + b; W is In×Out so the transpose gives Out rows.
		blas64.Gemv(blas.Trans, 1, blas64.General{Rows: l.In, Cols: l.Out, Stride: l.Out, Data: l.W},
			blas64.Vector{N: l.In, Inc: 1, Data: in}, 1, blas64.Vector{N: l.Out, Inc: 1, Data: z})
		apply(l.Act, n.a[i], z)
		in = n.a[i]
	}
	return in
}

// Predict runs every row of x through the network as one matrix product per
// layer and writes the outputs into dst (rows×OutputSize). dst is reused when
// it has the right shape and allocated otherwise; the result is returned.
func (n *Network) Predict(dst, x *mat.Dense) *mat.Dense {
	r, c := x.Dims()
	if c != n.InputSize() {
		panic(fmt.Sprintf("nn: input has %d columns, network takes %d", c, n.InputSize()))
	}
	if dst == nil {
		dst = mat.NewDense(r, n.OutputSize(), nil)
	} else if dr, dc := dst.Dims(); dr != r || dc != n.OutputSize() {
		dst = mat.NewDense(r, n.OutputSize(), nil)
	}
	// Blocks of predictBlock rows: gonum's GEMM splits larger products
	// across goroutines, which allocates and, on the small layers used here,
	// costs more than it gains (measured: 460k windows/s at 64 rows, 370k at
	// 1024 on one core).
	xr, d := x.RawMatrix(), dst.RawMatrix()
	for start := 0; start < r; start += predictBlock {
		rows := min(predictBlock, r-start)
		blk := blas64.General{Rows: rows, Cols: xr.Cols, Stride: xr.Stride, Data: xr.Data[start*xr.Stride:]}
		out := n.forwardBatch(blk)
		for i := 0; i < rows; i++ {
			copy(d.Data[(start+i)*d.Stride:(start+i)*d.Stride+d.Cols], out.Data[i*out.Stride:i*out.Stride+out.Cols])
		}
	}
	return dst
}

// predictBlock is the row count of one matrix product in Predict.
const predictBlock = 64

// errShape is returned when training data and network disagree.
var errShape = errors.New("nn: data shape does not match the network")
