package agent

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/pdmstream/pdm/edge-agent/internal/sim"
	"github.com/pdmstream/pdm/pdmkit/httpauth"
	"github.com/pdmstream/pdm/pdmkit/telemetry"
)

// Handler serves /metrics, /healthz, /readyz and the control API:
//
//	GET  /v1/assets                          state and ground truth of every asset (read)
//	POST /v1/assets/{asset}/degrade?mode=M   start mode M now (optional ttf=48h, simulated; write)
//	POST /v1/assets/{asset}/repair           end every fault of the asset (write)
//	POST /v1/assets/{asset}/setpoint?load=L  run the asset at mean load L (0.3..1) from now on (write)
//
// The scopes are pdmkit/httpauth's: http.read_token and http.token.
func (a *Agent) Handler() http.Handler {
	mux := telemetry.Handler(a.reg, map[string]telemetry.ReadyFunc{"mqtt": a.Ready})
	g := a.guard
	mux.Handle("GET /v1/assets", g.Wrap(httpauth.Read, http.HandlerFunc(a.listAssets)))
	mux.Handle("POST /v1/assets/{asset}/degrade", g.Wrap(httpauth.Write, http.HandlerFunc(a.degrade)))
	mux.Handle("POST /v1/assets/{asset}/repair", g.Wrap(httpauth.Write, http.HandlerFunc(a.repair)))
	mux.Handle("POST /v1/assets/{asset}/setpoint", g.Wrap(httpauth.Write, http.HandlerFunc(a.setPoint)))
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

type csvState struct {
	Asset string `json:"asset"`
	Kind  string `json:"kind"`
	File  string `json:"file"`
}

func (a *Agent) listAssets(w http.ResponseWriter, _ *http.Request) {
	out := []any{}
	for _, s := range a.assets {
		out = append(out, s.State())
	}
	if a.csv != nil {
		out = append(out, csvState{Asset: a.cfg.CSV.Asset, Kind: "csv", File: a.cfg.CSV.File})
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *Agent) degrade(w http.ResponseWriter, r *http.Request) {
	s, ok := a.byID[r.PathValue("asset")]
	if !ok {
		writeErr(w, http.StatusNotFound, errors.New("unknown simulated asset"))
		return
	}
	var ttf time.Duration
	if v := r.URL.Query().Get("ttf"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			writeErr(w, http.StatusBadRequest, errors.New("ttf must be a positive duration such as 48h"))
			return
		}
		ttf = d
	}
	f, err := s.Degrade(r.URL.Query().Get("mode"), ttf, time.Now())
	switch {
	case errors.Is(err, sim.ErrMode):
		writeErr(w, http.StatusBadRequest, err)
	case errors.Is(err, sim.ErrActive):
		writeErr(w, http.StatusConflict, err)
	case err != nil:
		writeErr(w, http.StatusInternalServerError, err)
	default:
		writeJSON(w, http.StatusOK, f)
	}
}

func (a *Agent) repair(w http.ResponseWriter, r *http.Request) {
	s, ok := a.byID[r.PathValue("asset")]
	if !ok {
		writeErr(w, http.StatusNotFound, errors.New("unknown simulated asset"))
		return
	}
	ended := s.Repair(time.Now())
	if ended == nil {
		ended = []sim.Fault{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"asset": s.ID(), "repaired": ended})
}

func (a *Agent) setPoint(w http.ResponseWriter, r *http.Request) {
	s, ok := a.byID[r.PathValue("asset")]
	if !ok {
		writeErr(w, http.StatusNotFound, errors.New("unknown simulated asset"))
		return
	}
	load, err := strconv.ParseFloat(r.URL.Query().Get("load"), 64)
	if err != nil {
		writeErr(w, http.StatusBadRequest, errors.New("load must be a number in [0.3, 1]"))
		return
	}
	prev, err := s.SetPoint(load)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"asset": s.ID(), "load": load, "previous": prev})
}
