// Package api is the scorer's HTTP interface: the Open Inference Protocol
// (KServe v2 REST) subset for health, model metadata and inference, the
// model registry, the alert list with acknowledgement, Prometheus metrics
// and the OpenAPI document that describes all of it.
//
// Invariants:
//   - Every route is in the routes table, and the table is what both the
//     mux and the OpenAPI test read, so the document cannot drift.
//   - Every route has a scope (pdmkit/httpauth): open (health, server
//     metadata, the document), read (the rest, inference included) or
//     write; reads need a token when a read token is configured, writes
//     always need the write token and are refused without one configured.
//   - Request bodies are bounded; no input makes a handler panic.
package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/httpauth"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/monitor"
	"github.com/pdmstream/pdm/pdmkit/strictjson"
	"github.com/pdmstream/pdm/pdmkit/telemetry"
	"github.com/pdmstream/pdm/scorer/internal/alertview"
	"github.com/pdmstream/pdm/scorer/internal/registry"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Extensions are the Open Inference Protocol extensions the server
// implements, as server metadata lists them.
var Extensions = []string{"binary_tensor_data", "model_repository", "model_configuration"}

// OpenAPI is the API description served at /openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// Alerts is what the API needs from the alert side. Ack reports queued
// when another instance owns the alert and will apply the acknowledgement.
type Alerts interface {
	List(f alertview.Filter) []alert.Alert
	// Subscribe follows every alert event from now on; the channel closes
	// when the subscriber falls behind. The func ends the subscription.
	Subscribe() (<-chan alert.Alert, func())
	Ack(ctx context.Context, id, by, reason string) (a alert.Alert, queued bool, err error)
}

// Options configure the API.
type Options struct {
	// Auth holds the read and write tokens (empty write token: writes are
	// refused; empty read token: reads are open).
	Auth httpauth.Config
	// Decision is the alert decision infer runs over a window, the live
	// scorer's.
	Decision monitor.Config
	// Ready reports whether the scorer is ready (registry read, group joined).
	Ready func(ctx context.Context) error
	// MaxUpload bounds an uploaded artifact. Default model.MaxSize.
	MaxUpload int64
	// Fleet is every asset in the scores topic; nil lists none.
	Fleet Fleet
	// StaleAfter: an asset with nothing scored for this long is stale.
	// Default 2m.
	StaleAfter time.Duration
	// Console, when set, is served at /console/.
	Console http.Handler
}

// API serves the routes.
type API struct {
	opt    Options
	guard  *httpauth.Guard
	reg    *registry.Registry
	alerts Alerts
	log    *slog.Logger
	m      *metrics
}

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	infer    *prometheus.CounterVec
	inferLat *prometheus.HistogramVec
}

