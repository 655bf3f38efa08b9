// Command scorer scores asset readings with the active models:
//
//	scorer serve     the streaming scorer and its HTTP API
//	scorer backtest  the online detector over a CSV file
//	scorer model     model artifact files: new, seal, check
package main

import (
	"github.com/pdmstream/pdm/pdmkit/cli"
	"github.com/pdmstream/pdm/scorer/internal/backtest"
	"github.com/pdmstream/pdm/scorer/internal/modelfile"
	"github.com/pdmstream/pdm/scorer/internal/service"
)

func main() {
	cli.Main("scorer", map[string]cli.Command{
		"backtest": backtest.Command,
		"model":    modelfile.Command,
		"serve":    service.Command,
	})
}
