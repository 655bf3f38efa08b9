package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/pdmstream/pdm/pdmkit/httpauth"
	"github.com/pdmstream/pdm/pdmkit/strictjson"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/pdmstream/pdm/trainer/internal/job"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// routes adds the trainer's API:
//
//	GET  /v1/jobs                 every job record, newest first
//	GET  /v1/jobs/{id}            one record
//	GET  /v1/jobs/{id}/{plot}     a plot of it (loss.png, scores.png)
//	POST /v1/jobs                 {"asset" or "class", "by"}: request a job
//
// The GETs have read scope, POST write scope (pdmkit/httpauth): reads need
// http.read_token once one is set, POST always http.token.
func (s *Service) routes(mux *http.ServeMux) {
	handle := func(pattern string, scope httpauth.Scope, h http.HandlerFunc) {
		mux.Handle(pattern, s.guard.Wrap(scope, h))
	}
	handle("GET /v1/jobs", httpauth.Read, func(w http.ResponseWriter, r *http.Request) {
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
	handle("GET /v1/jobs/{id}", httpauth.Read, func(w http.ResponseWriter, r *http.Request) {
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
	handle("GET /v1/jobs/{id}/{plot}", httpauth.Read, func(w http.ResponseWriter, r *http.Request) {
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
	handle("POST /v1/jobs", httpauth.Write, func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			Site  string `json:"site"`
			Asset string `json:"asset"`
			Class string `json:"class"`
			By    string `json:"by"`
		}
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4096))
		if tooLarge := new(http.MaxBytesError); errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", tooLarge.Limit))
			return
		}
		if err == nil {
			err = strictjson.Unmarshal(raw, &b)
		}
		if err != nil {
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
