package httpauth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func answer(t *testing.T, g *Guard, s Scope, auth string) (int, string, string) {
	t.Helper()
	h := g.Wrap(s, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("served")) }))
	r := httptest.NewRequest("GET", "/x", nil)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	body := w.Body.String()
	if w.Code != http.StatusOK {
		var e struct{ Error string }
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
			t.Fatalf("%d answer %q is not JSON {\"error\": ...}", w.Code, body)
		}
		if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer ") {
			t.Fatalf("%d answer without a Bearer challenge: %q", w.Code, w.Header().Get("WWW-Authenticate"))
		}
		body = e.Error
	}
	return w.Code, body, w.Header().Get("WWW-Authenticate")
}

func TestScopes(t *testing.T) {
	both := New(Config{ReadToken: "r", WriteToken: "w", Realm: "test", WriteKey: "http.token"})
	writeOnly := New(Config{WriteToken: "w"})
	readOnly := New(Config{ReadToken: "r", WriteKey: "http.token"})
	none := New(Config{WriteKey: "http.token"})
	for _, tc := range []struct {
		name  string
		g     *Guard
		scope Scope
		auth  string
		code  int
		msg   string
	}{
		{"open route, no token", both, Open, "", 200, "served"},
		{"read, no token", both, Read, "", 401, "bearer token with read scope is required"},
		{"read, read token", both, Read, "Bearer r", 200, "served"},
		{"read, write token", both, Read, "Bearer w", 200, "served"},
		{"read, scheme in lower case", both, Read, "bearer r", 200, "served"},
		{"read, wrong token", both, Read, "Bearer x", 401, "invalid token"},
		{"read, basic auth", both, Read, "Basic cjpy", 401, "bearer token with read scope is required"},
		{"read, empty bearer", both, Read, "Bearer ", 401, "bearer token with read scope is required"},
		{"write, no token", both, Write, "", 401, "bearer token with write scope is required"},
		{"write, read token", both, Write, "Bearer r", 403, "needs the write token"},
		{"write, write token", both, Write, "Bearer w", 200, "served"},
		{"write, wrong token", both, Write, "Bearer x", 401, "invalid token"},
		{"write, token prefix", both, Write, "Bearer ww", 401, "invalid token"},
		{"write only: read needs a token", writeOnly, Read, "", 401, "required"},
		{"write only: read with write token", writeOnly, Read, "Bearer w", 200, "served"},
		{"read only: read", readOnly, Read, "Bearer r", 200, "served"},
		{"read only: writes disabled", readOnly, Write, "Bearer r", 403, "writes are disabled on this server: set http.token"},
		{"no tokens: reads open", none, Read, "", 200, "served"},
		{"no tokens: writes disabled", none, Write, "", 403, "writes are disabled on this server: set http.token"},
		{"no tokens: writes disabled with a token", none, Write, "Bearer w", 403, "writes are disabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, msg, _ := answer(t, tc.g, tc.scope, tc.auth)
			if code != tc.code || !strings.Contains(msg, tc.msg) {
				t.Fatalf("got %d %q, want %d containing %q", code, msg, tc.code, tc.msg)
			}
		})
	}
}

// A server without a write token answers a write differently from a
// server that has one and was sent the wrong token.
func TestWritesDisabledIsNotInvalidToken(t *testing.T) {
	dc, dm, dch := answer(t, New(Config{ReadToken: "r"}), Write, "Bearer w")
	ic, im, ich := answer(t, New(Config{WriteToken: "other"}), Write, "Bearer w")
	if dc == ic || dm == im || dch == ich {
		t.Fatalf("writes disabled (%d %q %q) answered like an invalid token (%d %q %q)", dc, dm, dch, ic, im, ich)
	}
	if _, _, ch := answer(t, New(Config{WriteToken: "w", ReadToken: "r"}), Write, "Bearer r"); !strings.Contains(ch, `error="insufficient_scope"`) {
		t.Fatalf("wrong scope challenge %q lacks insufficient_scope", ch)
	}
}

func TestModes(t *testing.T) {
	if g := New(Config{}); !g.ReadsOpen() || g.WritesEnabled() {
		t.Fatal("no tokens: want reads open, writes disabled")
	}
	if g := New(Config{ReadToken: "r"}); g.ReadsOpen() || g.WritesEnabled() {
		t.Fatal("read token only: want reads guarded, writes disabled")
	}
	if g := New(Config{WriteToken: "w"}); g.ReadsOpen() || !g.WritesEnabled() {
		t.Fatal("write token: want reads guarded, writes enabled")
	}
}
