package sim

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Run is a simulated history written by WriteCSV: one asset, optionally
// degrading, and what is true of it.
type Run struct {
	Asset, Kind string
	// Mode is the degradation ("" for a healthy run), starting After the
	// first reading with time to failure TTF (0: the mode's default).
	Mode       string
	After, TTF time.Duration
	Step       time.Duration
	Rows       int
	Seed       uint64
	// Start is the time of the first reading.
	Start time.Time
	// SetPoint, when not 0, is the mean load (0.3..1) the asset is moved
	// to SetPointAfter the first reading: a new operating point, not a
	// fault (the rows stay labelled 0).
	SetPoint      float64
	SetPointAfter time.Duration
}

// Truth is when the degradation of a Run began and reached its failure
// limit, in reading time.
type Truth struct {
	Asset   string    `json:"asset"`
	Mode    string    `json:"mode,omitempty"`
	Onset   time.Time `json:"onset,omitzero"`
	Failure time.Time `json:"failure,omitzero"`
}

// WriteCSV simulates r and writes timestamp, the kind's sensors and an
// anomaly column (1 from the onset on) to w, for `scorer backtest`.
func WriteCSV(w io.Writer, r Run) (Truth, error) {
	a, err := New(r.Asset, r.Kind, Options{Seed: r.Seed, Step: r.Step}, nil)
	if err != nil {
		return Truth{}, err
	}
	if r.Mode != "" {
		if err := a.Schedule(r.Mode, r.After, r.TTF); err != nil {
			return Truth{}, err
		}
	}
	sensors := PumpSensors
	if r.Kind == Motor {
		sensors = MotorSensors
	}
	bw := bufio.NewWriter(w)
	fmt.Fprint(bw, "timestamp")
	for _, s := range sensors {
		fmt.Fprint(bw, ",", s)
	}
	fmt.Fprintln(bw, ",anomaly")
	truth := Truth{Asset: r.Asset, Mode: r.Mode}
	for i := range r.Rows {
		at := r.Start.Add(time.Duration(i) * r.Step)
		if r.SetPoint != 0 && time.Duration(i)*r.Step >= r.SetPointAfter && time.Duration(i-1)*r.Step < r.SetPointAfter {
			if _, err := a.SetPoint(r.SetPoint); err != nil {
				return Truth{}, err
			}
		}
		v := a.Next(at)
		label := 0
		if st := a.State(); len(st.History) > 0 {
			f := st.History[0]
			label = 1
			if truth.Onset.IsZero() {
				truth.Onset = at
				truth.Failure = at.Add(time.Duration((f.FailureSim - f.StartSim) * float64(time.Second)))
			}
		}
		fmt.Fprint(bw, at.UTC().Format(time.RFC3339))
		for _, s := range sensors {
			fmt.Fprint(bw, ",", strconv.FormatFloat(v[s], 'f', 4, 64))
		}
		fmt.Fprintf(bw, ",%d\n", label)
	}
	return truth, bw.Flush()
}
