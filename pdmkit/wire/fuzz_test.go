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
	withMarks, _ := marked(1).MarshalJSON()
	f.Add(withMarks)
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

// FuzzFastMatchesStd checks that wherever the fast decoder accepts a
// payload it returns exactly what encoding/json's path returns.
func FuzzFastMatchesStd(f *testing.F) {
	addFastSeeds(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		fast, fastErr, ok := DefaultLimits().decodeFast(payload, now, false)
		if !ok {
			return
		}
		std, stdErr := DefaultLimits().decodeStd(payload, now)
		if errString(fastErr) != errString(stdErr) {
			t.Fatalf("message error: fast %v, std %v", fastErr, stdErr)
		}
		if len(fast) != len(std) {
			t.Fatalf("fast %d items, std %d", len(fast), len(std))
		}
		for i := range fast {
			if string(fast[i].Raw) != string(std[i].Raw) || errString(fast[i].Err) != errString(std[i].Err) ||
				!reflect.DeepEqual(fast[i].Reading, std[i].Reading) {
				t.Fatalf("item %d differs:\nfast %+v %v\nstd  %+v %v", i, fast[i], fast[i].Err, std[i], std[i].Err)
			}
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// FuzzCheckMatchesDecode checks that Check returns what Decode returns on
// every payload, except the sensor maps it does not build.
func FuzzCheckMatchesDecode(f *testing.F) {
	addFastSeeds(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		l := DefaultLimits()
		l.MaxSensors = 3 // reachable by the fuzzer
		checked, checkErr := l.Check(payload, now)
		decoded, decodeErr := l.Decode(payload, now)
		if errString(checkErr) != errString(decodeErr) || len(checked) != len(decoded) {
			t.Fatalf("Check %d items, %v; Decode %d items, %v", len(checked), checkErr, len(decoded), decodeErr)
		}
		for i := range checked {
			c, d := checked[i], decoded[i]
			if c.Reading.Sensors == nil {
				c.Reading.Sensors = d.Reading.Sensors
			}
			if string(c.Raw) != string(d.Raw) || errString(c.Err) != errString(d.Err) || !reflect.DeepEqual(c.Reading, d.Reading) {
				t.Fatalf("item %d differs:\nCheck  %+v %v\nDecode %+v %v", i, c, c.Err, d, d.Err)
			}
		}
	})
}

func addFastSeeds(f *testing.F) {
	single, _ := sample(1).MarshalJSON()
	batch, _ := EncodeBatch([]Reading{sample(1), sample(2)})
	f.Add(single)
	f.Add(batch)
	f.Add([]byte(`{"v":1,"readings":[{"v":2},{"v":1,"site":"s","asset":"a","ts":"2026-11-28T12:00:00Z","seq":3,"sensors":{"x":-0.5e3,"y":0}}]}`))
	f.Add([]byte(` { "v" : 1 , "site":"s","asset":"a","ts":"2026-11-28T12:00:00.5+01:00","seq":18446744073709551615,"sensors":{"x":1,"x":2}} `))
	f.Add([]byte(`{"v":1,"site":"s","asset":"a","ts":"2026-11-28T12:00:00Z","seq":1,"sensors":{"a":1,"b":2,"c":3,"d":4}}`))
	f.Add([]byte(`{"v":1,"site":"s","asset":"a","ts":"2026-11-28T12:00:00Z","seq":1,"sensors":{"a":1e999,"seq":2,"c":{}}}`))
	withMarks, _ := EncodeBatch([]Reading{marked(1), sample(2)})
	f.Add(withMarks)
	f.Add([]byte(`{"v":1,"site":"s","asset":"a","ts":"2026-11-28T12:00:00Z","seq":1,"sensors":{"a":1},"quality":{"a":"stale","b":"BadX","b":"uncertain"}}`))
	f.Add([]byte(`{"v":1,"site":"s","asset":"a","ts":"2026-11-28T12:00:00Z","seq":1,"quality":{},"sensors":{"a":1},"quality":{"a":"bad"}}`))
}
