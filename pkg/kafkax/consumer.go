package kafkax

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/stockcast/stockcast/pkg/telemetry"
)

// defaultMaxPollRecords bounds one poll across all partitions.
const defaultMaxPollRecords = 10_000

// fetchMaxWait is how long the broker may hold a fetch waiting for data:
// short, so that records flow through the pipeline with little latency.
const fetchMaxWait = 100 * time.Millisecond

// maxSpanLinks bounds the links from a handler span to the records' traces.
const maxSpanLinks = 128

// Handler processes records: by default every record of one poll in one
// call (the partitions one after another, each partition's records in offset
// order; records may come from several topics), with
// Config.PartitionAtATime one partition's records per call. With
// Config.ConcurrentPartitions the partitions of one poll are handled
// concurrently: Handle is called from several goroutines at once, each with a
// different partition's records, so it must be safe for concurrent use (the
// four services' handlers are, tested under -race by make test-race). Calls for the same partition never
// overlap, and the next poll waits for every call of the previous one.
// Returning an error makes the consumer
// call it again with the same records after a backoff, until it succeeds:
// return an error only when retrying can help (a dependency is down); invalid
// records belong in a DLQ (see DLQRecord), not in an error.
//
// On shutdown the context of an in-flight call is not cancelled until
// Config.DrainTimeout has passed, so that the call can finish and be committed.
type Handler interface {
	Handle(ctx context.Context, recs []*kgo.Record) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, recs []*kgo.Record) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, recs []*kgo.Record) error { return f(ctx, recs) }

// Consumer consumes topics as a member of a consumer group.
type Consumer struct {
	cfg    Config
	group  string
	h      Handler
	tel    *telemetry.Telemetry
	log    *slog.Logger
	ins    *instruments
	tracer trace.Tracer
	cl     *kgo.Client
}

// NewConsumer creates a group consumer of topics; it joins the group when Run starts.
func NewConsumer(cfg Config, group string, topics []string, h Handler, tel *telemetry.Telemetry) (*Consumer, error) {
	cfg = cfg.withDefaults()
	if group == "" || len(topics) == 0 {
		return nil, fmt.Errorf("create kafka consumer: group %q and topics %v must not be empty", group, topics)
	}
	ins, err := newInstruments(tel)
	if err != nil {
		return nil, err
	}
	log := tel.Logger.With("component", "kafka-consumer", "group", group)
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.WithLogger(kgoLogger{log}),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), // a new group reads the whole log
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(), // no partition moves between poll and commit
		kgo.FetchMaxWait(fetchMaxWait),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.HeartbeatInterval(heartbeatInterval(cfg.SessionTimeout)),
	)
	if err != nil {
		return nil, fmt.Errorf("create kafka consumer for group %s: %w", group, err)
	}
	return &Consumer{
		cfg:    cfg,
		group:  group,
		h:      h,
		tel:    tel,
		log:    log,
		ins:    ins,
		tracer: tel.Tracer.Tracer(meterName),
		cl:     cl,
	}, nil
}

// heartbeatInterval keeps three heartbeats within a session, at most 3s
// (Kafka's default).
func heartbeatInterval(session time.Duration) time.Duration {
	return min(session/3, 3*time.Second)
}

// errShutdown stops a batch that could not finish before shutdown.
var errShutdown = errors.New("consumer shutting down")

// Run consumes until ctx is done: poll, handle the partitions (each
// partition's records in order; concurrently with Config.ConcurrentPartitions),
// retry on error, commit each partition.
// When ctx is done it finishes the in-flight handler calls, commits them, leaves the group and returns nil. Records not
// yet handled stay uncommitted and go to the next owner of their partition.
func (c *Consumer) Run(ctx context.Context) error {
	// Handler calls get a context that survives the shutdown signal, so the
	// in-flight batch can complete; it is cancelled DrainTimeout later.
	handleCtx, cancelHandle := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandle()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		t := time.NewTimer(c.cfg.DrainTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancelHandle()
		case <-done:
		}
	}()

	defer func() {
		// Close leaves the group; allowing the rebalance first lets the
		// leave proceed (we committed everything we handled).
		c.cl.CloseAllowingRebalance()
		c.log.Info("consumer stopped")
	}()

	for {
		fetches := c.cl.PollRecords(ctx, c.cfg.MaxPollRecords)
		if ctx.Err() != nil {
			return nil // records of this poll were not started: the next owner gets them
		}
		if fetches.IsClientClosed() {
			return errors.New("kafka consumer: client closed while polling")
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if !errors.Is(err, context.Canceled) {
				c.log.Warn("fetch failed", "topic", topic, "partition", partition, "err", err)
			}
		})
		var parts []kgo.FetchTopicPartition
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) > 0 {
				parts = append(parts, p)
			}
		})
		for _, p := range parts {
			last := p.Records[len(p.Records)-1]
			c.ins.lag.Record(ctx, max(0, p.HighWatermark-last.Offset-1), metric.WithAttributes(
				attribute.String("topic", p.Topic), attribute.String("partition", strconv.Itoa(int(p.Partition)))))
		}
		if stopped := c.handlePartitions(ctx, handleCtx, parts); stopped || ctx.Err() != nil {
			return nil // in-flight partitions done and committed; leave the rest
		}
		c.cl.AllowRebalance()
	}
}

