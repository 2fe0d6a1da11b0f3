package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/stockcast/stockcast/internal/replay"
	"github.com/stockcast/stockcast/pkg/kafkax"
)

// runReplay replays into a system that is already running.
func runReplay(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	var (
		kc   kafkax.Config
		rc   replay.Config
		logs logFlags
	)
	kc.RegisterFlags(fs)
	rc.RegisterFlags(fs, "")
	logs.register(fs)
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if err := errors.Join(kc.Validate(), rc.Validate()); err != nil {
		return fmt.Errorf("validate flags: %w", err)
	}
	log, err := logs.logger(e.stderr)
	if err != nil {
		return err
	}
	sum, err := replay.New(rc, kc, log, progressFor(e.stderr)).Run(ctx)
	sum.Print(e.stdout)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	return nil
}
