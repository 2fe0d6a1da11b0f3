package kafkax

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/stockcast/stockcast/pkg/telemetry"
)

// defaultMaxPollRecords bounds one poll across all partitions.
const defaultMaxPollRecords = 10_000

// defaultBatchWait is the default of -kafka.batch-wait. Zero (the adaptive
// gather, no lingering) halved p99 at 2,000 lines/s on a loaded machine, but
// it failed the fault suite under load as the default: in session 7 ingest
// was fenced (a transaction of 10,000 records open 11 s against the 10 s
// timeout of then, its handler starved of CPU after its first produce); in
// session 8, with the 60 s timeout, no transaction was fenced but the
// fault-free run stalled 4 minutes at load ~45 (ingest's batches of 10,000
// records retried on Redis i/o timeouts), while 100 ms passed in session 7
// (docs/load.md, "Session 8: transaction timeout").
const defaultBatchWait = 100 * time.Millisecond

// fetchMaxWait is how long the broker may hold a fetch waiting for data:
// short, so that records flow through the pipeline with little latency.
const fetchMaxWait = 100 * time.Millisecond

// maxSpanLinks bounds the links from a handler span to the records' traces.
const maxSpanLinks = 128

// Handler processes records: by default every record of one batch in one
// call (the partitions one after another, each partition's records in offset
// order; records may come from several topics; a batch is the records
// already fetched when a poll returns, up to Config.BatchRecords, or with
// Config.BatchWait the polls gathered until BatchRecords or BatchWait), with
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
	sess   *kgo.GroupTransactSession // nil with Config.AtLeastOnce
	txnID  string
	unlock func() // releases txnID's lock (nil with Config.AtLeastOnce)
	// requests times the transactional client's requests for the log
	// line of a transaction open long (see transact).
	requests txnRequests

	// revoked is set when the group revokes or loses partitions of this
	// transactional member; the session then aborts the transaction at
	// its end, so a batch gathered across it is not handled (see gather).
	// Reset after each End, like the session's own flag.
	revoked atomic.Bool
	// rebalanceWaits is set when a rebalance waits for this at-least-once
	// member's AllowRebalance: the gather stops early. Reset after
	// AllowRebalance.
	rebalanceWaits atomic.Bool

	// gatherMu guards endGather, the cancel of the running gather's
	// polls (nil when no gather runs): a revoke or a waiting rebalance
	// calls it, so that a poll waiting for more records returns at once.
	gatherMu  sync.Mutex
	endGather context.CancelFunc

	// gathered, when set (tests), is called after each poll that added
	// records to a batch, with the batch's record count.
	gathered func(records int)
	// polling, when set (tests), is called before each poll, with whether
	// it may wait for the broker (false: a poll of what is buffered).
	polling func(blocking bool)
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
	c := &Consumer{
		cfg:    cfg,
		group:  group,
		h:      h,
		tel:    tel,
		log:    log,
		ins:    ins,
		tracer: tel.Tracer.Tracer(meterName),
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.WithLogger(kgoLogger{log}),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), // a new group reads the whole log
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(fetchMaxWait),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.HeartbeatInterval(heartbeatInterval(cfg.SessionTimeout)),
		// Records of aborted transactions and of open ones never reach a
		// handler. Transaction markers are fetched as records (and not
		// handed to the handler) so that the committed offsets pass them:
		// a partition's last offset is often a marker, and without this a
		// caught-up group would stay one record behind its end offsets.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	}
	if cfg.rebalanceTimeout > 0 {
		opts = append(opts, kgo.RebalanceTimeout(cfg.rebalanceTimeout))
	}
	if cfg.AtLeastOnce {
		// No partition moves between poll and commit (across every poll
		// of a gathered batch); a rebalance that waits for it ends the
		// gather early.
		cl, err := kgo.NewClient(append(opts, kgo.BlockRebalanceOnPoll(),
			kgo.OnPartitionsCallbackBlocked(func(context.Context, *kgo.Client) {
				c.rebalanceWaits.Store(true)
				c.stopGathering()
			}))...)
		if err != nil {
			return nil, fmt.Errorf("create kafka consumer for group %s: %w", group, err)
		}
		c.cl = cl
		return c, nil
	}
	ident, err := cfg.transactionalIdentity(group)
	if err != nil {
		return nil, fmt.Errorf("create transactional kafka consumer for group %s: %w", group, err)
	}
	c.txnID, c.unlock = ident.id, ident.release
	// Rebalances are not blocked during a transaction: the session aborts
	// a transaction whose partitions were revoked or lost, and the records
	// go to their new owner (franz-go's GroupTransactSession design).
	// Blocking them (BlockRebalanceOnPoll) deadlocks End: it forces a
	// heartbeat, which a member waiting to rejoin does not send.
	// The session wraps these: it calls them when it marks the running
	// transaction for abort (a cooperative rebalance revoking nothing
	// does not).
	onRevoked := func(_ context.Context, _ *kgo.Client, rev map[string][]int32) {
		if len(rev) > 0 {
			c.revoked.Store(true)
			c.stopGathering()
		}
	}
	opts = append(opts,
		kgo.OnPartitionsRevoked(onRevoked),
		kgo.OnPartitionsLost(func(context.Context, *kgo.Client, map[string][]int32) {
			c.revoked.Store(true)
			c.stopGathering()
		}),
		kgo.TransactionalID(c.txnID),
		kgo.TransactionTimeout(cfg.TransactionTimeout),
		kgo.WithHooks(&c.requests),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(producerLinger),
	)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		c.unlock()
		return nil, fmt.Errorf("create transactional kafka consumer for group %s: %w", group, err)
	}
	c.sess, c.cl = sess, sess.Client()
	c.log = log.With("transactional_id", c.txnID)
	return c, nil
}