// handlePartitions handles the partitions of one poll: by default in one
// handler call and one commit; with Config.PartitionAtATime one after
// another; with Config.ConcurrentPartitions concurrently, one goroutine per partition
// (each partition's records in order), and commits each partition as soon as
// its records are handled. One partition's I/O
// (stores, produce acks) thus overlaps another's work. It returns once every
// partition is handled and committed, or gave up on shutdown (stopped).
func (c *Consumer) handlePartitions(ctx, handleCtx context.Context, parts []kgo.FetchTopicPartition) (stopped bool) {
	if !c.cfg.ConcurrentPartitions && !c.cfg.PartitionAtATime && len(parts) > 1 {
		// One call for the whole poll: each partition's records stay in
		// offset order, and a series (a key) lives in one partition, so
		// the handler sees every series' records in order.
		n := 0
		for _, p := range parts {
			n += len(p.Records)
		}
		all := make([]*kgo.Record, 0, n)
		for _, p := range parts {
			all = append(all, p.Records...)
		}
		return c.handlePartitionOrLog(ctx, handleCtx, all)
	}
	if !c.cfg.ConcurrentPartitions || len(parts) == 1 {
		// One partition after another; on shutdown, stop after the
		// in-flight one and leave the rest uncommitted.
		for _, p := range parts {
			if c.handlePartitionOrLog(ctx, handleCtx, p.Records) || ctx.Err() != nil {
				return true
			}
		}
		return false
	}
	var wg sync.WaitGroup
	var gaveUp atomic.Bool
	for _, p := range parts {
		wg.Go(func() {
			if c.handlePartitionOrLog(ctx, handleCtx, p.Records) {
				gaveUp.Store(true)
			}
		})
	}
	wg.Wait()
	return gaveUp.Load()
}

// handlePartitionOrLog handles and commits recs; it reports whether it gave
// up on them (shutdown).
func (c *Consumer) handlePartitionOrLog(ctx, handleCtx context.Context, recs []*kgo.Record) (stopped bool) {
	if err := c.handlePartition(ctx, handleCtx, recs); err != nil {
		c.log.Info("stopping with unhandled records", "topic", recs[0].Topic, "partition", recs[0].Partition, "offset", recs[0].Offset, "err", err)
		return true
	}
	return false
}

// handlePartition hands recs to the handler until it succeeds, then commits
// them. It gives up only on shutdown.
func (c *Consumer) handlePartition(ctx, handleCtx context.Context, recs []*kgo.Record) error {
	topic, partition := recs[0].Topic, recs[0].Partition
	topicAttr := metric.WithAttributes(attribute.String("topic", topic))
	backoff := c.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		err := c.handleOnce(handleCtx, recs, topicAttr)
		if err == nil {
			break
		}
		c.ins.handlerErrors.Add(handleCtx, 1, topicAttr)
		if ctx.Err() != nil || handleCtx.Err() != nil {
			return fmt.Errorf("%w: %w", errShutdown, err)
		}
		c.log.Warn("handle records failed, retrying", "topic", topic, "partition", partition,
			"offset", recs[0].Offset, "records", len(recs), "attempt", attempt, "backoff", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %w", errShutdown, err)
		case <-t.C:
		}
		backoff = min(2*backoff, c.cfg.RetryMax)
	}
	c.countConsumed(handleCtx, recs)
	if err := c.cl.CommitRecords(handleCtx, recs...); err != nil {
		// Not fatal: the records are handled (idempotently) and will be
		// redelivered to whoever owns the partition next.
		c.log.Warn("commit offsets failed", "topic", topic, "partition", partition,
			"offset", recs[len(recs)-1].Offset, "err", err)
	}
	return nil
}

// countConsumed adds recs to the consumed counter by topic (a whole poll
// may span topics).
func (c *Consumer) countConsumed(ctx context.Context, recs []*kgo.Record) {
	start := 0
	for i := 1; i <= len(recs); i++ {
		if i == len(recs) || recs[i].Topic != recs[start].Topic {
			c.ins.consumed.Add(ctx, int64(i-start), metric.WithAttributes(attribute.String("topic", recs[start].Topic)))
			start = i
		}
	}
}

// handleOnce calls the handler once inside a span linked to the records' traces.
func (c *Consumer) handleOnce(ctx context.Context, recs []*kgo.Record, topicAttr metric.MeasurementOption) error {
	var links []trace.Link
	for _, r := range recs[:min(len(recs), maxSpanLinks)] {
		if sc := trace.SpanContextFromContext(ExtractTrace(context.Background(), c.tel, r)); sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	ctx, span := c.tracer.Start(ctx, "handle "+recs[0].Topic, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(links...),
		trace.WithAttributes(attribute.String("messaging.destination.name", recs[0].Topic),
			attribute.Int("messaging.destination.partition.id", int(recs[0].Partition)),
			attribute.Int("messaging.batch.message_count", len(recs))))
	defer span.End()
	start := time.Now()
	err := c.h.Handle(ctx, recs)
	c.ins.handlerDuration.Record(ctx, time.Since(start).Seconds(), topicAttr)
	if err != nil {
		span.RecordError(err)
	}
	return err
}
