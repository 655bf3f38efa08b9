package console

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestServesEmbeddedFiles(t *testing.T) {
	srv := httptest.NewServer(http.StripPrefix("/console", Handler()))
	defer srv.Close()
	for path, want := range map[string]string{
		"/console/":          `<script src="app.js"`,
		"/console/app.js":    "EventSource",
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