// initProducerID registers the transactional id with the broker before the
// first poll: if a predecessor with this id (the instance this one
// restarts, see Config.InstanceID) died with a transaction open, the broker
// aborts it now, so read_committed readers of the partitions it wrote, and
// this group's offset fetch, which waits for its pending offsets
// (UNSTABLE_OFFSET_COMMIT), go on at once instead of after the transaction
// timeout. An epoch above 0 says the id was used before. A failure here is
// not final: the first transaction initialises the id again.
func (c *Consumer) initProducerID(ctx context.Context) {
	id, epoch, err := c.cl.ProducerID(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("initialising the transactional id failed; a predecessor's open transaction may hold back readers until it times out", "err", err)
		}
		return
	}
	c.log.Info("transactional id initialised: any open transaction of a previous instance with this id is aborted",
		"producer_id", id, "producer_epoch", epoch)
}

// errFenced says that the broker gave this consumer's transactional id a
// newer epoch: another live instance initialised it (two instances share an
// id, a misconfigured -kafka.instance-id, which fences the older one on
// every start of the newer), or the broker aborted a transaction that stayed
// open longer than the transaction timeout (a poll handled too slowly).
var errFenced = errors.New("fenced: a newer producer epoch took this transactional id (another live instance with the same -kafka.instance-id, or a transaction open longer than -kafka.transaction-timeout)")

// isFenced reports whether err is the broker saying that a newer producer
// epoch took this transactional id. With transactions V2 (KIP-890) an
// EndTxn whose transaction the new epoch aborted can also be answered
// INVALID_TXN_STATE (the broker takes it for a retry of an earlier end that
// does not match); the session never ends a transaction in a wrong state
// itself, so it means the same here.
func isFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) || errors.Is(err, kerr.InvalidTxnState)
}

// heartbeatInterval keeps three heartbeats within a session, at most 3s
// (Kafka's default).
func heartbeatInterval(session time.Duration) time.Duration {
	return min(session/3, 3*time.Second)
}

// errShutdown stops a batch that could not finish before shutdown.
var errShutdown = errors.New("consumer shutting down")

