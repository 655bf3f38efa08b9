// Command scorer scores asset readings with the active models:
//
//	scorer serve     the streaming scorer and its HTTP API
//	scorer backtest  the online detector over a CSV file
//	scorer model     model artifact files: new, seal, check
//	scorer healthcheck  probe a running serve's /healthz at its http.addr (same config as serve)
package main

import (
	"github.com/pdmstream/pdm/pdmkit/cli"
	"github.com/pdmstream/pdm/pdmkit/tlsconf"
	"github.com/pdmstream/pdm/scorer/internal/backtest"
	"github.com/pdmstream/pdm/scorer/internal/config"
	"github.com/pdmstream/pdm/scorer/internal/modelfile"
	"github.com/pdmstream/pdm/scorer/internal/service"
)

func main() { cli.Main("scorer", commands()) }

func commands() map[string]cli.Command {
	health := config.Default()
	return map[string]cli.Command{
		"backtest":    backtest.Command,
		"healthcheck": cli.Healthcheck("scorer", &health, config.Sample, func() (string, tlsconf.Config) { return health.HTTP.Addr, health.HTTP.TLS }),
		"model":       modelfile.Command,
		"serve":       service.Command,
	}
}
