package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/pdmstream/pdm/pdmkit/monitor"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/pdmstream/pdm/scorer/internal/registry"
)

// tensor is an Open Inference Protocol tensor. Data is row-major.
type tensor struct {
	Name       string         `json:"name"`
	Shape      []int          `json:"shape"`
	Datatype   string         `json:"datatype"`
	Parameters map[string]any `json:"parameters,omitempty"`
	Data       any            `json:"data,omitempty"`
}

type inferInput struct {
	Name       string         `json:"name"`
	Shape      []int          `json:"shape"`
	Datatype   string         `json:"datatype"`
	Parameters map[string]any `json:"parameters,omitempty"`
	// Data is flat or nested, row-major; absent when the tensor travels
	// as binary data (parameter binary_data_size).
	Data json.RawMessage `json:"data,omitempty"`
}

type requestedOutput struct {
	Name       string         `json:"name"`
	Parameters map[string]any `json:"parameters,omitempty"`
}

type inferRequest struct {
	ID         string            `json:"id,omitempty"`
	Parameters map[string]any    `json:"parameters,omitempty"`
	Inputs     []inferInput      `json:"inputs"`
	Outputs    []requestedOutput `json:"outputs,omitempty"`
}

type inferResponse struct {
	ModelName    string   `json:"model_name"`
	ModelVersion string   `json:"model_version"`
	ID           string   `json:"id,omitempty"`
	Outputs      []tensor `json:"outputs"`
}

// window is an inference request's readings, as columns.
type window struct {
	n       int
	times   []time.Time
	sensors map[string][]float64
	// batched is set when every input had the shape [1, n]; the outputs
	// then keep the leading batch dimension.
	batched bool
}

// TimestampInput is the optional input holding each reading's time in
// milliseconds since the Unix epoch; without it readings are one second
// apart from the epoch.
const TimestampInput = "timestamp"

// MaxInferRows bounds the readings of one inference request.
const MaxInferRows = 100_000

func (a *API) version(w http.ResponseWriter, r *http.Request) (*registry.Version, bool) {
	name, version := r.PathValue("name"), r.PathValue("version")
	v, err := a.reg.Lookup(r.Context(), name, version)
	if err != nil {
		if m, ok := a.reg.Model(name); ok && version == "" && m.Active == "" {
			var have []string
			for _, vi := range m.Versions {
				have = append(have, vi.Version)
			}
			writeError(w, http.StatusNotFound, fmt.Sprintf("model %s has no active version (versions %v): activate one with POST /v1/models/%s/activate, or name it: /v2/models/%s/versions/{version}/...", name, have, name, name))
			return nil, false
		}
		registryError(w, err)
		return nil, false
	}
	return v, true
}

func (a *API) modelMetadata(w http.ResponseWriter, r *http.Request) {
	v, ok := a.version(w, r)
	if !ok {
		return
	}
	info, _ := a.reg.Model(v.Name)
	versions := make([]string, 0, len(info.Versions))
	for _, vi := range info.Versions {
		versions = append(versions, vi.Version)
	}
	inputs := make([]map[string]any, 0, len(v.Features)+1)
	for _, f := range v.Features {
		inputs = append(inputs, map[string]any{"name": f, "datatype": "FP64", "shape": []int{-1}})
	}
	inputs = append(inputs, map[string]any{"name": TimestampInput, "datatype": "INT64", "shape": []int{-1}, "parameters": map[string]any{"optional": true, "unit": "ms since epoch"}})
	writeJSON(w, http.StatusOK, map[string]any{
		"name": v.Name, "versions": versions, "platform": "pdm-" + string(v.Kind),
		"parameters": map[string]any{"version": v.Version, "sha256": v.SHA256, "window": v.Artifact.Window, "active": info.Active},
		"inputs":     inputs,
		"outputs": []map[string]any{
			{"name": "score", "datatype": "FP64", "shape": []int{-1}},
			{"name": "alert", "datatype": "BOOL", "shape": []int{-1}},
			{"name": "warming_up", "datatype": "BOOL", "shape": []int{-1}},
			{"name": "contributions", "datatype": "FP64", "shape": []int{-1, len(v.Features)}},
			{"name": "ttf_seconds", "datatype": "FP64", "shape": []int{-1}},
			{"name": "ttf_low_seconds", "datatype": "FP64", "shape": []int{-1}},
			{"name": "ttf_high_seconds", "datatype": "FP64", "shape": []int{-1}},
		},
	})
}

