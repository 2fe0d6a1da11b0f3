package kafkax

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockcast/stockcast/pkg/telemetry"
)

// partitionTracker is a Handler that checks the concurrency contract: calls
// for different partitions overlap, calls for one partition never do, and
// each partition's records arrive in offset order exactly once.
type partitionTracker struct {
	mu         sync.Mutex
	inFlight   map[int32]bool
	maxOverlap int           // most partitions seen in Handle at once
	overlapped chan struct{} // closed once two partitions were in Handle together
	closed     bool
	next       map[int32]int64 // next expected offset per partition
	handled    int
	errs       []string
	// block, if set, makes calls for this partition fail until released.
	block    int32
	released chan struct{}
}

func newPartitionTracker() *partitionTracker {
	return &partitionTracker{inFlight: map[int32]bool{}, next: map[int32]int64{}, overlapped: make(chan struct{}), block: -1}
}

func (p *partitionTracker) Handle(ctx context.Context, recs []*kgo.Record) error {
	part := recs[0].Partition
	if part == p.block {
		select {
		case <-p.released:
		default:
			return errors.New("dependency of partition " + strconv.Itoa(int(part)) + " down")
		}
	}
	p.mu.Lock()
	if p.inFlight[part] {
		p.errs = append(p.errs, "two calls for partition "+strconv.Itoa(int(part))+" at once")
	}
	p.inFlight[part] = true
	p.maxOverlap = max(p.maxOverlap, len(p.inFlight))
	if len(p.inFlight) >= 2 && !p.closed {
		p.closed = true
		close(p.overlapped)
	}
	p.mu.Unlock()

	// Hold the call like a store round trip would, so that a consumer that
	// handles partitions one at a time never shows two in flight.
	select {
	case <-p.overlapped:
	case <-time.After(300 * time.Millisecond):
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.inFlight, part)
	for _, r := range recs {
		if r.Partition != part {
			p.errs = append(p.errs, "one call mixes partitions")
		}
		if want, ok := p.next[part]; ok && r.Offset != want {
			p.errs = append(p.errs, "partition "+strconv.Itoa(int(part))+": offset "+strconv.FormatInt(r.Offset, 10)+", want "+strconv.FormatInt(want, 10))
		}
		p.next[part] = r.Offset + 1
		p.handled++
	}
	return nil
}

func (p *partitionTracker) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.handled
}

func TestConsumerHandlesPartitionsConcurrently(t *testing.T) {
	e := startBroker(t, "")
	cfg := testConfig(e.Brokers())
	ctx := context.Background()
	const topic = "features.v1"
	if err := EnsureTopics(ctx, cfg, topic); err != nil {
		t.Fatal(err)
	}
	tel := telemetry.NewForTest(t.Output())
	p, err := NewProducer(cfg, tel)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const keys, perKey = 12, 40
	produce(t, p, ctx, keyedRecords(topic, keys, perKey))

	h := newPartitionTracker()
	cfg.ConcurrentPartitions = true
	c, err := NewConsumer(cfg, "gc", []string{topic}, h, tel)
	if err != nil {
		t.Fatal(err)
	}
	stop := runConsumer(t, c)
	waitFor(t, 30*time.Second, "all records", func() bool { return h.count() >= keys*perKey })
	stop()

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.handled != keys*perKey {
		t.Errorf("handled %d records, want exactly %d", h.handled, keys*perKey)
	}
	if len(h.errs) > 0 {
		t.Errorf("contract broken: %s", strings.Join(h.errs, "; "))
	}
	if h.maxOverlap < 2 {
		t.Errorf("at most %d partition in Handle at once, want the partitions of a poll handled concurrently", h.maxOverlap)
	}
	assertMetric(t, tel, "stockcast_consumed_total", map[string]string{"topic": topic}, keys*perKey)
}

