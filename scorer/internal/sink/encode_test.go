package sink

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/scorer/internal/stream"
)

func TestAppendScoreMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 5, 6, 7, 8, 9, 123_000_000, time.UTC)
	cases := []stream.Score{
		{ID: "a/1", Site: "s", Asset: "a", Seq: 1, Time: at, Model: "online", Version: "0"},
		{ID: "pump-1/99", Site: "plant.1", Asset: "pump-1", Seq: 99, Time: at, Score: 0.987654321, Alert: true, WarmingUp: false,
			Contributions: []alert.Sensor{{Name: "bearing_temp", Share: 0.7}, {Name: "vibration", Share: 0.3}},
			Forecast:      &alert.Forecast{TimeToFailure: 3600.5, Low: 3000, High: 4200, FailureAt: at.Add(time.Hour)},
			Model:         "bearing \"β\"\n\x01", Version: "7\xff", Shadow: &stream.ShadowScore{Version: "8", Score: 1e-9, Alert: true},
			Error: `sensor "x" missing \ here`, Source: stream.Source{Partition: 5, Offset: 1 << 40, Time: at.Add(time.Millisecond)},
			ScoredAt: at.Add(2 * time.Millisecond), Sensors: map[string]float64{"vibration": 0.25, "bearing_temp": 61.5, "ä\"": -1e-12}},
	}
	for i, s := range cases {
		fast := appendScore(nil, &s)
		std, err := json.Marshal(&s)
		if err != nil {
			t.Fatal(err)
		}
		var a, b any
		if err := json.Unmarshal(fast, &a); err != nil {
			t.Fatalf("case %d: invalid JSON %s: %v", i, fast, err)
		}
		if err := json.Unmarshal(std, &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("case %d:\nfast %s\nstd  %s", i, fast, std)
		}
	}
}

func BenchmarkAppendScore(b *testing.B) {
	s := stream.Score{ID: "pump-1/99", Site: "plant1", Asset: "pump-1", Seq: 99, Time: time.Now(), Score: 0.5,
		Contributions: []alert.Sensor{{Name: "bearing_temp", Share: 0.7}, {Name: "vibration", Share: 0.3}}, Model: "m", Version: "1",
		ScoredAt: time.Now(), Sensors: map[string]float64{"bearing_temp": 61.5, "vibration": 0.25, "flow": 12}}
	var buf []byte
	b.Run("append", func(b *testing.B) {
		for b.Loop() {
			buf = appendScore(buf[:0], &s)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			buf, _ = json.Marshal(&s)
		}
	})
}
