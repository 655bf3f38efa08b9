package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/httpauth"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/model/modeltest"
	"github.com/pdmstream/pdm/pdmkit/monitor"
	"github.com/pdmstream/pdm/pdmkit/telemetry"
	"github.com/pdmstream/pdm/scorer/internal/alertview"
	"github.com/pdmstream/pdm/scorer/internal/fleet"
	"github.com/pdmstream/pdm/scorer/internal/registry"
	"github.com/pdmstream/pdm/scorer/internal/stream"
)

const token = "t0ken"

// linearDetector scores with the artifact's one-layer linear network, so
// the expected answer can be computed by hand.
type linearDetector struct{ a *model.Artifact }

func (d linearDetector) Observe(_ time.Time, s map[string]float64) (anomaly.Result, error) {
	score := d.a.Weights[len(d.a.Features)]
	var cs []anomaly.Contribution
	total := 0.0
	for j, f := range d.a.Features {
		v, ok := s[f]
		if !ok {
			return anomaly.Result{}, fmt.Errorf("sensor %s missing", f)
		}
		x := (v - d.a.Scaler.Mean[j]) / d.a.Scaler.Std[j]
		score += d.a.Weights[j] * x
		cs = append(cs, anomaly.Contribution{Sensor: f, Share: math.Abs(d.a.Weights[j] * x)})
		total += math.Abs(d.a.Weights[j] * x)
	}
	for i := range cs {
		cs[i].Share /= total
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Share > cs[j].Share })
	return anomaly.Result{Score: score, Evidence: score, Contributions: cs, Model: d.a.Name, Version: d.a.Version}, nil
}

func factory(a *model.Artifact) (anomaly.Detector, error) { return linearDetector{a}, nil }

func artifact(t testing.TB, name, version string, weights []float64, features ...string) []byte {
	t.Helper()
	d := len(features)
	a := model.Artifact{
		Kind: model.RUL, Name: name, Version: version, CreatedAt: time.Unix(0, 0).UTC(), Features: features, Window: 1,
		Architecture: model.Architecture{Sizes: []int{d, 1}, Activations: []string{"linear"}},
		Weights:      weights,
	}
	a.Scaler.Mean = make([]float64, d)
	a.Scaler.Std = slices.Repeat([]float64{1}, d)
	return modeltest.Encode(t, &a)
}

type catalog map[string][]string

func (c catalog) Assets() []string {
	var out []string
	for a := range c {
		out = append(out, a)
	}
	return out
}
func (c catalog) Sensors(a string) []string { return c[a] }

type fakeAlerts struct{ store *alertview.Store }

func (f fakeAlerts) List(fl alertview.Filter) []alert.Alert  { return f.store.List(fl) }
func (f fakeAlerts) Subscribe() (<-chan alert.Alert, func()) { return f.store.Subscribe() }
func (f fakeAlerts) Ack(_ context.Context, id, by, _ string) (alert.Alert, bool, error) {
	a, ok := f.store.Get(id)
	if !ok || a.State == alert.Resolved {
		return alert.Alert{}, false, fmt.Errorf("%w: %s", stream.ErrAlertNotHere, id)
	}
	if by == "elsewhere" {
		return a, true, nil
	}
	a.Acked, a.AckedBy, a.Revision = true, by, a.Revision+1
	f.store.Put(context.Background(), []alert.Alert{a})
	return a, false, nil
}

