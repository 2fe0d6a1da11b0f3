package insight

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
)

// records counts the records on alerts.v1 (the sum of its end offsets).
func records(t *testing.T, brokers []string) int64 {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topics.Alerts)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// TestEvaluatorPublishesOnce: on a real (in-process) broker, evaluating the
// same state again publishes nothing, a console restarted on the same topic
// (SeedPublished) publishes nothing again either, and only a new alert is
// published.
func TestEvaluatorPublishesOnce(t *testing.T) {
	brokers := testenv.Kafka(t)
	ctx := context.Background()
	if err := kafkax.EnsureTopics(ctx, kafkax.Config{Brokers: brokers}, topics.Alerts); err != nil {
		t.Fatal(err)
	}
	prod, err := kafkax.NewProducer(kafkax.Config{Brokers: brokers}, telemetry.NewDiscard())
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	base := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	times := map[string][]time.Time{
		"bad":   {base, base.Add(10 * time.Second), base.Add(20 * time.Second)},
		"worse": {base.Add(2 * time.Minute), base.Add(2*time.Minute + time.Second)},
	}
	dlq := func() map[string][]time.Time { return times }
	cfg := AlertConfig{Interval: time.Second, DLQ: DLQRule{Window: time.Minute, Threshold: 1}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	now := func() time.Time { return base.Add(time.Hour) }

	e1 := NewEvaluator(cfg, nil, dlq, prod, log, now)
	for i := 0; i < 3; i++ {
		if err := e1.Evaluate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if v := e1.View(); len(v.Alerts) != 2 || v.Published != 2 || v.Evaluations != 3 {
		t.Fatalf("view %+v", v)
	}
	if n := records(t, brokers); n != 2 {
		t.Fatalf("%d records after three evaluations, want 2", n)
	}

	e2 := NewEvaluator(cfg, nil, dlq, prod, log, now)
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if n, err := e2.SeedPublished(sctx, brokers); err != nil || n != 2 {
		t.Fatalf("seed: %d ids, %v; want 2", n, err)
	}
	if err := e2.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	if n := records(t, brokers); n != 2 {
		t.Fatalf("%d records after a restart, want 2", n)
	}
	times["worst"] = []time.Time{base.Add(5 * time.Minute), base.Add(5 * time.Minute), base.Add(5 * time.Minute)}
	if err := e2.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	if n := records(t, brokers); n != 3 {
		t.Fatalf("%d records after a new alert, want 3", n)
	}
	if v := e2.View(); len(v.Alerts) != 3 || v.Published != 3 || v.Alerts[0].Subject != "worst" {
		t.Errorf("view %+v", v)
	}
	// An empty topic seeds nothing.
	if n, err := NewEvaluator(cfg, nil, dlq, prod, log, now).SeedPublished(sctx, testenv.Kafka(t)); err != nil || n != 0 {
		t.Errorf("seed from an empty broker: %d, %v", n, err)
	}
}
