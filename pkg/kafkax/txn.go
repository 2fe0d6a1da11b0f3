package kafkax

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// txnKey is the context key of the transaction a Handle call runs in.
type txnKey struct{}

// txn is the open transaction of one poll of a transactional Consumer. The
// context of the handler calls carries it: Producer.Produce with such a
// context produces through the consumer's transactional client, and
// AfterCommit defers work until the transaction has committed.
type txn struct {
	cl       *kgo.Client
	mu       sync.Mutex
	hooks    []func(context.Context) error
	produced map[string]int64 // records produced in it, by topic
	rejected map[string]int64 // of them to a DLQ, by reason
	// produceStart is when the first Produce call of the transaction
	// started (unix nanoseconds, 0: none yet): the broker starts its
	// transaction timeout at the first record it gets.
	produceStart atomic.Int64
	// producingNanos is the time spent in its Produce calls.
	producingNanos atomic.Int64
}

// producing notes the start of a Produce call in the transaction; call the
// returned func when it returns.
func (t *txn) producing() (done func()) {
	start := time.Now()
	t.produceStart.CompareAndSwap(0, start.UnixNano())
	return func() { t.producingNanos.Add(int64(time.Since(start))) }
}

// openedAt returns when the transaction opened on the broker: its first
// Produce call, or, when it produced nothing, ended (its offset commit
// opens it).
func (t *txn) openedAt(ended time.Time) time.Time {
	if ns := t.produceStart.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return ended
}

// count notes records acknowledged in the transaction; they count in
// stockcast_produced_total and stockcast_rejected_total only if it commits
// (countCommitted), as an aborted transaction's records are never seen.
func (t *txn) count(topic, dlqReason string, isDLQ bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.produced == nil {
		t.produced, t.rejected = map[string]int64{}, map[string]int64{}
	}
	t.produced[topic]++
	if isDLQ {
		t.rejected[dlqReason]++
	}
}

// countCommitted adds the committed transaction's records to the counters.
func (t *txn) countCommitted(ctx context.Context, ins *instruments) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for topic, n := range t.produced {
		ins.produced.Add(ctx, n, metric.WithAttributes(attribute.String("topic", topic)))
	}
	for reason, n := range t.rejected {
		ins.rejected.Add(ctx, n, metric.WithAttributes(attribute.String("reason", reason)))
	}
}

func txnFrom(ctx context.Context) *txn {
	t, _ := ctx.Value(txnKey{}).(*txn)
	return t
}

// InTransaction reports whether ctx is the context of a handler call of a
// transactional consumer: records produced with it become visible only
// when the poll's transaction commits.
func InTransaction(ctx context.Context) bool { return txnFrom(ctx) != nil }

// AfterCommit runs fn once the outputs produced with ctx are committed.
// Within a handler call of a transactional consumer it queues fn until the
// poll's transaction has committed (with the offsets) and returns nil; fn
// then runs with a context that survives shutdown, its error is logged
// (the batch is committed, it will not be handled again), and fn does not
// run at all if the transaction aborts (the batch is handled again).
// Anywhere else (transactions off, no consumer) outputs are visible once
// Produce returns, so it runs fn at once and returns its error.
//
// Use it for marks that say "this input was published", which must not
// outlive an aborted transaction (ingest's seen marks).
func AfterCommit(ctx context.Context, fn func(context.Context) error) error {
	t := txnFrom(ctx)
	if t == nil {
		return fn(ctx)
	}
	t.mu.Lock()
	t.hooks = append(t.hooks, fn)
	t.mu.Unlock()
	return nil
}