// Run consumes until ctx is done: poll (gather polls into a batch, see
// Config.BatchWait), handle the partitions (each partition's records in
// order; concurrently with Config.ConcurrentPartitions), retry on error,
// commit. When ctx is done it stops gathering, handles and commits the
// batch gathered so far and the in-flight handler calls, leaves the group
// and returns nil. Records not yet handled stay uncommitted and go to the
// next owner of their partition.
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
		if c.unlock != nil {
			c.unlock()
		}
		c.log.Info("consumer stopped")
	}()
	if c.sess != nil {
		c.initProducerID(ctx)
	}

	retry := retryState{backoff: c.cfg.RetryMin}
	for {
		b, err := c.gather(ctx)
		if err != nil {
			return err
		}
		if b.n == 0 {
			return nil // shut down before a poll returned records: the next owner gets them
		}
		if c.sess != nil {
			stopped, err := c.transact(ctx, handleCtx, b.parts, &retry)
			if err != nil {
				return err
			}
			if stopped || ctx.Err() != nil {
				return nil
			}
			c.cl.AllowRebalance()
			continue
		}
		if stopped := c.handlePartitions(ctx, handleCtx, b.parts); stopped || ctx.Err() != nil {
			return nil // in-flight partitions done and committed; leave the rest
		}
		c.cl.AllowRebalance()
		c.rebalanceWaits.Store(false)
	}
}

// batch is the records of one or more polls, by partition (each
// partition's records in offset order), in the order the partitions first
// came.
type batch struct {
	parts []kgo.FetchTopicPartition
	index map[topicPartition]int
	n     int // records, transaction markers included
}

type topicPartition struct {
	topic     string
	partition int32
}

// add appends a poll's partitions to b. The records' slices are clipped
// before the first append: a poll's slice can share its array with records
// the client still buffers.
func (b *batch) add(p kgo.FetchTopicPartition) {
	k := topicPartition{p.Topic, p.Partition}
	if i, ok := b.index[k]; ok {
		b.parts[i].Records = append(b.parts[i].Records, p.Records...)
		b.parts[i].HighWatermark = p.HighWatermark
	} else {
		if b.index == nil {
			b.index = map[topicPartition]int{}
		}
		b.index[k] = len(b.parts)
		p.Records = slices.Clip(p.Records)
		b.parts = append(b.parts, p)
	}
	b.n += len(p.Records)
}

