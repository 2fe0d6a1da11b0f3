package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/modelregistry"
)

// runModels is `stockcast models list` and `stockcast models promote
// -version V`: the model registry (ClickHouse table models) for operators.
// Promoting an earlier version is the model rollback: the forecast service
// polls the champion and hot-loads its artefact (docs/operations.md).
func runModels(ctx context.Context, e *env, args []string) error {
	return subcommand("models", args, map[string]func([]string) error{
		"list":    func(args []string) error { return runModelsList(ctx, e, args) },
		"promote": func(args []string) error { return runModelsPromote(ctx, e, args) },
	})
}

func openRegistry(ctx context.Context, cfg chx.Config) (*modelregistry.Registry, func() error, error) {
	conn, err := chx.Open(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	if err := modelregistry.Migrate(ctx, conn); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return modelregistry.New(conn), conn.Close, nil
}

func runModelsList(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("models list", flag.ContinueOnError)
	var ch chx.Config
	ch.RegisterFlags(fs)
	if err := e.parse(fs, args); err != nil {
		return err
	}
	reg, closeFn, err := openRegistry(ctx, ch)
	if err != nil {
		return err
	}
	defer closeFn()
	ms, err := reg.List(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "VERSION\tSTATUS\tCREATED\tWRMSSE\tCOMPARED WITH\tARTEFACT")
	for _, m := range ms {
		fmt.Fprintf(w, "%s\t%s\t%s\t%.4f\t%s\t%s\n", m.Version, m.Status, m.CreatedAt.UTC().Format(time.RFC3339),
			m.WRMSSE, m.ChampionVersion, m.Artefact)
	}
	return w.Flush()
}

func runModelsPromote(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("models promote", flag.ContinueOnError)
	var ch chx.Config
	ch.RegisterFlags(fs)
	version := fs.String("version", "", "the version to make the champion (stockcast models list)")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if *version == "" {
		return errors.New("models promote: -version is required")
	}
	reg, closeFn, err := openRegistry(ctx, ch)
	if err != nil {
		return err
	}
	defer closeFn()
	prev, hadChampion, err := reg.Champion(ctx)
	if err != nil {
		return err
	}
	if err := reg.Promote(ctx, *version); err != nil {
		return err
	}
	was := "none"
	if hadChampion {
		was = prev.Version
	}
	fmt.Fprintf(e.stdout, "champion: %s (was %s)\n", *version, was)
	return nil
}
