package sink

import (
	"testing"
	"time"

	"github.com/influxdata/influxdb-client-go/v2/api/write"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/grafana"
	"github.com/pdmstream/pdm/scorer/internal/stream"
)

// TestDashboardsReadWhatInfluxWrites holds every Flux query of the Grafana
// dashboards on the scores and alerts measurements to the points this
// sink writes with every optional field present (a forecast, a shadow
// version, a resolution), states the pipeline's end-to-end dashboard test
// (pdmkit/grafana) does not all reach.
func TestDashboardsReadWhatInfluxWrites(t *testing.T) {
	p, err := grafana.Load("../../../deployments/grafana")
	if err != nil {
		t.Fatal(err)
	}
	qs, err := p.Queries("influxdb")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	forecast := &alert.Forecast{TimeToFailure: 3600, Low: 1800, High: 7200, FailureAt: now.Add(time.Hour)}
	score := &stream.Score{Site: "s", Asset: "a", Seq: 7, Time: now, Score: 0.99, Alert: true, Model: "m", Version: "2",
		Contributions: []alert.Sensor{{Name: "vibration_rms", Share: 0.8}, {Name: "flow", Share: 0.2}},
		Forecast:      forecast, Shadow: &stream.ShadowScore{Version: "3", Score: 0.5}}
	al := &alert.Alert{ID: "x", Site: "s", Asset: "a", Kind: "anomaly", State: alert.Resolved, Severity: alert.Major,
		Score: 0.9, Peak: 0.999, TopSensors: []alert.Sensor{{Name: "vibration_rms", Share: 0.8}}, Forecast: forecast,
		Model: "m", Version: "2", FirstSeq: 1, LastSeq: 7, FirstTime: now, LastTime: now, Resolution: "repaired", Revision: 3}
	written := map[string]grafana.Measurement{"scores": measurement(ScorePoint(score)), "alerts": measurement(alertPoint(al))}
	checked := 0
	for _, q := range qs {
		ref, err := grafana.FluxRefs(q.Text)
		if err != nil {
			t.Errorf("%s: %v", q.Where, err)
			continue
		}
		m, ok := written[ref.Measurement]
		if !ok {
			continue // readings: the historian's
		}
		checked++
		if err := ref.Check(m); err != nil {
			t.Errorf("%s: %v", q.Where, err)
		}
	}
	if checked == 0 {
		t.Fatal("no dashboard query reads scores or alerts")
	}
}

func measurement(p *write.Point) grafana.Measurement {
	m := grafana.Measurement{Tags: map[string]bool{}, Fields: map[string]bool{}}
	for _, tag := range p.TagList() {
		m.Tags[tag.Key] = true
	}
	for _, f := range p.FieldList() {
		m.Fields[f.Key] = true
	}
	return m
}
