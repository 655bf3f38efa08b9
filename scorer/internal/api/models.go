package api

import (
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
	Data       any            `json:"data"`
}

type inferInput struct {
	Name       string         `json:"name"`
	Shape      []int          `json:"shape"`
	Datatype   string         `json:"datatype"`
	Parameters map[string]any `json:"parameters,omitempty"`
	Data       []float64      `json:"data"`
}

type inferRequest struct {
	ID         string           `json:"id,omitempty"`
	Parameters map[string]any   `json:"parameters,omitempty"`
	Inputs     []inferInput     `json:"inputs"`
	Outputs    []map[string]any `json:"outputs,omitempty"`
}

type inferResponse struct {
	ModelName    string   `json:"model_name"`
	ModelVersion string   `json:"model_version"`
	ID           string   `json:"id,omitempty"`
	Outputs      []tensor `json:"outputs"`
}

// TimestampInput is the optional input holding each reading's time in
// milliseconds since the Unix epoch; without it readings are one second
// apart from the epoch.
const TimestampInput = "timestamp"

// MaxInferRows bounds the readings of one inference request.
const MaxInferRows = 100_000

func (a *API) version(w http.ResponseWriter, r *http.Request) (*registry.Version, bool) {
	v, err := a.reg.Lookup(r.PathValue("name"), r.PathValue("version"))
	if err != nil {
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
	var req inferRequest
	if !decodeBody(w, r, 64<<20, &req) {
		return
	}
	n, times, sensors, err := readings(&req)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var missing []string
	for _, f := range v.Features {
		if _, ok := sensors[f]; !ok {
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
	f := len(v.Features)
	score := make([]float64, n)
	alerts := make([]bool, n)
	warm := make([]bool, n)
	contrib := make([]float64, n*f)
	ttf, low, high := make([]float64, n), make([]float64, n), make([]float64, n)
	row := make(map[string]float64, len(sensors))
	for i := range n {
		for name, col := range sensors {
			row[name] = col[i]
		}
		res, err := mon.Observe(&wire.Reading{Asset: "infer", Seq: uint64(i + 1), Time: times[i], Sensors: row})
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
	writeJSON(w, http.StatusOK, inferResponse{
		ModelName: v.Name, ModelVersion: v.Version, ID: req.ID,
		Outputs: []tensor{
			{Name: "score", Shape: []int{n}, Datatype: "FP64", Data: score},
			{Name: "alert", Shape: []int{n}, Datatype: "BOOL", Data: alerts},
			{Name: "warming_up", Shape: []int{n}, Datatype: "BOOL", Data: warm},
			{Name: "contributions", Shape: []int{n, f}, Datatype: "FP64", Data: contrib, Parameters: map[string]any{"sensors": v.Features}},
			{Name: "ttf_seconds", Shape: []int{n}, Datatype: "FP64", Data: ttf, Parameters: map[string]any{"none": -1}},
			{Name: "ttf_low_seconds", Shape: []int{n}, Datatype: "FP64", Data: low},
			{Name: "ttf_high_seconds", Shape: []int{n}, Datatype: "FP64", Data: high},
		},
	})
}

// readings checks the request's tensors and returns them as columns.
func readings(req *inferRequest) (int, []time.Time, map[string][]float64, error) {
	if len(req.Inputs) == 0 {
		return 0, nil, nil, errors.New("no inputs: send one FP64 tensor of shape [n] per sensor")
	}
	n := -1
	cols := make(map[string][]float64, len(req.Inputs))
	var ts []float64
	for _, in := range req.Inputs {
		switch in.Datatype {
		case "FP64", "FP32", "INT64", "INT32", "UINT64", "UINT32":
		default:
			return 0, nil, nil, fmt.Errorf("input %q: datatype %q is not numeric", in.Name, in.Datatype)
		}
		size := 1
		for _, d := range in.Shape {
			size *= d
		}
		if len(in.Shape) == 0 || len(in.Shape) > 2 || (len(in.Shape) == 2 && in.Shape[1] != 1) || size != len(in.Data) || size < 1 {
			return 0, nil, nil, fmt.Errorf("input %q: shape %v does not hold %d values as [n]", in.Name, in.Shape, len(in.Data))
		}
		if n >= 0 && len(in.Data) != n {
			return 0, nil, nil, fmt.Errorf("input %q has %d values, others %d", in.Name, len(in.Data), n)
		}
		n = len(in.Data)
		if n > MaxInferRows {
			return 0, nil, nil, fmt.Errorf("%d readings (limit %d)", n, MaxInferRows)
		}
		for i, x := range in.Data {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return 0, nil, nil, fmt.Errorf("input %q value %d is not finite", in.Name, i)
			}
		}
		if in.Name == TimestampInput {
			ts = in.Data
			continue
		}
		if _, dup := cols[in.Name]; dup || in.Name == "" {
			return 0, nil, nil, fmt.Errorf("input name %q empty or repeated", in.Name)
		}
		cols[in.Name] = in.Data
	}
	if len(cols) == 0 {
		return 0, nil, nil, errors.New("no sensor inputs besides the timestamp")
	}
	times := make([]time.Time, n)
	for i := range n {
		if ts != nil {
			times[i] = time.UnixMilli(int64(ts[i])).UTC()
		} else {
			times[i] = time.Unix(int64(i), 0).UTC()
		}
	}
	return n, times, cols, nil
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
	a.log.Info("model uploaded", "model", v.Name, "version", v.Version, "sha256", v.SHA256)
	writeJSON(w, http.StatusCreated, map[string]any{"name": v.Name, "version": v.Version, "sha256": v.SHA256, "features": v.Features})
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
	if !decodeBody(w, r, 64<<10, &b) {
		return
	}
	c, err := a.reg.Activate(r.Context(), r.PathValue("name"), b.Version, b.Scope)
	if err != nil {
		registryError(w, err)
		return
	}
	a.log.Info("model activated", "model", r.PathValue("name"), "version", b.Version, "default", b.Default, "assets", len(b.Assets))
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
	if !decodeBody(w, r, 4096, &b) {
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
	if !decodeBody(w, r, 4096, &b) {
		return
	}
	c, err := a.reg.Pin(r.Context(), r.PathValue("asset"), b.Model, b.Version)
	if err != nil {
		registryError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}
