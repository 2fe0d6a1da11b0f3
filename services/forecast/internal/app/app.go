// Package app wires the forecast service: flags, telemetry, ClickHouse,
// the feature service client, Kafka, gRPC and the admin server.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/config"
	"github.com/stockcast/stockcast/pkg/grpcx"
	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/lifecycle"
	"github.com/stockcast/stockcast/pkg/modelregistry"
	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/topics"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	"github.com/stockcast/stockcast/services/forecast/internal/consumer"
	"github.com/stockcast/stockcast/services/forecast/internal/featureclient"
	"github.com/stockcast/stockcast/services/forecast/internal/grpcapi"
	"github.com/stockcast/stockcast/services/forecast/internal/modelwatch"
	"github.com/stockcast/stockcast/services/forecast/internal/scoring"
	"github.com/stockcast/stockcast/services/forecast/internal/store"
)

// service names the process in logs, traces and metrics.
const service = "forecast"

// Group is the consumer group of features.v1.
const Group = "stockcast-forecast"

// Config is the forecast service's configuration.
type Config struct {
	Telemetry   telemetry.Config
	Kafka       kafkax.Config
	ClickHouse  chx.Config
	GRPC        grpcx.Config
	Admin       lifecycle.AdminConfig
	Forecast    scoring.Config
	Model       modelwatch.Config
	FeatureAddr string
	FeatureTLS  grpcx.ClientTLSConfig
	PrintConfig bool
	MigrateOnly bool
	// MemoryLimit is -memory.limit: auto, off or a size (memlimit.go).
	MemoryLimit string
}

// RegisterFlags registers every flag of the service.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Telemetry.RegisterFlags(fs)
	c.Kafka.RegisterFlags(fs)
	c.ClickHouse.RegisterFlags(fs)
	c.GRPC.RegisterFlags(fs, "grpc.")
	c.Admin.RegisterFlags(fs)
	c.Forecast.RegisterFlags(fs, "forecast.")
	c.Model.RegisterFlags(fs)
	fs.StringVar(&c.FeatureAddr, "feature.addr", "127.0.0.1:9091", "gRPC address of the feature service (series histories for cold starts)")
	c.FeatureTLS.RegisterFlags(fs, "feature.")
	fs.BoolVar(&c.PrintConfig, "config.print", false, "print the effective configuration and exit")
	fs.BoolVar(&c.MigrateOnly, "migrate-only", false, "create the ClickHouse tables, then exit (the schema migration Job)")
	fs.StringVar(&c.MemoryLimit, "memory.limit", "auto", "the Go runtime's soft memory limit: auto (GOMEMLIMIT if set, else 90% of the container's cgroup memory limit, else none), off, or a size such as 3600MiB")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.FeatureAddr == "" {
		errs = append(errs, errors.New("feature addr: none given"))
	}
	if err := validateMemoryLimit(c.MemoryLimit); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(append(errs, c.Telemetry.Validate(), c.Kafka.Validate(), c.ClickHouse.Validate(),
		c.GRPC.Validate(), c.Forecast.Validate(), c.Model.Validate())...)
}

// Run runs the service until ctx is done.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
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
	return serve(ctx, cfg, stdout)
}

