package sim

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newAsset(t *testing.T, id, kind string, seed uint64) *Asset {
	t.Helper()
	a, err := New(id, kind, Options{Seed: seed, Step: time.Minute, TimeScale: 3600}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// run steps a for n readings and returns the mean of sensor over the last
// window readings, counting only running steps.
func run(a *Asset, n, window int, sensor string) float64 {
	var sum float64
	var k int
	for i := 0; i < n; i++ {
		v := a.Next(t0)
		if i >= n-window && a.running {
			sum += v[sensor]
			k++
		}
	}
	if k == 0 {
		return math.NaN()
	}
	return sum / float64(k)
}

func TestReproducible(t *testing.T) {
	for _, kind := range []string{Pump, Motor} {
		a, b := newAsset(t, "a-1", kind, 7), newAsset(t, "a-1", kind, 7)
		c := newAsset(t, "a-1", kind, 8)
		differs := false
		for i := 0; i < 500; i++ {
			va, vb, vc := a.Next(t0), b.Next(t0), c.Next(t0)
			for k, x := range va {
				if vb[k] != x {
					t.Fatalf("%s step %d sensor %s: %v != %v with the same seed", kind, i, k, x, vb[k])
				}
				if vc[k] != x {
					differs = true
				}
			}
		}
		if !differs {
			t.Errorf("%s: another seed gave the same values", kind)
		}
	}
}

func TestSensorNamesAndRanges(t *testing.T) {
	for kind, names := range map[string][]string{Pump: PumpSensors, Motor: MotorSensors} {
		a := newAsset(t, "x", kind, 1)
		for i := 0; i < 3000; i++ {
			v := a.Next(t0)
			if len(v) != len(names) {
				t.Fatalf("%s: %d sensors, want %d", kind, len(v), len(names))
			}
			for _, n := range names {
				x, ok := v[n]
				if !ok || math.IsNaN(x) || math.IsInf(x, 0) {
					t.Fatalf("%s: sensor %s = %v, %v", kind, n, x, ok)
				}
				if n != "voltage" && n != "bearing_temp" && n != "winding_temp" && x < 0 {
					t.Fatalf("%s: %s negative: %v", kind, n, x)
				}
			}
			if v["bearing_temp"] < 10 || v["bearing_temp"] > 120 {
				t.Fatalf("%s: implausible bearing_temp %v", kind, v["bearing_temp"])
			}
		}
	}
}

// A worn twin drifts away from a healthy one with the same seed: vibration
// and bearing temperature rise, and faster near the end (accelerating).
func TestBearingWearVsHealthyTwin(t *testing.T) {
	for _, kind := range []string{Pump, Motor} {
		healthy, worn := newAsset(t, "b", kind, 3), newAsset(t, "b", kind, 3)
		if _, err := worn.Degrade(BearingWear, 48*time.Hour, t0); err != nil {
			t.Fatal(err)
		}
		f := worn.State().Active[0]
		if f.FailureSim <= f.StartSim || f.FailureSim > 48*3600*1.16 {
			t.Fatalf("failure time %v not within ttf ±15%%", f.FailureSim)
		}
		var gapMid, gapEnd, tempGap float64
		steps := int(f.FailureSim/60) + 1
		for i := 0; i < steps; i++ {
			h, w := healthy.Next(t0), worn.Next(t0)
			if !worn.running {
				continue
			}
			d := w["vibration_rms"] - h["vibration_rms"]
			switch {
			case i > steps/2-60 && i <= steps/2:
				gapMid = d
			case i > steps-60:
				gapEnd = d
				tempGap = w["bearing_temp"] - h["bearing_temp"]
			}
		}
		if gapMid <= 0.2 || gapEnd < 4 || gapEnd < 3*gapMid {
			t.Errorf("%s: vibration gap mid %.2f end %.2f mm/s: want rising and accelerating", kind, gapMid, gapEnd)
		}
		if tempGap < 15 {
			t.Errorf("%s: bearing temperature only %.1f °C above the healthy twin at failure", kind, tempGap)
		}
		st := worn.State()
		if !st.Active[0].Failed || st.Active[0].Health < 0.999 {
			t.Errorf("%s: at the failure time the fault is %+v", kind, st.Active[0])
		}
	}
}

func TestCavitation(t *testing.T) {
	healthy, cav := newAsset(t, "c", Pump, 5), newAsset(t, "c", Pump, 5)
	if _, err := cav.Degrade(Cavitation, 10*time.Hour, t0); err != nil {
		t.Fatal(err)
	}
	var hp, cp, hf, cf, hvs, cvs float64
	var hv, cv []float64
	for i := 0; i < 600; i++ {
		h, c := healthy.Next(t0), cav.Next(t0)
		if i < 480 || !healthy.running {
			continue
		}
		hp += h["discharge_pressure"]
		cp += c["discharge_pressure"]
		hf += h["flow"]
		cf += c["flow"]
		hv = append(hv, h["vibration_rms"])
		cv = append(cv, c["vibration_rms"])
	}
	hvs, cvs = stddev(hv), stddev(cv)
	if cp > 0.8*hp || cf > 0.85*hf {
		t.Errorf("pressure %.1f vs %.1f, flow %.1f vs %.1f: cavitation should lower both", cp, hp, cf, hf)
	}
	if cvs < 3*hvs {
		t.Errorf("vibration stddev %.3f vs healthy %.3f: cavitation should make it noisy", cvs, hvs)
	}
	m := newAsset(t, "m", Motor, 1)
	if _, err := m.Degrade(Cavitation, 0, t0); err == nil {
		t.Error("cavitation on a motor was accepted")
	}
}

func TestMisalignment(t *testing.T) {
	for _, kind := range []string{Pump, Motor} {
		healthy, mis := newAsset(t, "m", kind, 9), newAsset(t, "m", kind, 9)
		if _, err := mis.Degrade(Misalignment, 5*time.Hour, t0); err != nil {
			t.Fatal(err)
		}
		hv, mv := run(healthy, 400, 60, "vibration_rms"), run(mis, 400, 60, "vibration_rms")
		healthy, mis = newAsset(t, "m", kind, 9), newAsset(t, "m", kind, 9)
		mis.Degrade(Misalignment, 5*time.Hour, t0)
		hc, mc := run(healthy, 400, 60, "motor_current"), run(mis, 400, 60, "motor_current")
		if mv < hv+1.5 {
			t.Errorf("%s: vibration %.2f vs healthy %.2f", kind, mv, hv)
		}
		if mc < hc*1.04 {
			t.Errorf("%s: current %.1f vs healthy %.1f", kind, mc, hc)
		}
	}
}

// Current must rise with load, and pump pressure and flow with speed.
func TestCorrelations(t *testing.T) {
	for _, kind := range []string{Pump, Motor} {
		a := newAsset(t, "k", kind, 11)
		var load, cur, speed, flow []float64
		for i := 0; i < 5000; i++ {
			v := a.Next(t0)
			if !a.running {
				continue
			}
			load = append(load, a.load())
			cur = append(cur, v["motor_current"])
			speed = append(speed, v["speed"])
			flow = append(flow, v["flow"])
		}
		if r := corr(load, cur); r < 0.8 {
			t.Errorf("%s: corr(load, current) = %.2f", kind, r)
		}
		if kind == Pump {
			if r := corr(speed, flow); r < 0.9 {
				t.Errorf("pump: corr(speed, flow) = %.2f", r)
			}
		} else if r := corr(load, speed); r > -0.8 {
			t.Errorf("motor: corr(load, speed) = %.2f, slip should grow with load", r)
		}
	}
}

// Thermal lag: after a stop the bearing cools gradually, not at once.
func TestStartStopAndThermalLag(t *testing.T) {
	a := newAsset(t, "s", Pump, 2)
	var prevRun = true
	var tempAtStop float64
	for i := 0; i < 2000; i++ {
		v := a.Next(t0)
		if prevRun && !a.running {
			if v["speed"] > 10 || v["motor_current"] != 0 || v["flow"] > 5 {
				t.Fatalf("stopped pump reads %v", v)
			}
			tempAtStop = v["bearing_temp"]
			w := a.Next(t0)
			if drop := tempAtStop - w["bearing_temp"]; drop <= 0 || drop > 5 {
				t.Fatalf("bearing temperature fell %.2f °C in one minute after stop: want a gradual lag", drop)
			}
			return
		}
		prevRun = a.running
	}
	t.Fatal("pump never stopped in 2000 minutes")
}

func TestRepairAndSchedule(t *testing.T) {
	a := newAsset(t, "r", Pump, 4)
	if err := a.Schedule(BearingWear, 2*time.Hour, 10*time.Hour); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 119; i++ {
		a.Next(t0)
	}
	if len(a.State().Active) != 0 {
		t.Fatal("fault started before its delay")
	}
	a.Next(t0)
	st := a.State()
	if len(st.Active) != 1 || math.Abs(st.Active[0].StartSim-7200) > 1 {
		t.Fatalf("after 2h: %+v", st.Active)
	}
	if _, err := a.Degrade(BearingWear, 0, t0); err == nil {
		t.Error("second bearing_wear accepted")
	}
	ended := a.Repair(t0)
	if len(ended) != 1 || ended[0].RepairedAt == nil {
		t.Fatalf("repair ended %+v", ended)
	}
	st = a.State()
	if len(st.Active) != 0 || len(st.History) != 1 {
		t.Fatalf("after repair: %+v", st)
	}
}

func stddev(x []float64) float64 {
	var m, s float64
	for _, v := range x {
		m += v
	}
	m /= float64(len(x))
	for _, v := range x {
		s += (v - m) * (v - m)
	}
	return math.Sqrt(s / float64(len(x)))
}

func corr(x, y []float64) float64 {
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= float64(len(x))
	my /= float64(len(y))
	var sxy, sxx, syy float64
	for i := range x {
		sxy += (x[i] - mx) * (y[i] - my)
		sxx += (x[i] - mx) * (x[i] - mx)
		syy += (y[i] - my) * (y[i] - my)
	}
	return sxy / math.Sqrt(sxx*syy)
}

// TestSetPointMovesTheLevel: a new set point moves flow and current to a
// new level that then holds, and refuses loads outside [0.3, 1].
func TestSetPointMovesTheLevel(t *testing.T) {
	a, err := New("p", Pump, Options{Seed: 3, Step: time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mean := func(n int) (flow float64) {
		k := 0
		for range n {
			v := a.Next(time.Now())
			if v["speed"] > 1000 { // running
				flow += v["flow"]
				k++
			}
		}
		return flow / float64(k)
	}
	before := mean(1440)
	if _, err := a.SetPoint(0.95); err != nil {
		t.Fatal(err)
	}
	mean(60) // the speed settles
	after := mean(1440)
	if after < before*1.08 {
		t.Fatalf("flow %.1f before, %.1f after raising the set point", before, after)
	}
	if _, err := a.SetPoint(1.2); err == nil {
		t.Error("a load of 1.2 was accepted")
	}
}
