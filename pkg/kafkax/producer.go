package kafkax

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/topics"
)

// producerLinger is how long the producer waits to fill a batch: short, so
// that a waiting Produce call does not add noticeable latency.
const producerLinger = 5 * time.Millisecond

// Producer writes records and waits for their acknowledgement.
type Producer struct {
	cl  *kgo.Client
	tel *telemetry.Telemetry
	ins *instruments
}

// NewProducer creates a producer; it connects lazily on the first Produce.
func NewProducer(cfg Config, tel *telemetry.Telemetry) (*Producer, error) {
	cfg = cfg.withDefaults()
	ins, err := newInstruments(tel)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.WithLogger(kgoLogger{tel.Logger.With("component", "kafka-producer")}),
		kgo.RequiredAcks(kgo.AllISRAcks()), // with idempotence (kgo's default) no duplicates on retry
		kgo.ProducerLinger(producerLinger),
		// kgo's default partitioner is the sticky key partitioner with
		// murmur2 on the key, as the Java client: keep it.
	)
	if err != nil {
		return nil, fmt.Errorf("create kafka producer for %v: %w", cfg.Brokers, err)
	}
	return &Producer{cl: cl, tel: tel, ins: ins}, nil
}

// Produce writes recs, injecting the trace context of ctx into their headers,
// and returns when every record is acknowledged by all in-sync replicas. The
// error joins the failures of individual records. Records produced to a DLQ
// topic count in stockcast_rejected_total{reason} by their reason header.
// Records produced in a consumer's transaction (below) count in
// stockcast_produced_total and stockcast_rejected_total only once it
// commits: an aborted transaction's records are never visible.
//
// When ctx is the context of a handler call of a transactional Consumer
// (the default, see Config.AtLeastOnce), the records go into that
// consumer's open transaction instead of through p's own client: they are
// acknowledged now but visible to read_committed readers only once the
// poll's transaction commits, together with the consumed offsets. So a
// handler needs no other producer than the service's one, and the same
// handler code produces plainly when called outside a consume loop (an API
// call, a CLI tool).
func (p *Producer) Produce(ctx context.Context, recs ...*kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	for _, r := range recs {
		injectTrace(ctx, p.tel, r)
	}
	cl, t := p.cl, txnFrom(ctx)
	if t != nil {
		cl = t.cl
		defer t.producing()()
	}
	results := cl.ProduceSync(ctx, recs...)
	var errs []error
	for _, res := range results {
		if res.Err != nil {
			errs = append(errs, fmt.Errorf("produce to %s key %q: %w", res.Record.Topic, res.Record.Key, res.Err))
			continue
		}
		if t != nil {
			t.count(res.Record.Topic, HeaderValue(res.Record, topics.HeaderDLQReason), topics.IsDLQ(res.Record.Topic))
			continue
		}
		p.ins.produced.Add(ctx, 1, metric.WithAttributes(attribute.String("topic", res.Record.Topic)))
		if topics.IsDLQ(res.Record.Topic) {
			reason := HeaderValue(res.Record, topics.HeaderDLQReason)
			p.ins.rejected.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", reason)))
		}
	}
	return errors.Join(errs...)
}

// Close flushes nothing (Produce already waited) and closes the connections.
func (p *Producer) Close() { p.cl.Close() }
