package nn

import (
	"math"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// trainCase is one of the networks the trainer and the detectors train,
// with the optimiser settings they use. deployments/bench/torch_train.py
// trains the same list with PyTorch; keep the two in step.
type trainCase struct {
	name      string
	spec      Spec
	kind      string // "ae", "fc" or "rul": how benchData builds x and y
	lr, l2    float64
	batchSize int
}

var trainCases = []trainCase{
	{"ae-32-8-32/batch=32", Spec{Sizes: []int{32, 8, 32}, Acts: []Activation{Tanh, Linear}}, "ae", 0.005, 1e-4, 32},
	{"ae-128-32-128/batch=32", Spec{Sizes: []int{128, 32, 128}, Acts: []Activation{Tanh, Linear}}, "ae", 0.005, 1e-4, 32},
	{"ae-416-64-16-64-416/batch=32", Spec{Sizes: []int{416, 64, 16, 64, 416}, Acts: []Activation{Tanh, Tanh, Tanh, Linear}}, "ae", 0.005, 1e-4, 32},
	{"fc-96-12-24/batch=32", Spec{Sizes: []int{96, 12, 24}, Acts: []Activation{Tanh, Linear}}, "fc", 0.005, 1e-4, 32},
	{"fc-832-104-208/batch=32", Spec{Sizes: []int{832, 104, 208}, Acts: []Activation{Tanh, Linear}}, "fc", 0.005, 1e-4, 32},
	{"rul-960-64-32-1/batch=32", Spec{Sizes: []int{960, 64, 32, 1}, Acts: []Activation{ReLU, ReLU, Linear}}, "rul", 0.001, 1e-4, 32},
	{"rul-960-64-32-1/batch=128", Spec{Sizes: []int{960, 64, 32, 1}, Acts: []Activation{ReLU, ReLU, Linear}}, "rul", 0.001, 1e-4, 128},
	// The rul default window, 80 cycles of 16 features.
	{"rul-1280-64-32-1/batch=32", Spec{Sizes: []int{1280, 64, 32, 1}, Acts: []Activation{ReLU, ReLU, Linear}}, "rul", 0.001, 1e-4, 32},
	{"rul-1280-64-32-1/batch=128", Spec{Sizes: []int{1280, 64, 32, 1}, Acts: []Activation{ReLU, ReLU, Linear}}, "rul", 0.001, 1e-4, 128},
}

// Shared with torch_train.py: rows, epochs and the data formula.
const (
	benchRows   = 10000
	benchEpochs = 5
)

// benchSignal is sensor j at time t: two sines per sensor, different
// periods and phases, so windows of several sensors are correlated but not
// trivially low-rank.
func benchSignal(t, j int) float64 {
	ft, fj := float64(t), float64(j)
	return math.Sin(0.013*ft*float64(1+j%7)+0.5*fj) + 0.3*math.Sin(0.11*ft+fj)
}

// benchData builds the rows of a case: an autoencoder reconstructs windows
// of 8 readings (4 for 32 inputs) of in/window sensors; a forecaster maps 16
// readings of d sensors to the next 4; the RUL regressor maps 60 readings of
// 16 sensors (pdmkit/rul's default window over C-MAPSS's features) to a value in (0, 1).
func benchData(c trainCase) (x, y *mat.Dense) {
	in, out := c.spec.Sizes[0], c.spec.Sizes[len(c.spec.Sizes)-1]
	window := 8
	switch {
	case c.kind == "ae" && in == 32:
		window = 4
	case c.kind == "fc":
		window = 16
	case c.kind == "rul":
		window = in / 16 // 16 features per cycle
	}
	d := in / window
	x = mat.NewDense(benchRows, in, nil)
	y = x // an autoencoder trains on Train(x, x), as the detectors do
	if c.kind != "ae" {
		y = mat.NewDense(benchRows, out, nil)
	}
	for r := 0; r < benchRows; r++ {
		xr, yr := x.RawRowView(r), y.RawRowView(r)
		for w := 0; w < window; w++ {
			for j := 0; j < d; j++ {
				xr[w*d+j] = benchSignal(r+w, j)
			}
		}
		switch c.kind {
		case "fc":
			for h := 0; h < out/d; h++ {
				for j := 0; j < d; j++ {
					yr[h*d+j] = benchSignal(r+window+h, j)
				}
			}
		case "rul":
			s := 0.0
			for j := 0; j < d; j++ {
				s += benchSignal(r+window-1, j)
			}
			yr[0] = 0.5 + 0.4*math.Tanh(s/float64(d))
		}
	}
	return x, y
}

func (c trainCase) config() TrainConfig {
	return TrainConfig{Optimizer: Adam, LearningRate: c.lr, L2: c.l2, BatchSize: c.batchSize, Epochs: benchEpochs, Seed: 1}
}

// BenchmarkTrain is one training run (5 epochs over 10,000 rows) per
// iteration, in float64 (the online learner's precision) and float32 (the
// trainer's, TrainConfig.Float32); deployments/bench-train.sh sets it
// beside PyTorch. Names are network/precision/batch=N.
func BenchmarkTrain(b *testing.B) {
	for _, c := range trainCases {
		for _, f32 := range []bool{false, true} {
			net, batch, _ := strings.Cut(c.name, "/")
			prec := "float64"
			if f32 {
				prec = "float32"
			}
			b.Run(net+"/"+prec+"/"+batch, func(b *testing.B) {
				x, y := benchData(c)
				cfg := c.config()
				cfg.Float32 = f32
				var n *Network
				for b.Loop() {
					var err error
					if n, err = New(c.spec, 1); err != nil {
						b.Fatal(err)
					}
					if _, err = n.Train(x, y, cfg); err != nil {
						b.Fatal(err)
					}
				}
				// The loss of the trained network on all rows, as
				// torch_train.py reports it.
				b.ReportMetric(n.Loss(x, y, MSE), "mse")
			})
		}
	}
}
