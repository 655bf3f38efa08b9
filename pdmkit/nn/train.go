package nn

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"
)

// Loss is the training objective.
type Loss int

const (
	// MSE is the mean over rows and outputs of the squared error.
	MSE Loss = iota
	// SoftmaxCrossEntropy applies softmax to the (linear) output layer and
	// takes the mean over rows of the cross-entropy against one-hot or
	// probability targets.
	SoftmaxCrossEntropy
)

// Optimizer selects the parameter update rule.
type Optimizer int

const (
	// SGD is stochastic gradient descent with classical momentum.
	SGD Optimizer = iota
	// Adam is Kingma & Ba's adaptive moment estimation.
	Adam
)

// TrainConfig controls Train. Zero fields take the defaults noted.
type TrainConfig struct {
	Loss      Loss
	Optimizer Optimizer
	// Epochs is the maximum number of passes over the data (default 100).
	Epochs int
	// BatchSize is the mini-batch size (default 32).
	BatchSize int
	// LearningRate defaults to 0.01 for SGD and 0.001 for Adam.
	LearningRate float64
	// Momentum for SGD (default 0.9; set a negative value for none).
	Momentum float64
	// Beta1, Beta2, Epsilon for Adam (defaults 0.9, 0.999, 1e-8).
	Beta1, Beta2, Epsilon float64
	// L2 adds L2/2·‖W‖² over weights (not biases) to the loss (default 0).
	L2 float64
	// ValidationFraction of the rows (chosen by the seed) is held out for
	// early stopping (default 0: no validation, train all epochs).
	ValidationFraction float64
	// ValX and ValY, when set, are the validation set instead of a random
	// share of the rows (for data whose rows are not independent, such as
	// overlapping windows of one machine: hold out whole machines).
	ValX, ValY *mat.Dense
	// Patience is how many epochs without a validation improvement end
	// training; the best weights are restored (default 10).
	Patience int
	// LRDecay, when in (0, 1), multiplies the learning rate by itself each
	// time the validation loss has not improved for LRPatience epochs
	// (default Patience/2, at least 1): large steps while the loss falls,
	// finer ones near the optimum (default 0: a constant rate; without a
	// validation set there is no plateau to detect and the rate stays).
	LRDecay    float64
	LRPatience int
	// Seed makes shuffling and the validation split reproducible.
	Seed uint64
	// Float32 trains in float32, as PyTorch does by default: products,
	// activations, gradients, the weights being trained and the optimizer's
	// state, with twice the multiply-adds per instruction. Params is
	// brought up to date after every epoch, and the validation loss is
	// computed in float64 from it.
	Float32 bool
}

func (c *TrainConfig) defaults() {
	c.Epochs = cmp.Or(c.Epochs, 100)
	c.BatchSize = cmp.Or(c.BatchSize, 32)
	if c.LearningRate == 0 {
		c.LearningRate = 0.01
		if c.Optimizer == Adam {
			c.LearningRate = 0.001
		}
	}
	if c.Momentum == 0 {
		c.Momentum = 0.9
	} else if c.Momentum < 0 {
		c.Momentum = 0
	}
	c.Beta1 = cmp.Or(c.Beta1, 0.9)
	c.Beta2 = cmp.Or(c.Beta2, 0.999)
	c.Epsilon = cmp.Or(c.Epsilon, 1e-8)
	c.Patience = cmp.Or(c.Patience, 10)
	c.LRPatience = cmp.Or(c.LRPatience, max(c.Patience/2, 1))
}

// Validate rejects settings that cannot train.
func (c TrainConfig) Validate() error {
	switch {
	case c.Epochs < 0:
		return fmt.Errorf("nn: epochs (%d) must not be negative", c.Epochs)
	case c.BatchSize < 0:
		return fmt.Errorf("nn: batch size (%d) must not be negative", c.BatchSize)
	case c.LearningRate < 0 || math.IsNaN(c.LearningRate):
		return fmt.Errorf("nn: learning rate (%v) must be positive", c.LearningRate)
	case c.LRDecay < 0 || c.LRDecay >= 1 || math.IsNaN(c.LRDecay):
		return fmt.Errorf("nn: learning-rate decay (%v) must be in [0, 1)", c.LRDecay)
	case c.LRPatience < 0:
		return fmt.Errorf("nn: learning-rate patience (%d) must not be negative", c.LRPatience)
	case c.L2 < 0:
		return fmt.Errorf("nn: L2 (%v) must not be negative", c.L2)
	case c.ValX != nil && c.ValidationFraction != 0:
		return fmt.Errorf("nn: set a validation fraction (%v) or a validation set, not both", c.ValidationFraction)
	case c.ValidationFraction < 0 || c.ValidationFraction >= 1:
		return fmt.Errorf("nn: validation fraction (%v) must be in [0, 1)", c.ValidationFraction)
	case c.Loss != MSE && c.Loss != SoftmaxCrossEntropy:
		return fmt.Errorf("nn: unknown loss %d", int(c.Loss))
	case c.Optimizer != SGD && c.Optimizer != Adam:
		return fmt.Errorf("nn: unknown optimizer %d", int(c.Optimizer))
	}
	return nil
}

