// Package sim simulates rotating machines — a centrifugal pump and an
// induction motor — with correlated sensors that follow a load profile,
// start/stop duty cycles and first-order thermal lags, plus degradation modes
// whose ground truth (onset and failure time) is recorded.
//
// Invariants: an Asset is deterministic — the same seed, asset id, kind, step
// and schedule give the same sensor values — because each asset draws from
// its own generator and draws the same count of numbers per step whatever its
// state. Time inside the simulator is simulated seconds since start; wall
// times in the ground truth are estimates (onset wall time plus simulated time
// to failure divided by the time scale).
package sim

import (
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// Kinds of asset.
const (
	Pump  = "pump"
	Motor = "motor"
)

// Degradation modes.
const (
	BearingWear  = "bearing_wear"
	Cavitation   = "cavitation"
	Misalignment = "misalignment"
)

// Errors of the control API.
var (
	// ErrMode: the mode is unknown or does not apply to the asset's kind.
	ErrMode = errors.New("unknown or inapplicable degradation mode")
	// ErrActive: the mode is already running on the asset.
	ErrActive = errors.New("degradation mode already active")
)

// DefaultTTF is the simulated time from onset to failure of each mode.
var DefaultTTF = map[string]time.Duration{
	BearingWear:  72 * time.Hour,
	Cavitation:   24 * time.Hour,
	Misalignment: 120 * time.Hour,
}

// Applies reports whether mode can happen to an asset of kind.
func Applies(mode, kind string) bool {
	switch mode {
	case BearingWear, Misalignment:
		return kind == Pump || kind == Motor
	case Cavitation:
		return kind == Pump
	}
	return false
}

// Sensors of each kind, in the order the agent reports them.
var (
	PumpSensors  = []string{"vibration_rms", "bearing_temp", "motor_current", "discharge_pressure", "flow", "speed"}
	MotorSensors = []string{"vibration_rms", "bearing_temp", "winding_temp", "motor_current", "voltage", "speed"}
)

// Fault is the ground truth of one degradation mode.
type Fault struct {
	Mode string `json:"mode"`
	// StartSim and FailureSim are simulated seconds since the asset started.
	// Failure is when the health indicator reaches 1, its failure limit.
	StartSim   float64 `json:"start_sim_s"`
	FailureSim float64 `json:"failure_sim_s"`
	// Start is the wall time of onset; Failure the estimated wall time of
	// failure at the configured time scale.
	Start   time.Time `json:"start"`
	Failure time.Time `json:"failure_estimate"`
	// Health is the indicator: 0 at onset, 1 at failure.
	Health float64 `json:"health"`
	Failed bool    `json:"failed"`
	// FailedAt is the wall time the limit was reached.
	FailedAt *time.Time `json:"failed_at,omitempty"`
	// RepairedAt is set once a repair ended the mode.
	RepairedAt *time.Time `json:"repaired_at,omitempty"`
}

type scheduled struct {
	mode  string
	at    float64
	ttf   float64
	start bool
}

// State is a snapshot of an asset for the control API.
type State struct {
	Asset   string  `json:"asset"`
	Kind    string  `json:"kind"`
	SimTime float64 `json:"sim_time_s"`
	Running bool    `json:"running"`
	Load    float64 `json:"load"`
	// Active holds the current faults; History also the repaired ones.
	Active  []Fault `json:"active"`
	History []Fault `json:"history"`
	Pending []struct {
		Mode  string  `json:"mode"`
		AtSim float64 `json:"at_sim_s"`
	} `json:"pending"`
}

// Asset is one simulated machine. Its methods are safe for concurrent use:
// the agent steps it while the control API degrades or repairs it.
type Asset struct {
	mu        sync.Mutex
	id, kind  string
	seed      uint64
	dt        float64
	timeScale float64
	log       *slog.Logger
	rng       *rand.Rand

	t                  float64 // simulated seconds since start
	phase              float64 // daily load profile phase
	ou                 float64 // slow load fluctuation
	running            bool
	switchAt           float64
	setPoint           float64 // mean load; 0: DefaultLoad
	speed              float64
	bearingT, windingT float64

	active   map[string]*Fault
	history  []*Fault
	pending  []scheduled
	faultSeq uint64
}

// Options configure an asset.
type Options struct {
	// Seed of the random generator; combined with the asset id.
	Seed uint64
	// Step is the simulated time between readings. It must be > 0.
	Step time.Duration
	// TimeScale is simulated seconds per real second, used only to estimate
	// wall-clock failure times. Values <= 0 mean 1.
	TimeScale float64
}

// New returns a healthy asset of kind ("pump" or "motor") at rest
// temperature, running.
func New(id, kind string, opts Options, log *slog.Logger) (*Asset, error) {
	if kind != Pump && kind != Motor {
		return nil, fmt.Errorf("sim: kind %q: want pump or motor", kind)
	}
	if opts.Step <= 0 {
		return nil, fmt.Errorf("sim: step %s must be > 0", opts.Step)
	}
	if opts.TimeScale <= 0 {
		opts.TimeScale = 1
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := hash(id)
	a := &Asset{
		id: id, kind: kind, seed: opts.Seed,
		dt:        opts.Step.Seconds(),
		timeScale: opts.TimeScale,
		log:       log.With("asset", id, "kind", kind),
		rng:       rand.New(rand.NewPCG(opts.Seed, h)),
		running:   true,
		active:    map[string]*Fault{},
	}
	a.phase = a.rng.Float64() * 2 * math.Pi
	a.switchAt = a.runHours() * 3600 * (0.5 + 0.5*a.rng.Float64())
	a.bearingT = ambient(0, a.phase)
	a.windingT = a.bearingT
	a.speed = a.nominalSpeed()
	return a, nil
}

// ID returns the asset id.
func (a *Asset) ID() string { return a.id }

// Kind returns the asset kind.
func (a *Asset) Kind() string { return a.kind }

func (a *Asset) runHours() float64 {
	if a.kind == Pump {
		return 6
	}
	return 8
}

func (a *Asset) stopHours() float64 {
	if a.kind == Pump {
		return 1.0 / 3
	}
	return 0.5
}

func (a *Asset) nominalSpeed() float64 {
	if a.kind == Pump {
		return 2960
	}
	return 1485
}

func hash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// ambient is the room temperature: 25 °C with a daily swing of ±4 °C.
func ambient(t, phase float64) float64 {
	return 25 + 4*math.Sin(2*math.Pi*t/86400+phase)
}

// lag moves x toward target as a first-order system with time constant tau
// over dt; exact for a target held constant over the step, so stable for any
// step size.
func lag(x, target, tau, dt float64) float64 {
	return x + (target-x)*(1-math.Exp(-dt/tau))
}

// Schedule starts mode after the given simulated time from start; ttf 0 uses
// the mode's default.
func (a *Asset) Schedule(mode string, after, ttf time.Duration) error {
	if !Applies(mode, a.kind) {
		return fmt.Errorf("sim: %s: %w: %q on %s", a.id, ErrMode, mode, a.kind)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending = append(a.pending, scheduled{mode: mode, at: after.Seconds(), ttf: ttf.Seconds(), start: true})
	return nil
}

// Degrade starts mode now (at the next step); ttf 0 uses the mode's default.
func (a *Asset) Degrade(mode string, ttf time.Duration, now time.Time) (Fault, error) {
	if !Applies(mode, a.kind) {
		return Fault{}, fmt.Errorf("sim: %s: %w: %q on %s", a.id, ErrMode, mode, a.kind)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.active[mode]; ok {
		return Fault{}, fmt.Errorf("sim: %s: %w: %s", a.id, ErrActive, mode)
	}
	f := a.start(mode, ttf.Seconds(), now)
	return *f, nil
}

// start begins a fault at the current simulated time. The time to failure
// varies ±15% around ttf, drawn from a generator of its own so the sensor
// noise sequence is the same as a healthy twin's.
func (a *Asset) start(mode string, ttf float64, now time.Time) *Fault {
	if ttf <= 0 {
		ttf = DefaultTTF[mode].Seconds()
	}
	a.faultSeq++
	jr := rand.New(rand.NewPCG(a.seed^hash(mode), hash(a.id)+a.faultSeq))
	ttf *= 0.85 + 0.3*jr.Float64()
	f := &Fault{
		Mode:       mode,
		StartSim:   a.t,
		FailureSim: a.t + ttf,
		Start:      now.UTC(),
		Failure:    now.Add(time.Duration(ttf / a.timeScale * float64(time.Second))).UTC(),
	}
	a.active[mode] = f
	a.history = append(a.history, f)
	a.log.Info("degradation started", "mode", mode,
		"start_sim_h", round(f.StartSim/3600), "failure_sim_h", round(f.FailureSim/3600),
		"failure_estimate", f.Failure.Format(time.RFC3339))
	return f
}

func round(x float64) float64 { return math.Round(x*1000) / 1000 }

// Repair ends every fault and pending schedule: the asset is healthy again
// (temperatures cool down with their usual lag). It returns the faults ended.
func (a *Asset) Repair(now time.Time) []Fault {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ended []Fault
	for mode, f := range a.active {
		at := now.UTC()
		f.RepairedAt = &at
		ended = append(ended, *f)
		delete(a.active, mode)
		a.log.Info("repaired", "mode", mode, "health", round(f.Health), "failed", f.Failed)
	}
	a.pending = nil
	return ended
}

// State returns a snapshot of the asset and its ground truth.
func (a *Asset) State() State {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := State{Asset: a.id, Kind: a.kind, SimTime: a.t, Running: a.running, Load: a.load(), Active: []Fault{}, History: []Fault{}}
	s.Pending = make([]struct {
		Mode  string  `json:"mode"`
		AtSim float64 `json:"at_sim_s"`
	}, 0, len(a.pending))
	for _, f := range a.history {
		s.History = append(s.History, *f)
		if f.RepairedAt == nil {
			s.Active = append(s.Active, *f)
		}
	}
	for _, p := range a.pending {
		s.Pending = append(s.Pending, struct {
			Mode  string  `json:"mode"`
			AtSim float64 `json:"at_sim_s"`
		}{p.mode, p.at})
	}
	return s
}

// health returns the indicator of mode at the current time: 0 when absent.
func (a *Asset) health(mode string) float64 {
	f, ok := a.active[mode]
	if !ok {
		return 0
	}
	return f.Health
}

// severity maps progress x in [0,1] to the health indicator of mode.
// Bearing wear accelerates (exponential), cavitation grows linearly as
// suction conditions worsen, misalignment grows with x^1.5.
func severity(mode string, x float64) float64 {
	x = math.Max(0, math.Min(1, x))
	switch mode {
	case BearingWear:
		const k = 3.0
		return (math.Exp(k*x) - 1) / (math.Exp(k) - 1)
	case Misalignment:
		return math.Pow(x, 1.5)
	}
	return x
}

// load is the duty the asset is asked for, 0.3..1: a daily profile plus a
// slow random fluctuation.
func (a *Asset) load() float64 {
	l := a.base() + 0.15*math.Sin(2*math.Pi*a.t/86400+a.phase) + a.ou
	return math.Max(0.3, math.Min(1, l))
}

// DefaultLoad is the mean load an asset is run at until its set point is
// changed.
const DefaultLoad = 0.72

func (a *Asset) base() float64 {
	if a.setPoint > 0 {
		return a.setPoint
	}
	return DefaultLoad
}

// SetPoint changes the mean load the asset is run at (0.3..1): a new
// operating point, not a fault — the readings move to a new level and
// hold it. It returns the previous set point.
func (a *Asset) SetPoint(load float64) (float64, error) {
	if !(load >= 0.3 && load <= 1) {
		return 0, fmt.Errorf("sim: set point %v: want a load in [0.3, 1]", load)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	prev := a.base()
	a.setPoint = load
	a.log.Info("set point changed", "from", prev, "to", load)
	return prev, nil
}

// Next advances the simulation by one step and returns the sensor values at
// wall time now. The map is new on every call.
func (a *Asset) Next(now time.Time) map[string]float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.t += a.dt
	dt := a.dt

	// Scheduled onsets.
	kept := a.pending[:0]
	for _, p := range a.pending {
		if a.t >= p.at {
			if _, ok := a.active[p.mode]; !ok {
				a.start(p.mode, p.ttf, now)
			}
			continue
		}
		kept = append(kept, p)
	}
	a.pending = kept
	for _, f := range a.active {
		f.Health = severity(f.Mode, (a.t-f.StartSim)/(f.FailureSim-f.StartSim))
		if !f.Failed && a.t >= f.FailureSim {
			f.Failed = true
			at := now.UTC()
			f.FailedAt = &at
			a.log.Warn("failure limit reached", "mode", f.Mode, "sim_h", round(a.t/3600))
		}
	}

	// Fixed count of draws per step, whatever the state, so a degraded
	// asset and its healthy twin see the same noise.
	var z [10]float64
	for i := range z {
		z[i] = a.rng.NormFloat64()
	}

	// Slow load fluctuation: Ornstein-Uhlenbeck with a 30 min time constant.
	const ouTau, ouSigma = 1800.0, 0.05
	decay := math.Exp(-dt / ouTau)
	a.ou = a.ou*decay + ouSigma*math.Sqrt(1-decay*decay)*z[0]

	// Duty cycle: run for hours, stop for a while.
	if a.t >= a.switchAt {
		a.running = !a.running
		if a.running {
			a.switchAt = a.t + a.runHours()*3600
		} else {
			a.switchAt = a.t + a.stopHours()*3600
		}
	}

	amb := ambient(a.t, a.phase)
	load := a.load()
	bw, cav, mis := a.health(BearingWear), a.health(Cavitation), a.health(Misalignment)
	run := 0.0
	if a.running {
		run = 1
	}
	if a.kind == Pump {
		return a.pump(dt, amb, load, run, bw, cav, mis, z[1:])
	}
	return a.motor(dt, amb, load, run, bw, mis, z[1:])
}

// pump: a VFD-driven centrifugal pump. Speed follows load; flow ∝ speed,
// head ∝ speed², shaft power and so current ∝ speed³ (affinity laws).
func (a *Asset) pump(dt, amb, load, run, bw, cav, mis float64, z []float64) map[string]float64 {
	const nNom, qNom, pNom, iNoLoad, iNom = 2960.0, 120.0, 6.0, 25.0, 100.0
	a.speed = lag(a.speed, run*nNom*(0.6+0.4*load), 5, dt)
	r := a.speed / nNom
	flow := qNom * r * (1 - 0.35*cav)
	pressure := pNom * r * r * (1 - 0.45*cav)
	current := run * (iNoLoad + (iNom-iNoLoad)*r*r*r*(1+0.12*mis+0.03*bw)*(1-0.2*cav))
	// Vibration: rises with speed²; bearing wear adds broadband energy,
	// misalignment a 1x/2x component, cavitation random bursts.
	vib := run*(1.4*(0.4+0.6*r*r)+8*bw+3.5*mis*r+cav*(1+2.5*math.Abs(z[0]))) + 0.05
	a.bearingT = lag(a.bearingT, amb+run*(25*(0.5+0.5*r*r))+35*bw+8*mis, 1200, dt)
	return map[string]float64{
		"vibration_rms":      pos(vib * (1 + 0.03*z[1])),
		"bearing_temp":       a.bearingT + 0.2*z[2],
		"motor_current":      pos(current + run*0.8*z[3]),
		"discharge_pressure": pos(pressure + run*(0.04+0.3*cav)*z[4]),
		"flow":               pos(flow + run*(0.8+4*cav)*z[5]),
		"speed":              pos(a.speed + run*2*z[6]),
	}
}

// motor: a 4-pole induction motor driving a load. Slip and current rise
// with load; winding temperature follows I² with a long time constant.
func (a *Asset) motor(dt, amb, load, run, bw, mis float64, z []float64) map[string]float64 {
	const nSync, iNoLoad, iFull, uNom = 1500.0, 40.0, 135.0, 400.0
	eff := load * (1 + 0.1*mis)
	a.speed = lag(a.speed, run*(nSync-10-25*eff), 3, dt)
	current := run * (iNoLoad + (iFull-iNoLoad)*eff*(1+0.1*mis+0.02*bw))
	voltage := uNom - 0.03*current
	a.windingT = lag(a.windingT, amb+85*(current/iFull)*(current/iFull), 2400, dt)
	a.bearingT = lag(a.bearingT, amb+run*15*(0.6+0.4*load)+0.1*(a.windingT-amb)+40*bw+6*mis, 1200, dt)
	vib := run*(1.1*(0.7+0.3*load)+7*bw+4*mis) + 0.05
	return map[string]float64{
		"vibration_rms": pos(vib * (1 + 0.03*z[0])),
		"bearing_temp":  a.bearingT + 0.2*z[1],
		"winding_temp":  a.windingT + 0.2*z[2],
		"motor_current": pos(current + run*0.8*z[3]),
		"voltage":       voltage + 1.2*z[4],
		"speed":         pos(a.speed + run*2*z[5]),
	}
}

func pos(x float64) float64 { return math.Max(0, x) }
