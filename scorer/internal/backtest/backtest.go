// Package backtest runs the live decision path over a CSV history and
// writes what it would have said, row by row: "how would this have done on
// my history?". Each row goes through a monitor.Monitor over
// anomaly.NewOnline, exactly as the scorer does for a new asset (or, with
// a model, over that model version, as the scorer does once it is
// active), so the alert column is the alerts operators would have
// received, and the metrics are computed from them.
//
// Input handling, documented here because the command's help points to it:
//   - the file is read by pdmkit/table: a CSV with a header, ',' or ';'
//     (whichever the header holds more of), or whitespace-separated columns;
//   - the time column is --time-col or the first named timestamp, datetime,
//     time or date; without one, rows are numbered and taken 1 s apart;
//   - every other column not excluded (and not the label) is a sensor and
//     must be numeric: text in a sensor cell is an error naming line and
//     column;
//   - empty, NaN, NA or null cells are missing: the sensor's last value is
//     carried forward; a row before any value of some sensor is written with
//     score 0 and alert 0 and not shown to the detector;
//   - a sensor constant during the warm-up is kept (a change from a constant
//     is worth an alert) with a floored scale so its score stays bounded;
//   - an empty file, a file without data rows, or fewer rows than the
//     warm-up plus one are errors.
package backtest

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/monitor"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// Options configure one backtest run.
type Options struct {
	// WarmupRows is the number of rows learned as normal; 0 means 15% of the
	// rows, at most 1,000.
	WarmupRows int
	Read       ReadOptions
	// Detector overrides detector settings; WarmupRows and Features are set
	// by the backtest.
	Detector anomaly.OnlineConfig
	// Model, when set, scores instead of the online learner: the rows are
	// the model's input from the first (no warm-up unless WarmupRows says).
	Model *model.Artifact
	// Decision is the alert decision (the scorer's alert configuration).
	Decision monitor.Config
	// Asset names the asset in alert events (default "backtest").
	Asset string
	// Events, when set, receives every alert event as one JSON line, as
	// the scorer publishes it.
	Events io.Writer
}

// Metrics are pointwise over the scored rows (after the warm-up).
type Metrics struct {
	TP, FP, FN, TN int
	Precision      float64
	Recall         float64
	F1             float64 // TP / (TP + (FP+FN)/2)
	FAR            float64 // FP / (FP+TN) · 100
	MAR            float64 // FN / (FN+TP) · 100
	Events         int     // labelled events starting after the warm-up
	Detected       int     // events with an alert inside them
	// MeanDelay is from event start to the first alert inside it;
	// MeanLead is from that alert to the event's end (the warning time an
	// operator had), both over detected events.
	MeanDelay, MeanLead time.Duration
}

// Summary is what Run reports.
type Summary struct {
	// Alerts counts rows with an alert open; Opened the alerts opened, and
	// Resolutions the resolved ones by why they ended. Drifts counts the
	// shifts of the quiet scores for which the scorer would have asked the
	// trainer for a model.
	Rows, Warmup, Skipped, Alerts, Opened, Drifts int
	Resolutions                                   map[string]int
	Sensors                                       []string
	Metrics                                       *Metrics
}

// DefaultWarmup is the warm-up for a file of n rows.
func DefaultWarmup(n int) int { return min(max(n*15/100, 1), 1000) }

// Header is the first line of Run's output. anomaly_score is written with
// all its digits (it never rounds to 1), alert is 1 where an alert is open
// after the row, ttf_seconds is the forecast time to failure (empty when
// there is none).
const Header = "timestamp,anomaly_score,alert,top_sensor,ttf_seconds"

