// Command scorer scores asset readings with the active models. Subcommands
// live in the table below, one line each.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/pdmstream/pdm/scorer/internal/backtest"
	"github.com/pdmstream/pdm/scorer/internal/service"
)

var commands = map[string]func(ctx context.Context, args []string) error{
	"backtest": backtest.Command,
	"serve":    service.Command,
}

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]] == nil {
		names := make([]string, 0, len(commands))
		for n := range commands {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "usage: scorer <command> [flags]\ncommands: %v\n", names)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := commands[os.Args[1]](ctx, os.Args[2:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "scorer:", err)
		os.Exit(1)
	}
}
