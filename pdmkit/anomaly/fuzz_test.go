package anomaly

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/model"
)

// FuzzFromArtifact: whatever an artifact holds, loading it, building a
// detector from it and scoring readings with it never panics. Seeds: the
// model package's valid artifact, a trained forecaster, an RUL-shaped
// artifact (kind rul has no calibration), and their corruptions.
func FuzzFromArtifact(f *testing.F) {
	if b, err := os.ReadFile("../model/testdata/valid.json"); err == nil {
		f.Add(b)
	}
	rows, times := toRows(pump(200, 200, 0, 11), []string{"current", "flow"})
	if a, err := TrainForecaster(rows, times, []string{"current", "flow"}, ForecasterConfig{Epochs: 2, Window: 4, Horizon: 1}); err == nil {
		var buf bytes.Buffer
		if a.Write(&buf) == nil {
			f.Add(buf.Bytes())
			rul := *a
			rul.Kind, rul.Calibration, rul.Health, rul.Horizon = model.RUL, nil, nil, 0
			rul.Architecture.Sizes[len(rul.Architecture.Sizes)-1] = 1
			rul.SHA256 = ""
			var rb bytes.Buffer
			if rul.Write(&rb) == nil {
				f.Add(rb.Bytes())
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := model.Load(bytes.NewReader(b))
		if err != nil {
			return
		}
		d, err := FromArtifact(a)
		if err != nil {
			return
		}
		r := map[string]float64{}
		for i, name := range d.Features() {
			r[name] = float64(i)
		}
		for i := range 2*a.Window + 3 {
			if _, err := d.Observe(t0.Add(time.Duration(i)*time.Second), r); err != nil {
				t.Fatalf("a detector built from a loaded artifact refused its own features: %v", err)
			}
		}
		_ = d.LearnRecent(5)
		_ = d.ErrorAt(4)
	})
}