// Run scores the table and writes one output line per row (see Header).
func Run(ctx context.Context, t *Table, out io.Writer, opt Options) (*Summary, error) {
	n := len(t.Values)
	warm := opt.WarmupRows
	if warm == 0 && opt.Model == nil {
		warm = DefaultWarmup(n)
	}
	if warm < 0 {
		return nil, inputErr("warm-up rows (%d) must not be negative", warm)
	}
	det, err := detector(t, warm, opt)
	if err != nil {
		return nil, err
	}
	mon, err := monitor.New(det, opt.Decision)
	if err != nil {
		return nil, inputErr("%v", err)
	}
	if n <= warm {
		return nil, inputErr("file has %d data rows but the warm-up needs %d and at least one more to score; lower --warmup-rows", n, warm)
	}
	asset := cmp.Or(opt.Asset, "backtest")
	w := bufio.NewWriter(out)
	fmt.Fprintln(w, Header)
	var events *json.Encoder
	if opt.Events != nil {
		events = json.NewEncoder(opt.Events)
	}
	last := make([]float64, len(t.Sensors))
	have := make([]bool, len(t.Sensors))
	reading := make(map[string]float64, len(t.Sensors))
	alerts := make([]bool, n)
	sum := &Summary{Rows: n, Warmup: warm, Sensors: t.Sensors, Resolutions: map[string]int{}}
	fed := 0
	for i, row := range t.Values {
		if i%1024 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		complete := true
		for j, v := range row {
			if !math.IsNaN(v) {
				last[j], have[j] = v, true
			}
			complete = complete && have[j]
			reading[t.Sensors[j]] = last[j]
		}
		var d monitor.Decision
		if complete {
			r := wire.Reading{Site: "backtest", Asset: asset, Seq: uint64(i + 1), Time: t.Times[i], Sensors: reading}
			if d, err = mon.Observe(&r); err != nil {
				return nil, fmt.Errorf("backtest: row %d: %w", i+1, err)
			}
			fed++
		} else {
			sum.Skipped++
		}
		if d.Drift {
			sum.Drifts++
		}
		if ev := d.Event; ev != nil {
			switch ev.State {
			case alert.Opened:
				sum.Opened++
			case alert.Resolved:
				sum.Resolutions[ev.Resolution]++
			}
			if events != nil {
				if err := events.Encode(ev); err != nil {
					return nil, fmt.Errorf("backtest: events: %w", err)
				}
			}
		}
		// Rows inside the requested warm-up are reported as warm-up even if
		// the detector needed a few more readings to fill its first window.
		score, open, top, ttf := d.Score, d.Open, "", ""
		if i < warm {
			score, open = 0, false
		}
		if score > 0 && len(d.Contributions) > 0 {
			top = d.Contributions[0].Sensor
		}
		if d.Forecast != nil {
			ttf = strconv.FormatFloat(d.Forecast.TimeToFailure, 'f', 0, 64)
		}
		alerts[i] = open
		b := 0
		if open {
			sum.Alerts++
			b = 1
		}
		fmt.Fprintf(w, "%s,%s,%d,%s,%s\n", csvField(t.Stamps[i]), strconv.FormatFloat(score, 'f', -1, 64), b, csvField(top), ttf)
	}
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("backtest: write: %w", err)
	}
	if fed <= warm {
		return nil, inputErr("only %d complete rows (of %d) reached the detector; it needs more than the warm-up of %d", fed, n, warm)
	}
	if t.Labels != nil {
		sum.Metrics = Evaluate(t.Labels[warm:], alerts[warm:], t.Times[warm:])
	}
	return sum, nil
}

// detector is the model's detector, or the online learner warmed up on
// the first warm rows.
func detector(t *Table, warm int, opt Options) (anomaly.Detector, error) {
	if opt.Model != nil {
		if err := opt.Model.CheckFeatures(t.Sensors); err != nil {
			return nil, inputErr("%v", err)
		}
		det, err := anomaly.FromArtifact(opt.Model)
		if err != nil {
			return nil, inputErr("%v", err)
		}
		return det, nil
	}
	cfg := opt.Detector
	cfg.WarmupRows = warm
	cfg.Features = t.Sensors
	det, err := anomaly.NewOnline(cfg)
	if err != nil {
		return nil, inputErr("%v (file has %d rows)", err, len(t.Values))
	}
	return det, nil
}

func csvField(s string) string {
	for _, r := range s {
		if r == ',' || r == '"' || r == '\n' || r == '\r' {
			return strconv.Quote(s)
		}
	}
	return s
}

// Evaluate computes pointwise metrics and per-event timing.
func Evaluate(labels, alerts []bool, times []time.Time) *Metrics {
	m := &Metrics{}
	for i, l := range labels {
		switch {
		case l && alerts[i]:
			m.TP++
		case l:
			m.FN++
		case alerts[i]:
			m.FP++
		default:
			m.TN++
		}
	}
	div := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	tp, fp, fn, tn := float64(m.TP), float64(m.FP), float64(m.FN), float64(m.TN)
	m.Precision = div(tp, tp+fp)
	m.Recall = div(tp, tp+fn)
	m.F1 = div(tp, tp+(fp+fn)/2)
	m.FAR = 100 * div(fp, fp+tn)
	m.MAR = 100 * div(fn, fn+tp)
	var delay, lead time.Duration
	for i := 0; i < len(labels); {
		if !labels[i] {
			i++
			continue
		}
		j := i
		for j < len(labels) && labels[j] {
			j++
		}
		m.Events++
		for k := i; k < j; k++ {
			if alerts[k] {
				m.Detected++
				delay += times[k].Sub(times[i])
				lead += times[j-1].Sub(times[k])
				break
			}
		}
		i = j
	}
	if m.Detected > 0 {
		m.MeanDelay = delay / time.Duration(m.Detected)
		m.MeanLead = lead / time.Duration(m.Detected)
	}
	return m
}