func (a *API) modelReady(w http.ResponseWriter, r *http.Request) {
	v, ok := a.version(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": v.Name, "version": v.Version, "ready": true})
}

// outputNames are the outputs infer returns, in order.
var outputNames = []string{"score", "alert", "warming_up", "contributions", "ttf_seconds", "ttf_low_seconds", "ttf_high_seconds"}

// infer runs a window of readings through a fresh detector of the version
// and returns one result per reading.
func (a *API) infer(w http.ResponseWriter, r *http.Request) {
	v, ok := a.version(w, r)
	if !ok {
		return
	}
	start := time.Now()
	outcome := "error"
	defer func() {
		a.m.infer.WithLabelValues(v.Name, v.Version, outcome).Inc()
		a.m.inferLat.WithLabelValues(v.Name, v.Version).Observe(time.Since(start).Seconds())
	}()
	header, bin, err := readInferBody(r)
	if errors.Is(err, errInferTooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, err.Error())
		return
	} else if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var req inferRequest
	if err := decodeInferRequest(header, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	binaryOut, err := selectOutputs(&req)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	win, err := readings(&req, bin)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var missing []string
	for _, f := range v.Features {
		if _, ok := win.sensors[f]; !ok {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("inputs lack %v required by %s %s (features %v)", missing, v.Name, v.Version, v.Features))
		return
	}
	det, err := v.New()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "build detector: "+err.Error())
		return
	}
	mon, err := monitor.New(det, a.opt.Decision)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "alert decision: "+err.Error())
		return
	}
	n, f := win.n, len(v.Features)
	score := make([]float64, n)
	alerts := make([]bool, n)
	warm := make([]bool, n)
	contrib := make([]float64, n*f)
	ttf, low, high := make([]float64, n), make([]float64, n), make([]float64, n)
	row := make(map[string]float64, len(win.sensors))
	for i := range n {
		for name, col := range win.sensors {
			row[name] = col[i]
		}
		res, err := mon.Observe(&wire.Reading{Asset: "infer", Seq: uint64(i + 1), Time: win.times[i], Sensors: row})
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("reading %d: %v", i, err))
			return
		}
		score[i], alerts[i], warm[i] = res.Score, res.Open, res.WarmingUp
		for _, c := range res.Contributions {
			if j := slices.Index(v.Features, c.Sensor); j >= 0 {
				contrib[i*f+j] = c.Share
			}
		}
		ttf[i], low[i], high[i] = -1, -1, -1
		if res.Forecast != nil {
			ttf[i], low[i], high[i] = res.Forecast.TimeToFailure, res.Forecast.Low, res.Forecast.High
		}
	}
	outcome = "ok"
	shape, cshape := []int{n}, []int{n, f}
	if win.batched {
		shape, cshape = []int{1, n}, []int{1, n, f}
	}
	all := []tensor{
		{Name: "score", Shape: shape, Datatype: "FP64", Data: score},
		{Name: "alert", Shape: shape, Datatype: "BOOL", Data: alerts},
		{Name: "warming_up", Shape: shape, Datatype: "BOOL", Data: warm},
		{Name: "contributions", Shape: cshape, Datatype: "FP64", Data: contrib, Parameters: map[string]any{"sensors": v.Features}},
		{Name: "ttf_seconds", Shape: shape, Datatype: "FP64", Data: ttf, Parameters: map[string]any{"none": -1}},
		{Name: "ttf_low_seconds", Shape: shape, Datatype: "FP64", Data: low},
		{Name: "ttf_high_seconds", Shape: shape, Datatype: "FP64", Data: high},
	}
	resp := inferResponse{ModelName: v.Name, ModelVersion: v.Version, ID: req.ID}
	var bins []bool
	for i, t := range all {
		if binaryOut[i] != nil {
			resp.Outputs = append(resp.Outputs, t)
			bins = append(bins, *binaryOut[i])
		}
	}
	writeInferResponse(w, &resp, bins)
}

