// Package corpus generates labelled synthetic streams for testing and
// benchmarking detectors and the alert decision: healthy machines of the
// common shapes (white noise, daily cycles, on/off duty cycles, slow
// bounded random walks, and multi-sensor mixes of them), persistent
// set-point changes, and faults of known onset and strength.
//
// Invariants: every stream is a pure function of its parameters and seed,
// so a test that counts alert events on the corpus sees the same rows on
// every machine; times are strictly increasing at a regular step.
package corpus

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Stream is one generated series and what is true of it.
type Stream struct {
	// Name says what the stream is, with its parameters.
	Name string
	// Step is the time between readings; Warmup the rows a detector learns
	// as normal before it scores.
	Step   time.Duration
	Warmup int
	// Sensors names the columns of Rows.
	Sensors []string
	Times   []time.Time
	Rows    [][]float64
	// Change is the first row of the set-point change or fault, -1 for
	// none. Failure is the row at which a fault reaches its failure limit
	// (-1 for none).
	Change, Failure int
	// Labels marks the abnormal rows (nil for healthy and set-point streams).
	Labels []bool
}

// Start is the time of every stream's first row.
var Start = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// Geometry of the five-minute streams: two weeks, about two days of warm-up.
const (
	FiveMinutes = 5 * time.Minute
	Rows5m      = 4032
	Warmup5m    = 604
	day5m       = 288 // rows per day at five minutes
)

// Geometry of the one-second streams: two hours, 400 rows of warm-up.
const (
	Rows1s   = 7200
	Warmup1s = 400
)

// signal is one sensor's value at row i.
type signal func(i int, rng *rand.Rand) float64

func noise(level, sigma float64) signal {
	return func(_ int, rng *rand.Rand) float64 { return level + sigma*rng.NormFloat64() }
}

func daily(level, amp float64, period int, sigma float64) signal {
	return func(i int, rng *rand.Rand) float64 {
		return level + amp*math.Sin(2*math.Pi*float64(i)/float64(period)) + sigma*rng.NormFloat64()
	}
}

// duty is an on/off square wave: on for onRows of every period, starting
// on at row offset.
func duty(off, on float64, period, onRows, offset int, sigma float64) signal {
	return func(i int, rng *rand.Rand) float64 {
		v := off
		if (i+offset)%period < onRows {
			v = on
		}
		return v + sigma*rng.NormFloat64()
	}
}

// walk is a slow mean-reverting random walk (Ornstein-Uhlenbeck) with time
// constant tau rows and stationary deviation spread, plus measurement noise.
func walk(level, spread float64, tau int, sigma float64) signal {
	x := 0.0
	a := math.Exp(-1 / float64(tau))
	s := spread * math.Sqrt(1-a*a)
	return func(_ int, rng *rand.Rand) float64 {
		x = a*x + s*rng.NormFloat64()
		return level + x + sigma*rng.NormFloat64()
	}
}

// reflected is a random walk of step size stepSigma kept inside [lo, hi]
// by reflection.
func reflected(lo, hi, stepSigma, sigma float64) signal {
	x := (lo + hi) / 2
	return func(_ int, rng *rand.Rand) float64 {
		x += stepSigma * rng.NormFloat64()
		for x < lo || x > hi {
			if x < lo {
				x = 2*lo - x
			}
			if x > hi {
				x = 2*hi - x
			}
		}
		return x + sigma*rng.NormFloat64()
	}
}

// follow is a second sensor tied to another: gain × the other + noise.
// It is built from the other's row value, so it is applied after it.
type follow struct {
	of           int
	gain, offset float64
	sigma        float64
}

type spec struct {
	name    string
	step    time.Duration
	rows    int
	warmup  int
	sensors []string
	sig     []signal
	follows map[int]follow
	seed    uint64
}

func (s spec) build() Stream {
	rng := rand.New(rand.NewPCG(s.seed, 0x5eed))
	st := Stream{Name: s.name, Step: s.step, Warmup: s.warmup, Sensors: s.sensors, Change: -1, Failure: -1,
		Times: make([]time.Time, s.rows), Rows: make([][]float64, s.rows)}
	for i := range s.rows {
		st.Times[i] = Start.Add(time.Duration(i) * s.step)
		row := make([]float64, len(s.sensors))
		for j := range s.sensors {
			if f, ok := s.follows[j]; ok {
				row[j] = f.offset + f.gain*row[f.of] + f.sigma*rng.NormFloat64()
				continue
			}
			row[j] = s.sig[j](i, rng)
		}
		st.Rows[i] = row
	}
	return st
}

