package anomaly

import (
	"math"

	"github.com/pdmstream/pdm/pdmkit/nn"
)

// clipZ is where scaled readings start to be compressed: beyond ±clipZ a
// value v becomes ±(clipZ + ln(1 + |v| − clipZ)). One sensor gone wild (or
// a sensor that was constant during training, scaled by a tiny deviation)
// then cannot overflow the error or dominate it for hours of smoothing, yet
// a larger excursion still gives a larger error, so scores keep ranking.
// It is far enough out that a degradation's growth stays visible in the
// error until well past any failure limit.
const clipZ = 100

// windower keeps the last w scaled readings flattened oldest first, the
// layout every windowed network input uses.
type windower struct {
	w, d   int
	buf    []float64
	filled int
}

func newWindower(w, d int) windower { return windower{w: w, d: d, buf: make([]float64, w*d)} }

func (win *windower) push(x []float64) {
	copy(win.buf, win.buf[win.d:])
	copy(win.buf[(win.w-1)*win.d:], x)
	if win.filled < win.w {
		win.filled++
	}
}

// input writes the network input for the current window into dst: the
// scaled readings, except that a centred feature has its window mean
// subtracted. A feature whose level drifts slowly (a temperature warming up)
// is thereby modelled by its shape within the window, not by a level the
// warm-up never covered.
func (win *windower) input(dst []float64, centred []bool) {
	copy(dst, win.buf)
	for j, c := range centred {
		if !c {
			continue
		}
		m := 0.0
		for p := 0; p < win.w; p++ {
			m += dst[p*win.d+j]
		}
		m /= float64(win.w)
		for p := 0; p < win.w; p++ {
			dst[p*win.d+j] -= m
		}
	}
}

func (win *windower) ready() bool { return win.filled >= win.w }

// change is how far the window's readings moved: the largest absolute
// difference, over the features, between its newest and oldest scaled
// reading. A switch of a duty cycle moves far; steady operation does not.
func (win *windower) change() float64 {
	c := 0.0
	last := (win.w - 1) * win.d
	for j := range win.d {
		c = math.Max(c, math.Abs(win.buf[last+j]-win.buf[j]))
	}
	return c
}
func (win *windower) reset() { win.filled = 0 }

// scaleInto standardises x with s and compresses its tails.
func scaleInto(dst []float64, s *nn.Scaler, x []float64) {
	s.Transform(dst, x)
	for j, v := range dst {
		if a := math.Abs(v); a > clipZ {
			dst[j] = math.Copysign(clipZ+math.Log1p(a-clipZ), v)
		}
	}
}

// reconScorer computes the smoothed reconstruction error of the newest
// window: per feature, the mean squared error over the window positions,
// smoothed with an exponential moving average; the raw error is their sum,
// and each feature's share of it is its contribution. A centred (drifting)
// feature is context: it feeds the network but its own error is not
// counted, because over a short warm-up its level and rate are not
// stationary and would dominate the score with harmless drift — unless
// every feature drifts, in which case all count.
type reconScorer struct {
	net     *nn.Network
	scaler  *nn.Scaler
	alpha   float64
	win     windower
	centred []bool
	in      []float64 // network input
	z       []float64 // scaled reading
	ema     []float64 // per-feature smoothed error
	weight  []float64 // 1 for scored features, 0 for context
	primed  bool
	// act is the window's change smoothed like the errors: how much the
	// machine is moving, which picks the calibration band.
	act float64
}

func newReconScorer(net *nn.Network, s *nn.Scaler, centred []bool, window int, alpha float64) *reconScorer {
	d := len(s.Mean)
	r := &reconScorer{net: net, scaler: s, alpha: alpha, win: newWindower(window, d), centred: centred,
		in: make([]float64, window*d), z: make([]float64, d), ema: make([]float64, d), weight: make([]float64, d)}
	all := true
	for _, c := range centred {
		all = all && c
	}
	for j := range r.weight {
		if all || !centred[j] {
			r.weight[j] = 1
		}
	}
	return r
}

func (r *reconScorer) reset() {
	r.win.reset()
	r.primed = false
}

// step adds a raw reading; ok is false until the first full window.
func (r *reconScorer) step(x []float64) (raw float64, ok bool) {
	scaleInto(r.z, r.scaler, x)
	r.win.push(r.z)
	if !r.win.ready() {
		return 0, false
	}
	r.win.input(r.in, r.centred)
	out := r.net.Forward(r.in)
	d, w := r.win.d, r.win.w
	a := r.alpha
	if !r.primed {
		a = 1
		r.primed = true
	}
	r.act = a*r.win.change() + (1-a)*r.act
	for j := 0; j < d; j++ {
		e := 0.0
		for p := 0; p < w; p++ {
			k := p*d + j
			diff := out[k] - r.in[k]
			e += diff * diff
		}
		r.ema[j] = r.weight[j] * (a*(e/float64(w)) + (1-a)*r.ema[j])
		raw += r.ema[j]
	}
	return raw, true
}

// driftingFeatures reports, per feature, whether its level wanders slowly
// over the rows: the rows are cut into 8 consecutive blocks, and a feature
// whose block means spread more than limit × its overall spread is
// drifting. White noise gives about 1/√(rows/8) (0.14 for 400 rows), a
// periodic signal faster than a block less, a trend, a random walk or a
// cycle slower than a block close to 1.
func driftingFeatures(rows [][]float64, limit float64) []bool {
	d := len(rows[0])
	out := make([]bool, d)
	const blocks = 8
	b := len(rows) / blocks
	if b < 5 {
		return out
	}
	n := float64(b * blocks)
	for j := 0; j < d; j++ {
		var s, ss float64
		means := make([]float64, blocks)
		for k := 0; k < blocks; k++ {
			for _, r := range rows[k*b : (k+1)*b] {
				means[k] += r[j]
				s += r[j]
				ss += r[j] * r[j]
			}
			means[k] /= float64(b)
		}
		m := s / n
		v := ss/n - m*m
		if v <= 1e-12*(1+m*m) {
			continue // constant: nothing to centre
		}
		var mv float64
		for _, bm := range means {
			mv += (bm - m) * (bm - m)
		}
		mv /= blocks
		out[j] = math.Sqrt(mv) > limit*math.Sqrt(v)
	}
	return out
}
