// Package telemetry gives every service the same logs, metrics and health
// endpoints: slog to stderr, a Prometheus registry served on /metrics, and
// /healthz (the process is alive) and /readyz (its dependencies answer),
// open to anyone who reaches the listener; profiles (/debug/pprof/) only on
// a separate admin listener (Admin, ServeAdmin), off by default.
package telemetry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Log is the one `log` block of every service's configuration.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level" env:"PDM_LOG_LEVEL" help:"log level: debug, info, warn or error"`
	// Format is text or json. Default text.
	Format string `yaml:"format" env:"PDM_LOG_FORMAT" help:"log format: text or json"`
}

// DefaultLog is the log block's default: info, text.
func DefaultLog() Log { return Log{Level: "info", Format: "text"} }

// Validate rejects an unknown level or format, naming the value.
func (l Log) Validate() error {
	var errs []error
	switch strings.ToLower(l.Format) {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format (%q) must be text or json", l.Format))
	}
	switch strings.ToLower(l.Level) {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level (%q) must be debug, info, warn or error", l.Level))
	}
	return errors.Join(errs...)
}

// Logger returns the logger the block describes (NewLogger).
func (l Log) Logger() (*slog.Logger, error) { return NewLogger(l.Format, l.Level) }

// NewLogger returns a slog logger writing to stderr. format is "json" or
// "text"; level is debug, info, warn or error.
func NewLogger(format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("telemetry: log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("telemetry: log format %q: want json or text", format)
}

// NewRegistry returns a Prometheus registry with the Go runtime and process
// collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Reachable reports whether any of addrs (host:port) accepts a TCP
// connection, for readiness checks of a server the service waits for
// while it is away (a Kafka cluster's brokers).
func Reachable(ctx context.Context, addrs []string) error {
	var d net.Dialer
	var errs []error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, "tcp", a)
		if err == nil {
			return c.Close()
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ReadyFunc reports whether a dependency is usable; nil means ready.
type ReadyFunc func(ctx context.Context) error

// Handler serves /metrics, /healthz and /readyz, and nothing else: no
// profiles (see Admin). Each ready check gets two seconds; /readyz answers
// 503 with the failures listed when any fails. Extra routes can be added to
// the returned mux.
func Handler(reg *prometheus.Registry, checks map[string]ReadyFunc) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		var failed []string
		for name, check := range checks {
			if err := check(ctx); err != nil {
				failed = append(failed, name+": "+err.Error())
			}
		}
		if len(failed) > 0 {
			http.Error(w, strings.Join(failed, "\n"), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// Admin serves the Go profiles under /debug/pprof/, for the admin listener
// only (a service's http.admin_addr, loopback by default): a profile shows
// the process's memory and code, and a CPU profile costs the service.
func Admin() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

// ServeAdmin serves Admin on addr until ctx ends; an empty addr (the
// default of every service) serves nothing. An address that is not
// loopback is served with a warning.
func ServeAdmin(ctx context.Context, addr string, log *slog.Logger) error {
	log = log.With("listener", "admin")
	if addr != "" && !Loopback(addr) {
		log.Warn("admin listener (profiles) is not bound to loopback", "addr", addr)
	}
	return Serve(ctx, addr, Admin(), log)
}

// Loopback reports whether the listen address addr (host:port) binds a
// loopback address only; an empty host binds every interface.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// limits bound what one client can hold of a server: a request's headers
// must arrive within 5 s and the whole request (a model upload included)
// within a minute, an answer must be written within a minute, an idle
// keep-alive connection is closed after two, and headers are at most
// 64 KiB. Bodies are bounded by each handler.
var limits = struct {
	header, read, write, idle time.Duration
	headerBytes               int
}{5 * time.Second, time.Minute, time.Minute, 2 * time.Minute, 64 << 10}

// Serve runs an HTTP server for h on addr until ctx ends, then shuts it down
// gracefully. An empty addr serves nothing and returns when ctx ends.
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	return ServeTLS(ctx, addr, nil, h, log)
}

// ServeTLS is Serve over TLS with tc (tlsconf.Config.Server); a nil tc
// serves plain HTTP.
func ServeTLS(ctx context.Context, addr string, tc *tls.Config, h http.Handler, log *slog.Logger) error {
	if addr == "" {
		<-ctx.Done()
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("telemetry: listen %s: %w", addr, err)
	}
	t := limits
	srv := &http.Server{Handler: h, ReadHeaderTimeout: t.header, ReadTimeout: t.read, WriteTimeout: t.write,
		IdleTimeout: t.idle, MaxHeaderBytes: t.headerBytes}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if Loopback(addr) {
		log.Info("http listening on loopback only: set http.addr (PDM_HTTP_ADDR), e.g. 0.0.0.0:port, to serve other hosts",
			"addr", ln.Addr().String(), "tls", tc != nil)
	} else {
		log.Info("http listening", "addr", ln.Addr().String(), "tls", tc != nil)
	}
	select {
	case err := <-errc:
		return fmt.Errorf("telemetry: serve %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("telemetry: shutdown: %w", err)
	}
	return nil
}

// HealthcheckTLS asks a running service for GET /healthz on addr, a listen
// address such as ":9102" (an empty host means loopback). The service
// images have no shell or curl, so each binary runs this for Docker's
// HEALTHCHECK as `<binary> healthcheck`, with addr the service's http.addr
// read from the same configuration as the service (pdmkit/cli). With tc
// not nil the server serves TLS: the probe asks https://, presenting tc's certificates (a server that
// requires client certificates gets the server's own pair) and trusting the
// answer unverified, since it only asks its own process on loopback whether
// it is alive.
func HealthcheckTLS(ctx context.Context, addr string, tc *tls.Config) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("telemetry: healthcheck address %q: %w", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	scheme, client := "http", http.DefaultClient
	if tc != nil {
		probe := &tls.Config{InsecureSkipVerify: true, Certificates: tc.Certificates, MinVersion: tls.VersionTLS12} //nolint:gosec // loopback liveness probe of the process itself
		scheme, client = "https", &http.Client{Transport: &http.Transport{TLSClientConfig: probe}}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, port)+"/healthz", nil)
	if err != nil {
		return fmt.Errorf("telemetry: healthcheck: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("telemetry: healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("telemetry: healthcheck: %s", resp.Status)
	}
	return nil
}
