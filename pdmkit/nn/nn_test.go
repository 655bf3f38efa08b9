package nn

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"gonum.org/v1/gonum/mat"
)

func randDense(t *testing.T, rng *rand.Rand, r, c int) *mat.Dense {
	t.Helper()
	d := make([]float64, r*c)
	for i := range d {
		d[i] = rng.NormFloat64()
	}
	return mat.NewDense(r, c, d)
}

// TestGradientFiniteDifference checks backpropagation against central
// differences for every activation in hidden and output position and for
// both losses, with and without L2.
func TestGradientFiniteDifference(t *testing.T) {
	cases := []struct {
		name string
		acts []Activation
		loss Loss
		l2   float64
	}{
		{"linear/mse", []Activation{Linear, Linear}, MSE, 0},
		{"sigmoid/mse", []Activation{Sigmoid, Sigmoid}, MSE, 0},
		{"tanh/mse", []Activation{Tanh, Tanh}, MSE, 0},
		{"relu/mse", []Activation{ReLU, Linear}, MSE, 0},
		{"leaky/mse", []Activation{LeakyReLU, LeakyReLU}, MSE, 0},
		{"tanh/mse/l2", []Activation{Tanh, Linear}, MSE, 0.1},
		{"tanh/softmax", []Activation{Tanh, Linear}, SoftmaxCrossEntropy, 0},
		{"relu/softmax/l2", []Activation{ReLU, Linear}, SoftmaxCrossEntropy, 0.05},
		{"deep/mse", []Activation{Tanh, Sigmoid, LeakyReLU, Linear}, MSE, 0.01},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			sizes := []int{4}
			for range tc.acts {
				sizes = append(sizes, 3)
			}
			n, err := New(Spec{Sizes: sizes, Acts: tc.acts}, 7)
			if err != nil {
				t.Fatal(err)
			}
			x := randDense(t, rng, 5, 4)
			y := randDense(t, rng, 5, 3)
			if tc.loss == SoftmaxCrossEntropy {
				y = mat.NewDense(5, 3, nil)
				for r := 0; r < 5; r++ {
					y.Set(r, r%3, 1)
				}
			}
			_, g := n.Gradient(x, y, tc.loss, tc.l2)
			g = append([]float64(nil), g...)
			const h = 1e-6
			for i := range n.Params {
				orig := n.Params[i]
				n.Params[i] = orig + h
				lp, _ := n.Gradient(x, y, tc.loss, tc.l2)
				n.Params[i] = orig - h
				lm, _ := n.Gradient(x, y, tc.loss, tc.l2)
				n.Params[i] = orig
				num := (lp - lm) / (2 * h)
				if d := math.Abs(num - g[i]); d > 1e-6*math.Max(1, math.Abs(num)) {
					t.Fatalf("param %d: backprop %.9g, finite difference %.9g", i, g[i], num)
				}
			}
		})
	}
}

func TestXOR(t *testing.T) {
	x := mat.NewDense(4, 2, []float64{0, 0, 0, 1, 1, 0, 1, 1})
	y := mat.NewDense(4, 1, []float64{0, 1, 1, 0})
	for _, opt := range []struct {
		name string
		cfg  TrainConfig
	}{
		{"sgd-momentum", TrainConfig{Optimizer: SGD, LearningRate: 0.5, Epochs: 3000, BatchSize: 4, Seed: 3}},
		{"adam", TrainConfig{Optimizer: Adam, LearningRate: 0.05, Epochs: 1500, BatchSize: 4, Seed: 3}},
	} {
		t.Run(opt.name, func(t *testing.T) {
			n, err := New(Spec{Sizes: []int{2, 8, 1}, Acts: []Activation{Tanh, Sigmoid}}, 11)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := n.Train(x, y, opt.cfg); err != nil {
				t.Fatal(err)
			}
			for r := 0; r < 4; r++ {
				got := n.Forward(x.RawRowView(r))[0]
				if math.Abs(got-y.At(r, 0)) > 0.1 {
					t.Errorf("xor(%v) = %.3f, want %v", x.RawRowView(r), got, y.At(r, 0))
				}
			}
		})
	}
}

