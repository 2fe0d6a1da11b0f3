// Package app wires ingest: configuration, telemetry, stores, the Kafka
// consumer and producer, the gRPC server and the admin endpoints.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/config"
	"github.com/stockcast/stockcast/pkg/grpcx"
	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/lifecycle"
	"github.com/stockcast/stockcast/pkg/redisx"
	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/topics"
	ingestv1 "github.com/stockcast/stockcast/proto/stockcast/ingest/v1"
	"github.com/stockcast/stockcast/services/ingest/internal/consumer"
	"github.com/stockcast/stockcast/services/ingest/internal/events"
	"github.com/stockcast/stockcast/services/ingest/internal/grpcapi"
	"github.com/stockcast/stockcast/services/ingest/internal/ingesting"
	"github.com/stockcast/stockcast/services/ingest/internal/publish"
	"github.com/stockcast/stockcast/services/ingest/internal/store"
)

// ServiceName names the service in logs, traces and DLQ headers.
const ServiceName = "ingest"

// shutdownTimeout bounds the final flushes after the run group stopped.
const shutdownTimeout = 10 * time.Second

// Config is ingest's whole configuration.
type Config struct {
	Kafka      kafkax.Config
	Redis      redisx.Config
	ClickHouse chx.Config
	GRPC       grpcx.Config
	Admin      lifecycle.AdminConfig
	Telemetry  telemetry.Config
	Ingest     ingesting.Config

	PrintConfig bool
	MigrateOnly bool
}

// RegisterFlags registers every flag of the service.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Kafka.RegisterFlags(fs)
	c.Redis.RegisterFlags(fs)
	c.ClickHouse.RegisterFlags(fs)
	c.GRPC.RegisterFlags(fs, "grpc.")
	c.Admin.RegisterFlags(fs)
	c.Telemetry.RegisterFlags(fs)
	c.Ingest.RegisterFlags(fs, "ingest.")
	fs.BoolVar(&c.PrintConfig, "config.print", false, "print the effective configuration and exit")
	fs.BoolVar(&c.MigrateOnly, "migrate-only", false, "create the ClickHouse tables, then exit (the schema migration Job)")
}

// Validate checks every part of the configuration.
func (c *Config) Validate() error {
	return errors.Join(c.Kafka.Validate(), c.Redis.Validate(), c.ClickHouse.Validate(), c.GRPC.Validate(),
		c.Admin.Validate(), c.Telemetry.Validate(), c.Ingest.Validate())
}

// Run runs ingest until ctx is done; a clean shutdown returns nil.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet(ServiceName, flag.ContinueOnError)
	fs.SetOutput(stdout)
	var cfg Config
	cfg.RegisterFlags(fs)
	if err := config.Parse(fs, args, getenv); err != nil {
		return fmt.Errorf("parse flags: %w", err)
	}
	if cfg.PrintConfig {
		config.Print(stdout, fs)
		return nil
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("validate config: %w", err)
	}

	tel, shutdownTelemetry, err := telemetry.Setup(ctx, ServiceName, cfg.Telemetry, stdout)
	if err != nil {
		return fmt.Errorf("set up telemetry: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		if err := shutdownTelemetry(sctx); err != nil {
			tel.Logger.Warn("flush telemetry", "err", err)
		}
	}()
	log := tel.Logger
	if cfg.MigrateOnly {
		return migrateOnly(ctx, cfg.ClickHouse, log)
	}

	rdb, err := redisx.Open(ctx, cfg.Redis)
	if err != nil {
		return fmt.Errorf("open redis: %w", err)
	}
	defer closeLogged(log, "redis", rdb.Close)

	ch, err := chx.Open(ctx, cfg.ClickHouse)
	if err != nil {
		return fmt.Errorf("open clickhouse: %w", err)
	}
	defer closeLogged(log, "clickhouse", ch.Close)
	if err := chx.Migrate(ctx, ch, store.Schema...); err != nil {
		return fmt.Errorf("create ingest tables: %w", err)
	}

	if err := kafkax.EnsureTopics(ctx, cfg.Kafka, Topics()...); err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	prod, err := kafkax.NewProducer(cfg.Kafka, tel)
	if err != nil {
		return err
	}
	defer prod.Close()

	svc, err := ingesting.NewService(events.NewNormaliser(cfg.Ingest.NonProduct()),
		store.NewSeenSharded(rdb, cfg.Ingest.DedupTTL, cfg.Ingest.DedupShards), store.NewHistory(ch), tel, time.Now)
	if err != nil {
		return err
	}
	svc.Transactional(!cfg.Kafka.AtLeastOnce)
	cons, err := kafkax.NewConsumer(cfg.Kafka, consumer.Group, consumer.Topics,
		consumer.NewHandler(svc, prod, log), tel)
	if err != nil {
		return err
	}
	srv, err := grpcx.NewServer(cfg.GRPC, tel)
	if err != nil {
		return fmt.Errorf("create grpc server: %w", err)
	}
	ingestv1.RegisterIngestServiceServer(srv.GRPC(), grpcapi.NewServer(svc, publish.NewRaw(prod)))

	ready := &lifecycle.Readiness{}
	admin := lifecycle.NewAdmin(cfg.Admin, tel, ready)
	log.Info("ingest starting", "grpc_addr", cfg.GRPC.Addr, "admin_addr", cfg.Admin.Addr, "brokers", cfg.Kafka.Brokers)
	if err := srv.Listen(); err != nil {
		return err
	}
	ready.Set(true)
	err = lifecycle.RunGroup(ctx,
		admin.Run,
		cons.Run,
		srv.Run,
		func(ctx context.Context) error {
			// Not ready as soon as shutdown starts, while the consumer
			// drains and the gRPC server finishes its calls.
			<-ctx.Done()
			ready.Set(false)
			return nil
		},
	)
	log.Info("ingest stopped", "err", err)
	return err
}

// Topics are the topics ingest reads or writes; it creates the missing
// ones at start.
func Topics() []string {
	ts := []string{topics.Demand}
	for _, t := range consumer.Topics {
		ts = append(ts, t, topics.DLQ(t))
	}
	return ts
}

// migrateOnly creates ingest's ClickHouse tables and returns: the service's
// -migrate-only mode, run by the chart's pre-install/pre-upgrade Job.
func migrateOnly(ctx context.Context, cfg chx.Config, log interface{ Info(string, ...any) }) error {
	ch, err := chx.Open(ctx, cfg)
	if err != nil {
		return fmt.Errorf("open clickhouse: %w", err)
	}
	defer ch.Close()
	if err := chx.Migrate(ctx, ch, store.Schema...); err != nil {
		return fmt.Errorf("create ingest tables: %w", err)
	}
	log.Info("clickhouse schema applied", "database", cfg.Database, "tables", tableNames(store.Schema))
	return nil
}

// tableNames returns the table of each "CREATE TABLE IF NOT EXISTS name ..."
// statement, for the migration log.
func tableNames(stmts []string) []string {
	var names []string
	for _, s := range stmts {
		if f := strings.Fields(s); len(f) > 5 && strings.EqualFold(f[1], "TABLE") {
			names = append(names, strings.TrimSuffix(f[5], "("))
		}
	}
	return names
}

func closeLogged(log interface{ Warn(string, ...any) }, what string, closeFn func() error) {
	if err := closeFn(); err != nil {
		log.Warn("close "+what, "err", err)
	}
}