// A partition whose dependency is down is retried while the other partitions
// of the same poll are handled and committed; once it recovers it is handled
// and committed too. Only with -kafka.transactions=false (AtLeastOnce).
func TestConsumerCommitsHealthyPartitionsWhileOneRetries(t *testing.T) {
	e := startBroker(t, "")
	cfg := testConfig(e.Brokers())
	ctx := context.Background()
	const topic = "forecasts.v1"
	if err := EnsureTopics(ctx, cfg, topic); err != nil {
		t.Fatal(err)
	}
	tel := telemetry.NewForTest(t.Output())
	p, err := NewProducer(cfg, tel)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	recs := keyedRecords(topic, 12, 5)
	produce(t, p, ctx, recs)
	ends := map[int32]int64{} // partition -> offset after its last record
	for _, r := range recs {
		ends[r.Partition] = max(ends[r.Partition], r.Offset+1)
	}
	if _, ok := ends[0]; !ok || len(ends) < 2 {
		t.Fatalf("records landed on partitions %v, want 0 and others", ends)
	}

	adm, err := kadm.NewOptClient(kgo.SeedBrokers(cfg.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	committed := func() map[int32]int64 {
		out := map[int32]int64{}
		offs, err := adm.FetchOffsets(ctx, "gr")
		if err != nil {
			return out
		}
		offs.Each(func(o kadm.OffsetResponse) {
			if o.Topic == topic && o.Err == nil {
				out[o.Partition] = o.At
			}
		})
		return out
	}

	h := newPartitionTracker()
	h.block, h.released = 0, make(chan struct{})
	cfg.ConcurrentPartitions = true
	// Only without transactions: a transaction spans the whole poll, so a
	// failing partition aborts the others' outputs too (docs/design.md).
	cfg.AtLeastOnce = true
	c, err := NewConsumer(cfg, "gr", []string{topic}, h, tel)
	if err != nil {
		t.Fatal(err)
	}
	stop := runConsumer(t, c)
	waitFor(t, 20*time.Second, "the healthy partitions committed", func() bool {
		got := committed()
		for part, end := range ends {
			if part != 0 && got[part] != end {
				return false
			}
		}
		return true
	})
	if at, ok := committed()[0]; ok && at > 0 {
		t.Fatalf("failing partition 0 committed at %d before it was handled", at)
	}
	close(h.released)
	waitFor(t, 20*time.Second, "partition 0 committed after recovery", func() bool { return committed()[0] == ends[0] })
	stop()
	if got := h.count(); got != len(recs) {
		t.Errorf("handled %d records, want %d", got, len(recs))
	}
}

// With PartitionAtATime the partitions of a poll are handled one after
// another, one call each.
func TestConsumerPartitionAtATime(t *testing.T) {
	e := startBroker(t, "")
	cfg := testConfig(e.Brokers())
	cfg.PartitionAtATime = true
	ctx := context.Background()
	const topic = "demand.v1"
	if err := EnsureTopics(ctx, cfg, topic); err != nil {
		t.Fatal(err)
	}
	tel := telemetry.NewForTest(t.Output())
	p, err := NewProducer(cfg, tel)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const keys, perKey = 12, 10
	produce(t, p, ctx, keyedRecords(topic, keys, perKey))
	h := newPartitionTracker()
	c, err := NewConsumer(cfg, "gs", []string{topic}, h, tel)
	if err != nil {
		t.Fatal(err)
	}
	stop := runConsumer(t, c)
	waitFor(t, 30*time.Second, "all records", func() bool { return h.count() >= keys*perKey })
	stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.maxOverlap != 1 || len(h.errs) > 0 || h.handled != keys*perKey {
		t.Errorf("sequential consumer: %d partitions at once (want 1), %d records (want %d), errors %v", h.maxOverlap, h.handled, keys*perKey, h.errs)
	}
}

// wholePollTracker checks the default contract: one call may hold several
// partitions' records, each partition's in offset order, every record once.
type wholePollTracker struct {
	mu       sync.Mutex
	next     map[int32]int64
	handled  int
	maxParts int // most partitions in one call
	errs     []string
}

func (w *wholePollTracker) Handle(_ context.Context, recs []*kgo.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	parts := map[int32]bool{}
	for _, r := range recs {
		parts[r.Partition] = true
		if want, ok := w.next[r.Partition]; ok && r.Offset != want {
			w.errs = append(w.errs, "partition "+strconv.Itoa(int(r.Partition))+": offset "+strconv.FormatInt(r.Offset, 10)+", want "+strconv.FormatInt(want, 10))
		}
		w.next[r.Partition] = r.Offset + 1
		w.handled++
	}
	w.maxParts = max(w.maxParts, len(parts))
	return nil
}

func (w *wholePollTracker) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.handled
}

// By default one call gets the whole poll: records produced before the
// consumer starts arrive in calls that span partitions, each partition in
// order, and a restarted group gets nothing again (all were committed).
func TestConsumerWholePollByDefault(t *testing.T) {
	e := startBroker(t, "")
	cfg := testConfig(e.Brokers())
	ctx := context.Background()
	const topic = "demand.v1"
	if err := EnsureTopics(ctx, cfg, topic); err != nil {
		t.Fatal(err)
	}
	tel := telemetry.NewForTest(t.Output())
	p, err := NewProducer(cfg, tel)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const keys, perKey = 12, 10
	produce(t, p, ctx, keyedRecords(topic, keys, perKey))
	h := &wholePollTracker{next: map[int32]int64{}}
	c, err := NewConsumer(cfg, "gw", []string{topic}, h, tel)
	if err != nil {
		t.Fatal(err)
	}
	stop := runConsumer(t, c)
	waitFor(t, 30*time.Second, "all records", func() bool { return h.count() >= keys*perKey })
	stop()
	h.mu.Lock()
	if h.maxParts < 2 || len(h.errs) > 0 || h.handled != keys*perKey {
		t.Errorf("whole-poll consumer: at most %d partitions in a call (want 2 or more), %d records (want %d), errors %v", h.maxParts, h.handled, keys*perKey, h.errs)
	}
	h.mu.Unlock()

	again := &wholePollTracker{next: map[int32]int64{}}
	c2, err := NewConsumer(cfg, "gw", []string{topic}, again, tel)
	if err != nil {
		t.Fatal(err)
	}
	stop2 := runConsumer(t, c2)
	produce(t, p, ctx, keyedRecords(topic, 1, 1))
	waitFor(t, 30*time.Second, "the new record", func() bool { return again.count() >= 1 })
	stop2()
	if got := again.count(); got != 1 {
		t.Errorf("restarted group handled %d records, want only the 1 new one (the rest was committed)", got)
	}
}