func TestXORSoftmax(t *testing.T) {
	x := mat.NewDense(4, 2, []float64{0, 0, 0, 1, 1, 0, 1, 1})
	y := mat.NewDense(4, 2, []float64{1, 0, 0, 1, 0, 1, 1, 0})
	n, _ := New(Spec{Sizes: []int{2, 8, 2}, Acts: []Activation{ReLU, Linear}}, 5)
	if _, err := n.Train(x, y, TrainConfig{Loss: SoftmaxCrossEntropy, Optimizer: Adam, LearningRate: 0.05, Epochs: 800, BatchSize: 4, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	p := make([]float64, 2)
	for r := 0; r < 4; r++ {
		Softmax(p, n.Forward(x.RawRowView(r)))
		if p[int(y.At(r, 1))] < 0.9 {
			t.Errorf("row %d: p = %v", r, p)
		}
	}
}

// TestAutoencoderLowRank: 6 signals that are linear mixtures of 2 sources
// pass through a 2-unit bottleneck almost unchanged, while a point off the
// learned subspace reconstructs badly.
func TestAutoencoderLowRank(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	mix := randDense(t, rng, 2, 6)
	src := randDense(t, rng, 400, 2)
	var x mat.Dense
	x.Mul(src, mix)
	n, _ := New(Spec{Sizes: []int{6, 2, 6}, Acts: []Activation{Linear, Linear}}, 1)
	res, err := n.Train(&x, &x, TrainConfig{Optimizer: Adam, LearningRate: 0.01, Epochs: 300, BatchSize: 32, ValidationFraction: 0.2, Patience: 30, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.ValLoss > 1e-3 {
		t.Fatalf("validation loss %.2e after %d epochs, want < 1e-3", res.ValLoss, res.Epochs)
	}
	off := []float64{3, -3, 3, -3, 3, -3}
	out := n.Forward(off)
	e := 0.0
	for i := range off {
		e += (out[i] - off[i]) * (out[i] - off[i])
	}
	if e/6 < 100*res.ValLoss {
		t.Errorf("off-subspace error %.3g not well above normal %.3g", e/6, res.ValLoss)
	}
}

func TestSeededTrainingIsReproducible(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	x, y := randDense(t, rng, 64, 3), randDense(t, rng, 64, 2)
	train := func() []float64 {
		n, _ := New(Spec{Sizes: []int{3, 5, 2}, Acts: []Activation{Tanh, Linear}}, 42)
		if _, err := n.Train(x, y, TrainConfig{Optimizer: Adam, Epochs: 20, ValidationFraction: 0.25, Seed: 42}); err != nil {
			t.Fatal(err)
		}
		return n.Params
	}
	a, b := train(), train()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("param %d differs: %v vs %v", i, a[i], b[i])
		}
	}
}

func TestEarlyStoppingRestoresBest(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	// Pure noise targets: validation loss cannot keep improving, so training
	// must stop well before the epoch limit.
	x, y := randDense(t, rng, 60, 3), randDense(t, rng, 60, 1)
	n, _ := New(Spec{Sizes: []int{3, 32, 1}, Acts: []Activation{Tanh, Linear}}, 1)
	res, err := n.Train(x, y, TrainConfig{Optimizer: Adam, LearningRate: 0.01, Epochs: 2000, ValidationFraction: 0.3, Patience: 5, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Epochs >= 2000 || res.BestEpoch > res.Epochs || res.Epochs-res.BestEpoch != 5 {
		t.Fatalf("epochs %d best %d", res.Epochs, res.BestEpoch)
	}
}

func TestExplicitValidationSet(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	x, y := randDense(t, rng, 40, 3), randDense(t, rng, 40, 1)
	xv, yv := randDense(t, rng, 10, 3), randDense(t, rng, 10, 1)
	n, _ := New(Spec{Sizes: []int{3, 8, 1}, Acts: []Activation{Tanh, Linear}}, 1)
	res, err := n.Train(x, y, TrainConfig{Optimizer: Adam, Epochs: 500, Patience: 5, ValX: xv, ValY: yv, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Loss(xv, yv, MSE); math.Abs(got-res.ValLoss) > 1e-12 || res.Epochs >= 500 {
		t.Fatalf("restored weights give %v, result says %v after %d epochs", got, res.ValLoss, res.Epochs)
	}
	if _, err := n.Train(x, y, TrainConfig{ValX: xv, ValY: yv, ValidationFraction: 0.2}); err == nil {
		t.Fatal("both validation kinds accepted")
	}
	if _, err := n.Train(x, y, TrainConfig{ValX: xv, ValY: mat.NewDense(3, 1, nil)}); err == nil {
		t.Fatal("mismatched validation set accepted")
	}
}

func TestPredictMatchesForward(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	n, _ := New(Spec{Sizes: []int{5, 7, 3}, Acts: []Activation{ReLU, Sigmoid}}, 3)
	x := randDense(t, rng, 9, 5)
	out := n.Predict(nil, x)
	for r := 0; r < 9; r++ {
		f := n.Forward(x.RawRowView(r))
		for j := range f {
			if math.Abs(f[j]-out.At(r, j)) > 1e-12 {
				t.Fatalf("row %d col %d: %v vs %v", r, j, f[j], out.At(r, j))
			}
		}
	}
}

func TestBadInputs(t *testing.T) {
	cases := []struct {
		name string
		run  func() error
	}{
		{"one size", func() error { _, err := New(Spec{Sizes: []int{3}}, 1); return err }},
		{"acts mismatch", func() error { _, err := New(Spec{Sizes: []int{3, 2}, Acts: nil}, 1); return err }},
		{"zero width", func() error { _, err := New(Spec{Sizes: []int{3, 0}, Acts: []Activation{Linear}}, 1); return err }},
		{"params short", func() error {
			_, err := FromParams(Spec{Sizes: []int{2, 2}, Acts: []Activation{Linear}}, []float64{1})
			return err
		}},
		{"params nan", func() error {
			_, err := FromParams(Spec{Sizes: []int{1, 1}, Acts: []Activation{Linear}}, []float64{math.NaN(), 0})
			return err
		}},
		{"train shape", func() error {
			n, _ := New(Spec{Sizes: []int{2, 1}, Acts: []Activation{Linear}}, 1)
			_, err := n.Train(mat.NewDense(3, 3, nil), mat.NewDense(3, 1, nil), TrainConfig{})
			return err
		}},
		{"softmax on sigmoid", func() error {
			n, _ := New(Spec{Sizes: []int{2, 2}, Acts: []Activation{Sigmoid}}, 1)
			_, err := n.Train(mat.NewDense(3, 2, nil), mat.NewDense(3, 2, nil), TrainConfig{Loss: SoftmaxCrossEntropy})
			return err
		}},
		{"bad validation fraction", func() error {
			n, _ := New(Spec{Sizes: []int{2, 1}, Acts: []Activation{Linear}}, 1)
			_, err := n.Train(mat.NewDense(3, 2, nil), mat.NewDense(3, 1, nil), TrainConfig{ValidationFraction: 1})
			return err
		}},
		{"scaler empty", func() error { _, err := FitScaler(nil); return err }},
		{"scaler ragged", func() error { _, err := FitScaler([][]float64{{1, 2}, {1}}); return err }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func TestScalerConstantColumn(t *testing.T) {
	s, err := FitScaler([][]float64{{1, 5}, {3, 5}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Mean[0] != 2 || s.Std[0] != 1 || s.Std[1] != MinStd {
		t.Fatalf("scaler %+v", s)
	}
	z := []float64{3, 5}
	s.Transform(z, z)
	s.Inverse(z, z)
	if z[0] != 3 || z[1] != 5 {
		t.Fatalf("round trip %v", z)
	}
}

func TestForwardAllocatesNothing(t *testing.T) {
	n, _ := New(Spec{Sizes: []int{80, 32, 8, 32, 80}, Acts: []Activation{Tanh, Linear, Tanh, Linear}}, 1)
	x := make([]float64, 80)
	if a := testing.AllocsPerRun(100, func() { n.Forward(x) }); a != 0 {
		t.Fatalf("Forward allocates %v times per call", a)
	}
}

// benchmarkNet is the size of the SKAB reconstruction model: a window of
// 10 steps × 8 sensors through a 16-unit bottleneck.
func benchmarkNet(b *testing.B) *Network {
	b.Helper()
	n, err := New(Spec{Sizes: []int{80, 32, 16, 32, 80}, Acts: []Activation{Tanh, Linear, Tanh, Linear}}, 1)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkForwardWindow is one window through the network: 0 allocs/op.
func BenchmarkForwardWindow(b *testing.B) {
	n := benchmarkNet(b)
	x := make([]float64, 80)
	b.ReportAllocs()
	for b.Loop() {
		n.Forward(x)
	}
}

// BenchmarkPredictBatch scores 1024 windows as one matrix product per layer;
// windows/s is the throughput figure bench-quality reports.
func BenchmarkPredictBatch(b *testing.B) {
	n := benchmarkNet(b)
	rng := rand.New(rand.NewPCG(1, 1))
	const rows = 1024
	d := make([]float64, rows*80)
	for i := range d {
		d[i] = rng.NormFloat64()
	}
	x := mat.NewDense(rows, 80, d)
	dst := mat.NewDense(rows, 80, nil)
	b.ReportAllocs()
	for b.Loop() {
		n.Predict(dst, x)
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "windows/s")
}

func TestLearningRateDecay(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	// A noisy linear target: with a learning rate far too large the weights
	// jitter around the fit and the validation loss plateaus well above the
	// noise floor (0.01); decaying the rate on each plateau gets close to it.
	x := randDense(t, rng, 200, 4)
	y := mat.NewDense(200, 1, nil)
	for r := 0; r < 200; r++ {
		y.Set(r, 0, 0.5*x.At(r, 0)-0.25*x.At(r, 1)+0.1*x.At(r, 3)+0.1*rng.NormFloat64())
	}
	train := func(decay float64) TrainResult {
		n, _ := New(Spec{Sizes: []int{4, 1}, Acts: []Activation{Linear}}, 1)
		res, err := n.Train(x, y, TrainConfig{Optimizer: Adam, LearningRate: 1, Epochs: 300, BatchSize: 4,
			ValidationFraction: 0.2, Patience: 6, LRDecay: decay, LRPatience: 2, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	constant, decayed := train(0), train(0.3)
	if !(decayed.ValLoss < 0.02 && decayed.ValLoss < constant.ValLoss/4) {
		t.Fatalf("validation loss %v with decay, %v without", decayed.ValLoss, constant.ValLoss)
	}
	n, _ := New(Spec{Sizes: []int{4, 1}, Acts: []Activation{Linear}}, 1)
	for _, c := range []TrainConfig{{LRDecay: 1}, {LRDecay: -0.5}, {LRPatience: -1}} {
		if _, err := n.Train(x, y, c); err == nil {
			t.Fatalf("%+v accepted", c)
		}
	}
}

// TestTrainingSameBitsAnyGOMAXPROCS: layers large enough to split their
// products and Adam steps between goroutines train to the same bits with
// one processor as with two.
func TestTrainingSameBitsAnyGOMAXPROCS(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	x, y := randDense(t, rng, 100, 416), randDense(t, rng, 100, 208)
	train := func(procs int) []float64 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		n, _ := New(Spec{Sizes: []int{416, 104, 64, 208}, Acts: []Activation{Tanh, ReLU, Linear}}, 3)
		if _, err := n.Train(x, y, TrainConfig{Optimizer: Adam, LearningRate: 0.005, L2: 1e-4, Epochs: 3, ValidationFraction: 0.2, Seed: 5}); err != nil {
			t.Fatal(err)
		}
		return n.Params
	}
	a, b := train(1), train(2)
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			t.Fatalf("param %d: %v with GOMAXPROCS 1, %v with 2", i, a[i], b[i])
		}
	}
}

func TestTrainKeepsTheLearningCurve(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	x := randDense(t, rng, 200, 4)
	net, err := New(Spec{Sizes: []int{4, 2, 4}, Acts: []Activation{Tanh, Linear}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	res, err := net.Train(x, x, TrainConfig{Optimizer: Adam, Epochs: 30, ValidationFraction: 0.2, Patience: 50, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.History) != res.Epochs || res.Epochs != 30 {
		t.Fatalf("%d epochs in the history of %d", len(res.History), res.Epochs)
	}
	if h := res.History; !(h[len(h)-1].Train < h[0].Train) || math.IsNaN(h[0].Val) || h[res.BestEpoch-1].Val != res.ValLoss {
		t.Fatalf("learning curve %+v, best epoch %d val %v", h, res.BestEpoch, res.ValLoss)
	}
}

// TestFloat32GradientMatchesFloat64 checks the float32 batch pass against
// the float64 one for every activation and both losses, on sizes that
// leave partial panels of both kernels, with rows not a multiple of a
// tile.
func TestFloat32GradientMatchesFloat64(t *testing.T) {
	for _, acts := range [][]Activation{{Tanh, Linear}, {Sigmoid, Sigmoid}, {ReLU, LeakyReLU, Linear}} {
		for _, loss := range []Loss{MSE, SoftmaxCrossEntropy} {
			if loss == SoftmaxCrossEntropy && acts[len(acts)-1] != Linear {
				continue
			}
			sizes := []int{37}
			for i := range acts {
				sizes = append(sizes, 19+i*11)
			}
			n, err := New(Spec{Sizes: sizes, Acts: acts}, 3)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(4, 5))
			x := randDense(t, rng, 45, sizes[0])
			y := randDense(t, rng, 45, sizes[len(sizes)-1])
			if loss == SoftmaxCrossEntropy {
				y = mat.NewDense(45, sizes[len(sizes)-1], nil)
				for r := range 45 {
					y.Set(r, r%sizes[len(sizes)-1], 1)
				}
			}
			want, g64 := n.Gradient(x, y, loss, 0.01)
			g64 = append([]float64(nil), g64...)
			w := workspaceFor[float32](n)
			got := backprop(n, w, x.RawMatrix(), y.RawMatrix(), loss, 0.01, nil)
			if math.Abs(got-want) > 1e-5*math.Abs(want) {
				t.Fatalf("%v %v: float32 loss %v, float64 %v", acts, loss, got, want)
			}
			norm, diff := 0.0, 0.0
			for i, g := range g64 {
				norm += g * g
				d := float64(w.grad[i]) - g
				diff += d * d
			}
			if rel := math.Sqrt(diff / norm); !(rel < 1e-5) {
				t.Fatalf("%v %v: float32 gradient off by %.2g (relative norm)", acts, loss, rel)
			}
		}
	}
}

// TestFloat32TrainingLearns trains the same autoencoder in both
// precisions: the float32 one reaches the same loss.
func TestFloat32TrainingLearns(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	x := mat.NewDense(600, 24, nil)
	for r := range 600 {
		a, b := rng.NormFloat64(), rng.NormFloat64()
		for j := range 24 {
			x.Set(r, j, a*math.Sin(float64(j))+b*math.Cos(float64(j))+0.01*rng.NormFloat64())
		}
	}
	loss := map[bool]float64{}
	for _, f32 := range []bool{false, true} {
		n, err := New(Spec{Sizes: []int{24, 4, 24}, Acts: []Activation{Tanh, Linear}}, 2)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Train(x, x, TrainConfig{Optimizer: Adam, LearningRate: 0.005, Epochs: 40, Seed: 1, Float32: f32}); err != nil {
			t.Fatal(err)
		}
		loss[f32] = n.Loss(x, x, MSE)
	}
	if loss[false] > 0.05 || math.Abs(loss[true]-loss[false]) > 0.1*loss[false] {
		t.Fatalf("loss after training: float64 %.4g, float32 %.4g", loss[false], loss[true])
	}
}
