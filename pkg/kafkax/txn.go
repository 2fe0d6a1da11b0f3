package kafkax

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// txnKey is the context key of the transaction a Handle call runs in.
type txnKey struct{}

// txn is the open transaction of one poll of a transactional Consumer. The
// context of the handler calls carries it: Producer.Produce with such a
// context produces through the consumer's transactional client, and
// AfterCommit defers work until the transaction has committed.
type txn struct {
	cl    *kgo.Client
	mu    sync.Mutex
	hooks []func(context.Context) error
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

// transactionalID is <prefix>-<host>-<16 random hex digits>: unique per
// instance, so that two replicas on one host, or a restarted instance, never
// share an id (they would fence each other).
func transactionalID(prefix string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	host = strings.ReplaceAll(host, " ", "_")
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail (Go 1.24+)
	return prefix + "-" + host + "-" + hex.EncodeToString(b[:])
}
