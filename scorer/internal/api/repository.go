package api

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sort"

	"github.com/pdmstream/pdm/pdmkit/strictjson"
)

// The model repository extension. The registry topic is the repository:
// every registered version of a loaded model is READY in every scorer; a
// model unloaded (a control record, so every instance agrees) lists its
// versions as UNAVAILABLE "unloaded" and refuses inference, activation,
// pins and shadowing until it is loaded again; unloading a model that
// scores assets is refused with what uses it. Artifacts the registry
// refused are UNAVAILABLE with the reason. Load and unload are writes.

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
		if err := strictjson.Unmarshal(raw, &b); err != nil {
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
			registered[v.Version] = true
			if m.Unloaded {
				if !b.Ready {
					out = append(out, repositoryEntry{Name: m.Name, Version: v.Version, State: "UNAVAILABLE", Reason: "unloaded"})
				}
				continue
			}
			out = append(out, repositoryEntry{Name: m.Name, Version: v.Version, State: "READY", Reason: m.Refused[v.Version]})
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
	if _, err := a.reg.Load(r.Context(), r.PathValue("name")); err != nil {
		registryError(w, err)
		return
	}
	a.log.Info("model loaded", "model", r.PathValue("name"))
	writeJSON(w, http.StatusOK, map[string]any{})
}

func (a *API) repositoryUnload(w http.ResponseWriter, r *http.Request) {
	if _, err := a.reg.Unload(r.Context(), r.PathValue("name")); err != nil {
		registryError(w, err)
		return
	}
	a.log.Info("model unloaded", "model", r.PathValue("name"))
	writeJSON(w, http.StatusOK, map[string]any{})
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