// gather polls until it has a batch to hand over: the first poll that
// returns records, then more polls while the client already holds fetched
// records (non-blocking polls, see gatherBuffered), until the batch holds
// Config.BatchRecords records or a rebalance waits for this member. A batch
// thus grows only with records that are already waiting: below saturation a
// lone record is handed over at once, at saturation the fetches that arrive
// while the handler runs fill the next batch. With Config.BatchWait the
// gather lingers instead: it polls (blocking) until the batch is full,
// BatchWait has passed since the first poll returned, or a rebalance waits.
// Every polled record is in the batch: a transaction commits the offsets of
// every polled record (and the at-least-once path keeps its partitions until
// AllowRebalance), so none may be left out. When ctx is done before the
// first poll returned records it returns an empty batch (nothing was
// polled); after that it returns what it gathered, which Run then handles
// and commits (drain). The error is a closed client.
func (c *Consumer) gather(ctx context.Context) (*batch, error) {
	b := &batch{}
	limit := min(c.cfg.MaxPollRecords, c.cfg.BatchRecords)
	for b.n == 0 {
		if err := c.poll(ctx, ctx, b, limit); err != nil || ctx.Err() != nil {
			// Records of a poll that returned on shutdown were not
			// started: the next owner gets them.
			return &batch{}, err
		}
		if b.n == 0 {
			// An empty poll blocks rebalances too (at-least-once).
			c.cl.AllowRebalance()
			c.rebalanceWaits.Store(false)
		}
	}
	if c.cfg.BatchWait <= 0 {
		c.gatherBuffered(ctx, b)
		return b, nil
	}
	pctx, cancel := context.WithDeadline(ctx, time.Now().Add(c.cfg.BatchWait))
	defer cancel()
	c.gatherMu.Lock()
	c.endGather = cancel
	c.gatherMu.Unlock()
	defer func() {
		c.gatherMu.Lock()
		c.endGather = nil
		c.gatherMu.Unlock()
	}()
	// The flags are read after endGather is set: a signal either set a
	// flag seen here or cancels pctx.
	for b.n < c.cfg.BatchRecords && pctx.Err() == nil && !c.rebalanceWaits.Load() && !c.revoked.Load() {
		if err := c.poll(ctx, pctx, b, min(c.cfg.MaxPollRecords, c.cfg.BatchRecords-b.n)); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// gatherBuffered adds to b what the client has already fetched, without
// waiting: a poll with a nil context returns at once with the buffered
// records (franz-go's PollRecords; a cancelled context would return none),
// and the gather ends with the first poll that adds nothing, or when b is
// full, ctx is done, or a rebalance waits for this member (at-least-once)
// or revoked its partitions (transactions). The flags are checked before
// each poll: a signal arriving during one is seen before the next, and a
// poll never blocks, so no cancel is needed.
func (c *Consumer) gatherBuffered(ctx context.Context, b *batch) {
	for b.n < c.cfg.BatchRecords && ctx.Err() == nil && !c.rebalanceWaits.Load() && !c.revoked.Load() {
		n := b.n
		//nolint:staticcheck // SA1012: a nil context is franz-go's documented non-blocking poll
		if err := c.poll(ctx, nil, b, min(c.cfg.MaxPollRecords, c.cfg.BatchRecords-b.n)); err != nil || b.n == n {
			return // nothing buffered (a closed client shows at the next gather's first poll)
		}
	}
}

// stopGathering ends the running gather, if any: its poll returns.
func (c *Consumer) stopGathering() {
	c.gatherMu.Lock()
	defer c.gatherMu.Unlock()
	if c.endGather != nil {
		c.endGather()
	}
}

// poll polls once with pctx (ctx, ctx with the gather's deadline, or nil:
// only what is buffered, without waiting), adds the records to b and
// records the poll-level metrics.
func (c *Consumer) poll(ctx, pctx context.Context, b *batch, limit int) error {
	if c.polling != nil {
		c.polling(pctx != nil)
	}
	fetches := c.cl.PollRecords(pctx, limit)
	if fetches.IsClientClosed() {
		return errors.New("kafka consumer: client closed while polling")
	}
	fetches.EachError(func(topic string, partition int32, err error) {
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			c.log.Warn("fetch failed", "topic", topic, "partition", partition, "err", err)
		}
	})
	n := b.n
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		last := p.Records[len(p.Records)-1]
		c.ins.lag.Record(ctx, max(0, p.HighWatermark-last.Offset-1), metric.WithAttributes(
			attribute.String("topic", p.Topic), attribute.String("partition", strconv.Itoa(int(p.Partition)))))
		b.add(p)
	})
	if b.n > n {
		c.ins.polls.Add(ctx, 1)
		if c.gathered != nil {
			c.gathered(b.n)
		}
	}
	return nil
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
	recs = dropControl(recs)
	start := 0
	for i := 1; i <= len(recs); i++ {
		if i == len(recs) || recs[i].Topic != recs[start].Topic {
			c.ins.consumed.Add(ctx, int64(i-start), metric.WithAttributes(attribute.String("topic", recs[start].Topic)))
			start = i
		}
	}
}

// dropControl returns recs without transaction markers (the consumer keeps
// them so that its committed offsets pass them, see NewConsumer).
func dropControl(recs []*kgo.Record) []*kgo.Record {
	for i, r := range recs {
		if IsControl(r) {
			out := slices.Clone(recs[:i])
			for _, r := range recs[i+1:] {
				if !IsControl(r) {
					out = append(out, r)
				}
			}
			return out
		}
	}
	return recs
}

