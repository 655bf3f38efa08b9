package console

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestServesEmbeddedFiles(t *testing.T) {
	h, err := Handler(Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/console", h))
	defer srv.Close()
	for path, want := range map[string]string{
		"/console/":          `<script src="app.js"`,
		"/console/app.js":    "/v1/alerts/events",
		"/console/style.css": "--stale",
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s: %s, body lacks %q", path, resp.Status, want)
		}
		if resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("%s: no content security policy", path)
		}
	}
	if resp, err := http.Get(srv.URL + "/console/nope.js"); err != nil || resp.StatusCode != 404 {
		t.Errorf("unknown file: %v %v", resp, err)
	}
}

// Without a trainer the page is told of none and images come only from
// the console; with one, its origin (not its path) is allowed for images
// and the page learns its address.
func TestTrainerPlotsConfig(t *testing.T) {
	get := func(opt Options) (http.Header, map[string]any) {
		t.Helper()
		h, err := Handler(opt)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(http.StripPrefix("/console", h))
		defer srv.Close()
		resp, err := http.Get(srv.URL + "/console/config.json")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("config.json: %s %q %v", resp.Status, resp.Header.Get("Content-Type"), err)
		}
		return resp.Header, body
	}
	hdr, body := get(Options{})
	if len(body) != 0 || !strings.Contains(hdr.Get("Content-Security-Policy"), "img-src 'self' data:;") {
		t.Errorf("no trainer: %v, policy %q", body, hdr.Get("Content-Security-Policy"))
	}
	hdr, body = get(Options{TrainerURL: "https://ops.example:8443/trainer/"})
	if body["trainer_url"] != "https://ops.example:8443/trainer" || !strings.Contains(hdr.Get("Content-Security-Policy"), "img-src 'self' data: https://ops.example:8443;") {
		t.Errorf("trainer: %v, policy %q", body, hdr.Get("Content-Security-Policy"))
	}
	if !strings.Contains(hdr.Get("Content-Security-Policy"), "connect-src 'self'") {
		t.Errorf("the trainer's origin must be for images only: %q", hdr.Get("Content-Security-Policy"))
	}
	for _, bad := range []string{"trainer:8081", "ftp://trainer/", "http://"} {
		if _, err := Handler(Options{TrainerURL: bad}); err == nil {
			t.Errorf("trainer URL %q accepted", bad)
		}
	}
}
