// Command stockcast runs the local demo, replays the Online Retail data into
// a running system and benchmarks the pipeline; `stockcast help` lists the
// subcommands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // Europe/London for the data set, also where no zoneinfo is installed

	"github.com/stockcast/stockcast/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "stockcast:", err)
		os.Exit(1)
	}
}
