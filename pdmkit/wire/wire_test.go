package wire

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func sample(seq uint64) Reading {
	return Reading{
		Site: "plant1", Asset: "pump-1", Seq: seq,
		Time:    now.Add(time.Duration(seq) * time.Second),
		Sensors: map[string]float64{"vibration_rms": 2.5, "bearing_temp": 61.25, "flow": 118},
	}
}

func golden(t *testing.T, name string, got []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	return want
}

func TestGolden(t *testing.T) {
	single, err := sample(1).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	batch, err := EncodeBatch([]Reading{sample(1), sample(2)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file string
		got  []byte
		want []Reading
	}{
		{"reading.json", single, []Reading{sample(1)}},
		{"batch.json", batch, []Reading{sample(1), sample(2)}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			want := golden(t, tc.file, tc.got)
			if string(tc.got) != string(want) {
				t.Fatalf("encoding changed:\n got %s\nwant %s", tc.got, want)
			}
			items, err := DefaultLimits().Decode(want, now)
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != len(tc.want) {
				t.Fatalf("got %d items, want %d", len(items), len(tc.want))
			}
			for i, it := range items {
				if it.Err != nil {
					t.Fatalf("item %d: %v", i, it.Err)
				}
				if !reflect.DeepEqual(it.Reading, tc.want[i]) {
					t.Fatalf("item %d: got %+v, want %+v", i, it.Reading, tc.want[i])
				}
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	ts := now.Format(TimeLayout)
	for _, tc := range []struct {
		name    string
		payload string
		msgErr  error // whole-message rejection
		itemErr error // rejection of the (single) reading
		detail  string
	}{
		{name: "not json", payload: `{"v":1,`, msgErr: ErrMalformed},
		{name: "nan literal", payload: `{"v":1,"site":"s","asset":"a","ts":"` + ts + `","seq":1,"sensors":{"x":NaN}}`, msgErr: ErrMalformed},
		{name: "unknown version", payload: `{"v":2,"site":"s","asset":"a","ts":"` + ts + `","seq":1,"sensors":{"x":1}}`, msgErr: ErrVersion},
		{name: "missing version", payload: `{"site":"s","asset":"a","ts":"` + ts + `","seq":1,"sensors":{"x":1}}`, msgErr: ErrVersion},
		{name: "empty batch", payload: `{"v":1,"readings":[]}`, msgErr: ErrBatchSize},
		{name: "string value", payload: `{"v":1,"site":"s","asset":"a","ts":"` + ts + `","seq":1,"sensors":{"x":"hot"}}`, itemErr: ErrValue, detail: `"x"`},
		{name: "bool value", payload: `{"v":1,"site":"s","asset":"a","ts":"` + ts + `","seq":1,"sensors":{"x":true}}`, itemErr: ErrValue},
		{name: "overflow", payload: `{"v":1,"site":"s","asset":"a","ts":"` + ts + `","seq":1,"sensors":{"x":1e999}}`, itemErr: ErrValue},
		{name: "empty sensors", payload: `{"v":1,"site":"s","asset":"a","ts":"` + ts + `","seq":1,"sensors":{}}`, itemErr: ErrSensors},
		{name: "reserved sensor", payload: `{"v":1,"site":"s","asset":"a","ts":"` + ts + `","seq":1,"sensors":{"seq":1}}`, itemErr: ErrSensors},
		{name: "bad asset", payload: `{"v":1,"site":"s","asset":"a/b","ts":"` + ts + `","seq":1,"sensors":{"x":1}}`, itemErr: ErrID},
		{name: "no seq", payload: `{"v":1,"site":"s","asset":"a","ts":"` + ts + `","sensors":{"x":1}}`, itemErr: ErrSeq},
		{name: "negative seq", payload: `{"v":1,"site":"s","asset":"a","ts":"` + ts + `","seq":-1,"sensors":{"x":1}}`, itemErr: ErrMalformed},
		{name: "no ts", payload: `{"v":1,"site":"s","asset":"a","seq":1,"sensors":{"x":1}}`, itemErr: ErrTimestamp},
		{name: "bad ts", payload: `{"v":1,"site":"s","asset":"a","ts":"yesterday","seq":1,"sensors":{"x":1}}`, itemErr: ErrTimestamp},
		{name: "ancient ts", payload: `{"v":1,"site":"s","asset":"a","ts":"1999-01-01T00:00:00Z","seq":1,"sensors":{"x":1}}`, itemErr: ErrTimestamp, detail: "before now"},
		{name: "future ts", payload: `{"v":1,"site":"s","asset":"a","ts":"2027-01-01T00:00:00Z","seq":1,"sensors":{"x":1}}`, itemErr: ErrTimestamp, detail: "after now"},
		{name: "oversize", payload: `{"v":1,"pad":"` + strings.Repeat("x", 1<<20) + `"}`, msgErr: ErrOversize},
		// Readers that keep the first of two keys would see another reading.
		{name: "site twice", payload: `{"v":1,"site":"s","asset":"a","site":"t","ts":"` + ts + `","seq":1,"sensors":{"x":1}}`, msgErr: ErrMalformed},
		{name: "sensor twice", payload: `{"v":1,"site":"s","asset":"a","ts":"` + ts + `","seq":1,"sensors":{"x":1,"y":2,"x":3}}`, msgErr: ErrMalformed},
		{name: "quality twice", payload: `{"v":1,"site":"s","asset":"a","ts":"` + ts + `","seq":1,"sensors":{"x":1},"quality":{"x":"Bad","x":"Good"}}`, msgErr: ErrMalformed},
		{name: "readings twice", payload: `{"v":1,"readings":[{"v":1}],"readings":[{"v":1}]}`, msgErr: ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			items, err := DefaultLimits().Decode([]byte(tc.payload), now)
			checked, cerr := DefaultLimits().Check([]byte(tc.payload), now)
			if !errors.Is(cerr, tc.msgErr) || len(checked) != len(items) {
				t.Fatalf("Check: %d items, error %v; Decode: %d items, error %v", len(checked), cerr, len(items), err)
			}
			if tc.msgErr != nil {
				if !errors.Is(err, tc.msgErr) {
					t.Fatalf("got error %v, want %v", err, tc.msgErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("message refused: %v", err)
			}
			if len(items) != 1 {
				t.Fatalf("got %d items, want 1", len(items))
			}
			if !errors.Is(items[0].Err, tc.itemErr) {
				t.Fatalf("got %v, want %v", items[0].Err, tc.itemErr)
			}
			if !strings.Contains(items[0].Err.Error(), tc.detail) {
				t.Fatalf("error %q does not mention %q", items[0].Err, tc.detail)
			}
			if CodeOf(items[0].Err) == "internal" {
				t.Fatalf("no code for %v", items[0].Err)
			}
		})
	}
}

func TestBatchKeepsGoodReadings(t *testing.T) {
	good, _ := sample(1).MarshalJSON()
	payload := `{"v":1,"readings":[` + string(good) + `,{"v":1,"site":"plant1","asset":"pump-1","ts":"` +
		now.Format(TimeLayout) + `","seq":2,"sensors":{"x":"high"}},{"v":3},` + strings.Replace(string(good), `"sensors":{`, `"sensors":{"dup":1,"dup":2,`, 1) + `]}`
	items, err := DefaultLimits().Decode([]byte(payload), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 4 {
		t.Fatalf("got %d items", len(items))
	}
	if items[0].Err != nil || string(items[0].Raw) != string(good) {
		t.Fatalf("good reading: err %v raw %s", items[0].Err, items[0].Raw)
	}
	if !errors.Is(items[1].Err, ErrValue) || !errors.Is(items[2].Err, ErrVersion) || !errors.Is(items[3].Err, ErrMalformed) {
		t.Fatalf("bad readings: %v / %v / %v", items[1].Err, items[2].Err, items[3].Err)
	}
	var re *RejectError
	if !errors.As(items[1].Err, &re) || re.Index != 1 {
		t.Fatalf("index not kept: %v", items[1].Err)
	}
}

func TestValidateNonFinite(t *testing.T) {
	for _, v := range []float64{nan(), inf()} {
		r := sample(1)
		r.Sensors["x"] = v
		if err := DefaultLimits().Validate(&r, now); !errors.Is(err, ErrValue) {
			t.Fatalf("%v: got %v", v, err)
		}
	}
}

func TestParseTopic(t *testing.T) {
	site, asset, kind, err := ParseTopic(ReadingsTopic("plant1", "pump-1"))
	if err != nil || site != "plant1" || asset != "pump-1" || kind != "readings" {
		t.Fatalf("got %q %q %q %v", site, asset, kind, err)
	}
	for _, bad := range []string{"pdm/v1/plant1/readings", "x/v1/a/b/readings", "pdm/v1/a b/c/readings"} {
		if _, _, _, err := ParseTopic(bad); !errors.Is(err, ErrTopic) {
			t.Errorf("%q: got %v", bad, err)
		}
	}
}

func TestMatchFilter(t *testing.T) {
	topic := ReadingsTopic("plant1", "pump-1")
	for filter, want := range map[string]bool{
		ReadingsFilter:                      true,
		"pdm/v1/plant1/+/readings":          true,
		"pdm/v1/plant1/pump-1/readings":     true,
		"pdm/v1/#":                          true,
		"#":                                 true,
		"pdm/v1/plant2/+/readings":          false,
		"pdm/v1/plant1/pump-2/readings":     false,
		"pdm/v1/plant1/+":                   false,
		"pdm/v1/plant1/+/readings/+":        false,
		"pdm/v1/+/+/+/+/#":                  false, // DeeperFilter's: one level more
		"pdm/v1/plant1/pump-1/readings/#":   true,  // "#" also matches its parent level
		"pdm/v1/plant1/pump-1/readings/x/y": false,
	} {
		if got := MatchFilter(filter, topic); got != want {
			t.Errorf("MatchFilter(%q, %q) = %v, want %v", filter, topic, got, want)
		}
	}
}

func TestJoinBatch(t *testing.T) {
	a, _ := sample(1).MarshalJSON()
	b, _ := sample(2).MarshalJSON()
	items, err := DefaultLimits().Decode(JoinBatch([][]byte{a, b}), now)
	if err != nil || len(items) != 2 || items[0].Err != nil || items[1].Err != nil {
		t.Fatalf("got %v %v", items, err)
	}
	if !reflect.DeepEqual(items[1].Reading, sample(2)) {
		t.Fatalf("got %+v", items[1].Reading)
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		" Motor Current (A) ":   "Motor_Current__A_",
		"vibration_rms":         "vibration_rms",
		"Temp°C":                "Temp__C", // two bytes of UTF-8, two underscores
		strings.Repeat("x", 70): strings.Repeat("x", MaxIDLen),
	} {
		got := Sanitize(in)
		if got != want || !ValidID(got) {
			t.Errorf("Sanitize(%q) = %q (valid %v), want %q", in, got, ValidID(got), want)
		}
	}
}

func TestDecodeDelivered(t *testing.T) {
	d, err := DecodeDelivered([]byte(`{"seq":42}`))
	if err != nil || d.Seq != 42 {
		t.Fatalf("%+v %v", d, err)
	}
	for _, bad := range []string{``, `{}`, `{"seq":-1}`, `{"seq":"7"}`, `[]`} {
		if _, err := DecodeDelivered([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if got := DeliveredTopic("plant1", "pump-1"); got != "pdm/v1/plant1/pump-1/delivered" {
		t.Errorf("topic %s", got)
	}
}
