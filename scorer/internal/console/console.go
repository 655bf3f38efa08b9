// Package console is the operator's web console: static HTML, CSS and
// JavaScript embedded in the scorer and served at /console/. The page
// reads the scorer's own HTTP API (assets, alerts and their event stream,
// models) and writes through it with the bearer token the operator types
// in, so the console can do nothing the API does not allow. Where the
// trainer's address is configured, the models view shows the plots of the
// training job behind each version as images from the trainer.
//
// There is no build step: the files under static/ are what the browser
// gets, and charts are drawn as inline SVG by the page's own script.
package console

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
)

//go:embed static
var files embed.FS

// Options configure the console.
type Options struct {
	// TrainerURL is the trainer's API as the browser reaches it; its
	// GET /v1/jobs/{id}/{plot} plots are shown for versions naming a
	// training job. Empty shows none.
	TrainerURL string
}

// pageConfig is GET /console/config.json: what the page is told.
type pageConfig struct {
	TrainerURL string `json:"trainer_url,omitempty"`
}

// Handler serves the console's files and config.json; mount it under
// /console/ with the prefix stripped.
func Handler(opt Options) (http.Handler, error) {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	imgSrc := "'self' data:"
	var pc pageConfig
	if opt.TrainerURL != "" {
		u, err := url.Parse(opt.TrainerURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("console: trainer URL %q is not an http or https URL", opt.TrainerURL)
		}
		// Images may come from the trainer's origin, and nothing else may.
		imgSrc += " " + u.Scheme + "://" + u.Host
		pc.TrainerURL = strings.TrimSuffix(u.String(), "/")
	}
	cfg, err := json.Marshal(pc)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	csp := "default-src 'self'; img-src " + imgSrc + "; style-src 'self'; script-src 'self'; connect-src 'self'"
	fsrv := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// A new scorer build brings new files; the browser asks again.
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if r.URL.Path == "/config.json" {
			h.Set("Content-Type", "application/json")
			_, _ = w.Write(cfg)
			return
		}
		fsrv.ServeHTTP(w, r)
	}), nil
}
