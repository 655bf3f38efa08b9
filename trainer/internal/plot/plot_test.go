package plot

import (
	"bytes"
	"image/png"
	"math"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/nn"
	"github.com/pdmstream/pdm/trainer/internal/validate"
)

// TestPlotsAreImages: both plots decode as PNG images of the size drawn,
// and empty input is an error rather than an empty picture.
func TestPlotsAreImages(t *testing.T) {
	var curve []nn.EpochLoss
	for i := range 30 {
		curve = append(curve, nn.EpochLoss{Train: 1 / float64(i+1), Val: 1.2/float64(i+1) + 0.01*float64(i)})
	}
	var b bytes.Buffer
	if err := Loss(&b, "pump-1 v2", curve); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil || img.Bounds().Dx() < 500 {
		t.Fatalf("loss plot: %v %v", err, img)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var tr validate.Trace
	for i := range 500 {
		tr.Times = append(tr.Times, t0.Add(time.Duration(i)*time.Minute))
		tr.Scores = append(tr.Scores, 0.5+0.49*math.Sin(float64(i)/40))
		tr.Open = append(tr.Open, i > 300 && i < 340)
	}
	b.Reset()
	if err := Scores(&b, "pump-1", tr, &tr, 0.986); err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(&b); err != nil {
		t.Fatalf("scores plot: %v", err)
	}
	if Loss(&b, "x", nil) == nil || Scores(&b, "x", validate.Trace{}, nil, 0.9) == nil {
		t.Error("empty input drew a plot")
	}
}
