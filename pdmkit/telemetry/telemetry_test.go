package telemetry

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestEndpoints(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var up atomic.Bool
	h := Handler(NewRegistry(), map[string]ReadyFunc{"kafka": func(context.Context) error {
		if !up.Load() {
			return errors.New("kafka down")
		}
		return nil
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, addr, h, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	defer func() { cancel(); <-done }()

	deadline := time.Now().Add(5 * time.Second)
	for HealthcheckTLS(ctx, addr, nil) != nil {
		if time.Now().After(deadline) {
			t.Fatal("healthcheck never passed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "kafka: kafka down") {
		t.Fatalf("readyz with a failing check: %d %q", code, body)
	}
	up.Store(true)
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Fatalf("readyz: %d", code)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics: %d", code)
	}
	if err := HealthcheckTLS(ctx, "127.0.0.1:1", nil); err == nil {
		t.Fatal("healthcheck of a closed port passed")
	}
}

// TestServeDropsSlowClients: a client that sends its headers and then
// trickles, or never sends, its body loses the connection at the read
// timeout, and an idle keep-alive connection at the idle timeout, so a few
// sockets cannot hold a server's goroutines for ever.
func TestServeDropsSlowClients(t *testing.T) {
	saved := limits
	t.Cleanup(func() { limits = saved })
	limits.read, limits.idle = 300*time.Millisecond, 300*time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
		}), slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	defer func() { cancel(); <-done }()
	var conn net.Conn
	for range 50 {
		if conn, err = net.Dial("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if conn == nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(conn) // the server answers or closes; either ends the read
	if took := time.Since(start); err != nil || took > 3*time.Second {
		t.Fatalf("slow body: connection held %v (err %v), want it closed after the 300ms read timeout", took, err)
	}

	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if _, err := io.WriteString(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(idle) // the answer, then the close of the idle connection
	if took := time.Since(start); err != nil || took > 3*time.Second {
		t.Fatalf("idle keep-alive connection held %v (err %v), want it closed after the 300ms idle timeout", took, err)
	}
}

// TestProfilesOnlyOnAdmin: the service listener serves no profiles; the
// admin handler does; Loopback tells which listen addresses stay local.
func TestProfilesOnlyOnAdmin(t *testing.T) {
	get := func(h http.Handler, path string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
	if code := get(Handler(prometheus.NewRegistry(), nil), "/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("service listener /debug/pprof/: %d, want 404", code)
	}
	if code := get(Admin(), "/debug/pprof/"); code != http.StatusOK {
		t.Errorf("admin listener /debug/pprof/: %d, want 200", code)
	}
	for addr, want := range map[string]bool{
		"127.0.0.1:6060": true, "localhost:6060": true, "[::1]:6060": true,
		":6060": false, "0.0.0.0:6060": false, "10.0.0.5:6060": false, "nonsense": false,
	} {
		if got := Loopback(addr); got != want {
			t.Errorf("Loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
