// Package app wires the replenishment service: flags, telemetry, Redis,
// ClickHouse, Kafka, gRPC and the admin server.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/config"
	"github.com/stockcast/stockcast/pkg/grpcx"
	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/lifecycle"
	"github.com/stockcast/stockcast/pkg/recovery"
	"github.com/stockcast/stockcast/pkg/redisx"
	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/topics"
	"github.com/stockcast/stockcast/services/replenishment/internal/consumer"
	"github.com/stockcast/stockcast/services/replenishment/internal/grpcapi"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
	"github.com/stockcast/stockcast/services/replenishment/internal/store"
)

// service names the process in logs, traces and metrics.
const service = "replenishment"

// Group is the consumer group of forecasts.v1.
const Group = "stockcast-replenishment"

// meterName scopes the service's own metrics.
const meterName = "github.com/stockcast/stockcast/services/replenishment"

// Config is the replenishment service's configuration.
type Config struct {
	Telemetry   telemetry.Config
	Kafka       kafkax.Config
	Redis       redisx.Config
	ClickHouse  chx.Config
	GRPC        grpcx.Config
	Admin       lifecycle.AdminConfig
	Planning    planning.Config
	State       store.StateConfig
	Recovery    recovery.Config
	Allocation  AllocationConfig
	PrintConfig bool
	MigrateOnly bool
	// Publish the stockout periods the service detects (and the platform
	// did not report) to stockouts.v1.
	PublishStockouts bool
	// Also publish them to inventory.v1, stockcast's own input, as
	// censoring flags for forecasting (opt-in: proposals then depend on
	// when they come back).
	StockoutsToInventory bool
}

// RegisterFlags registers every flag of the service.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Telemetry.RegisterFlags(fs)
	c.Kafka.RegisterFlags(fs)
	c.Redis.RegisterFlags(fs)
	c.ClickHouse.RegisterFlags(fs)
	c.GRPC.RegisterFlags(fs, "grpc.")
	c.Admin.RegisterFlags(fs)
	c.Planning.RegisterFlags(fs, "replenishment.")
	c.State.RegisterFlags(fs, "replenishment.")
	c.Recovery.RegisterFlags(fs, "replenishment.")
	c.Allocation.RegisterFlags(fs, "replenishment.")
	fs.BoolVar(&c.PublishStockouts, "replenishment.publish-stockouts", true,
		"publish stockout periods the service detects (on hand reaching 0 and back) and the platform did not report to stockouts.v1 as stockout_started/ended")
	fs.BoolVar(&c.StockoutsToInventory, "replenishment.stockouts-to-inventory", false,
		"also publish the detected stockout periods to inventory.v1, stockcast's own input, as censoring flags for forecasting; "+
			"they come back at whatever point of the series' later events they arrive, so proposals then depend on timing")
	fs.BoolVar(&c.PrintConfig, "config.print", false, "print the effective configuration and exit")
	fs.BoolVar(&c.MigrateOnly, "migrate-only", false, "create the ClickHouse tables, then exit (the schema migration Job)")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	return errors.Join(c.Telemetry.Validate(), c.Kafka.Validate(), c.Redis.Validate(), c.ClickHouse.Validate(),
		c.GRPC.Validate(), c.Planning.Validate(), c.State.Validate(), c.Recovery.Validate(), c.Allocation.Validate())
}

// Run runs the service until ctx is done, or `rebuild` when args start
// with it.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	rebuild := len(args) > 0 && args[0] == "rebuild"
	if rebuild {
		args = args[1:]
	}
	var cfg Config
	fs := flag.NewFlagSet(service, flag.ContinueOnError)
	fs.SetOutput(stdout)
	cfg.RegisterFlags(fs)
	if err := config.Parse(fs, args, getenv); err != nil {
		return err
	}
	if cfg.PrintConfig {
		config.Print(stdout, fs)
		return nil
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("validate config: %w", err)
	}
	if cfg.MigrateOnly {
		return migrateOnly(ctx, cfg, stdout)
	}
	if rebuild {
		return runRebuild(ctx, cfg, stdout)
	}
	return serve(ctx, cfg, stdout)
}

// migrateOnly creates the replenishment service's ClickHouse tables and
// returns: the -migrate-only mode, run by the chart's pre-install/pre-upgrade
// Job.
func migrateOnly(ctx context.Context, cfg Config, stdout io.Writer) (err error) {
	tel, shutdownTelemetry, err := telemetry.Setup(ctx, service, cfg.Telemetry, stdout)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err = errors.Join(err, shutdownTelemetry(sctx))
	}()
	ch, err := chx.Open(ctx, cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, ch.Close()) }()
	if err := migrate(ctx, ch); err != nil {
		return err
	}
	tel.Logger.Info("clickhouse schema applied", "database", cfg.ClickHouse.Database, "tables", []string{"proposals", "stockouts"})
	return nil
}