// selectOutputs returns, for each of outputNames, nil when it is not to be
// returned, or whether it travels as binary data. Without requested
// outputs every output is returned, as binary when the request parameter
// binary_data_output is true.
func selectOutputs(req *inferRequest) ([]*bool, error) {
	all, err := boolParam(req.Parameters, paramBinaryOutput)
	if err != nil {
		return nil, err
	}
	sel := make([]*bool, len(outputNames))
	if len(req.Outputs) == 0 {
		for i := range sel {
			sel[i] = &all
		}
		return sel, nil
	}
	for _, o := range req.Outputs {
		i := slices.Index(outputNames, o.Name)
		if i < 0 {
			return nil, fmt.Errorf("output %q is not an output of the model (outputs %v)", o.Name, outputNames)
		}
		b := all
		if _, set := o.Parameters[paramBinary]; set {
			if b, err = boolParam(o.Parameters, paramBinary); err != nil {
				return nil, fmt.Errorf("output %q: %w", o.Name, err)
			}
		}
		sel[i] = &b
	}
	return sel, nil
}

// readings checks the request's tensors, JSON or binary, and returns them
// as columns.
func readings(req *inferRequest, bin []byte) (window, error) {
	if len(req.Inputs) == 0 {
		return window{}, errors.New("no inputs: send one FP64 or FP32 tensor of shape [n] (or [1, n]) per sensor")
	}
	win := window{n: -1, sensors: make(map[string][]float64, len(req.Inputs)), batched: true}
	var ts []float64
	for i := range req.Inputs {
		in := &req.Inputs[i]
		size, batched, err := rows(in)
		if err != nil {
			return window{}, err
		}
		win.batched = win.batched && batched
		data, err := tensorValues(in, size, &bin)
		if err != nil {
			return window{}, err
		}
		if win.n >= 0 && size != win.n {
			return window{}, fmt.Errorf("input %q has %d values, others %d", in.Name, size, win.n)
		}
		win.n = size
		for i, x := range data {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return window{}, fmt.Errorf("input %q value %d is not finite", in.Name, i)
			}
		}
		if in.Name == TimestampInput {
			ts = data
			continue
		}
		if _, dup := win.sensors[in.Name]; dup || in.Name == "" {
			return window{}, fmt.Errorf("input name %q empty or repeated", in.Name)
		}
		win.sensors[in.Name] = data
	}
	if len(bin) > 0 {
		return window{}, fmt.Errorf("%d bytes of binary data after the last input's binary_data_size", len(bin))
	}
	if len(win.sensors) == 0 {
		return window{}, errors.New("no sensor inputs besides the timestamp")
	}
	win.times = make([]time.Time, win.n)
	for i := range win.n {
		if ts != nil {
			win.times[i] = time.UnixMilli(int64(ts[i])).UTC()
		} else {
			win.times[i] = time.Unix(int64(i), 0).UTC()
		}
	}
	return win, nil
}

// rows returns how many readings an input's shape holds: [n], [n, 1] or
// [1, n] (a batch of one window); batched reports the last form.
func rows(in *inferInput) (n int, batched bool, err error) {
	s := in.Shape
	switch {
	case len(s) == 1 && s[0] >= 1:
		n = s[0]
	case len(s) == 2 && s[0] == 1 && s[1] >= 1:
		n, batched = s[1], true
	case len(s) == 2 && s[1] == 1 && s[0] >= 1:
		n = s[0]
	default:
		return 0, false, fmt.Errorf("input %q: shape %v: want [n], [1, n] or [n, 1] with n ≥ 1", in.Name, s)
	}
	if n > MaxInferRows {
		return 0, false, fmt.Errorf("input %q: %d readings (limit %d)", in.Name, n, MaxInferRows)
	}
	return n, batched, nil
}

