package wire

import (
	"math"
	"reflect"
	"testing"
	"time"
)

func nan() float64 { return math.NaN() }
func inf() float64 { return math.Inf(1) }

// FuzzDecode checks that no payload panics the decoder and that every
// reading it accepts survives a round trip unchanged.
func FuzzDecode(f *testing.F) {
	single, _ := sample(1).MarshalJSON()
	batch, _ := EncodeBatch([]Reading{sample(1), sample(2)})
	f.Add(single)
	f.Add(batch)
	f.Add([]byte(`{"v":1,"readings":[{"v":1},{}]}`))
	f.Add([]byte(`{"v":1,"site":"s","asset":"a","ts":"x","seq":1,"sensors":{"x":"1"}}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		items, err := DefaultLimits().Decode(payload, now)
		if err != nil {
			if CodeOf(err) == "internal" {
				t.Fatalf("message error without a code: %v", err)
			}
			return
		}
		for _, it := range items {
			if it.Err != nil {
				if CodeOf(it.Err) == "internal" {
					t.Fatalf("reading error without a code: %v", it.Err)
				}
				continue
			}
			enc, err := it.Reading.MarshalJSON()
			if err != nil {
				t.Fatalf("accepted reading does not encode: %v", err)
			}
			again, err := DefaultLimits().Decode(enc, now)
			if err != nil || len(again) != 1 || again[0].Err != nil {
				t.Fatalf("re-decode: %v %v", err, again)
			}
			want := it.Reading
			want.Time = want.Time.Truncate(time.Millisecond) // the wire keeps milliseconds
			if !reflect.DeepEqual(again[0].Reading, want) {
				t.Fatalf("round trip changed the reading: %+v → %+v", want, again[0].Reading)
			}
		}
	})
}
