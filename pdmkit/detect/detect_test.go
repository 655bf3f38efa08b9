package detect

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/rul"
)

func rulArtifact(t testing.TB) *model.Artifact {
	var series []rul.Series
	for u := range 6 {
		s := rul.Series{Unit: fmt.Sprint(u)}
		for i := range 60 + 5*u {
			s.Rows = append(s.Rows, []float64{float64(i) + float64(u), 1})
		}
		series = append(series, s)
	}
	m, err := rul.Train(series, []string{"wear", "flat"}, rul.Config{Window: 5, Epochs: 2, Hidden: []int{4}})
	if err != nil {
		t.Fatal(err)
	}
	return m.Artifact
}

// TestNewBuildsEveryKind: a RUL artifact builds the RUL detector (which
// anomaly.FromArtifact refuses with an error naming the kind, not a
// panic), and it scores its features.
func TestNewBuildsEveryKind(t *testing.T) {
	a := rulArtifact(t)
	if _, err := anomaly.FromArtifact(a); !errors.Is(err, model.ErrInvalid) || !strings.Contains(err.Error(), "rul") {
		t.Fatalf("anomaly.FromArtifact(rul) = %v, want an ErrInvalid naming the kind", err)
	}
	d, err := New(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.(*rul.Detector); !ok {
		t.Fatalf("New(rul) built a %T", d)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10 {
		if _, err := d.Observe(t0.Add(time.Duration(i)*time.Minute), map[string]float64{"wear": float64(i), "flat": 1}); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzNew: no artifact bytes of any kind, valid or not, panic the path
// from loading to a detector scoring its own features.
func FuzzNew(f *testing.F) {
	var buf bytes.Buffer
	if err := rulArtifact(f).Write(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(bytes.Replace(buf.Bytes(), []byte(`"rul"`), []byte(`"forecaster"`), 1))
	f.Add(bytes.Replace(buf.Bytes(), []byte(`"rul"`), []byte(`"reconstruction"`), 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := model.Load(bytes.NewReader(b))
		if err != nil {
			return
		}
		d, err := New(a)
		if err != nil {
			return
		}
		r := map[string]float64{}
		for i, name := range a.Features {
			r[name] = float64(i)
		}
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range 2*a.Window + 3 {
			if _, err := d.Observe(t0.Add(time.Duration(i)*time.Second), r); err != nil {
				t.Fatalf("a detector built from a loaded artifact refused its own features: %v", err)
			}
		}
	})
}
