// Command ingest runs one of the two ingest roles:
//
//	ingest bridge     MQTT → Kafka pdm.readings (invalid input → pdm.readings.dlq)
//	ingest historian  Kafka pdm.readings → InfluxDB
//	ingest retire     take a stopped bridge (its mqtt.client_id) out of the
//	                  share group for good: drain its session, then delete it
//	ingest healthcheck [bridge|historian]  probe a running instance's /healthz at
//	                  its http.addr, read from the same config as the role (default bridge)
//
// Configuration: flags > PDM_* environment > -config file > defaults; see
// `ingest bridge -print-config`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/pdmstream/pdm/ingest/internal/bridge"
	"github.com/pdmstream/pdm/ingest/internal/config"
	"github.com/pdmstream/pdm/ingest/internal/historian"
	"github.com/pdmstream/pdm/pdmkit/cli"
	pdmconfig "github.com/pdmstream/pdm/pdmkit/config"
	"github.com/pdmstream/pdm/pdmkit/telemetry"
	"github.com/pdmstream/pdm/pdmkit/tlsconf"
)

func main() { cli.Main("ingest", commands()) }

func commands() map[string]cli.Command {
	return map[string]cli.Command{
		"bridge":      func(ctx context.Context, args []string) error { return run(ctx, config.Bridge, args) },
		"healthcheck": healthcheck,
		"historian":   func(ctx context.Context, args []string) error { return run(ctx, config.Historian, args) },
		"retire":      retire,
	}
}

// healthcheck probes a bridge's or, named first, a historian's /healthz at
// the address that role's configuration gives.
func healthcheck(ctx context.Context, args []string) error {
	role := config.Bridge
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		role, args = config.Role(args[0]), args[1:]
	}
	if role != config.Bridge && role != config.Historian {
		return fmt.Errorf("healthcheck: role %q: want bridge or historian", role)
	}
	cfg := config.Default(role)
	return cli.Healthcheck("ingest", &cfg, config.Sample, func() (string, tlsconf.Config) { return cfg.HTTP.Addr, cfg.HTTP.TLS })(ctx, args)
}

// retire drains and deletes a bridge instance's MQTT session; it takes the
// bridge's configuration.
func retire(ctx context.Context, args []string) error {
	cfg := config.Default(config.Bridge)
	if printed, err := pdmconfig.Parse("ingest retire", args, &cfg, config.Sample, os.Stdout); printed || err != nil {
		return err
	}
	log, err := cfg.Log.Logger()
	if err != nil {
		return err
	}
	b, err := bridge.New(cfg, log.With("service", "ingest-retire"), bridge.NewMetrics(telemetry.NewRegistry()))
	if err != nil {
		return err
	}
	return b.Retire(ctx, 5*time.Second)
}

func run(ctx context.Context, role config.Role, args []string) (err error) {
	cfg := config.Default(role)
	if printed, err := pdmconfig.Parse("ingest "+string(role), args, &cfg, config.Sample, os.Stdout); printed || err != nil {
		return err
	}
	log, err := cfg.Log.Logger()
	if err != nil {
		return err
	}
	log = log.With("service", "ingest-"+string(role))

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	reg := telemetry.NewRegistry()
	var (
		work  func(context.Context) error
		ready telemetry.ReadyFunc
	)
	switch role {
	case config.Bridge:
		b, err := bridge.New(cfg, log, bridge.NewMetrics(reg))
		if err != nil {
			return err
		}
		work, ready = b.Run, b.Ready
	case config.Historian:
		h, err := historian.New(cfg, log, historian.NewMetrics(reg))
		if err != nil {
			return err
		}
		defer func() { err = cli.Shutdown(ctx, h, err) }()
		work, ready = h.Run, h.Ready
	}
	log.Info("starting", "config", pdmconfig.String(&cfg))
	httpErr, adminErr := make(chan error, 1), make(chan error, 1)
	go func() {
		tc, err := cfg.HTTP.TLS.Server()
		if err != nil {
			httpErr <- fmt.Errorf("http.tls: %w", err)
			return
		}
		httpErr <- telemetry.ServeTLS(ctx, cfg.HTTP.Addr, tc, telemetry.Handler(reg, map[string]telemetry.ReadyFunc{string(role): ready}), log)
	}()
	go func() { adminErr <- telemetry.ServeAdmin(ctx, cfg.HTTP.AdminAddr, log) }()
	err = work(ctx)
	stop()
	return errors.Join(err, <-httpErr, <-adminErr)
}
