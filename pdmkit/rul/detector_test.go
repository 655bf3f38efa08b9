package rul

import (
	"math"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/monitor"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// TestDetectorStreamsWhatPredictSays: fed one reading at a time, the live
// detector predicts what Predict says over the whole history so far; the
// decision over it opens one alert as the remaining life falls to the
// warning level, before the failure, with a forecast near the truth.
func TestDetectorStreamsWhatPredictSays(t *testing.T) {
	features := []string{"wear", "noise", "flat"}
	m, err := Train(fleet(40, 1), features, Config{Window: 10, Epochs: 30, Hidden: []int{16}, L2: 1e-4, Smoothing: 0.3})
	if err != nil {
		t.Fatal(err)
	}
	det, err := NewDetector(m.Artifact)
	if err != nil {
		t.Fatal(err)
	}
	mon, err := monitor.New(det, monitor.Config{NewNormal: monitor.Horizon{Off: true}})
	if err != nil {
		t.Fatal(err)
	}
	unit := fleet(1, 7)[0]
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const cycle = 10 * time.Minute
	var opened = -1
	var ttfAtOpen float64
	for i, row := range unit.Rows {
		r := wire.Reading{Site: "s", Asset: "u", Seq: uint64(i + 1), Time: start.Add(time.Duration(i) * cycle),
			Sensors: map[string]float64{"wear": row[0], "noise": row[1], "flat": row[2]}}
		d, err := mon.Observe(&r)
		if err != nil {
			t.Fatal(err)
		}
		hist := make([][]float64, i+1)
		for k := range hist {
			hist[k] = unit.Rows[k][:1]
		}
		want, _ := m.Predict(hist)
		if math.Abs(det.RUL()-want) > 1e-9 {
			t.Fatalf("row %d: the stream predicts %v, Predict %v", i, det.RUL(), want)
		}
		if d.Event != nil && d.Event.State == alert.Opened {
			if opened >= 0 {
				t.Fatalf("a second alert at row %d", i)
			}
			opened = i
			if d.Forecast == nil {
				t.Fatalf("row %d: the alert opened without a forecast", i)
			}
			ttfAtOpen = d.Forecast.TimeToFailure
		}
	}
	life := len(unit.Rows) - 1
	if opened < 0 || opened >= life {
		t.Fatalf("alert opened at row %d of a unit failing at %d", opened, life)
	}
	truth := float64(life-opened) * cycle.Seconds()
	if math.Abs(ttfAtOpen-truth) > 15*cycle.Seconds() {
		t.Fatalf("at the alert (row %d) the forecast is %.0f s, the truth %.0f s", opened, ttfAtOpen, truth)
	}
	t.Logf("alert %d cycles before the failure; forecast %.1f cycles", life-opened, ttfAtOpen/cycle.Seconds())
}
