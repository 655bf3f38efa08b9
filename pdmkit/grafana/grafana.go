// Package grafana reads the project's Grafana provisioning and dashboards
// (deployments/grafana) and lists what every dashboard queries, so tests
// can hold the dashboards to what the services really export: the metric
// names in each PromQL expression (PromMetrics) and the measurement, fields
// and tags of each Flux query (FluxRefs).
//
// It understands the part of Grafana's formats the project's files use:
// provisioning files with apiVersion 1, dashboard JSON with panels (rows
// included), template variables and annotation queries.
package grafana

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"gopkg.in/yaml.v3"
)

// Datasource is one provisioned data source.
type Datasource struct {
	Name     string         `yaml:"name"`
	UID      string         `yaml:"uid"`
	Type     string         `yaml:"type"`
	Access   string         `yaml:"access"`
	URL      string         `yaml:"url"`
	JSONData map[string]any `yaml:"jsonData"`
	Secure   map[string]any `yaml:"secureJsonData"`
}

// Provider is one dashboard provider (provisioning/dashboards/*.yaml).
type Provider struct {
	Name    string `yaml:"name"`
	Folder  string `yaml:"folder"`
	Type    string `yaml:"type"`
	Options struct {
		Path string `yaml:"path"`
	} `yaml:"options"`
}

// LoadDatasources reads every provisioning/datasources/*.yaml under dir.
func LoadDatasources(dir string) ([]Datasource, error) {
	var out []Datasource
	err := eachYAML(filepath.Join(dir, "provisioning", "datasources"), func(path string, raw []byte) error {
		var f struct {
			APIVersion  int          `yaml:"apiVersion"`
			Datasources []Datasource `yaml:"datasources"`
		}
		if err := yaml.Unmarshal(raw, &f); err != nil {
			return err
		}
		if f.APIVersion != 1 {
			return fmt.Errorf("apiVersion %d, want 1", f.APIVersion)
		}
		for _, d := range f.Datasources {
			if d.UID == "" || d.Type == "" || d.Name == "" {
				return fmt.Errorf("data source %q: name, uid and type are required", d.Name)
			}
		}
		out = append(out, f.Datasources...)
		return nil
	})
	return out, err
}

// LoadProviders reads every provisioning/dashboards/*.yaml under dir.
func LoadProviders(dir string) ([]Provider, error) {
	var out []Provider
	err := eachYAML(filepath.Join(dir, "provisioning", "dashboards"), func(path string, raw []byte) error {
		var f struct {
			APIVersion int        `yaml:"apiVersion"`
			Providers  []Provider `yaml:"providers"`
		}
		if err := yaml.Unmarshal(raw, &f); err != nil {
			return err
		}
		if f.APIVersion != 1 {
			return fmt.Errorf("apiVersion %d, want 1", f.APIVersion)
		}
		for _, p := range f.Providers {
			if p.Type != "file" || p.Options.Path == "" {
				return fmt.Errorf("provider %q: want type file with options.path", p.Name)
			}
		}
		out = append(out, f.Providers...)
		return nil
	})
	return out, err
}

func eachYAML(dir string, fn func(path string, raw []byte) error) error {
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return fmt.Errorf("grafana: no *.yaml in %s", dir)
	}
	sort.Strings(paths)
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := fn(p, raw); err != nil {
			return fmt.Errorf("grafana: %s: %w", p, err)
		}
	}
	return nil
}

// Ref names a data source by type and uid, as dashboards do.
type Ref struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// UnmarshalJSON accepts the object form and the legacy string form (a
// data source's name, kept in UID).
func (r *Ref) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*r = Ref{UID: s}
		return nil
	}
	type plain Ref
	return json.Unmarshal(b, (*plain)(r))
}

// Target is one query of a panel: Expr for Prometheus, Query for InfluxDB.
type Target struct {
	RefID      string `json:"refId"`
	Datasource *Ref   `json:"datasource"`
	Expr       string `json:"expr"`
	Query      string `json:"query"`
}

// Panel is a dashboard panel; a row holds its collapsed panels in Panels.
type Panel struct {
	ID         int      `json:"id"`
	Type       string   `json:"type"`
	Title      string   `json:"title"`
	Datasource *Ref     `json:"datasource"`
	Targets    []Target `json:"targets"`
	Panels     []Panel  `json:"panels"`
	GridPos    struct {
		X, Y, W, H int
	} `json:"gridPos"`
}

// Variable is a template variable.
type Variable struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Datasource *Ref   `json:"datasource"`
	// Query is a string for query variables (the Flux or PromQL text) and
	// for custom ones (the comma-separated options).
	Query   any `json:"query"`
	Current struct {
		Value any `json:"value"`
	} `json:"current"`
}

// Annotation is an annotation query.
type Annotation struct {
	Name       string  `json:"name"`
	BuiltIn    int     `json:"builtIn"`
	Datasource *Ref    `json:"datasource"`
	Enable     bool    `json:"enable"`
	Target     *Target `json:"target"`
}