func (a *API) listModels(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"models": a.reg.Models(), "control": a.reg.Control()})
}

func (a *API) getModel(w http.ResponseWriter, r *http.Request) {
	m, ok := a.reg.Model(r.PathValue("name"))
	if !ok {
		writeError(w, http.StatusNotFound, "model "+r.PathValue("name")+" not found")
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (a *API) upload(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, a.opt.MaxUpload+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "read artifact: "+err.Error())
		return
	}
	if int64(len(raw)) > a.opt.MaxUpload {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("artifact larger than %d bytes", a.opt.MaxUpload))
		return
	}
	v, err := a.reg.Upload(r.Context(), r.PathValue("name"), r.PathValue("version"), raw)
	if err != nil {
		a.log.Warn("upload refused", "model", r.PathValue("name"), "version", r.PathValue("version"), "err", err)
		registryError(w, err)
		return
	}
	a.log.Info("model uploaded", "model", v.Name, "version", v.Version, "sha256", v.SHA256, "signed_by", v.SignedBy)
	resp := map[string]any{"name": v.Name, "version": v.Version, "sha256": v.SHA256, "features": v.Features}
	if v.SignedBy != "" {
		resp["signed_by"] = v.SignedBy
	}
	writeJSON(w, http.StatusCreated, resp)
}

func (a *API) download(w http.ResponseWriter, r *http.Request) {
	v, ok := a.version(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(v.Raw)
}

type versionBody struct {
	Version string `json:"version"`
}

type activateBody struct {
	Version string `json:"version"`
	registry.Scope
}

func (a *API) activate(w http.ResponseWriter, r *http.Request) {
	var b activateBody
	if !decodeBody(w, r, 64<<10, &b, `{"version": "<version>"} with a scope: "site": "<site>", "class": "<asset-id pattern, e.g. pump-*>", "assets": ["<asset>", ...] or "default": true`) {
		return
	}
	c, err := a.reg.Activate(r.Context(), r.PathValue("name"), b.Version, b.Scope)
	if err != nil {
		registryError(w, err)
		return
	}
	a.log.Info("model activated", "model", r.PathValue("name"), "version", b.Version, "default", b.Default, "site", b.Site, "class", b.Class, "assets", len(b.Assets), "scoring", len(c.Scoring))
	writeJSON(w, http.StatusOK, c)
}

func (a *API) rollback(w http.ResponseWriter, r *http.Request) {
	c, err := a.reg.Rollback(r.Context(), r.PathValue("name"))
	if err != nil {
		registryError(w, err)
		return
	}
	a.log.Info("model rolled back", "model", r.PathValue("name"), "active", c.Active[r.PathValue("name")])
	writeJSON(w, http.StatusOK, c)
}

func (a *API) setShadow(w http.ResponseWriter, r *http.Request) {
	var b versionBody
	if !decodeBody(w, r, 4096, &b, `{"version": "<version>"} ("" ends shadowing)`) {
		return
	}
	c, err := a.reg.Shadow(r.Context(), r.PathValue("name"), b.Version)
	if err != nil {
		registryError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (a *API) shadowReport(w http.ResponseWriter, r *http.Request) {
	st, ok := a.reg.ShadowReport(r.PathValue("name"))
	if !ok {
		writeError(w, http.StatusNotFound, "model "+r.PathValue("name")+" has no shadow version")
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (a *API) pin(w http.ResponseWriter, r *http.Request) {
	var b registry.Pin
	if !decodeBody(w, r, 4096, &b, `{"model": "<model>", "version": "<version, or empty for the active one>"} ({"model": ""} removes the pin)`) {
		return
	}
	c, err := a.reg.Pin(r.Context(), r.PathValue("asset"), b.Model, b.Version)
	if err != nil {
		registryError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}
