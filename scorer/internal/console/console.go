// Package console is the operator's web console: static HTML, CSS and
// JavaScript embedded in the scorer and served at /console/. The page
// reads the scorer's own HTTP API (assets, alerts and their event stream,
// models) and writes through it with the bearer token the operator types
// in, so the console can do nothing the API does not allow.
//
// There is no build step: the files under static/ are what the browser
// gets, and charts are drawn as inline SVG by the page's own script.
package console

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var files embed.FS

// Handler serves the console's files; mount it under /console/ with the
// prefix stripped.
func Handler() http.Handler {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	fsrv := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// A new scorer build brings new files; the browser asks again.
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		fsrv.ServeHTTP(w, r)
	})
}