// migrateOnly creates the forecast service's ClickHouse tables and returns:
// the -migrate-only mode, run by the chart's pre-install/pre-upgrade Job.
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
	if err := store.Migrate(ctx, ch); err != nil {
		return err
	}
	if err := chx.Migrate(ctx, ch, modelregistry.Schema...); err != nil {
		return err
	}
	tel.Logger.Info("clickhouse schema applied", "database", cfg.ClickHouse.Database, "tables", []string{"forecast_log", "models"})
	return nil
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
	ml, err := applyMemoryLimit(cfg.MemoryLimit, os.Getenv)
	if err != nil {
		return err
	}
	log.Info("memory limit", "flag", cfg.MemoryLimit, "source", ml.Source, "limit_bytes", ml.Bytes, "container_limit_bytes", ml.Container)

	if err := kafkax.EnsureTopics(ctx, cfg.Kafka, topics.Features, topics.DLQ(topics.Features), topics.Forecasts); err != nil {
		return err
	}
	ch, err := chx.Open(ctx, cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, ch.Close()) }()
	if err := store.Migrate(ctx, ch); err != nil {
		return err
	}
	if err := chx.Migrate(ctx, ch, modelregistry.Schema...); err != nil {
		return err
	}
	forecastLog := store.NewForecastLog(ch)

	featureConn, err := featureclient.Dial(cfg.FeatureAddr, cfg.FeatureTLS, tel)
	if err != nil {
		return fmt.Errorf("dial feature service %s: %w", cfg.FeatureAddr, err)
	}
	defer func() { err = errors.Join(err, featureConn.Close()) }()
	scorer := scoring.New(cfg.Forecast, featureclient.New(featurev1.NewFeatureServiceClient(featureConn)), time.Now)
	// the champion, if any, before the first snapshot; then polled
	watcher := modelwatch.New(cfg.Model, modelregistry.New(ch), scorer, log.With("component", "modelwatch"))
	if err := watcher.Poll(ctx); err != nil {
		log.Warn("read the champion global model: scoring with the ensemble alone until it can be read", "err", err)
	}
	if err := registerMetrics(tel, scorer, watcher); err != nil {
		return err
	}

	producer, err := kafkax.NewProducer(cfg.Kafka, tel)
	if err != nil {
		return err
	}
	defer producer.Close()
	cons, err := kafkax.NewConsumer(cfg.Kafka, Group, []string{topics.Features},
		consumer.New(scorer, forecastLog, producer, log), tel)
	if err != nil {
		return err
	}

	grpcServer, err := grpcx.NewServer(cfg.GRPC, tel)
	if err != nil {
		return err
	}
	forecastv1.RegisterForecastServiceServer(grpcServer.GRPC(), grpcapi.New(scorer, archive{forecastLog}))

	ready := &lifecycle.Readiness{}
	admin := lifecycle.NewAdmin(cfg.Admin, tel, ready)

	if err := grpcServer.Listen(); err != nil { // before anything reports ready
		return err
	}
	log.Info("forecast service starting", "grpc_addr", cfg.GRPC.Addr, "admin_addr", cfg.Admin.Addr, "feature_addr", cfg.FeatureAddr)
	err = lifecycle.RunGroup(ctx,
		admin.Run,
		grpcServer.Run,
		cons.Run,
		watcher.Run,
		func(ctx context.Context) error {
			ready.Set(true)
			<-ctx.Done()
			ready.Set(false) // first step of the shutdown: stop receiving traffic
			return nil
		},
	)
	log.Info("forecast service stopped", "err", err)
	return err
}

// archive maps the store's not-found to the API's.
type archive struct{ log *store.ForecastLog }

func (a archive) Latest(ctx context.Context, seriesKey string) (*scoring.Result, error) {
	res, err := a.log.Latest(ctx, seriesKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil, grpcapi.ErrNotFound
	}
	return res, err
}

// registerMetrics exports the series cache: stockcast_forecast_series,
// stockcast_forecast_cold_series (those kept compact) and
// stockcast_forecast_state_builds_total{path="rebuild"|"incremental"}; and
// the global model: stockcast_forecast_global_forecasts_total (one per
// series and day) and stockcast_forecast_model_loads_total{result="ok"|"failed"}.
func registerMetrics(tel *telemetry.Telemetry, scorer *scoring.Scorer, watcher *modelwatch.Watcher) error {
	m := tel.Meter.Meter("github.com/stockcast/stockcast/services/forecast")
	series, err := m.Int64ObservableGauge("stockcast.forecast.series", metric.WithDescription("Series states held in memory."))
	if err != nil {
		return fmt.Errorf("create series gauge: %w", err)
	}
	cold, err := m.Int64ObservableGauge("stockcast.forecast.cold.series",
		metric.WithDescription("Series states held in memory compact (the series whose latest forecast is not kept whole)."))
	if err != nil {
		return fmt.Errorf("create cold series gauge: %w", err)
	}
	builds, err := m.Int64ObservableCounter("stockcast.forecast.state.builds",
		metric.WithDescription("Series states advanced from a snapshot (incremental) or rebuilt from the feature service's history (rebuild)."))
	if err != nil {
		return fmt.Errorf("create state builds counter: %w", err)
	}
	global, err := m.Int64ObservableCounter("stockcast.forecast.global.forecasts",
		metric.WithDescription("Global model forecasts of a series' day (computed on the day's first event, reused by the others)."))
	if err != nil {
		return fmt.Errorf("create global forecasts counter: %w", err)
	}
	loads, err := m.Int64ObservableCounter("stockcast.forecast.model.loads",
		metric.WithDescription("Global model loads: ok (swapped in) or failed (the model in use kept)."))
	if err != nil {
		return fmt.Errorf("create model loads counter: %w", err)
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := scorer.Stats()
		o.ObserveInt64(series, int64(scorer.Series()))
		o.ObserveInt64(cold, int64(scorer.ColdSeries()))
		o.ObserveInt64(builds, st.Rebuilds, metric.WithAttributes(attrPath("rebuild")))
		o.ObserveInt64(builds, st.Incremental, metric.WithAttributes(attrPath("incremental")))
		o.ObserveInt64(global, st.GlobalForecasts)
		ws := watcher.Stats()
		o.ObserveInt64(loads, ws.Loads, metric.WithAttributes(attribute.String("result", "ok")))
		o.ObserveInt64(loads, ws.Failures, metric.WithAttributes(attribute.String("result", "failed")))
		return nil
	}, series, cold, builds, global, loads)
	if err != nil {
		return fmt.Errorf("register forecast metrics: %w", err)
	}
	return nil
}

func attrPath(p string) attribute.KeyValue { return attribute.String("path", p) }
