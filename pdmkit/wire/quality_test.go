package wire

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func marked(seq uint64) Reading {
	r := sample(seq)
	delete(r.Sensors, "flow")
	r.Quality = map[string]string{"flow": "BadSensorFailure", "bearing_temp": "uncertain", "vibration_rms": "stale"}
	return r
}

// A reading with marks survives both encodings and both decoders; a
// reading without marks has no quality key, byte for byte the old form
// (TestGolden holds those bytes).
func TestQualityRoundTrip(t *testing.T) {
	single, err := marked(1).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"site":"plant1","asset":"pump-1","ts":"2026-11-28T12:00:01.000Z","seq":1,` +
		`"sensors":{"bearing_temp":61.25,"vibration_rms":2.5},` +
		`"quality":{"bearing_temp":"uncertain","flow":"BadSensorFailure","vibration_rms":"stale"}}`
	if string(single) != want {
		t.Fatalf("encoding:\n got %s\nwant %s", single, want)
	}
	batch, err := EncodeBatch([]Reading{marked(1), sample(2)})
	if err != nil {
		t.Fatal(err)
	}
	l := DefaultLimits()
	for name, dec := range map[string]func([]byte) ([]Item, error){
		"decode": func(p []byte) ([]Item, error) { return l.Decode(p, now) },
		"std":    func(p []byte) ([]Item, error) { return l.decodeStd(p, now) },
		"check":  func(p []byte) ([]Item, error) { return l.Check(p, now) },
	} {
		items, err := dec(batch)
		if err != nil || len(items) != 2 || items[0].Err != nil || items[1].Err != nil {
			t.Fatalf("%s: %v %+v", name, err, items)
		}
		if !reflect.DeepEqual(items[0].Reading, marked(1)) {
			t.Errorf("%s: got %+v, want %+v", name, items[0].Reading, marked(1))
		}
		if items[1].Reading.Quality != nil {
			t.Errorf("%s: unmarked reading decoded with quality %v", name, items[1].Reading.Quality)
		}
	}
	var r Reading
	if err := r.UnmarshalJSON(single); err != nil || !reflect.DeepEqual(r, marked(1)) {
		t.Fatalf("UnmarshalJSON: %v %+v", err, r)
	}
	plain, _ := sample(1).MarshalJSON()
	if strings.Contains(string(plain), "quality") {
		t.Fatalf("unmarked reading encodes a quality key: %s", plain)
	}
	empty := sample(1)
	empty.Quality = map[string]string{}
	if b, _ := empty.MarshalJSON(); string(b) != string(plain) {
		t.Fatalf("empty quality map changes the bytes: %s", b)
	}
	// "quality":{} decodes as no marks.
	withEmpty := strings.TrimSuffix(string(plain), "}") + `,"quality":{}}`
	items, err := l.Decode([]byte(withEmpty), now)
	if err != nil || items[0].Err != nil || items[0].Reading.Quality != nil {
		t.Fatalf("empty quality: %v %+v", err, items)
	}
}

func TestQualityClass(t *testing.T) {
	for mark, want := range map[string]string{
		"bad": QualityBad, "Bad": QualityBad, "BadSensorFailure": QualityBad, "BadNodeIdUnknown": QualityBad,
		"uncertain": QualityUncertain, "UncertainLastUsableValue": QualityUncertain,
		"stale": QualityStale, "Stale": QualityStale,
		"": "", "good": "", "ok": "", "ba": "", "Bad Sensor": "", "bad/x": "", strings.Repeat("b", 65): "",
	} {
		if got := QualityClass(mark); got != want {
			t.Errorf("QualityClass(%q) = %q, want %q", mark, got, want)
		}
	}
}

func TestQualityRejects(t *testing.T) {
	ts := now.Format(TimeLayout)
	head := `{"v":1,"site":"s","asset":"a","ts":"` + ts + `","seq":1,"sensors":{"x":1,"y":2},"quality":`
	many := make([]string, 257)
	for i := range many {
		many[i] = fmt.Sprintf(`"s%03d":"bad"`, i)
	}
	for _, tc := range []struct {
		name, quality, detail string
	}{
		{"bad value present", `{"x":"bad"}`, `sensor "x" is marked "bad" but has a value`},
		{"uncertain value absent", `{"z":"uncertain"}`, `sensor "z" is marked "uncertain" but has no value`},
		{"stale value absent", `{"z":"stale"}`, `has no value`},
		{"unknown class", `{"x":"good"}`, `sensor "x" quality "good"`},
		{"mark with space", `{"x":"bad sensor"}`, `quality "bad sensor"`},
		{"empty mark", `{"x":""}`, `quality ""`},
		{"bad name", `{"a/b":"bad"}`, `sensor name "a/b"`},
		{"reserved name", `{"seq":"bad"}`, `sensor name "seq"`},
		{"number mark", `{"x":1}`, "not an object of strings"},
		{"not an object", `"bad"`, "not an object of strings"},
		{"too many", `{` + strings.Join(many, ",") + `}`, "257 quality marks (limit 256)"},
		{"first in name order", `{"y":"ok","x":"bad"}`, `sensor "x" is marked "bad"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := []byte(head + tc.quality + `}`)
			for dname, dec := range map[string]func([]byte) ([]Item, error){
				"decode": func(p []byte) ([]Item, error) { return DefaultLimits().Decode(p, now) },
				"check":  func(p []byte) ([]Item, error) { return DefaultLimits().Check(p, now) },
			} {
				items, err := dec(payload)
				if err != nil || len(items) != 1 {
					t.Fatalf("%s: message refused: %v", dname, err)
				}
				if !errors.Is(items[0].Err, ErrQuality) || CodeOf(items[0].Err) != "bad_quality" {
					t.Fatalf("%s: got %v, want bad_quality", dname, items[0].Err)
				}
				if !strings.Contains(items[0].Err.Error(), tc.detail) {
					t.Fatalf("%s: error %q does not mention %q", dname, items[0].Err, tc.detail)
				}
			}
		})
	}
	// Validate, the edge agent's check, refuses the same.
	r := sample(1)
	r.Quality = map[string]string{"flow": "BadSensorFailure"}
	if err := DefaultLimits().Validate(&r, now); !errors.Is(err, ErrQuality) {
		t.Fatalf("Validate of a bad value that is present: %v", err)
	}
	r = marked(1)
	if err := DefaultLimits().Validate(&r, now); err != nil {
		t.Fatalf("Validate of a well-marked reading: %v", err)
	}
	// Every value bad leaves no sensors: the reading is refused as such.
	r.Sensors = map[string]float64{}
	r.Quality = map[string]string{"flow": "bad"}
	if err := DefaultLimits().Validate(&r, now); !errors.Is(err, ErrSensors) {
		t.Fatalf("reading of bad values only: %v", err)
	}
}