// serve starts everything, runs until ctx is done, and stops in order:
// not ready -> the consumer finishes and commits its batch -> gRPC stops
// gracefully -> producer, stores and telemetry are flushed and closed (the
// deferred calls, in reverse order of opening).
func serve(ctx context.Context, cfg Config, stdout io.Writer) (err error) {
	tel, shutdownTelemetry, err := telemetry.Setup(ctx, service, cfg.Telemetry, stdout)
	if err != nil {
		return err
	}
	log := tel.Logger
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err = errors.Join(err, shutdownTelemetry(sctx))
	}()

	if err := kafkax.EnsureTopics(ctx, cfg.Kafka, topics.Forecasts, topics.DLQ(topics.Forecasts), topics.Proposals, topics.Stockouts, topics.Inventory); err != nil {
		return err
	}
	rdb, err := redisx.Open(ctx, cfg.Redis)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, rdb.Close()) }()
	ch, err := chx.Open(ctx, cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, ch.Close()) }()
	if err := migrate(ctx, ch); err != nil {
		return err
	}

	// SetPolicy's policies go to ClickHouse too, for the recovery.
	policies, err := openPolicies(ctx, cfg, rdb, ch)
	if err != nil {
		return err
	}
	state := store.NewStateWith(rdb, stateConfig(cfg)).Guarded() // applies nothing while Redis lost the state
	planner := planning.NewPlannerLearning(policies, state, log, cfg.Planning.LeadTimeMinSamples)
	proposals := store.NewProposals(ch)

	producer, err := kafkax.NewProducer(cfg.Kafka, tel)
	if err != nil {
		return err
	}
	defer producer.Close()
	handler, err := consumer.NewHandler(planner, proposals, producer, tel.Meter.Meter(meterName), log)
	if err != nil {
		return err
	}
	handler.SetStockoutOutput(consumer.StockoutOutput{
		Store:       store.NewStockouts(ch),
		Publish:     cfg.PublishStockouts,
		ToInventory: cfg.StockoutsToInventory,
	})
	// Ready once the Redis state is complete, not while it is lost.
	ready := &lifecycle.Readiness{}
	rec, err := recovery.New(recovery.NewGuard(rdb, store.Service), cfg.Recovery, rebuildAfterLoss(cfg, rdb, ch, policies, state),
		recovery.HasKeys(rdb, "stockcast:r:{*}"), log, tel.Meter.Meter(meterName), runbookReplay, ready.Set)
	if err != nil {
		return err
	}
	rec.WithFresh(recovery.NoCommits(cfg.Kafka, Group, topics.Forecasts)) // a first start needs no rebuild
	cons, err := kafkax.NewConsumer(cfg.Kafka, Group, []string{topics.Forecasts}, recovery.Handler(handler, rec), tel)
	if err != nil {
		return err
	}

	grpcServer, err := grpcx.NewServer(cfg.GRPC, tel)
	if err != nil {
		return err
	}
	reviewer := planning.NewReviewer(proposals, store.NewDecisions(rdb), consumer.NewPublisher(producer), time.Now)
	series := consumer.SeriesService{Handler: handler, State: state, MinSamples: cfg.Planning.LeadTimeMinSamples}
	replenishmentv1.RegisterReplenishmentServiceServer(grpcServer.GRPC(), grpcapi.NewServer(policies, proposals, reviewer, series))

	// The portfolio allocation (off unless -replenishment.allocation-target).
	unitPrices := func(ctx context.Context, location string) (map[planning.Scope]float64, error) {
		return store.UnitPrices(ctx, ch, location)
	}
	alloc, err := newAllocator(cfg.Allocation, rdb, unitPrices, planner, ready.Ready, log, tel.Meter.Meter(meterName))
	if err != nil {
		return err
	}

	admin := lifecycle.NewAdmin(cfg.Admin, tel, ready)

	if err := grpcServer.Listen(); err != nil { // before the recovery reports ready
		return err
	}
	log.Info("replenishment service starting", "grpc_addr", cfg.GRPC.Addr, "admin_addr", cfg.Admin.Addr)
	err = lifecycle.RunGroup(ctx,
		admin.Run,
		grpcServer.Run,
		cons.Run,
		rec.Run,
		alloc.Run,
		func(ctx context.Context) error {
			<-ctx.Done()
			ready.Set(false) // first step of the shutdown: stop receiving traffic
			return nil
		},
	)
	log.Info("replenishment service stopped", "err", err)
	return err
}

// migrate creates the service's ClickHouse tables (proposals, stockouts).
func migrate(ctx context.Context, ch driver.Conn) error {
	if err := store.MigrateProposals(ctx, ch); err != nil {
		return err
	}
	return store.MigrateStockouts(ctx, ch)
}

// stateConfig is the state store's configuration: a marker per event only
// without Kafka transactions (store.StateConfig.Markers).
func stateConfig(cfg Config) store.StateConfig {
	c := cfg.State
	c.Markers = cfg.Kafka.AtLeastOnce
	return c
}
