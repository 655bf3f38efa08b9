// Command edge-agent simulates or replays machine sensors and publishes the
// readings to MQTT with store-and-forward. `edge-agent simulate` writes one
// simulated history to CSV instead. See edge-agent/README.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/pdmstream/pdm/edge-agent/internal/agent"
	"github.com/pdmstream/pdm/edge-agent/internal/config"
	"github.com/pdmstream/pdm/edge-agent/internal/sim"
	pdmconfig "github.com/pdmstream/pdm/pdmkit/config"
	"github.com/pdmstream/pdm/pdmkit/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "edge-agent:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "healthcheck" { // for container healthchecks: no shell or curl in the image
		return telemetry.Healthcheck(ctx, os.Getenv("PDM_HTTP_ADDR"))
	}
	if len(args) > 0 && args[0] == "simulate" { // a simulated history as CSV, for scorer backtest
		return sim.Command(ctx, args[1:], os.Stderr)
	}
	cfg := config.Default()
	if printed, err := pdmconfig.Parse("edge-agent", args, &cfg, config.Sample, stdout); printed || err != nil {
		return err
	}
	log, err := telemetry.NewLogger(cfg.Log.Format, cfg.Log.Level)
	if err != nil {
		return err
	}
	a, err := agent.New(cfg, log)
	if err != nil {
		return err
	}
	log.Debug("config", "yaml", pdmconfig.String(&cfg))
	return a.Run(ctx)
}
