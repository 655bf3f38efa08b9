package api

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/httpauth"
	"github.com/pdmstream/pdm/pdmkit/model/modeltest"
	"github.com/pdmstream/pdm/pdmkit/monitor"
	"github.com/pdmstream/pdm/pdmkit/telemetry"
	"github.com/pdmstream/pdm/scorer/internal/alertview"
	"github.com/pdmstream/pdm/scorer/internal/registry"
)

// fuzzRoutes are the handlers that read a JSON body.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/v2/models/bearing/infer"},
	{"POST", "/v2/models/bearing/versions/1/infer"},
	{"POST", "/v1/models/bearing/activate"},
	{"POST", "/v1/models/bearing/rollback"},
	{"PUT", "/v1/models/bearing/shadow"},
	{"PUT", "/v1/assets/pump-1/pin"},
	{"POST", "/v1/alerts/pump-1-1/ack"},
	{"PUT", "/v1/models/bearing/versions/2"},
	{"POST", "/v2/repository/index"},
}

// FuzzJSONHandlers sends any body to every handler that reads one, with
// a valid token and a model that exists: no body may panic a handler or
// make it answer 5xx, and every refusal is JSON.
func FuzzJSONHandlers(f *testing.F) {
	for _, seed := range []string{
		`{"inputs":[{"name":"bearing_temp","shape":[2],"datatype":"FP64","data":[1,2]},{"name":"vibration","shape":[2],"datatype":"FP64","data":[1,2]},{"name":"rpm","shape":[2],"datatype":"FP64","data":[1,2]}]}`,
		`{"inputs":[{"name":"bearing_temp","shape":[-1],"datatype":"FP64","data":[]}]}`,
		`{"inputs":[{"name":"rpm","shape":[1e300],"datatype":"BYTES","data":["x"]}]}`,
		`{"version":"1","default":true}`, `{"version":"","assets":["pump-1"]}`, `{"to":"1"}`,
		`{"version":"1","until":"2026-01-01T00:00:00Z"}`, `{"model":"bearing","version":"1"}`,
		`{"by":"op","reason":"new_normal"}`, `{"by":"op","by":"x"}`, `{"ready":true}`, `null`, `[]`, `{"inputs":null}`, "\xff",
	} {
		for i := range fuzzRoutes {
			f.Add(uint8(i), []byte(seed))
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := registry.NewMemory(factory, catalog{"pump-1": {"bearing_temp", "vibration", "rpm"}}, log)
	reg.SetTrust(modeltest.Trust())
	store := alertview.NewStore(0)
	prom := telemetry.NewRegistry()
	a := New(Options{Auth: httpauth.Config{WriteToken: token}, Decision: monitor.Config{Alert: alert.Thresholds{Open: 0.986, Resolve: 0.93, Major: 0.995, Critical: 0.999, MinReadings: 1}}},
		reg, fakeAlerts{store}, prom, log)
	h := a.Handler(prom, nil)
	upload := func(version string) {
		req := httptest.NewRequest("PUT", "/v1/models/bearing/versions/"+version,
			bytes.NewReader(artifact(f, "bearing", version, []float64{0.1, 0.2, 0.3, 0}, "bearing_temp", "vibration", "rpm")))
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			f.Fatalf("upload %s: %d %s", version, rec.Code, rec.Body)
		}
	}
	upload("1")
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		req := httptest.NewRequest(rt.method, rt.path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s with %q: %d %s", rt.method, rt.path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 && !strings.Contains(rec.Header().Get("Content-Type"), "json") {
			t.Fatalf("%s %s: refusal %d is %q, not JSON", rt.method, rt.path, rec.Code, rec.Header().Get("Content-Type"))
		}
	})
}

// FuzzBinaryInfer sends any body under the binary tensor data extension,
// with any header length, to infer: no input panics it or makes it answer
// 5xx, every refusal is JSON, and a binary answer's header length is
// within its body.
func FuzzBinaryInfer(f *testing.F) {
	header := `{"inputs":[{"name":"bearing_temp","shape":[2],"datatype":"FP64","parameters":{"binary_data_size":16}},{"name":"vibration","shape":[1,2],"datatype":"FP32","parameters":{"binary_data_size":8}}],"parameters":{"binary_data_output":true}}`
	bin := "\x00\x00\x00\x00\x00\x00\xf0\x3f\x00\x00\x00\x00\x00\x00\x00\x40\x00\x00\x80\x3f\x00\x00\x00\x40"
	f.Add(int64(len(header)), []byte(header+bin))
	f.Add(int64(len(header)), []byte(header+bin[:5]))
	f.Add(int64(-1), []byte(header))
	f.Add(int64(3), []byte("{}\x00\x01"))
	f.Add(int64(1<<40), []byte(header))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := registry.NewMemory(factory, nil, log)
	reg.SetTrust(modeltest.Trust())
	a := New(Options{Auth: httpauth.Config{WriteToken: token}}, reg, fakeAlerts{alertview.NewStore(0)}, nil, log)
	h := a.Handler(telemetry.NewRegistry(), nil)
	if _, err := reg.Upload(f.Context(), "bearing", "1", artifact(f, "bearing", "1", []float64{0.1, 0.2, 0}, "bearing_temp", "vibration")); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, hlen int64, body []byte) {
		req := httptest.NewRequest("POST", "/v2/models/bearing/versions/1/infer", bytes.NewReader(body))
		if hlen >= 0 {
			req.Header.Set(HeaderContentLength, strconv.FormatInt(hlen, 10))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%q (header %d): %d %s", body, hlen, rec.Code, rec.Body)
		}
		if rec.Code >= 400 && rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("refusal %d is %q, not JSON", rec.Code, rec.Header().Get("Content-Type"))
		}
		if h := rec.Header().Get(HeaderContentLength); h != "" {
			if n, err := strconv.Atoi(h); err != nil || n > rec.Body.Len() {
				t.Fatalf("answer header length %q for a body of %d", h, rec.Body.Len())
			}
		}
	})
}
