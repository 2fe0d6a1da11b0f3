// Command feature keeps the online features of every series in Redis and
// publishes a feature snapshot per demand event; `feature rebuild` restores
// series from the ClickHouse order history.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/stockcast/stockcast/services/feature/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := app.Run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "feature:", err)
		os.Exit(1)
	}
}
