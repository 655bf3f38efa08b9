// Command trainer trains models:
//
//	trainer cmapss  the remaining-useful-life benchmark on NASA C-MAPSS FD001
//	trainer tep     the fault-detection benchmark on the Tennessee Eastman process
package main

import (
	"github.com/pdmstream/pdm/pdmkit/cli"
	"github.com/pdmstream/pdm/trainer/internal/cmapss"
	"github.com/pdmstream/pdm/trainer/internal/tep"
)

func main() {
	cli.Main("trainer", map[string]cli.Command{
		"cmapss": cmapss.Command,
		"tep":    tep.Command,
	})
}
