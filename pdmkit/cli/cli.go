// Package cli is the thin main of a binary made of subcommands: it picks the
// command named by the first argument, runs it under a context that ends on
// SIGINT or SIGTERM, and turns its error into an exit status.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/pdmstream/pdm/pdmkit/config"
	"github.com/pdmstream/pdm/pdmkit/telemetry"
	"github.com/pdmstream/pdm/pdmkit/tlsconf"
)

// Command runs one subcommand with the arguments after its name.
type Command func(ctx context.Context, args []string) error

// Main runs the subcommand in os.Args and exits: 0 on success (and after
// -h), 1 on error, 2 on an unknown command. The command named "" is the
// default: it runs when the first argument is a flag or there is none.
// Every binary registers `healthcheck` (Healthcheck), which container
// healthchecks run: the images have no shell or curl.
func Main(name string, commands map[string]Command) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, name, commands, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// Run is Main without the process: it returns the exit status.
func Run(ctx context.Context, name string, commands map[string]Command, args []string, stderr io.Writer) int {
	cmd, rest := commands[""], args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, rest = commands[args[0]], args[1:]
	}
	if cmd == nil {
		names := make([]string, 0, len(commands))
		for n := range commands {
			if n != "" {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		fmt.Fprintf(stderr, "usage: %s <command> [flags]\ncommands: %v\n", name, names)
		return 2
	}
	if err := cmd(ctx, rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

// Healthcheck is a service's `healthcheck` command: it reads cfg, a pointer
// to the service's configuration holding its defaults, exactly as the
// service does (-config FILE, PDM_* environment, flags; see config.Parse),
// and asks the instance listening on the address listen returns — the
// service's http.addr, over TLS when its http.tls block holds a
// certificate — for GET /healthz. With nothing set it probes the default
// address.
func Healthcheck(name string, cfg any, sample string, listen func() (addr string, tls tlsconf.Config)) Command {
	return func(ctx context.Context, args []string) error {
		if printed, err := config.Parse(name+" healthcheck", args, cfg, sample, os.Stdout); printed || err != nil {
			return err
		}
		a, t := listen()
		if a == "" {
			return fmt.Errorf("healthcheck: http.addr is empty: the service serves no health endpoint")
		}
		tc, err := t.Server()
		if err != nil {
			return fmt.Errorf("healthcheck: http.tls: %w", err)
		}
		return telemetry.HealthcheckTLS(ctx, a, tc)
	}
}

// Closer is the one shape of closing a service or component: drain, release,
// wait at most until ctx ends, and be safe to call twice.
type Closer interface {
	Close(ctx context.Context) error
}

// ShutdownGrace is how long Shutdown gives a Closer.
const ShutdownGrace = 10 * time.Second

// Shutdown closes c after its Run has returned — typically because ctx was
// cancelled by a signal — with ShutdownGrace to finish, and joins the
// error to err: `defer func() { err = cli.Shutdown(ctx, s, err) }()`.
func Shutdown(ctx context.Context, c Closer, err error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownGrace)
	defer cancel()
	return errors.Join(err, c.Close(ctx))
}