// Dashboard is one dashboard JSON file.
type Dashboard struct {
	File        string                      `json:"-"`
	UID         string                      `json:"uid"`
	Title       string                      `json:"title"`
	Panels      []Panel                     `json:"panels"`
	Templating  struct{ List []Variable }   `json:"templating"`
	Annotations struct{ List []Annotation } `json:"annotations"`
}

// LoadDashboards reads every *.json in dir.
func LoadDashboards(dir string) ([]Dashboard, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("grafana: no dashboards (*.json) in %s", dir)
	}
	sort.Strings(paths)
	out := make([]Dashboard, 0, len(paths))
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var d Dashboard
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("grafana: %s: %w", p, err)
		}
		d.File = filepath.Base(p)
		out = append(out, d)
	}
	return out, nil
}

// Query is one query a dashboard sends: a panel's target, a template
// variable's query or an annotation query.
type Query struct {
	// Where names it for messages: "file: panel "title" target A".
	Where      string
	Datasource Ref
	// Text is the PromQL expression or the Flux query.
	Text string
}

// ErrNoDatasource is returned by Queries for a query with no data source
// of its own or from its panel.
var ErrNoDatasource = errors.New("no data source")

// Queries returns every query of the dashboard, rows' panels included,
// with each target's data source (its own, else its panel's).
func (d *Dashboard) Queries() ([]Query, error) {
	var out []Query
	var errs []error
	var walk func(ps []Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			walk(p.Panels)
			for _, t := range p.Targets {
				where := fmt.Sprintf("%s: panel %q target %s", d.File, p.Title, t.RefID)
				ds := t.Datasource
				if ds == nil || ds.UID == "" {
					ds = p.Datasource
				}
				if ds == nil || ds.UID == "" {
					errs = append(errs, fmt.Errorf("%s: %w", where, ErrNoDatasource))
					continue
				}
				out = append(out, Query{Where: where, Datasource: *ds, Text: t.Expr + t.Query})
			}
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		where := fmt.Sprintf("%s: variable %s", d.File, v.Name)
		s, _ := v.Query.(string)
		if v.Datasource == nil || v.Datasource.UID == "" {
			errs = append(errs, fmt.Errorf("%s: %w", where, ErrNoDatasource))
			continue
		}
		out = append(out, Query{Where: where, Datasource: *v.Datasource, Text: s})
	}
	for _, a := range d.Annotations.List {
		if a.BuiltIn == 1 {
			continue
		}
		where := fmt.Sprintf("%s: annotation %q", d.File, a.Name)
		if a.Datasource == nil || a.Datasource.UID == "" {
			errs = append(errs, fmt.Errorf("%s: %w", where, ErrNoDatasource))
			continue
		}
		text := ""
		if a.Target != nil {
			text = a.Target.Expr + a.Target.Query
		}
		out = append(out, Query{Where: where, Datasource: *a.Datasource, Text: text})
	}
	return out, errors.Join(errs...)
}

// Provisioned is a folder of Grafana configuration as the project keeps
// it: provisioning/datasources, provisioning/dashboards and the dashboards
// themselves in dashboards/.
type Provisioned struct {
	Datasources []Datasource
	Providers   []Provider
	Dashboards  []Dashboard
}

// Load reads dir (deployments/grafana).
func Load(dir string) (*Provisioned, error) {
	var p Provisioned
	var err error
	if p.Datasources, err = LoadDatasources(dir); err != nil {
		return nil, err
	}
	if p.Providers, err = LoadProviders(dir); err != nil {
		return nil, err
	}
	if p.Dashboards, err = LoadDashboards(filepath.Join(dir, "dashboards")); err != nil {
		return nil, err
	}
	return &p, nil
}

// Datasource returns the provisioned data source ref names: by uid, or by
// name for a legacy string ref. A ref whose type differs from the data
// source's is an error.
func (p *Provisioned) Datasource(ref Ref) (Datasource, error) {
	for _, d := range p.Datasources {
		if d.UID == ref.UID || ref.Type == "" && d.Name == ref.UID {
			if ref.Type != "" && ref.Type != d.Type {
				return Datasource{}, fmt.Errorf("data source %s is of type %s, not %s", d.UID, d.Type, ref.Type)
			}
			return d, nil
		}
	}
	return Datasource{}, fmt.Errorf("no provisioned data source with uid %q", ref.UID)
}

// Queries returns every query of every dashboard whose data source has
// type typ ("prometheus", "influxdb"). A query whose data source is not
// provisioned is an error.
func (p *Provisioned) Queries(typ string) ([]Query, error) {
	var out []Query
	var errs []error
	for i := range p.Dashboards {
		qs, err := p.Dashboards[i].Queries()
		errs = append(errs, err)
		for _, q := range qs {
			d, err := p.Datasource(q.Datasource)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", q.Where, err))
				continue
			}
			if d.Type == typ {
				out = append(out, q)
			}
		}
	}
	return out, errors.Join(errs...)
}
