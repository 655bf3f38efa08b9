package grafana_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/pdmstream/pdm/pdmkit/grafana"
)

// grafanaDir is the project's Grafana folder, which docker-compose.yml
// mounts into the grafana service.
const grafanaDir = "../../deployments/grafana"

func load(t *testing.T) *grafana.Provisioned {
	t.Helper()
	p, err := grafana.Load(grafanaDir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDatasources(t *testing.T) {
	p := load(t)
	byType := map[string]grafana.Datasource{}
	uids := map[string]bool{}
	for _, d := range p.Datasources {
		if uids[d.UID] {
			t.Errorf("data source uid %s twice", d.UID)
		}
		uids[d.UID] = true
		byType[d.Type] = d
	}
	influx, ok := byType["influxdb"]
	if !ok {
		t.Fatal("no InfluxDB data source")
	}
	// docker-compose.yml runs InfluxDB 2.x: Flux, with its org and bucket.
	if influx.JSONData["version"] != "Flux" || influx.JSONData["organization"] != "pdm" || influx.JSONData["defaultBucket"] != "pdm" {
		t.Errorf("InfluxDB data source jsonData %v, want version Flux, organization pdm, defaultBucket pdm", influx.JSONData)
	}
	if influx.URL != "http://influxdb:8086" {
		t.Errorf("InfluxDB data source url %q, want the compose service http://influxdb:8086", influx.URL)
	}
	if tok, _ := influx.Secure["token"].(string); tok != "$PDM_INFLUX_TOKEN" {
		t.Errorf("InfluxDB token %q, want $PDM_INFLUX_TOKEN from the environment", tok)
	}
	if prom, ok := byType["prometheus"]; !ok || prom.URL != "http://prometheus:9090" {
		t.Errorf("Prometheus data source %+v, want url http://prometheus:9090", prom)
	}
}

// grafanaVar is a ${name} or $name reference to a template variable.
var grafanaVar = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)

func TestDashboards(t *testing.T) {
	p := load(t)
	uids, titles := map[string]string{}, map[string]string{}
	for _, d := range p.Dashboards {
		t.Run(d.File, func(t *testing.T) {
			if d.UID == "" || d.Title == "" {
				t.Fatalf("uid %q, title %q: both are required", d.UID, d.Title)
			}
			if f, ok := uids[d.UID]; ok {
				t.Errorf("uid %s is also %s's", d.UID, f)
			}
			if f, ok := titles[d.Title]; ok {
				t.Errorf("title %q is also %s's", d.Title, f)
			}
			uids[d.UID], titles[d.Title] = d.File, d.File
			if len(d.UID) > 40 {
				t.Errorf("uid %q is longer than Grafana's 40 characters", d.UID)
			}
			panels := 0
			ids := map[int]bool{}
			var walk func(ps []grafana.Panel)
			walk = func(ps []grafana.Panel) {
				for _, pn := range ps {
					if ids[pn.ID] {
						t.Errorf("panel id %d twice", pn.ID)
					}
					ids[pn.ID] = true
					if pn.GridPos.W <= 0 || pn.GridPos.H <= 0 || pn.GridPos.X+pn.GridPos.W > 24 {
						t.Errorf("panel %q: gridPos %+v outside the 24-column grid", pn.Title, pn.GridPos)
					}
					walk(pn.Panels)
					if pn.Type == "row" {
						continue
					}
					panels++
					if pn.Title == "" {
						t.Errorf("panel %d has no title", pn.ID)
					}
					if len(pn.Targets) == 0 {
						t.Errorf("panel %q has no targets", pn.Title)
					}
					for _, tg := range pn.Targets {
						if strings.TrimSpace(tg.Expr+tg.Query) == "" {
							t.Errorf("panel %q target %s is empty", pn.Title, tg.RefID)
						}
					}
				}
			}
			walk(d.Panels)
			if panels == 0 {
				t.Fatal("no panels")
			}

			vars := map[string]grafana.Variable{}
			for _, v := range d.Templating.List {
				vars[v.Name] = v
			}
			qs, err := d.Queries()
			if err != nil {
				t.Error(err)
			}
			for _, q := range qs {
				ds, err := p.Datasource(q.Datasource)
				if err != nil {
					t.Errorf("%s: %v", q.Where, err)
					continue
				}
				if strings.TrimSpace(q.Text) == "" {
					t.Errorf("%s: empty query", q.Where)
				}
				for _, m := range grafanaVar.FindAllStringSubmatch(q.Text, -1) {
					if _, ok := vars[m[1]]; !ok && !strings.HasPrefix(m[1], "__") {
						t.Errorf("%s: $%s is not a variable of the dashboard", q.Where, m[1])
					}
				}
				switch ds.Type {
				case "prometheus":
					ms, err := grafana.PromMetrics(q.Text)
					if err != nil {
						t.Errorf("%s: %v", q.Where, err)
					}
					if len(ms) == 0 {
						t.Errorf("%s: selects no metric: %s", q.Where, q.Text)
					}
					for _, m := range ms {
						if !strings.HasPrefix(m, "pdm_") {
							t.Errorf("%s: %s is not one of the services' metrics (pdm_*)", q.Where, m)
						}
					}
				case "influxdb":
					if _, err := grafana.FluxRefs(q.Text); err != nil {
						t.Errorf("%s: %v", q.Where, err)
					}
					// The bucket is a variable whose default is the data
					// source's bucket (InfluxDB 2.x in compose); the local
					// stack's 1.8 is pdm/autogen.
					if !strings.Contains(q.Text, `from(bucket: "${bucket}")`) {
						t.Errorf("%s: does not read from the ${bucket} variable", q.Where)
					}
					b, ok := vars["bucket"]
					if !ok {
						t.Errorf("%s: the dashboard has no bucket variable", q.Where)
					} else if b.Current.Value != ds.JSONData["defaultBucket"] {
						t.Errorf("bucket variable defaults to %v, the data source's bucket is %v", b.Current.Value, ds.JSONData["defaultBucket"])
					}
				default:
					t.Errorf("%s: data source type %s has no check here", q.Where, ds.Type)
				}
			}
		})
	}
	if len(p.Dashboards) < 3 {
		t.Errorf("%d dashboards, want fleet health, asset and pipeline health", len(p.Dashboards))
	}
}

func TestQueriesNeedADatasource(t *testing.T) {
	d := grafana.Dashboard{File: "x.json", Panels: []grafana.Panel{{Title: "p", Targets: []grafana.Target{{RefID: "A", Expr: "pdm_x"}}}}}
	if _, err := d.Queries(); err == nil {
		t.Error("a target without a data source (its own or its panel's): no error")
	}
	d.Panels[0].Datasource = &grafana.Ref{Type: "prometheus", UID: "nope"}
	qs, err := d.Queries()
	if err != nil || len(qs) != 1 {
		t.Fatalf("queries %v, %v", qs, err)
	}
	p := &grafana.Provisioned{Datasources: []grafana.Datasource{{Name: "P", UID: "p", Type: "prometheus"}}, Dashboards: []grafana.Dashboard{d}}
	if _, err := p.Queries("prometheus"); err == nil {
		t.Error("a data source uid that is not provisioned: no error")
	}
	d.Panels[0].Datasource = &grafana.Ref{Type: "influxdb", UID: "p"}
	if _, err := p.Datasource(*d.Panels[0].Datasource); err == nil {
		t.Error("a ref whose type is not its data source's: no error")
	}
}
