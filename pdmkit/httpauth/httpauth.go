// Package httpauth guards HTTP routes with bearer tokens of two scopes,
// read and write, the same way in every service.
//
// The rules, which each service README repeats:
//   - A write token also grants read.
//   - With no token configured at all, reads are open and writes are
//     disabled: the server is for loopback use (every service binds to
//     127.0.0.1 by default).
//   - With any token configured, reads need the read or the write token.
//   - With no write token configured, every write is answered 403 "writes
//     are disabled on this server", whatever the request carries.
//
// Answers, JSON {"error": "..."} with a WWW-Authenticate: Bearer challenge
// (RFC 6750): no token 401, a token that matches none 401 "invalid token",
// a read token on a write route 403 (insufficient_scope), writes disabled
// 403. Tokens are compared in constant time (of their SHA-256 digests, so
// neither their content nor their length leaks).
package httpauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
)

// Scope is what a route needs.
type Scope int

const (
	// Open routes need no token (health, the API description).
	Open Scope = iota
	// Read routes need the read or the write token when any is configured.
	Read
	// Write routes need the write token; without one configured they are
	// refused.
	Write
)

func (s Scope) String() string {
	switch s {
	case Open:
		return "open"
	case Read:
		return "read"
	case Write:
		return "write"
	}
	return fmt.Sprintf("Scope(%d)", int(s))
}

// Config is a server's tokens and how to name them in answers.
type Config struct {
	// ReadToken grants reads; empty: none.
	ReadToken string
	// WriteToken grants reads and writes; empty: writes are disabled.
	WriteToken string
	// Realm is the WWW-Authenticate realm, e.g. "pdm-scorer".
	Realm string
	// WriteKey names the setting of the write token in the writes-disabled
	// answer, e.g. "http.token (PDM_API_TOKEN)".
	WriteKey string
}

// Guard checks requests against a Config.
type Guard struct {
	read, write       [sha256.Size]byte
	hasRead, hasWrite bool
	realm, writeKey   string
}

// New returns the guard of c.
func New(c Config) *Guard {
	g := &Guard{realm: c.Realm, writeKey: c.WriteKey, hasRead: c.ReadToken != "", hasWrite: c.WriteToken != ""}
	if g.hasRead {
		g.read = sha256.Sum256([]byte(c.ReadToken))
	}
	if g.hasWrite {
		g.write = sha256.Sum256([]byte(c.WriteToken))
	}
	if g.realm == "" {
		g.realm = "pdm"
	}
	if g.writeKey == "" {
		g.writeKey = "a write token"
	}
	return g
}

// WritesEnabled reports whether a write token is configured.
func (g *Guard) WritesEnabled() bool { return g.hasWrite }

// ReadsOpen reports whether reads need no token (none is configured).
func (g *Guard) ReadsOpen() bool { return !g.hasRead && !g.hasWrite }

// LogMode logs, once at start, what the server accepts.
func (g *Guard) LogMode(log *slog.Logger) {
	if g.ReadsOpen() {
		log.Warn("no API token configured: reads are open to anyone who reaches the listener and writes are off; set " + g.writeKey + " to enable writes")
		return
	}
	if !g.hasWrite {
		log.Warn("writes are off: no write token configured; set " + g.writeKey + " to enable them")
	}
	log.Info("API tokens configured", "read_token", g.hasRead, "write_token", g.hasWrite)
}

// Denial is why a request is refused.
type Denial struct {
	Code int
	Msg  string
	// Challenge is the WWW-Authenticate value.
	Challenge string
}

// Write answers the denial as JSON {"error": Msg}.
func (d *Denial) Write(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", d.Challenge)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(d.Code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": d.Msg})
}

// Check returns nil when r may use a route of scope s, or why not.
func (g *Guard) Check(r *http.Request, s Scope) *Denial {
	if s == Open || (s == Read && g.ReadsOpen()) {
		return nil
	}
	if s == Write && !g.hasWrite {
		return &Denial{http.StatusForbidden, "writes are disabled on this server: set " + g.writeKey,
			fmt.Sprintf(`Bearer realm=%q, error="insufficient_scope", error_description="writes are disabled"`, g.realm)}
	}
	tok, ok := bearer(r)
	if !ok {
		return &Denial{http.StatusUnauthorized, fmt.Sprintf("a bearer token with %s scope is required: send Authorization: Bearer <token>", s),
			fmt.Sprintf(`Bearer realm=%q`, g.realm)}
	}
	sum := sha256.Sum256([]byte(tok))
	isWrite := g.hasWrite && subtle.ConstantTimeCompare(sum[:], g.write[:]) == 1
	isRead := g.hasRead && subtle.ConstantTimeCompare(sum[:], g.read[:]) == 1
	switch {
	case isWrite:
		return nil
	case isRead && s == Read:
		return nil
	case isRead:
		return &Denial{http.StatusForbidden, "the token has read scope; this endpoint needs the write token",
			fmt.Sprintf(`Bearer realm=%q, error="insufficient_scope", scope="write"`, g.realm)}
	}
	return &Denial{http.StatusUnauthorized, "invalid token",
		fmt.Sprintf(`Bearer realm=%q, error="invalid_token"`, g.realm)}
}

// Wrap serves h to requests allowed scope s and answers the others.
func (g *Guard) Wrap(s Scope, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := g.Check(r, s); d != nil {
			d.Write(w)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// bearer returns the request's bearer token (the scheme is
// case-insensitive, RFC 7235).
func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
