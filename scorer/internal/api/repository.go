package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
)

// The model repository extension: every registered version is loaded in
// every scorer (the registry topic is what is loaded), so the index lists
// them all as READY and artifacts the registry refused as UNAVAILABLE
// with the reason; load
// of a registered model succeeds without doing anything, and unload is
// refused, since versions leave service by activation, rollback or pins.

type repositoryEntry struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	State   string `json:"state"`
	Reason  string `json:"reason,omitempty"`
}

func (a *API) repositoryIndex(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Ready bool `json:"ready"`
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 4096))
	if err != nil {
		writeError(w, http.StatusBadRequest, "request body: "+err.Error())
		return
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&b); err != nil {
			writeError(w, http.StatusBadRequest, `request body: `+err.Error()+` (send nothing, {} or {"ready": true})`)
			return
		}
	}
	out := []repositoryEntry{}
	for _, m := range a.reg.Models() {
		registered := map[string]bool{}
		for _, v := range m.Versions {
			// A registered version a scorer found unfit for an asset
			// stays loaded; the reason is shown beside it.
			out = append(out, repositoryEntry{Name: m.Name, Version: v.Version, State: "READY", Reason: m.Refused[v.Version]})
			registered[v.Version] = true
		}
		if b.Ready {
			continue
		}
		vs := make([]string, 0, len(m.Refused))
		for v := range m.Refused {
			if !registered[v] {
				vs = append(vs, v)
			}
		}
		sort.Strings(vs)
		for _, v := range vs {
			out = append(out, repositoryEntry{Name: m.Name, Version: v, State: "UNAVAILABLE", Reason: m.Refused[v]})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) repositoryLoad(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if m, ok := a.reg.Model(name); !ok || len(m.Versions) == 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("model %s has no registered version: upload one with PUT /v1/models/%s/versions/{version}", name, name))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

func (a *API) repositoryUnload(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, ok := a.reg.Model(name); !ok {
		writeError(w, http.StatusNotFound, "model "+name+" not found")
		return
	}
	writeError(w, http.StatusBadRequest, fmt.Sprintf("model %s: registered versions stay loaded in every scorer; take a version out of service with POST /v1/models/%s/rollback, another activation, or PUT /v1/assets/{asset}/pin", name, name))
}

// modelConfig answers the model configuration extension in Triton's
// shape: inputs and outputs with TYPE_ datatypes and dims, no batching
// (a window is one request; [1, n] is accepted as well as [n]).
func (a *API) modelConfig(w http.ResponseWriter, r *http.Request) {
	v, ok := a.version(w, r)
	if !ok {
		return
	}
	inputs := make([]map[string]any, 0, len(v.Features)+1)
	for _, f := range v.Features {
		inputs = append(inputs, map[string]any{"name": f, "data_type": "TYPE_FP64", "dims": []int{-1}})
	}
	inputs = append(inputs, map[string]any{"name": TimestampInput, "data_type": "TYPE_INT64", "dims": []int{-1}, "optional": true})
	outputs := []map[string]any{}
	for _, o := range outputNames {
		dt, dims := "TYPE_FP64", []int{-1}
		switch o {
		case "alert", "warming_up":
			dt = "TYPE_BOOL"
		case "contributions":
			dims = []int{-1, len(v.Features)}
		}
		outputs = append(outputs, map[string]any{"name": o, "data_type": dt, "dims": dims})
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"name": v.Name, "platform": "pdm-" + string(v.Kind), "backend": "pdm", "max_batch_size": 0,
		"version_policy": map[string]any{"specific": map[string]any{"versions": []string{v.Version}}},
		"input":          inputs, "output": outputs,
		"parameters": map[string]any{
			"window":   map[string]any{"string_value": fmt.Sprint(v.Artifact.Window)},
			"sha256":   map[string]any{"string_value": v.SHA256},
			"features": map[string]any{"string_value": fmt.Sprint(v.Features)},
		},
	})
}