// TrainResult summarises a training run.
type TrainResult struct {
	Epochs    int     // epochs run
	BestEpoch int     // epoch whose weights were kept (1-based)
	TrainLoss float64 // mean training loss of the kept epoch
	ValLoss   float64 // validation loss of the kept weights; NaN without validation
	// History is every epoch's mean training loss and validation loss (NaN
	// without validation), in order: the learning curve.
	History []EpochLoss
}

// EpochLoss is one epoch of a learning curve.
type EpochLoss struct {
	Train, Val float64
}

// Gradient computes the loss of the network on (x, y) and its gradient with
// respect to Params (same layout). The gradient slice is owned by the network
// and overwritten by the next call. l2 adds l2/2·‖W‖².
func (n *Network) Gradient(x, y *mat.Dense, loss Loss, l2 float64) (float64, []float64) {
	return n.gradient(x.RawMatrix(), y.RawMatrix(), loss, l2)
}

// Loss evaluates the loss (without L2) on a data set in one batch.
func (n *Network) Loss(x, y *mat.Dense, loss Loss) float64 {
	return n.evalLoss(x.RawMatrix(), y.RawMatrix(), loss)
}

// Softmax writes the softmax of logits into dst (which may alias logits).
func Softmax(dst, logits []float64) {
	m := logits[0]
	for _, v := range logits {
		m = math.Max(m, v)
	}
	sum := 0.0
	for i, v := range logits {
		dst[i] = math.Exp(v - m)
		sum += dst[i]
	}
	for i := range dst {
		dst[i] /= sum
	}
}

// Train fits the network to (x, y) with mini-batch gradient descent.
func (n *Network) Train(x, y *mat.Dense, cfg TrainConfig) (TrainResult, error) {
	if err := cfg.Validate(); err != nil {
		return TrainResult{}, err
	}
	cfg.defaults()
	rows, cols := x.Dims()
	yr, yc := y.Dims()
	if cols != n.InputSize() || yc != n.OutputSize() || yr != rows || rows == 0 {
		return TrainResult{}, fmt.Errorf("%w: x %d×%d, y %d×%d, network %d→%d", errShape, rows, cols, yr, yc, n.InputSize(), n.OutputSize())
	}
	if cfg.Loss == SoftmaxCrossEntropy && n.Layers[len(n.Layers)-1].Act != Linear {
		return TrainResult{}, fmt.Errorf("nn: softmax cross-entropy needs a linear output layer, have %v", n.Layers[len(n.Layers)-1].Act)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5851f42d4c957f2d))
	idx := rng.Perm(rows)
	nVal := int(math.Round(cfg.ValidationFraction * float64(rows)))
	if nVal >= rows {
		nVal = rows - 1
	}
	valIdx, trIdx := idx[:nVal], append([]int(nil), idx[nVal:]...)
	xv, yv := gather(x.RawMatrix(), valIdx), gather(y.RawMatrix(), valIdx)
	if cfg.ValX != nil {
		vr, vc := cfg.ValX.Dims()
		if cfg.ValY == nil || vc != cols {
			return TrainResult{}, fmt.Errorf("%w: validation x has %d columns, want %d, and needs y", errShape, vc, cols)
		}
		if yr2, yc2 := cfg.ValY.Dims(); yr2 != vr || yc2 != yc || vr == 0 {
			return TrainResult{}, fmt.Errorf("%w: validation x %d rows, y %d×%d", errShape, vr, yr2, yc2)
		}
		trIdx = idx
		xv, yv = cfg.ValX.RawMatrix(), cfg.ValY.RawMatrix()
		nVal = vr
	}

	bs := min(cfg.BatchSize, len(trIdx))
	xb := blas64.General{Rows: bs, Cols: cols, Stride: cols, Data: make([]float64, bs*cols)}
	yb := blas64.General{Rows: bs, Cols: yc, Stride: yc, Data: make([]float64, bs*yc)}
	xr, yrm := x.RawMatrix(), y.RawMatrix()
	// An autoencoder trains on Train(x, x): its batch targets are its inputs.
	same := x == y
	if same {
		yb = xb
	}

	var step func(t int, lr float64) float64
	var sync func()
	if cfg.Float32 {
		step, sync = stepper[float32](n, cfg, &xb, &yb)
	} else {
		step, sync = stepper[float64](n, cfg, &xb, &yb)
	}
	best := append([]float64(nil), n.Params...)
	res := TrainResult{ValLoss: math.NaN()}
	bestVal, since, steps := math.Inf(1), 0, 0

	for epoch := 1; epoch <= cfg.Epochs; epoch++ {
		rng.Shuffle(len(trIdx), func(i, j int) { trIdx[i], trIdx[j] = trIdx[j], trIdx[i] })
		sum, batches := 0.0, 0
		for start := 0; start < len(trIdx); start += bs {
			end := min(start+bs, len(trIdx))
			xb.Rows, yb.Rows = end-start, end-start
			for k, r := range trIdx[start:end] {
				copy(xb.Data[k*cols:(k+1)*cols], xr.Data[r*xr.Stride:r*xr.Stride+cols])
				if !same {
					copy(yb.Data[k*yc:(k+1)*yc], yrm.Data[r*yrm.Stride:r*yrm.Stride+yc])
				}
			}
			steps++
			l := step(steps, cfg.LearningRate)
			if math.IsNaN(l) || math.IsInf(l, 0) {
				return res, fmt.Errorf("nn: training diverged at epoch %d (loss %v); lower the learning rate", epoch, l)
			}
			sum += l
			batches++
		}
		sync()
		res.Epochs = epoch
		trainLoss := sum / float64(batches)
		if nVal == 0 {
			res.BestEpoch, res.TrainLoss = epoch, trainLoss
			res.History = append(res.History, EpochLoss{trainLoss, math.NaN()})
			continue
		}
		v := n.evalLoss(xv, yv, cfg.Loss)
		res.History = append(res.History, EpochLoss{trainLoss, v})
		if v < bestVal {
			bestVal, since = v, 0
			copy(best, n.Params)
			res.BestEpoch, res.TrainLoss, res.ValLoss = epoch, trainLoss, v
		} else if since++; since >= cfg.Patience {
			break
		} else if cfg.LRDecay > 0 && since%cfg.LRPatience == 0 {
			cfg.LearningRate *= cfg.LRDecay
		}
	}
	if nVal > 0 {
		copy(n.Params, best)
	}
	return res, nil
}

