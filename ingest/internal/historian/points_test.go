package historian

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/influxdb-client-go/v2/api/write"

	"github.com/pdmstream/pdm/pdmkit/wire"
)

// A reading with quality marks is stored with the values it has: the bad
// sensor it left out has no field, the uncertain one keeps its value.
func TestMarkedReadingPoints(t *testing.T) {
	h := &Historian{limits: wire.DefaultLimits()}
	r := wire.Reading{Site: "s1", Asset: "pump-7", Seq: 3, Time: time.Now().Truncate(time.Millisecond),
		Sensors: map[string]float64{"vibration_rms": 2.5, "bearing_temp": 61.5},
		Quality: map[string]string{"bearing_temp": "UncertainLastUsableValue", "flow": "BadSensorFailure"}}
	value, err := r.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	points, err := h.appendPoints(nil, value)
	if err != nil || len(points) != 1 {
		t.Fatalf("points %v, err %v", points, err)
	}
	fields := map[string]any{}
	for _, f := range points[0].FieldList() {
		fields[f.Key] = f.Value
	}
	if len(fields) != 3 || fields["vibration_rms"] != 2.5 || fields["bearing_temp"] != 61.5 || fields["seq"] != int64(3) {
		t.Fatalf("fields %v", fields)
	}
}

// TestDataDocReadingPoint: the reading docs/data.md shows on the wire
// becomes the point the page shows (the scorer's test of the page writes
// its readings as this same line).
func TestDataDocReadingPoint(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/data.md")
	if err != nil {
		t.Fatal(err)
	}
	block := func(marker string) string {
		_, rest, ok := strings.Cut(string(doc), "<!-- point: "+marker+" -->\n```")
		if !ok {
			t.Fatalf("docs/data.md has no point %q", marker)
		}
		_, rest, _ = strings.Cut(rest, "\n")
		body, _, ok := strings.Cut(rest, "\n```")
		if !ok {
			t.Fatalf("docs/data.md: point %q has no closing fence", marker)
		}
		return body
	}
	h := &Historian{limits: wire.DefaultLimits()}
	h.limits.MaxPast, h.limits.MaxFuture = 100*365*24*time.Hour, 100*365*24*time.Hour // as New sets them
	points, err := h.appendPoints(nil, []byte(block("readings json")))
	if err != nil || len(points) != 1 {
		t.Fatalf("points %v, err %v", points, err)
	}
	got := strings.TrimSuffix(write.PointToLineProtocol(points[0], time.Millisecond), "\n")
	if want := block("readings"); got != want {
		t.Fatalf("historian point:\n got %s\nwant %s (docs/data.md)", got, want)
	}
}
