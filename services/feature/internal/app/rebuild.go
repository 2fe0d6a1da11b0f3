package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/config"
	"github.com/stockcast/stockcast/pkg/recovery"
	"github.com/stockcast/stockcast/pkg/redisx"
	"github.com/stockcast/stockcast/services/feature/internal/store"
)

// rebuildConfig configures `feature rebuild`.
type rebuildConfig struct {
	Redis      redisx.Config
	ClickHouse chx.Config
	Store      store.Config
	Series     string
	All        bool
	Parallel   int
}

func (c *rebuildConfig) RegisterFlags(fs *flag.FlagSet) {
	c.Redis.RegisterFlags(fs)
	c.ClickHouse.RegisterFlags(fs)
	c.Store.RegisterFlags(fs, "feature.")
	fs.StringVar(&c.Series, "series", "", "series key (sku|location) to rebuild")
	fs.BoolVar(&c.All, "all", false, "rebuild every series and item with events in ClickHouse")
	fs.IntVar(&c.Parallel, "parallel", 1, "-all: series written to Redis at a time (ClickHouse is read in one scan per table)")
}

func (c *rebuildConfig) Validate() error {
	var errs []error
	if c.Parallel < 1 {
		errs = append(errs, errors.New("rebuild: -parallel must be at least 1"))
	}
	if (c.Series == "") == !c.All {
		errs = append(errs, errors.New("rebuild: give exactly one of -series or -all"))
	}
	return errors.Join(append(errs, c.Redis.Validate(), c.ClickHouse.Validate(), c.Store.Validate())...)
}

// lockTTL is the recovery lock's lifetime during a manual rebuild (renewed).
const lockTTL = 30 * time.Second

// runRebuild recomputes series (and, with -all, item attributes) from the
// ClickHouse history ingest writes: `feature rebuild -all` after Redis lost
// its data (docs/operations.md, "Recovery from Redis loss").
func runRebuild(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var cfg rebuildConfig
	fs := flag.NewFlagSet(service+" rebuild", flag.ContinueOnError)
	fs.SetOutput(stdout)
	cfg.RegisterFlags(fs)
	if err := config.Parse(fs, args, getenv); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	conn, err := chx.Open(ctx, cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer conn.Close()
	rdb, err := redisx.Open(ctx, cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	s := store.NewRedis(rdb, cfg.Store)

	if cfg.All {
		// With the state lost (the sentinel missing) the rebuild holds the
		// recovery lock, writes with it, and marks the state complete: the
		// paused services then resume. With the state complete it rewrites
		// the series in place (e.g. after a bug fix).
		var st store.RebuildStats
		complete, gen, err := recovery.Exclusive(ctx, recovery.NewGuard(rdb, store.Service), lockTTL, func(ctx context.Context, token string) error {
			var err error
			st, err = store.RebuildAll(ctx, conn, s.Rebuilding(token), cfg.Parallel)
			return err
		})
		if err != nil {
			return err
		}
		if complete {
			if st, err = store.RebuildAll(ctx, conn, s, cfg.Parallel); err != nil {
				return err
			}
		}
		fmt.Fprintf(stdout, "rebuilt %d series and %d items from %d events (%d rejected by validation, as the live service does)\n",
			st.Series, st.Items, st.Events, st.Rejected)
		if gen != "" {
			fmt.Fprintf(stdout, "redis state marked complete (generation %s): the feature service resumes\n", gen)
		}
		return nil
	}
	events, err := store.Rebuild(ctx, conn, s, cfg.Series)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rebuilt %s from %d events\n", cfg.Series, events)
	return nil
}
