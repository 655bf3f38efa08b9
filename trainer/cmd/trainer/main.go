// Command trainer trains models:
//
//	trainer cmapss  the remaining-useful-life benchmark on NASA C-MAPSS FD001
package main

import (
	"github.com/pdmstream/pdm/pdmkit/cli"
	"github.com/pdmstream/pdm/trainer/internal/cmapss"
)

func main() {
	cli.Main("trainer", map[string]cli.Command{
		"cmapss": cmapss.Command,
	})
}
