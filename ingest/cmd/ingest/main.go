// Command ingest runs one of the two ingest roles:
//
//	ingest bridge     MQTT → Kafka pdm.readings (invalid input → pdm.readings.dlq)
//	ingest historian  Kafka pdm.readings → InfluxDB
//	ingest healthcheck  probe a running instance's /healthz (PDM_HTTP_ADDR), for containers
//
// Configuration: flags > PDM_* environment > -config file > defaults; see
// `ingest bridge -print-config`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pdmstream/pdm/ingest/internal/bridge"
	"github.com/pdmstream/pdm/ingest/internal/config"
	"github.com/pdmstream/pdm/ingest/internal/historian"
	pdmconfig "github.com/pdmstream/pdm/pdmkit/config"
	"github.com/pdmstream/pdm/pdmkit/telemetry"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "healthcheck" {
		return telemetry.Healthcheck(context.Background(), os.Getenv("PDM_HTTP_ADDR"))
	}
	if len(args) == 0 || (args[0] != string(config.Bridge) && args[0] != string(config.Historian)) {
		return errors.New("usage: ingest bridge|historian [-config FILE] [flags], or ingest healthcheck (probes PDM_HTTP_ADDR)")
	}
	role := config.Role(args[0])
	cfg := config.Default(role)
	fs := flag.NewFlagSet("ingest "+args[0], flag.ContinueOnError)
	path := fs.String("config", "", "YAML configuration file")
	printCfg := fs.Bool("print-config", false, "print the sample configuration and exit")
	apply := pdmconfig.BindFlags(fs, &cfg)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *printCfg {
		fmt.Print(config.Sample)
		return nil
	}
	if err := pdmconfig.Load(*path, &cfg); err != nil {
		return err
	}
	if err := apply(); err != nil {
		return err
	}
	log, err := telemetry.NewLogger(cfg.Log.Format, cfg.Log.Level)
	if err != nil {
		return err
	}
	log = log.With("service", "ingest-"+args[0])

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
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
		defer h.Close()
		work, ready = h.Run, h.Ready
	}
	log.Info("starting", "config", pdmconfig.String(&cfg))
	httpErr := make(chan error, 1)
	go func() {
		httpErr <- telemetry.Serve(ctx, cfg.HTTPAddr, telemetry.Handler(reg, map[string]telemetry.ReadyFunc{args[0]: ready}), log)
	}()
	err = work(ctx)
	stop()
	return errors.Join(err, <-httpErr)
}