func five(name string, seed uint64, sensors []string, sig ...signal) spec {
	return spec{name: name, step: FiveMinutes, rows: Rows5m, warmup: Warmup5m, sensors: sensors, sig: sig, seed: seed}
}

func second(name string, seed uint64, sensors []string, sig ...signal) spec {
	return spec{name: name, step: time.Second, rows: Rows1s, warmup: Warmup1s, sensors: sensors, sig: sig, seed: seed}
}

var one = []string{"value"}

// Healthy returns the healthy corpus: streams on which, after its warm-up,
// a detector and alert lifecycle should raise no alert at all. Each shape
// comes with several periods, noise levels and seeds.
func Healthy() []Stream {
	var specs []spec
	for k, sigma := range []float64{0.1, 1, 5} {
		for seed := range uint64(2) {
			specs = append(specs, five(fmt.Sprintf("noise/sigma=%g/seed=%d", sigma, seed), 100+uint64(k)*10+seed, one, noise(50, sigma)))
		}
	}
	for k, sigma := range []float64{0.5, 2} {
		for a, amp := range []float64{5, 20} {
			specs = append(specs, five(fmt.Sprintf("daily/amp=%g/sigma=%g", amp, sigma), 200+uint64(k*2+a), one, daily(50, amp, day5m, sigma)))
		}
	}
	// Duty cycles: 12 h on / 12 h off, 18 h / 6 h, and cycles longer than
	// the warm-up (3.3 days and 2.5 days, whose warm-up still holds both
	// states), with and without noise.
	type cyc struct{ period, on, offset int }
	for c, cy := range []cyc{{day5m, day5m / 2, 0}, {day5m, day5m * 3 / 4, 40}, {960, 480, 0}, {720, 240, 100}} {
		for k, sigma := range []float64{0, 0.5, 3} {
			specs = append(specs, five(fmt.Sprintf("duty/period=%d/on=%d/sigma=%g", cy.period, cy.on, sigma), 300+uint64(c*3+k), one,
				duty(5, 80, cy.period, cy.on, cy.offset, sigma)))
		}
	}
	for k, tau := range []int{day5m, 3 * day5m} {
		specs = append(specs, five(fmt.Sprintf("walk/ou/tau=%d", tau), 400+uint64(k), one, walk(50, 5, tau, 0.5)))
	}
	specs = append(specs, five("walk/reflected", 410, one, reflected(40, 60, 0.3, 0.3)))

	// Several sensors: one cycling while the others hold, one tied to the
	// cycling one (current follows the run state), a daily and a walk mix.
	four := []string{"speed", "current", "pressure", "temperature"}
	for k, sigma := range []float64{0, 1} {
		s := five(fmt.Sprintf("multi/duty-holds/sigma=%g", sigma), 500+uint64(k), four,
			duty(0, 1500, day5m, day5m/2, 0, 3*sigma), noise(10, 0.2), noise(4, 0.05), noise(40, 0.5))
		specs = append(specs, s)
		s = five(fmt.Sprintf("multi/duty-follows/sigma=%g", sigma), 510+uint64(k), four,
			duty(0, 1500, 720, 240, 100, 3*sigma), nil, noise(4, 0.05), daily(40, 3, day5m, 0.3))
		s.follows = map[int]follow{1: {of: 0, gain: 0.01, offset: 1, sigma: 0.1}}
		specs = append(specs, s)
	}
	specs = append(specs, five("multi/daily-walk", 520, four,
		daily(1000, 200, day5m, 5), walk(10, 1, day5m, 0.1), noise(4, 0.05), daily(40, 3, day5m, 0.3)))

	// One-second data: a pump that runs 3 minutes and rests 2, noise, a
	// slow walk.
	specs = append(specs,
		second("1s/noise", 600, one, noise(50, 1)),
		second("1s/duty/period=300", 601, one, duty(5, 80, 300, 180, 0, 1)),
		second("1s/walk", 602, one, walk(50, 5, 1800, 0.5)),
		second("1s/multi/duty-holds", 603, four, duty(0, 1500, 300, 180, 0, 3), noise(10, 0.2), noise(4, 0.05), noise(40, 0.5)),
	)
	out := make([]Stream, len(specs))
	for i, s := range specs {
		out[i] = s.build()
	}
	return out
}

