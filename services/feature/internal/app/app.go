// Package app wires the feature service: flags, telemetry, Redis, Kafka,
// gRPC and the admin server, and the `rebuild` subcommand.
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
	"github.com/stockcast/stockcast/pkg/grpcx"
	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/lifecycle"
	"github.com/stockcast/stockcast/pkg/recovery"
	"github.com/stockcast/stockcast/pkg/redisx"
	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/topics"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	"github.com/stockcast/stockcast/services/feature/internal/consumer"
	"github.com/stockcast/stockcast/services/feature/internal/grpcapi"
	"github.com/stockcast/stockcast/services/feature/internal/store"
)

// service names the process in logs, traces and metrics.
const service = "feature"

// Config is the feature service's configuration.
type Config struct {
	Telemetry telemetry.Config
	Kafka     kafkax.Config
	Redis     redisx.Config
	GRPC      grpcx.Config
	Admin     lifecycle.AdminConfig
	Store     store.Config
	// Redis-loss recovery: ClickHouse is read only to rebuild the state.
	Recovery        recovery.Config
	ClickHouse      chx.Config
	RebuildParallel int
	PrintConfig     bool
}

// RegisterFlags registers every flag of the service.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Telemetry.RegisterFlags(fs)
	c.Kafka.RegisterFlags(fs)
	c.Redis.RegisterFlags(fs)
	c.GRPC.RegisterFlags(fs, "grpc.")
	c.Admin.RegisterFlags(fs)
	c.Store.RegisterFlags(fs, "feature.")
	c.Recovery.RegisterFlags(fs, "feature.")
	c.ClickHouse.RegisterFlags(fs)
	fs.IntVar(&c.RebuildParallel, "feature.rebuild-parallel", 1, "automatic recovery: series written to Redis at a time (as rebuild -parallel)")
	fs.BoolVar(&c.PrintConfig, "config.print", false, "print the effective configuration and exit")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.RebuildParallel < 1 {
		errs = append(errs, errors.New("feature.rebuild-parallel: must be at least 1"))
	}
	return errors.Join(append(errs, c.Telemetry.Validate(), c.Kafka.Validate(), c.Redis.Validate(), c.GRPC.Validate(), c.Admin.Validate(),
		c.Store.Validate(), c.Recovery.Validate(), c.ClickHouse.Validate())...)
}

// Run runs the service until ctx is done, or `rebuild` when args start with it.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "rebuild" {
		return runRebuild(ctx, args[1:], getenv, stdout)
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
	return serve(ctx, cfg, stdout)
}

func serve(ctx context.Context, cfg Config, stdout io.Writer) (err error) {
	tel, shutdownTelemetry, err := telemetry.Setup(ctx, service, cfg.Telemetry, stdout)
	if err != nil {
		return err
	}
	log := tel.Logger
	defer func() {
		// Last: flush spans and metrics of everything that stopped before.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err = errors.Join(err, shutdownTelemetry(sctx))
	}()

	if err := kafkax.EnsureTopics(ctx, cfg.Kafka, topics.Demand, topics.DLQ(topics.Demand), topics.Features); err != nil {
		return err
	}
	rdb, err := redisx.Open(ctx, cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	// Without Kafka transactions ingest may publish an event twice (at
	// other offsets): the store then also keeps a marker per event.
	cfg.Store.Markers = cfg.Kafka.AtLeastOnce
	features := store.NewRedis(rdb, cfg.Store)
	if err := features.LoadScripts(ctx); err != nil {
		return err
	}

	producer, err := kafkax.NewProducer(cfg.Kafka, tel)
	if err != nil {
		return err
	}
	defer producer.Close()
	meter := tel.Meter.Meter("github.com/stockcast/stockcast/services/feature")
	handler, err := consumer.New(features, producer, log, meter)
	if err != nil {
		return err
	}
	// Ready once the Redis state is complete, not while it is lost.
	ready := &lifecycle.Readiness{}
	rec, err := recovery.New(recovery.NewGuard(rdb, store.Service), cfg.Recovery, rebuildAfterLoss(cfg, features, log),
		recovery.HasKeys(rdb, "stockcast:f:{*}"), log, meter, runbookRebuild, ready.Set)
	if err != nil {
		return err
	}
	rec.WithFresh(recovery.NoCommits(cfg.Kafka, consumer.Group, topics.Demand)) // a first start needs no rebuild
	cons, err := kafkax.NewConsumer(cfg.Kafka, consumer.Group, []string{topics.Demand}, recovery.Handler(handler, rec), tel)
	if err != nil {
		return err
	}

	grpcServer, err := grpcx.NewServer(cfg.GRPC, tel)
	if err != nil {
		return err
	}
	featurev1.RegisterFeatureServiceServer(grpcServer.GRPC(), grpcapi.New(features))

	admin := lifecycle.NewAdmin(cfg.Admin, tel, ready)

	if err := grpcServer.Listen(); err != nil { // before the recovery reports ready
		return err
	}
	log.Info("feature service starting", "grpc_addr", cfg.GRPC.Addr, "admin_addr", cfg.Admin.Addr)
	err = lifecycle.RunGroup(ctx,
		admin.Run,
		grpcServer.Run,
		cons.Run,
		rec.Run,
		func(ctx context.Context) error {
			<-ctx.Done()
			ready.Set(false) // first step of the shutdown: stop receiving traffic
			return nil
		},
	)
	log.Info("feature service stopped", "err", err)
	return err
}
