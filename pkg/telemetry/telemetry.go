// Package telemetry sets up logging, tracing and metrics once per process;
// the result is injected into every component (no global providers).
//
// Logs: log/slog, JSON (default) or text, at a configured level.
// Traces: an OpenTelemetry SDK TracerProvider, exporting over OTLP/gRPC when an
// endpoint is set; without one spans are still created so that trace context
// propagates through Kafka headers and gRPC metadata.
// Metrics: an OpenTelemetry MeterProvider read by the Prometheus exporter on a
// fresh prometheus.Registry, which also carries the Go runtime and process
// collectors; lifecycle serves it on /metrics.
package telemetry

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Config configures Setup.
type Config struct {
	LogLevel     string  // debug, info, warn, error
	LogFormat    string  // json or text
	OTLPEndpoint string  // host:port of an OTLP/gRPC trace collector; empty = no export
	OTLPInsecure bool    // plaintext to the collector
	SampleRatio  float64 // fraction of new traces sampled; a sampled parent is always followed
}

// RegisterFlags registers -log.level, -log.format, -otel.endpoint,
// -otel.insecure and -otel.sample-ratio.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.LogLevel, "log.level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log.format", "json", "log format: json or text")
	fs.StringVar(&c.OTLPEndpoint, "otel.endpoint", "", "OTLP/gRPC trace collector host:port (empty: traces are not exported)")
	fs.BoolVar(&c.OTLPInsecure, "otel.insecure", true, "connect to the OTLP collector without TLS")
	fs.Float64Var(&c.SampleRatio, "otel.sample-ratio", 1, "fraction of new traces to sample (0..1)")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		return fmt.Errorf("log format %q: want json or text", c.LogFormat)
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		return fmt.Errorf("otel sample ratio %v: want 0..1", c.SampleRatio)
	}
	return nil
}

// Telemetry is what components receive: a logger, trace and meter providers,
// the registry /metrics serves and the propagator for headers.
type Telemetry struct {
	Logger     *slog.Logger
	Tracer     trace.TracerProvider
	Meter      metric.MeterProvider
	Registry   *prometheus.Registry
	Propagator propagation.TextMapPropagator
}

// Setup builds the telemetry of one service. The returned shutdown flushes
// pending spans and stops the providers; call it last.
func Setup(ctx context.Context, service string, cfg Config, logOut io.Writer) (*Telemetry, func(context.Context) error, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("validate telemetry config: %w", err)
	}
	level, _ := parseLevel(cfg.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	var handler slog.Handler = slog.NewJSONHandler(logOut, opts)
	if cfg.LogFormat == "text" {
		handler = slog.NewTextHandler(logOut, opts)
	}
	logger := slog.New(handler).With("service", service)

	res := resource.NewSchemaless(attribute.String("service.name", service))

	tpOpts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	}
	if cfg.OTLPEndpoint != "" {
		expOpts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.OTLPEndpoint)}
		if cfg.OTLPInsecure {
			expOpts = append(expOpts, otlptracegrpc.WithInsecure())
		}
		// The gRPC connection is lazy: a collector that is down does not stop the service.
		exp, err := otlptracegrpc.New(ctx, expOpts...)
		if err != nil {
			return nil, nil, fmt.Errorf("create otlp trace exporter for %s: %w", cfg.OTLPEndpoint, err)
		}
		tpOpts = append(tpOpts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(tpOpts...)

	reg, mp, err := newMetrics(res)
	if err != nil {
		return nil, nil, errors.Join(err, tp.Shutdown(ctx))
	}

	tel := &Telemetry{
		Logger:     logger,
		Tracer:     tp,
		Meter:      mp,
		Registry:   reg,
		Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
	shutdown := func(ctx context.Context) error {
		return errors.Join(tp.Shutdown(ctx), mp.Shutdown(ctx))
	}
	return tel, shutdown, nil
}

// NewDiscard returns telemetry for tests: logs are discarded, the tracer is a
// no-op, metrics are real (a fresh registry that tests can gather from).
func NewDiscard() *Telemetry {
	reg, mp, err := newMetrics(resource.Empty())
	if err != nil {
		// Registering fresh collectors on a fresh registry cannot collide.
		panic(fmt.Sprintf("telemetry: create discard metrics: %v", err))
	}
	return &Telemetry{
		Logger:     slog.New(slog.DiscardHandler),
		Tracer:     noop.NewTracerProvider(),
		Meter:      mp,
		Registry:   reg,
		Propagator: propagation.TraceContext{},
	}
}

// NewForTest is like NewDiscard but logs to w (e.g. a testing writer) and
// records spans with a real SDK provider so trace propagation can be asserted.
func NewForTest(w io.Writer) *Telemetry {
	tel := NewDiscard()
	tel.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tel.Tracer = sdktrace.NewTracerProvider()
	return tel
}

func newMetrics(res *resource.Resource) (*prometheus.Registry, *sdkmetric.MeterProvider, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, nil, fmt.Errorf("register go collector: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, nil, fmt.Errorf("register process collector: %w", err)
	}
	// Without scope labels, metric series are named and labelled exactly as
	// the code declares them (stockcast_consumed_total{topic=...}).
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		return nil, nil, fmt.Errorf("create prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
	return reg, mp, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}