type fixture struct {
	srv   *httptest.Server
	reg   *registry.Registry
	store *alertview.Store
	fleet *fleet.Store
	// seen is the fleet's clock: when a score is taken.
	seen time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := registry.NewMemory(factory, catalog{"pump-1": {"bearing_temp", "vibration", "rpm"}}, log)
	reg.SetTrust(modeltest.Trust())
	store := alertview.NewStore(0)
	prom := telemetry.NewRegistry()
	// One reading at or above the opening level opens an alert, so a short
	// infer window shows the decision.
	decision := monitor.Config{Alert: alert.Thresholds{Open: 0.986, Resolve: 0.93, Major: 0.995, Critical: 0.999, MinReadings: 1}}
	f := &fixture{reg: reg, store: store, seen: time.Now()}
	f.fleet = fleet.New(fleet.Options{Now: func() time.Time { return f.seen }})
	a := New(Options{Auth: httpauth.Config{WriteToken: token}, Decision: decision, Fleet: f.fleet, StaleAfter: time.Minute}, reg, fakeAlerts{store}, prom, log)
	f.srv = httptest.NewServer(a.Handler(prom, nil))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) do(t *testing.T, method, path, tok string, body []byte) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	if out == nil {
		out = map[string]any{"raw": string(b)}
	}
	return resp.StatusCode, out
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	served := map[string]bool{}
	for _, rt := range append(slices.Clone(routes), telemetryRoutes...) {
		served[rt.method+" "+rt.path] = true
		if !documented[rt.method+" "+rt.path] {
			t.Errorf("route %s %s is not in openapi.json", rt.method, rt.path)
		}
	}
	for k := range documented {
		if !served[k] {
			t.Errorf("openapi.json documents %s, which is not served", k)
		}
	}
	// Write routes require the bearer scheme, read routes take it
	// optionally (required once a read token is configured), open routes
	// declare none.
	for _, rt := range routes {
		op, _ := doc.Paths[rt.path][strings.ToLower(rt.method)].(map[string]any)
		got, _ := json.Marshal(op["security"])
		want := map[httpauth.Scope]string{httpauth.Open: "null", httpauth.Read: `[{},{"bearer":[]}]`, httpauth.Write: `[{"bearer":[]}]`}[rt.scope]
		if string(got) != want {
			t.Errorf("%s %s (%s): security %s in the document, want %s", rt.method, rt.path, rt.scope, got, want)
		}
	}
	// And the document is what the server serves.
	f := newFixture(t)
	code, body := f.do(t, "GET", "/openapi.json", "", nil)
	if code != 200 || body["openapi"] != "3.0.3" {
		t.Fatalf("GET /openapi.json: %d %v", code, body["openapi"])
	}
	// Telemetry routes answer too.
	for _, rt := range telemetryRoutes {
		if code, _ := f.do(t, rt.method, rt.path, "", nil); code != 200 {
			t.Errorf("%s %s: %d", rt.method, rt.path, code)
		}
	}
}

func TestWritesNeedToken(t *testing.T) {
	f := newFixture(t)
	for _, rt := range routes {
		if rt.scope != httpauth.Write {
			continue
		}
		path := strings.NewReplacer("{name}", "m", "{version}", "1", "{asset}", "a", "{id}", "x").Replace(rt.path)
		for _, tok := range []string{"", "wrong"} {
			code, body := f.do(t, rt.method, path, tok, []byte(`{"version":"1"}`))
			if code != http.StatusUnauthorized || body["error"] == nil {
				t.Errorf("%s %s with token %q: %d %v, want 401", rt.method, path, tok, code, body)
			}
		}
	}
	// Without a configured write token every write is refused, even with a
	// token sent, and the answer says writes are off, not that the token
	// is wrong.
	srv := guarded(t, httpauth.Config{ReadToken: "r", WriteKey: "http.token"})
	for _, tok := range []string{"", "r", "w"} {
		code, msg := call(t, srv, "POST", "/v1/models/m/rollback", tok)
		if code != http.StatusForbidden || !strings.Contains(msg, "writes are disabled on this server: set http.token") {
			t.Errorf("writes off, token %q: %d %q, want 403 writes are disabled", tok, code, msg)
		}
	}
}

// With a read token configured every read route, inference included,
// needs it (or the write token); a read token cannot write; open routes
// stay open.
func TestReadsNeedReadToken(t *testing.T) {
	srv := guarded(t, httpauth.Config{ReadToken: "r", WriteToken: "w"})
	for _, rt := range routes {
		path := strings.NewReplacer("{name}", "m", "{version}", "1", "{asset}", "a", "{id}", "x").Replace(rt.path)
		if rt.path == "/v1/alerts/events" {
			continue // a stream: its refusal is checked below without reading on
		}
		code, msg := call(t, srv, rt.method, path, "")
		switch rt.scope {
		case httpauth.Open:
			if code == http.StatusUnauthorized || code == http.StatusForbidden {
				t.Errorf("%s %s is open but answered %d %q", rt.method, path, code, msg)
			}
		default:
			if code != http.StatusUnauthorized {
				t.Errorf("%s %s without a token: %d %q, want 401", rt.method, path, code, msg)
			}
			if code, _ := call(t, srv, rt.method, path, "x"); code != http.StatusUnauthorized {
				t.Errorf("%s %s with a wrong token: %d, want 401", rt.method, path, code)
			}
		}
		withRead, msg := call(t, srv, rt.method, path, "r")
		switch {
		case rt.scope == httpauth.Write && withRead != http.StatusForbidden:
			t.Errorf("%s %s with the read token: %d %q, want 403", rt.method, path, withRead, msg)
		case rt.scope != httpauth.Write && (withRead == http.StatusUnauthorized || withRead == http.StatusForbidden):
			t.Errorf("%s %s with the read token: %d %q", rt.method, path, withRead, msg)
		}
	}
	if code, _ := call(t, srv, "GET", "/v1/alerts/events", ""); code != http.StatusUnauthorized {
		t.Errorf("alert stream without a token: %d, want 401", code)
	}
}