// New returns the API; reg may be nil for tests that do not scrape.
func New(opt Options, r *registry.Registry, alerts Alerts, promReg prometheus.Registerer, log *slog.Logger) *API {
	if opt.MaxUpload <= 0 {
		opt.MaxUpload = model.MaxSize
	}
	f := promauto.With(promReg) // registers each series as it is made; nil registers nothing
	m := &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{Name: "pdm_scorer_http_requests_total", Help: "HTTP requests by route and status code."}, []string{"route", "code"}),
		latency: f.NewHistogramVec(prometheus.HistogramOpts{Name: "pdm_scorer_http_request_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"route"}),
		infer: f.NewCounterVec(prometheus.CounterOpts{Name: "pdm_scorer_infer_requests_total", Help: "Inference requests by model, version and outcome."}, []string{"model", "version", "outcome"}),
		inferLat: f.NewHistogramVec(prometheus.HistogramOpts{Name: "pdm_scorer_infer_seconds", Help: "Inference latency by model and version.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}, []string{"model", "version"}),
	}
	if opt.StaleAfter <= 0 {
		opt.StaleAfter = 2 * time.Minute
	}
	if opt.Ready == nil {
		opt.Ready = func(context.Context) error { return nil }
	}
	return &API{opt: opt, guard: httpauth.New(opt.Auth), reg: r, alerts: alerts, log: log, m: m}
}

// LogAuth says, once at start, which tokens guard the API (reads open,
// writes off).
func (a *API) LogAuth(log *slog.Logger) { a.guard.LogMode(log) }

// route is one entry of the table.
type route struct {
	method, path string
	scope        httpauth.Scope
	h            func(a *API, w http.ResponseWriter, r *http.Request)
}

// Scopes, short for the table.
const (
	open  = httpauth.Open
	read  = httpauth.Read
	write = httpauth.Write
)

// routes is every route the API serves besides the telemetry ones.
var routes = []route{
	{"GET", "/v2", open, (*API).serverMetadata},
	{"GET", "/v2/health/live", open, (*API).live},
	{"GET", "/v2/health/ready", open, (*API).ready},
	{"GET", "/v2/models/{name}", read, (*API).modelMetadata},
	{"GET", "/v2/models/{name}/ready", read, (*API).modelReady},
	{"GET", "/v2/models/{name}/versions/{version}", read, (*API).modelMetadata},
	{"GET", "/v2/models/{name}/versions/{version}/ready", read, (*API).modelReady},
	{"GET", "/v2/models/{name}/config", read, (*API).modelConfig},
	{"GET", "/v2/models/{name}/versions/{version}/config", read, (*API).modelConfig},
	{"POST", "/v2/models/{name}/infer", read, (*API).infer},
	{"POST", "/v2/models/{name}/versions/{version}/infer", read, (*API).infer},
	{"POST", "/v2/repository/index", read, (*API).repositoryIndex},
	{"POST", "/v2/repository/models/{name}/load", write, (*API).repositoryLoad},
	{"POST", "/v2/repository/models/{name}/unload", write, (*API).repositoryUnload},
	{"GET", "/v1/models", read, (*API).listModels},
	{"GET", "/v1/models/{name}", read, (*API).getModel},
	{"PUT", "/v1/models/{name}/versions/{version}", write, (*API).upload},
	{"GET", "/v1/models/{name}/versions/{version}/artifact", read, (*API).download},
	{"POST", "/v1/models/{name}/activate", write, (*API).activate},
	{"POST", "/v1/models/{name}/rollback", write, (*API).rollback},
	{"GET", "/v1/models/{name}/shadow", read, (*API).shadowReport},
	{"PUT", "/v1/models/{name}/shadow", write, (*API).setShadow},
	{"PUT", "/v1/assets/{asset}/pin", write, (*API).pin},
	{"GET", "/v1/assets", read, (*API).listAssets},
	{"GET", "/v1/assets/{asset}", read, (*API).getAsset},
	{"GET", "/v1/alerts", read, (*API).listAlerts},
	{"GET", "/v1/alerts/events", read, (*API).alertEvents},
	{"POST", "/v1/alerts/{id}/ack", write, (*API).ack},
	{"GET", "/openapi.json", open, (*API).openapi},
}

// telemetryRoutes are served by pdmkit/telemetry.Handler.
var telemetryRoutes = []route{
	{method: "GET", path: "/metrics"},
	{method: "GET", path: "/healthz"},
	{method: "GET", path: "/readyz"},
}

// Handler returns the complete mux: telemetry plus the API routes, with
// the mux's own answers (no route, method not allowed) in the protocol's
// JSON error shape.
func (a *API) Handler(promReg *prometheus.Registry, checks map[string]telemetry.ReadyFunc) http.Handler {
	mux := telemetry.Handler(promReg, checks)
	for _, rt := range routes {
		mux.Handle(rt.method+" "+rt.path, a.wrap(rt))
	}
	if a.opt.Console != nil {
		mux.Handle("GET /console/", http.StripPrefix("/console", a.opt.Console))
		mux.Handle("GET /console", http.RedirectHandler("/console/", http.StatusMovedPermanently))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == "" {
			w = &unroutedWriter{ResponseWriter: w, r: r}
		}
		mux.ServeHTTP(w, r)
	})
}

// unroutedWriter turns the mux's plain-text 404 and 405 into JSON errors.
type unroutedWriter struct {
	http.ResponseWriter
	r        *http.Request
	replaced bool
}

func (u *unroutedWriter) WriteHeader(code int) {
	switch code {
	case http.StatusNotFound:
		u.replaced = true
		writeError(u.ResponseWriter, code, fmt.Sprintf("no route %s %s (routes: /openapi.json)", u.r.Method, u.r.URL.Path))
	case http.StatusMethodNotAllowed:
		u.replaced = true
		writeError(u.ResponseWriter, code, fmt.Sprintf("method %s not allowed on %s (allowed: %s)", u.r.Method, u.r.URL.Path, u.Header().Get("Allow")))
	default:
		u.ResponseWriter.WriteHeader(code)
	}
}

func (u *unroutedWriter) Write(b []byte) (int, error) {
	if u.replaced {
		return len(b), nil
	}
	return u.ResponseWriter.Write(b)
}

func (a *API) wrap(rt route) http.Handler {
	name := rt.method + " " + rt.path
	lat := a.m.latency.WithLabelValues(name)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		if d := a.guard.Check(r, rt.scope); d != nil {
			d.Write(sw)
		} else {
			rt.h(a, sw, r)
		}
		lat.Observe(time.Since(start).Seconds())
		a.m.requests.WithLabelValues(name, fmt.Sprint(sw.code)).Inc()
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

// Unwrap lets http.ResponseController reach the connection (flushes and
// deadlines of the event stream).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers in the Open Inference Protocol's error shape.
func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// registryError maps registry errors to status codes.
func registryError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, registry.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, registry.ErrRefused):
		writeError(w, http.StatusUnprocessableEntity, err.Error())
	case errors.Is(err, registry.ErrUnloaded):
		// Triton answers a request for a model not loaded with 400.
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, registry.ErrExists), errors.Is(err, registry.ErrNoPrevious), errors.Is(err, registry.ErrInService):
		writeError(w, http.StatusConflict, err.Error())
	default:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	}
}

// decodeBody decodes a JSON body strictly; a missing or bad body is
// answered with what to send (example).
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any, example string) bool {
	raw, err := io.ReadAll(io.LimitReader(r.Body, limit))
	if err == nil {
		err = strictjson.Unmarshal(raw, v)
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			writeError(w, http.StatusBadRequest, "request body is empty: send "+example)
			return false
		}
		writeError(w, http.StatusBadRequest, "request body: "+err.Error()+"; send "+example)
		return false
	}
	return true
}

func (a *API) serverMetadata(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"name": "pdm-scorer", "version": "1", "extensions": Extensions})
}

func (a *API) live(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]bool{"live": true})
}

// ready answers the protocol's server readiness: 200 when ready, a 4xx
// (400, as Triton answers) when not. The admin listener's /readyz says the
// same with 503, for supervisors.
func (a *API) ready(w http.ResponseWriter, r *http.Request) {
	if err := a.opt.Ready(r.Context()); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"ready": false, "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
}

func (a *API) openapi(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(OpenAPI)
}
