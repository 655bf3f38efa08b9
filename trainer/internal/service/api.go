package service

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/pdmstream/pdm/trainer/internal/job"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// routes adds the trainer's API:
//
//	GET  /v1/jobs                 every job record, newest first
//	GET  /v1/jobs/{id}            one record
//	GET  /v1/jobs/{id}/{plot}     a plot of it (loss.png, scores.png)
//	POST /v1/jobs                 {"asset" or "class", "by"}: request a job (bearer token)
func (s *Service) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		recs, err := s.Store().List()
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		s.mu.Lock()
		running := s.running
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"jobs": recs, "running": running})
	})
	mux.HandleFunc("GET /v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		rec, err := s.Store().Get(r.PathValue("id"))
		if errors.Is(err, job.ErrNoJob) {
			writeError(w, http.StatusNotFound, "no job "+r.PathValue("id"))
			return
		}
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, rec)
	})
	mux.HandleFunc("GET /v1/jobs/{id}/{plot}", func(w http.ResponseWriter, r *http.Request) {
		path, err := s.Store().Plot(r.PathValue("id"), r.PathValue("plot"))
		if err != nil {
			writeError(w, http.StatusNotFound, "no plot "+r.PathValue("plot")+" for job "+r.PathValue("id"))
			return
		}
		b, err := os.ReadFile(path)
		if err != nil {
			writeError(w, http.StatusNotFound, "no plot "+r.PathValue("plot")+" for job "+r.PathValue("id"))
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Write(b)
	})
	mux.HandleFunc("POST /v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pdm-trainer"`)
			writeError(w, http.StatusUnauthorized, "a bearer token (trainer http.token) is required to start jobs")
			return
		}
		var b struct {
			Site  string `json:"site"`
			Asset string `json:"asset"`
			Class string `json:"class"`
			By    string `json:"by"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&b); err != nil {
			writeError(w, http.StatusBadRequest, "request body: "+err.Error()+`; send {"asset": "..."} or {"class": "..."}, and "by"`)
			return
		}
		if (b.Asset == "") == (b.Class == "") || b.By == "" {
			writeError(w, http.StatusBadRequest, `send exactly one of "asset" and "class", and "by" (who asks)`)
			return
		}
		req := wire.TrainingRequest{Site: b.Site, Asset: b.Asset, Class: b.Class, Reason: wire.ReasonManual, By: b.By, At: time.Now().UTC()}
		if req.Site == "" {
			req.Site = s.cfg.Class(req.Key()).Job.Site
		}
		if err := s.Request(r.Context(), req); err != nil {
			writeError(w, http.StatusServiceUnavailable, "request not queued: "+err.Error())
			return
		}
		class := s.cfg.Class(req.Key()).Name
		s.log.Info("job requested", "class", class, "by", b.By)
		writeJSON(w, http.StatusAccepted, map[string]any{"request": req, "job": job.ID(class, req.At)})
	})
}

func (s *Service) authorized(r *http.Request) bool {
	if s.cfg.HTTP.Token == "" {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(s.cfg.HTTP.Token)) == 1
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