// guarded serves an API with the tokens of c over an empty registry.
func guarded(t *testing.T, c httpauth.Config) *httptest.Server {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := registry.NewMemory(factory, nil, log)
	reg.SetTrust(modeltest.Trust())
	a := New(Options{Auth: c}, reg, fakeAlerts{alertview.NewStore(0)}, nil, log)
	srv := httptest.NewServer(a.Handler(telemetry.NewRegistry(), nil))
	t.Cleanup(srv.Close)
	return srv
}

// call sends an empty JSON body with tok (if any) and returns the status
// and the error message of the answer.
func call(t *testing.T, srv *httptest.Server, method, path, tok string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(`{}`))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct{ Error string }
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Error
}

func TestRegistryEndpoints(t *testing.T) {
	f := newFixture(t)
	v1 := artifact(t, "bearing", "1", []float64{0.5, 0.25, 0.1}, "bearing_temp", "vibration")
	if code, body := f.do(t, "PUT", "/v1/models/bearing/versions/1", token, v1); code != http.StatusCreated {
		t.Fatalf("upload: %d %v", code, body)
	}
	if code, body := f.do(t, "POST", "/v1/models/bearing/activate", token, []byte(`{"version":"1","default":true}`)); code != 200 {
		t.Fatalf("activate: %d %v", code, body)
	}
	refusals := []struct {
		name, path string
		raw        []byte
		code       int
		want       string
	}{
		{"tampered", "/v1/models/bearing/versions/2",
			bytes.Replace(artifact(t, "bearing", "2", []float64{0.5, 0.25, 0.1}, "bearing_temp", "vibration"), []byte("0.25"), []byte("0.26"), 1),
			http.StatusUnprocessableEntity, "checksum"},
		{"garbage", "/v1/models/bearing/versions/2", []byte("not json"), http.StatusUnprocessableEntity, "not a supported artifact"},
		{"name differs", "/v1/models/bearing/versions/2", artifact(t, "pump", "2", []float64{1, 0}, "rpm"), http.StatusUnprocessableEntity, "uploaded as bearing 2"},
		{"same version, new content", "/v1/models/bearing/versions/1", artifact(t, "bearing", "1", []float64{1, 0}, "rpm"), http.StatusConflict, "already exists"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			code, body := f.do(t, "PUT", tc.path, token, tc.raw)
			if code != tc.code || !strings.Contains(fmt.Sprint(body["error"]), tc.want) {
				t.Fatalf("%d %v, want %d mentioning %q", code, body, tc.code, tc.want)
			}
		})
	}
	// A version whose features an asset lacks is stored but not activated.
	mismatched := artifact(t, "bearing", "3", []float64{1, 1, 0}, "bearing_temp", "oil_pressure")
	if code, body := f.do(t, "PUT", "/v1/models/bearing/versions/3", token, mismatched); code != http.StatusCreated {
		t.Fatalf("upload 3: %d %v", code, body)
	}
	code, body := f.do(t, "POST", "/v1/models/bearing/activate", token, []byte(`{"version":"3"}`))
	if code != http.StatusUnprocessableEntity || !strings.Contains(fmt.Sprint(body["error"]), "oil_pressure") {
		t.Fatalf("activate mismatched: %d %v", code, body)
	}
	if got := f.reg.Resolve("", "pump-1").Active.Version; got != "1" {
		t.Fatalf("active version is %s after refusals, want 1", got)
	}
	v4 := artifact(t, "bearing", "4", []float64{1, 1, 0}, "bearing_temp", "vibration")
	f.do(t, "PUT", "/v1/models/bearing/versions/4", token, v4)
	steps := []struct {
		method, path, body string
		code               int
		active             string
	}{
		{"POST", "/v1/models/bearing/activate", `{"version":"4"}`, 200, "4"},
		{"POST", "/v1/models/bearing/rollback", ``, 200, "1"},
		{"POST", "/v1/models/bearing/rollback", ``, 409, "1"},
		{"POST", "/v1/models/bearing/activate", `{"version":"9"}`, 404, "1"},
		{"PUT", "/v1/assets/pump-1/pin", `{"model":"bearing","version":"4"}`, 200, "4"},
		{"PUT", "/v1/assets/pump-1/pin", `{"model":""}`, 200, "1"},
		{"PUT", "/v1/models/bearing/shadow", `{"version":"4"}`, 200, "1"},
	}
	for _, s := range steps {
		code, body := f.do(t, s.method, s.path, token, []byte(s.body))
		if code != s.code {
			t.Fatalf("%s %s %s: %d %v, want %d", s.method, s.path, s.body, code, body, s.code)
		}
		if got := f.reg.Resolve("", "pump-1").Active.Version; got != s.active {
			t.Fatalf("%s %s: active %s, want %s", s.method, s.path, got, s.active)
		}
	}
	if b := f.reg.Resolve("", "pump-1"); b.Shadow == nil || b.Shadow.Version != "4" {
		t.Fatalf("shadow not set: %+v", b)
	}
	if code, body := f.do(t, "GET", "/v1/models/bearing/shadow", "", nil); code != 200 || body["shadow_version"] != "4" {
		t.Fatalf("shadow report: %d %v", code, body)
	}
	code, body = f.do(t, "GET", "/v1/models/bearing", "", nil)
	if code != 200 || body["active"] != "1" || len(body["versions"].([]any)) != 3 {
		t.Fatalf("model listing: %d %v", code, body)
	}
	if code, _ := f.do(t, "GET", "/v1/models/bearing/versions/4/artifact", "", nil); code != 200 {
		t.Fatalf("download: %d", code)
	}
}