// handleOnce calls the handler once, with recs' data records (none: no
// call), inside a span linked to the records' traces.
func (c *Consumer) handleOnce(ctx context.Context, recs []*kgo.Record, topicAttr metric.MeasurementOption) error {
	if recs = dropControl(recs); len(recs) == 0 {
		return nil
	}
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

// retryState is the backoff of a poll whose transaction aborted because the
// handler failed; it carries over to the next poll, which fetches the same
// records again.
type retryState struct {
	backoff time.Duration
	attempt int
}

// transact handles the partitions of one poll in one transaction: begin,
// hand the records to the handler (its Produce calls join the transaction),
// commit the offsets of every polled record in the transaction, end it. On
// a handler error it aborts (the outputs never become visible), waits the
// backoff and returns: the session rewinds to the committed offsets, so the
// next poll fetches the same records again into a fresh transaction. If the
// group took the partitions away (rebalance, a lost session, a newer
// generation fencing this member), End aborts and the records go to their
// next owner. stopped reports a shutdown; err an error the client cannot
// recover from (the service should exit and be restarted).
func (c *Consumer) transact(ctx, handleCtx context.Context, parts []kgo.FetchTopicPartition, retry *retryState) (stopped bool, err error) {
	if err := c.sess.Begin(); err != nil {
		return true, fmt.Errorf("kafka consumer %s: begin transaction: %w", c.group, err)
	}
	t := &txn{cl: c.cl}
	begun := time.Now()
	c.requests.reset() // the requests of this transaction only
	// Partitions revoked or lost since the last End (while the batch was
	// gathered) make the session abort this transaction whatever the
	// handler does: skip the handler, abort, and the session rewinds the
	// partitions this member keeps to their committed offsets.
	var hErr error
	revoked := c.revoked.Load()
	if !revoked {
		hErr = c.handleInTxn(ctx, context.WithValue(handleCtx, txnKey{}, t), parts)
	}
	handled := time.Now()
	committed, endErr := c.sess.End(handleCtx, kgo.TransactionEndTry(hErr == nil && !revoked))
	c.revoked.Store(false)
	first, n := parts[0].Records[0], 0
	for _, p := range parts {
		n += len(p.Records)
	}
	c.timeTransaction(handleCtx, t, parts, n, begun, handled, committed, hErr, endErr)
	if endErr != nil {
		if ctx.Err() != nil {
			c.log.Info("stopping: ending the transaction failed on shutdown", "err", endErr)
			return true, nil
		}
		if isFenced(endErr) || isFenced(hErr) {
			c.ins.txnAborted.Add(handleCtx, 1, metric.WithAttributes(attribute.String("reason", "fenced")))
			c.log.Error("transactional id fenced by a newer epoch (a live twin with the same id, or a transaction that outlived its timeout); stopping", "err", errors.Join(endErr, hErr))
			return true, fmt.Errorf("kafka consumer %s: transactional id %s: %w: %w", c.group, c.txnID, errFenced, endErr)
		}
		return true, fmt.Errorf("kafka consumer %s: end transaction %s (the client cannot go on; restart it): %w", c.group, c.txnID, endErr)
	}
	switch {
	case committed:
		for _, p := range parts {
			c.countConsumed(handleCtx, p.Records)
		}
		t.countCommitted(handleCtx, c.ins)
		c.runHooks(handleCtx, t)
		retry.backoff, retry.attempt = c.cfg.RetryMin, 0
		return false, nil
	case hErr == nil:
		c.ins.txnAborted.Add(handleCtx, 1, metric.WithAttributes(attribute.String("reason", "lost")))
		c.log.Warn("transaction aborted: this member lost partitions (rebalance, expired session, fenced); the batch goes to their next owner, or to this member again",
			"topic", first.Topic, "partition", first.Partition, "offset", first.Offset, "records", n, "handled", !revoked)
		return false, nil
	case errors.Is(hErr, errShutdown) || ctx.Err() != nil || handleCtx.Err() != nil:
		c.ins.txnAborted.Add(handleCtx, 1, metric.WithAttributes(attribute.String("reason", "shutdown")))
		c.log.Info("stopping with unhandled records; their transaction is aborted", "topic", first.Topic,
			"partition", first.Partition, "offset", first.Offset, "records", n, "err", hErr)
		return true, nil
	}
	c.ins.txnAborted.Add(handleCtx, 1, metric.WithAttributes(attribute.String("reason", "handler_error")))
	retry.attempt++
	c.log.Warn("handle records failed, transaction aborted, retrying", "topic", first.Topic, "partition", first.Partition,
		"offset", first.Offset, "records", n, "attempt", retry.attempt, "backoff", retry.backoff, "err", hErr)
	tm := time.NewTimer(retry.backoff)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return true, nil
	case <-tm.C:
	}
	retry.backoff = min(2*retry.backoff, c.cfg.RetryMax)
	return false, nil
}

