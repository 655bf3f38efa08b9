package historian

import (
	"testing"
	"time"

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
