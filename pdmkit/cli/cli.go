// Package cli is the thin main of a binary made of subcommands: it picks the
// command named by the first argument, runs it under a context that ends on
// SIGINT or SIGTERM, and turns its error into an exit status.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/pdmstream/pdm/pdmkit/telemetry"
)

// Command runs one subcommand with the arguments after its name.
type Command func(ctx context.Context, args []string) error

// Main runs the subcommand in os.Args and exits: 0 on success, 1 on error,
// 2 on an unknown command. Every binary also gets `healthcheck`, which asks
// a running instance for /healthz on PDM_HTTP_ADDR (container healthchecks;
// the images have no shell or curl).
func Main(name string, commands map[string]Command) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, name, commands, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// Run is Main without the process: it returns the exit status.
func Run(ctx context.Context, name string, commands map[string]Command, args []string, stderr io.Writer) int {
	all := map[string]Command{"healthcheck": func(ctx context.Context, _ []string) error {
		return telemetry.Healthcheck(ctx, os.Getenv("PDM_HTTP_ADDR"))
	}}
	for k, v := range commands {
		all[k] = v
	}
	if len(args) == 0 || all[args[0]] == nil {
		names := make([]string, 0, len(all))
		for n := range all {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(stderr, "usage: %s <command> [flags]\ncommands: %v\n", name, names)
		return 2
	}
	if err := all[args[0]](ctx, args[1:]); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}
