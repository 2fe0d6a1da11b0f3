package kafkax

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// timedRequests names the request keys txnRequests times (the Kafka
// protocol's API keys).
var timedRequests = map[int16]string{
	0: "Produce", 11: "JoinGroup", 12: "Heartbeat", 14: "SyncGroup", 22: "InitProducerID",
	24: "AddPartitionsToTxn", 25: "AddOffsetsToTxn", 26: "EndTxn", 28: "TxnOffsetCommit",
}

// txnRequests times a transactional consumer's requests that a transaction
// waits for (a kgo hook): when a transaction stays open long, its log line
// says whether the broker answered slowly or the client waited elsewhere
// (the handler, a rebalance's join and sync that the offset commit waits
// for). Fetches and metadata requests are not timed.
type txnRequests struct {
	mu sync.Mutex
	by map[int16]*requestTimes
}

// requestTimes are the requests of one kind since the last take.
type requestTimes struct {
	n          int
	total, max time.Duration
}

var _ kgo.HookBrokerE2E = (*txnRequests)(nil)

// OnBrokerE2E notes one request's time from queued to answered.
func (r *txnRequests) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	if _, ok := timedRequests[key]; !ok {
		return
	}
	d := e2e.WriteWait + e2e.DurationE2E()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.by == nil {
		r.by = map[int16]*requestTimes{}
	}
	t := r.by[key]
	if t == nil {
		t = &requestTimes{}
		r.by[key] = t
	}
	t.n++
	t.total += d
	t.max = max(t.max, d)
}

// reset forgets the requests timed so far.
func (r *txnRequests) reset() {
	r.mu.Lock()
	r.by = nil
	r.mu.Unlock()
}

// take returns the requests timed since the last take, as
// "Name n×, max d, total d; ...", and starts over.
func (r *txnRequests) take() string {
	r.mu.Lock()
	by := r.by
	r.by = nil
	r.mu.Unlock()
	keys := make([]int16, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		t := by[k]
		parts = append(parts, fmt.Sprintf("%s %dx max %s total %s", timedRequests[k], t.n,
			t.max.Round(time.Millisecond), t.total.Round(time.Millisecond)))
	}
	return strings.Join(parts, "; ")
}
