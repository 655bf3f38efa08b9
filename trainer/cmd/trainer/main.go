// Command trainer trains models:
//
//	trainer serve   the training service: requests from Kafka, schedules, shadow trials, the jobs API
//	trainer run     one training job by hand (--asset or --class; --file, --dry-run)
//	trainer cmapss  the remaining-useful-life benchmark on NASA C-MAPSS FD001
//	trainer tep     the fault-detection benchmark on the Tennessee Eastman process
//	trainer keygen  an ed25519 key pair to sign artifacts with (signing.key_file) and for scorers to trust
//	trainer healthcheck  probe a running serve's /healthz at its http.addr (same config as serve)
package main

import (
	"github.com/pdmstream/pdm/pdmkit/cli"
	"github.com/pdmstream/pdm/pdmkit/tlsconf"
	"github.com/pdmstream/pdm/trainer/internal/cmapss"
	"github.com/pdmstream/pdm/trainer/internal/config"
	"github.com/pdmstream/pdm/trainer/internal/keygen"
	"github.com/pdmstream/pdm/trainer/internal/run"
	"github.com/pdmstream/pdm/trainer/internal/service"
	"github.com/pdmstream/pdm/trainer/internal/tep"
)

func main() { cli.Main("trainer", commands()) }

func commands() map[string]cli.Command {
	health := config.Default()
	return map[string]cli.Command{
		"cmapss":      cmapss.Command,
		"healthcheck": cli.Healthcheck("trainer", &health, config.Sample, func() (string, tlsconf.Config) { return health.HTTP.Addr, health.HTTP.TLS }),
		"keygen":      keygen.Command,
		"run":         run.Command,
		"serve":       service.Command,
		"tep":         tep.Command,
	}
}
