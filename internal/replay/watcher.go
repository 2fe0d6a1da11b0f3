package replay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/topics"
)

// WatchedTopics are the topics the watcher reads: the forecasts, the
// proposals and the dead-letter topic of every topic a service consumes.
func WatchedTopics() []string {
	out := []string{topics.Forecasts, topics.Proposals}
	for _, t := range []string{topics.Orders, topics.Inventory, topics.Catalog, topics.Demand, topics.Features, topics.Forecasts} {
		out = append(out, topics.DLQ(t))
	}
	return out
}

// Watcher reads the output topics with a plain consumer (no group) from
// given offsets and reports what it sees to a Tracker.
type Watcher struct {
	cl      *kgo.Client
	tracker *Tracker
	log     *slog.Logger
	now     func() time.Time

	mu   sync.Mutex
	next map[string]map[int32]int64 // next offset to read, per topic and partition
}

// StartOffsets lists the current end offsets of the watched topics: a
// watcher started from them sees exactly what is produced afterwards.
func StartOffsets(ctx context.Context, adm *kadm.Client) (map[string]map[int32]int64, error) {
	return endOffsets(ctx, adm, WatchedTopics()...)
}

// NewWatcher creates a watcher reading every partition of from at the given
// offsets.
func NewWatcher(brokers []string, from map[string]map[int32]int64, tracker *Tracker, log *slog.Logger) (*Watcher, error) {
	parts := make(map[string]map[int32]kgo.Offset, len(from))
	next := make(map[string]map[int32]int64, len(from))
	for t, ps := range from {
		parts[t] = make(map[int32]kgo.Offset, len(ps))
		next[t] = make(map[int32]int64, len(ps))
		for p, o := range ps {
			parts[t][p] = kgo.NewOffset().At(o)
			next[t][p] = o
		}
	}
	cl, err := kgo.NewClient(append(kafkax.ReadToEnd(), // read_committed; markers count toward CaughtUp
		kgo.SeedBrokers(brokers...),
		kgo.ClientID("stockcast-replay-watcher"),
		kgo.ConsumePartitions(parts),
		kgo.FetchMaxWait(100*time.Millisecond),
	)...)
	if err != nil {
		return nil, fmt.Errorf("create output watcher for %v: %w", brokers, err)
	}
	return &Watcher{cl: cl, tracker: tracker, log: log, now: time.Now, next: next}, nil
}

// Run reads until ctx is done; it returns nil then.
func (w *Watcher) Run(ctx context.Context) error {
	defer w.cl.Close()
	for {
		fetches := w.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var errs []error
		fetches.EachError(func(t string, p int32, err error) {
			errs = append(errs, fmt.Errorf("watch %s/%d: %w", t, p, err))
		})
		if err := errors.Join(errs...); err != nil {
			return err
		}
		now := w.now()
		fetches.EachRecord(func(r *kgo.Record) {
			if !kafkax.IsControl(r) {
				w.observe(r, now)
			}
		})
		w.mu.Lock()
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if n := len(p.Records); n > 0 {
				w.next[p.Topic][p.Partition] = p.Records[n-1].Offset + 1
			}
		})
		w.mu.Unlock()
	}
}

// observe hands one output record to the tracker.
func (w *Watcher) observe(r *kgo.Record, now time.Time) {
	id := kafkax.HeaderValue(r, topics.HeaderEventID)
	switch {
	case r.Topic == topics.Forecasts:
		if id == "" {
			var f forecastv1.ForecastEvent
			if err := proto.Unmarshal(r.Value, &f); err != nil {
				w.log.Warn("skip undecodable forecast", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
				return
			}
			id = f.GetEventId()
		}
		w.tracker.Forecast(id, string(r.Key), now)
	case r.Topic == topics.Proposals:
		var p replenishmentv1.Proposal
		if err := proto.Unmarshal(r.Value, &p); err != nil {
			w.log.Warn("skip undecodable proposal", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			return
		}
		if st := p.GetStatus(); st == replenishmentv1.ProposalStatus_PROPOSAL_STATUS_APPROVED || st == replenishmentv1.ProposalStatus_PROPOSAL_STATUS_REJECTED {
			// a status change of a proposal (Approve, Reject), not a decision of an event
			w.tracker.Decision(p.GetProposalId(), strings.ToLower(strings.TrimPrefix(st.String(), "PROPOSAL_STATUS_")))
			return
		}
		if id == "" {
			id = p.GetEventId()
		}
		w.tracker.Proposal(id, p.GetProposalId())
	case topics.IsDLQ(r.Topic):
		w.tracker.Rejected(id, kafkax.HeaderValue(r, topics.HeaderDLQReason), now)
	}
}

// CaughtUp reports whether the watcher has read every partition up to the
// given end offsets.
func (w *Watcher) CaughtUp(ends map[string]map[int32]int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for t, ps := range ends {
		for p, end := range ps {
			if w.next[t][p] < end {
				return false
			}
		}
	}
	return true
}

// endOffsets lists the high watermarks of every partition of topics.
func endOffsets(ctx context.Context, adm *kadm.Client, ts ...string) (map[string]map[int32]int64, error) {
	listed, err := adm.ListEndOffsets(ctx, ts...)
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %v: %w", ts, err)
	}
	if err := listed.Error(); err != nil {
		return nil, fmt.Errorf("list end offsets of %v: %w", ts, err)
	}
	out := make(map[string]map[int32]int64, len(ts))
	listed.Each(func(o kadm.ListedOffset) {
		if out[o.Topic] == nil {
			out[o.Topic] = make(map[int32]int64)
		}
		out[o.Topic][o.Partition] = o.Offset
	})
	for _, t := range ts {
		if out[t] == nil {
			return nil, fmt.Errorf("list end offsets: topic %s does not exist", t)
		}
	}
	return out, nil
}