func TestInferenceProtocol(t *testing.T) {
	f := newFixture(t)
	if code, body := f.do(t, "GET", "/v2/health/live", "", nil); code != 200 || body["live"] != true {
		t.Fatalf("live: %d %v", code, body)
	}
	if code, _ := f.do(t, "GET", "/v2/health/ready", "", nil); code != 200 {
		t.Fatalf("ready: %d", code)
	}
	if code, _ := f.do(t, "GET", "/v2/models/bearing/ready", "", nil); code != 404 {
		t.Fatalf("ready of unknown model: %d, want 404", code)
	}
	f.do(t, "PUT", "/v1/models/bearing/versions/1", token, artifact(t, "bearing", "1", []float64{0.5, 0.25, 0.1}, "bearing_temp", "vibration"))
	f.do(t, "POST", "/v1/models/bearing/activate", token, []byte(`{"version":"1","default":true}`))
	code, meta := f.do(t, "GET", "/v2/models/bearing", "", nil)
	if code != 200 || meta["name"] != "bearing" || len(meta["inputs"].([]any)) != 3 {
		t.Fatalf("metadata: %d %v", code, meta)
	}
	if code, _ := f.do(t, "GET", "/v2/models/bearing/versions/1/ready", "", nil); code != 200 {
		t.Fatalf("version ready: %d", code)
	}
	req := `{"id":"r1","inputs":[
		{"name":"bearing_temp","shape":[2],"datatype":"FP64","data":[1,4]},
		{"name":"vibration","shape":[2],"datatype":"FP64","data":[2,0]},
		{"name":"timestamp","shape":[2],"datatype":"INT64","data":[1700000000000,1700000001000]}]}`
	for _, path := range []string{"/v2/models/bearing/infer", "/v2/models/bearing/versions/1/infer"} {
		code, body := f.do(t, "POST", path, "", []byte(req))
		if code != 200 {
			t.Fatalf("%s: %d %v", path, code, body)
		}
		if body["model_version"] != "1" || body["id"] != "r1" {
			t.Fatalf("%s: %v", path, body)
		}
		outs := map[string][]any{}
		for _, o := range body["outputs"].([]any) {
			m := o.(map[string]any)
			outs[m["name"].(string)] = m["data"].([]any)
		}
		// score = 0.5·temp + 0.25·vib + 0.1
		want := []float64{1.1, 2.1}
		for i, w := range want {
			if got := outs["score"][i].(float64); math.Abs(got-w) > 1e-12 {
				t.Fatalf("score[%d] = %v, want %v", i, got, w)
			}
		}
		if outs["alert"][0] != true || outs["ttf_seconds"][0].(float64) != -1 {
			t.Fatalf("outputs %v", outs)
		}
		// contributions [2, 2] in feature order: (0.5, 0.5) then (1, 0).
		c := outs["contributions"]
		if len(c) != 4 || c[0].(float64) != 0.5 || c[2].(float64) != 1 || c[3].(float64) != 0 {
			t.Fatalf("contributions %v", c)
		}
	}
	bad := []struct{ name, body, want string }{
		{"missing feature", `{"inputs":[{"name":"bearing_temp","shape":[1],"datatype":"FP64","data":[1]}]}`, "vibration"},
		{"ragged", `{"inputs":[{"name":"bearing_temp","shape":[2],"datatype":"FP64","data":[1,2]},{"name":"vibration","shape":[1],"datatype":"FP64","data":[1]}]}`, "others"},
		{"shape", `{"inputs":[{"name":"bearing_temp","shape":[3],"datatype":"FP64","data":[1,2]}]}`, "shape"},
		{"bytes", `{"inputs":[{"name":"bearing_temp","shape":[1],"datatype":"BYTES","data":[1]}]}`, "not numeric"},
		{"not json", `{"inputs":`, "request body"},
		{"empty", `{"inputs":[]}`, "no inputs"},
	}
	for _, tc := range bad {
		code, body := f.do(t, "POST", "/v2/models/bearing/infer", "", []byte(tc.body))
		if code != 400 || !strings.Contains(fmt.Sprint(body["error"]), tc.want) {
			t.Errorf("%s: %d %v, want 400 mentioning %q", tc.name, code, body, tc.want)
		}
	}
	if code, _ := f.do(t, "POST", "/v2/models/nope/infer", "", []byte(req)); code != 404 {
		t.Errorf("unknown model: %d, want 404", code)
	}
	// The per-version counters and histograms are exported.
	resp, err := http.Get(f.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`pdm_scorer_infer_requests_total{model="bearing",outcome="ok",version="1"} 2`, `pdm_scorer_infer_seconds_bucket{model="bearing",version="1"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestAlertsEndpoints(t *testing.T) {
	f := newFixture(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.store.Put(context.Background(), []alert.Alert{
		{ID: "a1", Asset: "pump-1", State: alert.Opened, Severity: alert.Warning, LastTime: now, Revision: 1},
		{ID: "a2", Asset: "pump-2", State: alert.Resolved, Severity: alert.Major, LastTime: now.Add(-time.Hour), Revision: 3},
	})
	code, body := f.do(t, "GET", "/v1/alerts?state=open", "", nil)
	if code != 200 || len(body["alerts"].([]any)) != 1 {
		t.Fatalf("open alerts: %d %v", code, body)
	}
	if _, body := f.do(t, "GET", "/v1/alerts", "", nil); len(body["alerts"].([]any)) != 2 {
		t.Fatalf("all alerts: %v", body)
	}
	if code, _ := f.do(t, "POST", "/v1/alerts/a1/ack", token, []byte(`{}`)); code != 400 {
		t.Fatalf("ack without by: %d", code)
	}
	code, body = f.do(t, "POST", "/v1/alerts/a1/ack", token, []byte(`{"by":"op-7"}`))
	if code != 200 || body["acked"] != true || body["acked_by"] != "op-7" {
		t.Fatalf("ack: %d %v", code, body)
	}
	if code, _ := f.do(t, "POST", "/v1/alerts/a1/ack", token, []byte(`{"by":"elsewhere"}`)); code != http.StatusAccepted {
		t.Fatalf("ack owned by another instance: %d, want 202", code)
	}
	if code, _ := f.do(t, "POST", "/v1/alerts/zz/ack", token, []byte(`{"by":"op-7"}`)); code != 404 {
		t.Fatalf("ack unknown: %d, want 404", code)
	}
}

// TestServerNotReady: the protocol's readiness is a 4xx with the reason
// while the scorer is not ready, and live stays 200.
func TestServerNotReady(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := registry.NewMemory(factory, catalog{}, log)
	reg.SetTrust(modeltest.Trust())
	prom := telemetry.NewRegistry()
	a := New(Options{Auth: httpauth.Config{WriteToken: token}, Ready: func(context.Context) error { return errors.New("kafka: group not joined") }},
		reg, fakeAlerts{alertview.NewStore(0)}, prom, log)
	srv := httptest.NewServer(a.Handler(prom, nil))
	defer srv.Close()
	f := &fixture{srv: srv}
	if code, body := f.do(t, "GET", "/v2/health/ready", "", nil); code != http.StatusBadRequest || body["ready"] != false || !strings.Contains(fmt.Sprint(body["error"]), "kafka") {
		t.Errorf("not ready: %d %v, want 400 with the reason", code, body)
	}
	if code, _ := f.do(t, "GET", "/v2/health/live", "", nil); code != http.StatusOK {
		t.Errorf("live while not ready: %d", code)
	}
}
