package grafana_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/pdmstream/pdm/pdmkit/grafana"
)

func TestPromMetrics(t *testing.T) {
	tests := []struct {
		expr string
		want []string
		err  bool
	}{
		{expr: "pdm_a_total", want: []string{"pdm_a_total"}},
		{expr: `sum(rate(pdm_a_total{code="x", job=~"$job"}[$__rate_interval]))`, want: []string{"pdm_a_total"}},
		{expr: `sum by (code) (rate(pdm_a_total[5m])) / on (code) group_left sum without (le) (pdm_b)`, want: []string{"pdm_a_total", "pdm_b"}},
		{expr: `histogram_quantile(0.99, sum by (le, model) (rate(pdm_h_seconds_bucket[$__rate_interval])))`, want: []string{"pdm_h_seconds_bucket"}},
		{expr: `sum(rate(x[5m])) by (instance) > bool 0.5 offset 1h`, want: []string{"x"}},
		{expr: `max(pdm_lag) or vector(0)`, want: []string{"pdm_lag"}},
		{expr: `label_replace(up2, "a", "$1", "b", "(.*)") and pdm_c:rate5m`, want: []string{"pdm_c:rate5m", "up2"}},
		{expr: `1e3 * 2`, want: []string{}},
		{expr: `sum(rate(x[5m])`, err: true},
		{expr: `x{a="b"`, err: true},
		{expr: `x]`, err: true},
		{expr: `x{a="b}`, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			got, err := grafana.PromMetrics(tt.expr)
			if (err != nil) != tt.err {
				t.Fatalf("error %v, want error %v", err, tt.err)
			}
			if !tt.err && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFluxRefs(t *testing.T) {
	q := `from(bucket: "${bucket}")
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "scores" and r.site == "${site}" and r["asset"] == "a")
  |> filter(fn: (r) => r._field == "score" or r._field != "seq" or r._field =~ /^share_/)
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
  |> group(columns: ["model", "version"])
  |> last(column: "score")
  |> keep(columns: ["_time", "top_sensor"])`
	ref, err := grafana.FluxRefs(q)
	if err != nil {
		t.Fatal(err)
	}
	if ref.Measurement != "scores" {
		t.Errorf("measurement %q", ref.Measurement)
	}
	if want := []string{"score", "seq"}; !reflect.DeepEqual(ref.Fields, want) {
		t.Errorf("fields %q, want %q", ref.Fields, want)
	}
	if len(ref.FieldPatterns) != 1 || ref.FieldPatterns[0].String() != "^share_" {
		t.Errorf("field patterns %v", ref.FieldPatterns)
	}
	if want := []string{"asset", "model", "score", "site", "top_sensor", "version"}; !reflect.DeepEqual(ref.Columns, want) {
		t.Errorf("columns %q, want %q", ref.Columns, want)
	}

	m := grafana.Measurement{
		Tags:   map[string]bool{"site": true, "asset": true, "model": true, "version": true},
		Fields: map[string]bool{"score": true, "seq": true, "share_vib": true, "top_sensor": true},
	}
	if err := ref.Check(m); err != nil {
		t.Errorf("check against a schema that has everything: %v", err)
	}
	delete(m.Fields, "share_vib")
	delete(m.Tags, "version")
	err = ref.Check(m)
	if err == nil || !strings.Contains(err.Error(), "/^share_/") || !strings.Contains(err.Error(), "tag or field version") {
		t.Errorf("check without share_ fields and the version tag: %v", err)
	}

	for _, bad := range []string{
		`from(bucket: "b") |> range(start: -1h)`, // no measurement
		`from(bucket: "b") |> filter(fn: (r) => r._measurement == "a" or r._measurement == "b")`,
		`buckets()`,
		`from(bucket: "b") |> filter(fn: (r) => r._measurement == "a" and r._field =~ /(/)`,
	} {
		if _, err := grafana.FluxRefs(bad); err == nil {
			t.Errorf("FluxRefs(%q): no error", bad)
		}
	}
}
