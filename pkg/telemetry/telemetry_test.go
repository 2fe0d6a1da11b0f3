package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
)

func TestSetupLogsAtLevelAsJSON(t *testing.T) {
	var buf bytes.Buffer
	tel, shutdown, err := Setup(context.Background(), "svc", Config{LogLevel: "warn", LogFormat: "json", SampleRatio: 1}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}()
	tel.Logger.Info("hidden")
	tel.Logger.Warn("shown", "topic", "orders.v1")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want 1 log line, got %q", buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("log line is not JSON: %v", err)
	}
	if rec["msg"] != "shown" || rec["service"] != "svc" || rec["topic"] != "orders.v1" || rec["level"] != "WARN" {
		t.Fatalf("unexpected record %v", rec)
	}
}

func TestSetupPropagatesTraceContext(t *testing.T) {
	tel, shutdown, err := Setup(context.Background(), "svc", Config{LogLevel: "info", LogFormat: "text", SampleRatio: 1}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())

	ctx, span := tel.Tracer.Tracer("test").Start(context.Background(), "op")
	defer span.End()
	carrier := propagation.MapCarrier{}
	tel.Propagator.Inject(ctx, carrier)
	if !strings.Contains(carrier["traceparent"], span.SpanContext().TraceID().String()) {
		t.Fatalf("traceparent %q does not carry trace id %s", carrier["traceparent"], span.SpanContext().TraceID())
	}
}

func TestMetricsOnOwnRegistry(t *testing.T) {
	a, b := NewDiscard(), NewDiscard()
	c, err := a.Meter.Meter("test").Int64Counter("stockcast.consumed")
	if err != nil {
		t.Fatal(err)
	}
	h, err := a.Meter.Meter("test").Float64Histogram("stockcast.handler.duration", metric.WithUnit("s"))
	if err != nil {
		t.Fatal(err)
	}
	c.Add(context.Background(), 3, metric.WithAttributes(attrTopic("orders.v1")))
	c.Add(context.Background(), 2, metric.WithAttributes(attrTopic("demand.v1")))
	h.Record(context.Background(), 0.5)

	got, err := MetricValue(a.Registry, "stockcast_consumed_total", map[string]string{"topic": "orders.v1"})
	if err != nil || got != 3 {
		t.Fatalf("stockcast_consumed_total{topic=orders.v1} = %v, %v; want 3", got, err)
	}
	if got, err := MetricValue(a.Registry, "stockcast_handler_duration_seconds", nil); err != nil || got != 1 {
		t.Fatalf("handler duration count = %v, %v; want 1", got, err)
	}
	if _, err := MetricValue(a.Registry, "go_goroutines", nil); err != nil {
		t.Fatalf("runtime collector missing: %v", err)
	}
	if _, err := MetricValue(b.Registry, "stockcast_consumed_total", nil); err == nil {
		t.Fatal("metrics leaked into another Telemetry's registry")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr bool
	}{
		{args: nil},
		{args: []string{"-log.level", "debug", "-log.format", "text"}},
		{args: []string{"-log.level", "loud"}, wantErr: true},
		{args: []string{"-log.format", "xml"}, wantErr: true},
		{args: []string{"-otel.sample-ratio", "2"}, wantErr: true},
	}
	for _, tt := range tests {
		var cfg Config
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		cfg.RegisterFlags(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); (err != nil) != tt.wantErr {
			t.Errorf("%v: Validate() = %v, wantErr %v", tt.args, err, tt.wantErr)
		}
	}
}

func attrTopic(v string) attribute.KeyValue { return attribute.String("topic", v) }