// timeTransaction records how long the transaction was open on the broker
// (from its first produce, when the broker starts the timeout, to the
// end's answer) and logs a warning with where the time went when that is
// above half of Config.TransactionTimeout: the handler before and after its
// first produce (producing: the time in its Produce calls), the end (flush,
// offset commit, the heartbeat it forces, EndTxn) and the broker requests'
// times from queued to answered. The outcome is committed, aborted, or
// failed (the end returned an error).
func (c *Consumer) timeTransaction(ctx context.Context, t *txn, parts []kgo.FetchTopicPartition, n int, begun, handled time.Time, committed bool, hErr, endErr error) {
	ended := time.Now()
	opened := t.openedAt(handled)
	open := ended.Sub(opened)
	outcome := "aborted"
	switch {
	case committed:
		outcome = "committed"
	case endErr != nil:
		outcome = "failed"
	}
	c.ins.txnDuration.Record(ctx, open.Seconds(), metric.WithAttributes(attribute.String("outcome", outcome)))
	if open <= c.cfg.TransactionTimeout/2 {
		return // the next transaction's reset drops its requests: nothing formatted per transaction
	}
	requests := c.requests.take()
	bytes := 0
	for _, p := range parts {
		for _, r := range p.Records {
			bytes += len(r.Key) + len(r.Value)
		}
	}
	c.log.Warn("transaction open long: the broker aborts it after -kafka.transaction-timeout",
		"open", open.Round(time.Millisecond), "timeout", c.cfg.TransactionTimeout, "outcome", outcome,
		"records", n, "bytes", bytes, "partitions", len(parts),
		"handle_before_produce", opened.Sub(begun).Round(time.Millisecond),
		"handle_after_produce", max(0, handled.Sub(opened)).Round(time.Millisecond),
		"producing", time.Duration(t.producingNanos.Load()).Round(time.Millisecond),
		"end", ended.Sub(handled).Round(time.Millisecond),
		"requests", requests, "handler_err", hErr, "end_err", endErr)
}

// handleInTxn calls the handler once for the partitions of a poll, like
// handlePartitions but without retries (a failed attempt aborts the whole
// transaction). It stops at the first error, or with errShutdown when ctx is
// done before every partition was handled: the transaction commits the
// offsets of every polled record, so it may commit only if all were handled.
func (c *Consumer) handleInTxn(ctx, tctx context.Context, parts []kgo.FetchTopicPartition) error {
	call := func(recs []*kgo.Record) error {
		topicAttr := metric.WithAttributes(attribute.String("topic", recs[0].Topic))
		err := c.handleOnce(tctx, recs, topicAttr)
		if err != nil {
			c.ins.handlerErrors.Add(tctx, 1, topicAttr)
		}
		return err
	}
	if !c.cfg.ConcurrentPartitions && !c.cfg.PartitionAtATime {
		n := 0
		for _, p := range parts {
			n += len(p.Records)
		}
		all := make([]*kgo.Record, 0, n)
		for _, p := range parts {
			all = append(all, p.Records...)
		}
		return call(all)
	}
	if !c.cfg.ConcurrentPartitions || len(parts) == 1 {
		for i, p := range parts {
			if i > 0 && ctx.Err() != nil {
				return errShutdown
			}
			if err := call(p.Records); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		wg.Go(func() { errs[i] = call(p.Records) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runHooks runs the AfterCommit functions of a committed transaction.
func (c *Consumer) runHooks(ctx context.Context, t *txn) {
	t.mu.Lock()
	hooks := t.hooks
	t.hooks = nil
	t.mu.Unlock()
	for _, fn := range hooks {
		if err := fn(ctx); err != nil {
			c.log.Warn("after-commit step failed (the batch is committed and is not handled again)", "err", err)
		}
	}
}
