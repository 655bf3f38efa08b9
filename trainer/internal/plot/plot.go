// Package plot draws what a person would rather look at than read about a
// training job: the learning curve, and the anomaly score of candidate and
// active version over the held-out history with their alerts marked. PNG,
// with gonum.org/v1/plot.
package plot

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/pdmstream/pdm/pdmkit/nn"
	"github.com/pdmstream/pdm/trainer/internal/validate"
)

var (
	blue   = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	orange = color.RGBA{R: 255, G: 127, B: 14, A: 255}
	red    = color.RGBA{R: 214, G: 39, B: 40, A: 255}
	grey   = color.RGBA{R: 120, G: 120, B: 120, A: 255}
)

// Loss writes the learning curve: training and validation loss per epoch
// (log scale), the kept epoch marked.
func Loss(w io.Writer, title string, curve []nn.EpochLoss) error {
	if len(curve) == 0 {
		return fmt.Errorf("plot: empty learning curve")
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "epoch"
	p.Y.Label.Text = "loss (mean squared error)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	var tr, va plotter.XYs
	best, bestVal := 0, math.Inf(1)
	for i, e := range curve {
		if e.Train > 0 {
			tr = append(tr, plotter.XY{X: float64(i + 1), Y: e.Train})
		}
		if e.Val > 0 && !math.IsNaN(e.Val) {
			va = append(va, plotter.XY{X: float64(i + 1), Y: e.Val})
			if e.Val < bestVal {
				best, bestVal = i+1, e.Val
			}
		}
	}
	if err := addLine(p, tr, blue, "training"); err != nil {
		return err
	}
	if len(va) > 0 {
		if err := addLine(p, va, orange, "validation"); err != nil {
			return err
		}
		kept, _ := plotter.NewScatter(plotter.XYs{{X: float64(best), Y: bestVal}})
		kept.GlyphStyle.Color, kept.GlyphStyle.Shape, kept.GlyphStyle.Radius = red, draw.CircleGlyph{}, vg.Points(4)
		p.Add(kept)
		p.Legend.Add(fmt.Sprintf("kept (epoch %d)", best), kept)
	}
	p.Legend.Top = true
	return writePNG(w, p, 8*vg.Inch, 4*vg.Inch)
}

// Scores writes the held-out anomaly score of the candidate and, when
// given, of the active version, over time, with the rows where each had
// an alert open marked on a band under the curves, and the opening level.
func Scores(w io.Writer, title string, cand validate.Trace, active *validate.Trace, open float64) error {
	if len(cand.Times) == 0 {
		return fmt.Errorf("plot: no scores")
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Tick.Marker = plot.TimeTicks{Format: "01-02 15:04"}
	p.X.Label.Text = "reading time (UTC)"
	p.Y.Label.Text = "anomaly score"
	p.Y.Min, p.Y.Max = -0.12, 1.45 // room above for the legend
	if err := addTrace(p, cand, blue, "candidate", -0.05); err != nil {
		return err
	}
	if active != nil && len(active.Times) > 0 {
		if err := addTrace(p, *active, orange, "active", -0.1); err != nil {
			return err
		}
	}
	t0, t1 := float64(cand.Times[0].Unix()), float64(cand.Times[len(cand.Times)-1].Unix())
	lvl, _ := plotter.NewLine(plotter.XYs{{X: t0, Y: open}, {X: t1, Y: open}})
	lvl.Color, lvl.Dashes = grey, []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(lvl)
	p.Legend.Add(fmt.Sprintf("alert opens (%.3f)", open), lvl)
	p.Legend.Top, p.Legend.Left = true, true
	return writePNG(w, p, 10*vg.Inch, 4*vg.Inch)
}

func addTrace(p *plot.Plot, t validate.Trace, c color.Color, name string, band float64) error {
	xy := make(plotter.XYs, len(t.Times))
	var alerts plotter.XYs
	for i, at := range t.Times {
		x := float64(at.Unix()) + float64(at.Nanosecond())/1e9
		xy[i] = plotter.XY{X: x, Y: t.Scores[i]}
		if t.Open[i] {
			alerts = append(alerts, plotter.XY{X: x, Y: band})
		}
	}
	if err := addLine(p, xy, c, name); err != nil {
		return err
	}
	if len(alerts) > 0 {
		s, err := plotter.NewScatter(alerts)
		if err != nil {
			return err
		}
		s.GlyphStyle.Color, s.GlyphStyle.Shape, s.GlyphStyle.Radius = c, draw.BoxGlyph{}, vg.Points(1.5)
		p.Add(s)
		p.Legend.Add(fmt.Sprintf("%s alert open (%d rows)", name, len(alerts)), s)
	}
	return nil
}

func addLine(p *plot.Plot, xy plotter.XYs, c color.Color, name string) error {
	if len(xy) == 0 {
		return nil
	}
	l, err := plotter.NewLine(xy)
	if err != nil {
		return err
	}
	l.Color, l.Width = c, vg.Points(1)
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

func writePNG(w io.Writer, p *plot.Plot, width, height vg.Length) error {
	c := vgimg.New(width, height)
	p.Draw(draw.New(c))
	_, err := vgimg.PngCanvas{Canvas: c}.WriteTo(w)
	return err
}

// Elapsed formats a job's duration for titles.
func Elapsed(d time.Duration) string { return d.Round(time.Second).String() }
