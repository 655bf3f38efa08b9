package service

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pdmstream/pdm/trainer/internal/config"
)

// TestAPIScopes: the job records need the read token once one is set, a
// read token cannot start a job, and a trainer without a write token
// refuses every POST as "writes are disabled", not as a wrong token.
func TestAPIScopes(t *testing.T) {
	serve := func(read, write string) *httptest.Server {
		cfg := config.Default()
		cfg.DataDir = t.TempDir()
		cfg.HTTP.ReadToken, cfg.HTTP.Token = read, write
		s, err := New(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(s.Handler())
		t.Cleanup(srv.Close)
		return srv
	}
	do := func(srv *httptest.Server, method, path, tok string) (int, string) {
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
	both, writesOff := serve("r", "w"), serve("r", "")
	for _, tc := range []struct {
		srv          *httptest.Server
		method, path string
		tok          string
		code         int
		msg          string
	}{
		{both, "GET", "/v1/jobs", "", 401, "read scope is required"},
		{both, "GET", "/v1/jobs", "x", 401, "invalid token"},
		{both, "GET", "/v1/jobs", "r", 200, ""},
		{both, "GET", "/v1/jobs", "w", 200, ""},
		{both, "GET", "/v1/jobs/none/loss.png", "", 401, "read scope is required"},
		{both, "POST", "/v1/jobs", "r", 403, "needs the write token"},
		// Past the guard: the empty request is refused for what it lacks.
		{both, "POST", "/v1/jobs", "w", 400, `exactly one of "asset" and "class"`},
		{both, "GET", "/healthz", "", 200, ""},
		{writesOff, "POST", "/v1/jobs", "w", 403, "writes are disabled on this server: set http.token (PDM_TRAINER_TOKEN)"},
	} {
		code, msg := do(tc.srv, tc.method, tc.path, tc.tok)
		if code != tc.code || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s %s with %q: %d %q, want %d %q", tc.method, tc.path, tc.tok, code, msg, tc.code, tc.msg)
		}
	}
}

// FuzzJobsAPI sends any body to POST /v1/jobs: it never panics, answers
// only 202 (queued), 400 (what to send), 413 (too large) or 503 (the
// request topic is unreachable: no Kafka here, and each request gives up
// within 50 ms), and always in JSON.
func FuzzJobsAPI(f *testing.F) {
	for _, seed := range []string{`{"asset":"pump-1","by":"op"}`, `{"class":"pumps","by":"op"}`, `{"asset":"a","class":"c","by":"op"}`,
		`{"asset":"pump-1","by":"op","by":"x"}`, `{"asset":1}`, `{}`, `null`, `[]`, "\xff", strings.Repeat(" ", 5000)} {
		f.Add([]byte(seed))
	}
	cfg := config.Default()
	cfg.DataDir = f.TempDir()
	cfg.Kafka.Brokers = []string{"127.0.0.1:1"} // nothing listens
	cfg.HTTP.Token = "w"
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	h := s.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, "POST", "/v1/jobs", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer w")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusAccepted, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusServiceUnavailable:
		default:
			t.Fatalf("POST /v1/jobs with %q: %d %s", body, rec.Code, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) || !strings.Contains(rec.Header().Get("Content-Type"), "json") {
			t.Fatalf("POST /v1/jobs with %q: answer %d is not JSON: %q", body, rec.Code, rec.Body)
		}
	})
}
