package rul

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/pdmstream/pdm/pdmkit/model"
)

// fleet simulates run-to-failure units: "wear" rises faster as the end
// nears, "noise" carries no information and "flat" is constant.
func fleet(n int, seed uint64) []Series {
	rng := rand.New(rand.NewPCG(seed, 3))
	out := make([]Series, n)
	for u := range out {
		life := 120 + rng.IntN(120)
		for i := 0; i < life; i++ {
			left := float64(life - 1 - i)
			wear := math.Exp(-left/40) + 0.03*rng.NormFloat64()
			out[u].Rows = append(out[u].Rows, []float64{wear, rng.NormFloat64(), 5})
		}
	}
	return out
}

func TestTrainLearnsRemainingLife(t *testing.T) {
	for _, sm := range []float64{0, 0.3} {
		t.Run(fmt.Sprint("smoothing ", sm), func(t *testing.T) { learns(t, sm) })
	}
}

func learns(t *testing.T, smoothing float64) {
	t.Helper()
	features := []string{"wear", "noise", "flat"}
	m, err := Train(fleet(40, 1), features, Config{Window: 10, Epochs: 30, Hidden: []int{16}, L2: 1e-4, Smoothing: smoothing})
	if err != nil {
		t.Fatal(err)
	}
	if m.Artifact.InputSmoothing != smoothing {
		t.Fatalf("artifact smoothing %v", m.Artifact.InputSmoothing)
	}
	if got := m.Features(); len(got) != 1 || got[0] != "wear" {
		t.Fatalf("selected features %v, want [wear]", got)
	}
	var se float64
	test := fleet(20, 2)
	for _, s := range test {
		cut := len(s.Rows) - 30 // true RUL 29
		rows := make([][]float64, cut)
		for i := range rows {
			rows[i] = s.Rows[i][:1]
		}
		p, err := m.Predict(rows)
		if err != nil {
			t.Fatal(err)
		}
		se += (p - 29) * (p - 29)
	}
	if rmse := math.Sqrt(se / float64(len(test))); rmse > 12 {
		t.Fatalf("RMSE %.1f cycles at RUL 29, want < 12", rmse)
	}
	// The artifact round-trips and predicts the same.
	var buf bytes.Buffer
	if err := m.Artifact.Write(&buf); err != nil {
		t.Fatal(err)
	}
	a, err := model.Load(&buf)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := FromArtifact(a)
	if err != nil {
		t.Fatal(err)
	}
	rows := [][]float64{{0.1}, {0.2}, {0.5}}
	p1, _ := m.Predict(rows)
	p2, _ := m2.Predict(rows)
	if p1 != p2 {
		t.Fatalf("loaded model predicts %v, trained one %v", p2, p1)
	}
}

func TestBadInput(t *testing.T) {
	cases := []struct {
		name string
		run  func() error
	}{
		{"one series", func() error { _, err := Train(fleet(1, 1), []string{"a", "b", "c"}, Config{}); return err }},
		{"ragged", func() error {
			s := fleet(2, 1)
			s[1].Rows[3] = []float64{1}
			_, err := Train(s, []string{"a", "b", "c"}, Config{})
			return err
		}},
		{"nothing informative", func() error {
			s := fleet(3, 1)
			for _, u := range s {
				for _, r := range u.Rows {
					r[0] = 1
				}
			}
			_, err := Train(s, []string{"a", "b", "c"}, Config{MinCorrelation: 0.5})
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

// An ensemble is one artifact that predicts exactly the mean of its
// members, each trained as a single model with its seed would be.
func TestMembersPredictTheirMean(t *testing.T) {
	features := []string{"wear", "noise", "flat"}
	cfg := Config{Window: 8, Epochs: 5, Hidden: []int{6, 4}, Seed: 3}
	data := fleet(12, 5)
	ens := cfg
	ens.Members = 3
	m, err := Train(data, features, ens)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Artifact.Architecture.Sizes; fmt.Sprint(got) != fmt.Sprint([]int{8, 18, 12, 1}) {
		t.Fatalf("stacked sizes %v", got)
	}
	var single []*Model
	for k := range ens.Members {
		c := cfg
		c.Seed += uint64(k)
		s, err := Train(data, features, c)
		if err != nil {
			t.Fatal(err)
		}
		single = append(single, s)
	}
	for _, u := range fleet(4, 9) {
		for _, end := range []int{3, 40, len(u.Rows)} {
			rows := make([][]float64, end)
			for i := range rows {
				rows[i] = u.Rows[i][:1]
			}
			got, err := m.Predict(rows)
			if err != nil {
				t.Fatal(err)
			}
			// The ensemble clamps the mean of its members' unclamped outputs.
			var sum float64
			for _, s := range single {
				windowInto(s.in, &s.Artifact.Scaler, smooth(rows, s.Artifact.InputSmoothing), len(rows)-1, s.Artifact.Window)
				sum += s.net.Forward(s.in)[0] * s.cap
			}
			want := math.Max(0, math.Min(m.cap, sum/float64(len(single))))
			if math.Abs(got-want) > 1e-9*m.cap {
				t.Fatalf("ensemble predicts %v, its members' mean is %v", got, want)
			}
		}
	}
}