// SetPoints returns healthy streams with one persistent change of
// operating point: the level moves (at once or over a short ramp) and from
// row Change on holds steady. One alert near the change is right; it must
// resolve, and the new level become normal, within the new-normal horizon.
func SetPoints() []Stream {
	at := 2000
	type sp struct {
		name       string
		from, to   float64
		ramp       int
		sigma      float64
		multi      bool
		seed       uint64
		step       time.Duration
		rows, warm int
	}
	var out []Stream
	for _, p := range []sp{
		{"setpoint/50-65", 50, 65, 0, 1, false, 700, FiveMinutes, Rows5m, Warmup5m},
		{"setpoint/50-40", 50, 40, 0, 1, false, 701, FiveMinutes, Rows5m, Warmup5m},
		{"setpoint/50-65/ramp=12", 50, 65, 12, 1, false, 702, FiveMinutes, Rows5m, Warmup5m},
		{"setpoint/50-52/sigma=0.2", 50, 52, 0, 0.2, false, 703, FiveMinutes, Rows5m, Warmup5m},
		{"setpoint/multi/50-65", 50, 65, 0, 1, true, 704, FiveMinutes, Rows5m, Warmup5m},
		{"setpoint/1s/50-65", 50, 65, 0, 1, false, 705, time.Second, Rows1s, Warmup1s},
	} {
		level := func(i int) float64 {
			switch {
			case i < at:
				return p.from
			case i >= at+p.ramp:
				return p.to
			}
			return p.from + (p.to-p.from)*float64(i-at)/float64(p.ramp)
		}
		s := spec{name: p.name, step: p.step, rows: p.rows, warmup: p.warm, seed: p.seed, sensors: one}
		s.sig = []signal{func(i int, rng *rand.Rand) float64 { return level(i) + p.sigma*rng.NormFloat64() }}
		if p.multi {
			s.sensors = []string{"level", "flow", "temperature"}
			s.sig = append(s.sig, noise(30, 0.5), daily(40, 3, day5m, 0.3))
		}
		st := s.build()
		st.Change = at + p.ramp // where the new level holds
		out = append(out, st)
	}
	return out
}

// Fault returns a five-minute noise stream (level 50, σ 1) with a fault of
// the given strength, in standard deviations, from row at for rows rows:
// a step of that size. Stronger faults are more abnormal by construction.
func Fault(strength float64, at, rows int) Stream {
	s := five(fmt.Sprintf("fault/step=%gσ", strength), 800, one, noise(50, 1)).build()
	s.Change = at
	s.Labels = make([]bool, len(s.Rows))
	for i := at; i < at+rows && i < len(s.Rows); i++ {
		s.Rows[i][0] += strength
		s.Labels[i] = true
	}
	return s
}

// Wear returns a machine that degrades to failure: a load sensor held by
// its controller and a vibration sensor whose level grows from row at,
// accelerating (exponentially, like bearing wear) until it reaches its
// failure limit at row fail. With setPointAt ≥ 0 the load also moves once,
// at that row, from 60 to 75 and holds (wear right after a set-point
// change).
func Wear(at, fail, setPointAt int) Stream {
	name := fmt.Sprintf("wear/at=%d/fail=%d", at, fail)
	if setPointAt >= 0 {
		name += fmt.Sprintf("/setpoint=%d", setPointAt)
	}
	s := five(name, 900, []string{"load", "vibration"}, func(i int, rng *rand.Rand) float64 {
		l := 60.0
		if setPointAt >= 0 && i >= setPointAt {
			l = 75
		}
		return l + 0.5*rng.NormFloat64()
	}, nil)
	s.follows = map[int]follow{1: {of: 0, gain: 0.02, offset: 1, sigma: 0.05}}
	st := s.build()
	st.Change, st.Failure = at, fail
	st.Labels = make([]bool, len(st.Rows))
	const k = 3.0
	for i := at; i < len(st.Rows); i++ {
		x := math.Min(1, float64(i-at)/float64(fail-at))
		health := (math.Exp(k*x) - 1) / (math.Exp(k) - 1)
		st.Rows[i][1] += 2 * health // failure: vibration up by 2 (normal spread 0.05)
		st.Labels[i] = true
	}
	return st
}

// Ramp returns a steady linear ramp to failure: one sensor of noise (level
// 50, σ 1) that rises linearly from row at to 50 + rise at row fail.
func Ramp(at, fail int, rise float64) Stream {
	s := five(fmt.Sprintf("ramp/at=%d/fail=%d/rise=%g", at, fail, rise), 901, one, noise(50, 1)).build()
	s.Change, s.Failure = at, fail
	s.Labels = make([]bool, len(s.Rows))
	for i := at; i < len(s.Rows); i++ {
		s.Rows[i][0] += rise * math.Min(1, float64(i-at)/float64(fail-at))
		s.Labels[i] = true
	}
	return s
}
