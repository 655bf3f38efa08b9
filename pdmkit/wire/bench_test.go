package wire

import (
	"testing"
)

// BenchmarkDecode compares the fast path, and Check, with encoding/json (the
// baseline) on a batch of 50 readings.
func BenchmarkDecode(b *testing.B) {
	rs := make([]Reading, 50)
	for i := range rs {
		rs[i] = sample(uint64(i + 1))
	}
	payload, err := EncodeBatch(rs)
	if err != nil {
		b.Fatal(err)
	}
	l := DefaultLimits()
	for _, bc := range []struct {
		name   string
		decode func([]byte) ([]Item, error)
	}{
		{"fast", func(p []byte) ([]Item, error) { return l.Decode(p, now) }},
		{"check", func(p []byte) ([]Item, error) { return l.Check(p, now) }},
		{"encoding-json", func(p []byte) ([]Item, error) { return l.decodeStd(p, now) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if _, err := bc.decode(payload); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(rs))/b.Elapsed().Seconds(), "readings/s")
		})
	}
}