// stepper returns step, which takes optimizer step t at learning rate lr
// on the batch (*xb, *yb) in precision T and returns its loss, and sync,
// which brings Params up to date with the weights step trains.
func stepper[T float](n *Network, cfg TrainConfig, xb, yb *blas64.General) (step func(t int, lr float64) float64, sync func()) {
	w, u := workspaceFor[T](n), newUpdater[T](cfg, len(n.Params))
	step = func(t int, lr float64) float64 {
		u.start(t, lr)
		return backprop(n, w, *xb, *yb, cfg.Loss, cfg.L2, u)
	}
	sync = func() {
		if _, ok := any(w.params).([]float64); !ok {
			convert(n.Params, w.params)
		}
	}
	return step, sync
}

// updater applies one optimizer step to a range of the parameters, in
// precision T.
type updater[T float] struct {
	cfg    TrainConfig
	m1, m2 []T // momentum / Adam's moments, like Params
	adam   adamConsts[T]
}

func newUpdater[T float](cfg TrainConfig, params int) *updater[T] {
	u := &updater[T]{cfg: cfg, m1: make([]T, params)}
	if cfg.Optimizer == Adam {
		u.m2 = make([]T, params)
	}
	return u
}

// start prepares step t (1-based) of the optimizer at learning rate lr.
func (u *updater[T]) start(t int, lr float64) {
	u.cfg.LearningRate = lr
	if u.cfg.Optimizer == Adam {
		u.adam = newAdamConsts[T](lr, u.cfg.Beta1, u.cfg.Beta2, u.cfg.Epsilon, t)
	}
}

// update moves p by its gradient g; off is p's offset in Params.
func (u *updater[T]) update(p, g []T, off int) {
	m1 := u.m1[off : off+len(p)]
	switch u.cfg.Optimizer {
	case SGD:
		lr, mu := T(u.cfg.LearningRate), T(u.cfg.Momentum)
		for i, gi := range g {
			m1[i] = mu*m1[i] - lr*gi
			p[i] += m1[i]
		}
	case Adam:
		adamFor[T]()(p, g, m1, u.m2[off:off+len(p)], &u.adam)
	}
}

func gather(m blas64.General, idx []int) blas64.General {
	out := blas64.General{Rows: len(idx), Cols: m.Cols, Stride: m.Cols, Data: make([]float64, len(idx)*m.Cols)}
	for k, r := range idx {
		copy(out.Data[k*m.Cols:(k+1)*m.Cols], m.Data[r*m.Stride:r*m.Stride+m.Cols])
	}
	return out
}
