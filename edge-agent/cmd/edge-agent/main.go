// Command edge-agent simulates or replays machine sensors and publishes the
// readings to MQTT with store-and-forward. `edge-agent simulate` writes one
// simulated history to CSV instead, and `edge-agent healthcheck` probes a
// running agent's /healthz at its http.addr. See edge-agent/README.md.
package main

import (
	"context"
	"io"
	"os"

	"github.com/pdmstream/pdm/edge-agent/internal/agent"
	"github.com/pdmstream/pdm/edge-agent/internal/config"
	"github.com/pdmstream/pdm/edge-agent/internal/sim"
	"github.com/pdmstream/pdm/pdmkit/cli"
	pdmconfig "github.com/pdmstream/pdm/pdmkit/config"
	"github.com/pdmstream/pdm/pdmkit/tlsconf"
)

func main() { cli.Main("edge-agent", commands()) }

func commands() map[string]cli.Command {
	health := config.Default()
	return map[string]cli.Command{
		"": func(ctx context.Context, args []string) error { return run(ctx, args, os.Stdout) },
		// For container healthchecks: no shell or curl in the image.
		"healthcheck": cli.Healthcheck("edge-agent", &health, config.Sample, func() (string, tlsconf.Config) { return health.HTTP.Addr, health.HTTP.TLS }),
		// A simulated history as CSV, for scorer backtest.
		"simulate": func(ctx context.Context, args []string) error { return sim.Command(ctx, args, os.Stderr) },
	}
}

// run is the agent: edge-agent [flags].
func run(ctx context.Context, args []string, stdout io.Writer) error {
	cfg := config.Default()
	if printed, err := pdmconfig.Parse("edge-agent", args, &cfg, config.Sample, stdout); printed || err != nil {
		return err
	}
	log, err := cfg.Log.Logger()
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
