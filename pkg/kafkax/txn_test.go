package kafkax

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const sentinel = "sentinel"

// readCalls numbers readOutputs' calls: each call's sentinels are its own.
var readCalls atomic.Int64

// readOutputs reads topic from the start with the given isolation level and
// returns the values of its visible records. It first appends one plain
// (non-transactional) sentinel record to each partition and reads until it
// has seen them all, so that it has read everything written before,
// aborted and committed records alike, whatever the isolation level. The
// sentinels are this call's own: an earlier call's, further back in the
// partitions, would end the read before the records after them (a test
// that reads a topic twice got 40 of its 72 records under -race).
func readOutputs(t *testing.T, brokers []string, topic string, partitions int, level kgo.IsolationLevel) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pcl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	mark := fmt.Sprintf("%s %d", sentinel, readCalls.Add(1))
	for p := range partitions {
		if err := pcl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: int32(p), Value: []byte(mark)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(level))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []string
	seen := 0
	for seen < partitions {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: saw %d of %d sentinels, %d records", topic, seen, partitions, len(out))
		}
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Value) == mark {
				seen++
				return
			}
			if strings.HasPrefix(string(r.Value), sentinel+" ") {
				return // an earlier call's
			}
			out = append(out, string(r.Value))
		})
	}
	return out
}

// committedAll reports whether group has committed the end of every
// partition of topic in ends.
func committedAll(ctx context.Context, adm *kadm.Client, group, topic string, ends map[int32]int64) bool {
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false
	}
	for p, end := range ends {
		o, ok := offs.Lookup(topic, p)
		if !ok || o.Err != nil || o.At != end {
			return false
		}
	}
	return true
}

// transform is a handler that produces one output per input (value
// prefix+input) through p, then fails its first failFirst calls after
// producing (a dependency that fails after the outputs went out).
type transform struct {
	p         *Producer
	out       string
	prefix    string
	failFirst int

	mu       sync.Mutex
	calls    int
	produced int
	onAfter  func(ctx context.Context) // after producing, before returning (nil: nothing)
	onInputs func(recs []*kgo.Record)  // like onAfter, given the call's inputs
}

func (h *transform) Handle(ctx context.Context, recs []*kgo.Record) error {
	out := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		out[i] = &kgo.Record{Topic: h.out, Key: r.Key, Value: []byte(h.prefix + string(r.Value))}
	}
	if err := h.p.Produce(ctx, out...); err != nil {
		return err
	}
	h.mu.Lock()
	h.calls++
	h.produced += len(out)
	fail := h.calls <= h.failFirst
	h.mu.Unlock()
	if h.onAfter != nil {
		h.onAfter(ctx)
	}
	if h.onInputs != nil {
		h.onInputs(recs)
	}
	if fail {
		return errors.New("dependency down after the outputs were produced")
	}
	return nil
}

func (h *transform) producedCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.produced
}

// countValues counts each value.
func countValues(vals []string) map[string]int {
	m := map[string]int{}
	for _, v := range vals {
		m[v]++
	}
	return m
}

// A handler that produces its outputs and then fails has its batch handled
// again. With transactions the first attempt's outputs are aborted:
// read_committed readers see each output exactly once, and read_uncommitted
// ones show that the aborted copies are on the log. Without transactions
// (the at-least-once path) the copies are visible: the bug this fixes.
func TestTransactionHandlerFailsAfterProduce(t *testing.T) {
	for _, tc := range []struct {
		name        string
		atLeastOnce bool
		wantCopies  int // visible copies of each output to read_committed readers
	}{
		{"transactions", false, 1},
		{"at-least-once", true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startBroker(t, "")
			cfg := testConfig(e.Brokers())
			cfg.AtLeastOnce = tc.atLeastOnce
			ctx := context.Background()
			const in, out = txnIn, txnOut
			tel, p, adm := txnSetup(t, cfg)
			recs, ends := produceKeyed(t, p, in)

			h := &transform{p: p, out: out, prefix: "out:", failFirst: 1}
			c, err := NewConsumer(lingerFor(cfg, len(recs)), "gr", []string{in}, h, tel)
			if err != nil {
				t.Fatal(err)
			}
			stop := runConsumer(t, c)
			waitFor(t, 20*time.Second, "every input committed", func() bool { return committedAll(ctx, adm, "gr", in, ends) })
			stop()

			// The first call produced everything it got and failed; the
			// retry produced the batch again.
			if got := h.producedCount(); got < len(recs)+1 {
				t.Fatalf("handler produced %d records, want more than %d (a failed attempt and a retry)", got, len(recs))
			}
			committed := countValues(readOutputs(t, cfg.Brokers, out, 3, kgo.ReadCommitted()))
			if len(committed) != len(recs) {
				t.Errorf("read_committed: %d distinct outputs, want %d", len(committed), len(recs))
			}
			for _, r := range recs {
				if n := committed["out:"+string(r.Value)]; n != tc.wantCopies {
					t.Errorf("read_committed: output of %s seen %d times, want %d", r.Value, n, tc.wantCopies)
				}
			}
			// Everything the handler produced is on the log, aborted or not.
			if all := readOutputs(t, cfg.Brokers, out, 3, kgo.ReadUncommitted()); len(all) != h.producedCount() {
				t.Errorf("read_uncommitted: %d records, want the %d the handler produced", len(all), h.producedCount())
			}
			// stockcast_produced_total counts what readers see: with
			// transactions the committed outputs only, without them every
			// acknowledged copy.
			wantProduced := len(recs)
			if tc.atLeastOnce {
				wantProduced = h.producedCount()
			}
			assertMetric(t, tel, "stockcast_produced_total", map[string]string{"topic": out}, float64(wantProduced))
			if !tc.atLeastOnce {
				assertMetric(t, tel, "stockcast_kafka_transactions_aborted_total", map[string]string{"reason": "handler_error"}, 1)
				// One transaction per handler call: the failed one
				// aborted, the others committed.
				h.mu.Lock()
				calls := h.calls
				h.mu.Unlock()
				assertMetric(t, tel, "stockcast_kafka_transaction_seconds", map[string]string{"outcome": "aborted"}, 1)
				assertMetric(t, tel, "stockcast_kafka_transaction_seconds", map[string]string{"outcome": "committed"}, float64(calls-1))
			}
		})
	}
}

// A member that loses partitions while handling a batch (a rebalance, or a
// member that paused through it: a zombie) cannot commit that batch's
// outputs: its transaction aborts, the moved partitions' records go to the
// new owner, and every input has exactly one visible output. Without
// transactions the first member's outputs stay visible next to the new
// owner's.
func TestTransactionZombieCannotCommit(t *testing.T) {
	for _, tc := range []struct {
		name        string
		atLeastOnce bool
	}{
		{"transactions", false},
		{"at-least-once", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startBroker(t, "")
			cfg := testConfig(e.Brokers())
			cfg.AtLeastOnce = tc.atLeastOnce
			cfg.rebalanceTimeout = time.Second // at-least-once blocks rebalances: the paused member is removed after 1s
			ctx := context.Background()
			const in, out = txnIn, txnOut
			tel, p, adm := txnSetup(t, cfg)
			recs, ends := produceKeyed(t, p, in)

			// The first member produces its outputs for the whole poll,
			// then pauses until the other member has taken over some
			// partitions and handled their records.
			produced, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			zombie := &transform{p: p, out: out, prefix: "zombie:"}
			zombie.onAfter = func(context.Context) {
				once.Do(func() {
					close(produced)
					<-release
				})
			}
			cz, err := NewConsumer(lingerFor(cfg, len(recs)), "gr", []string{in}, zombie, tel)
			if err != nil {
				t.Fatal(err)
			}
			stopZombie := runConsumer(t, cz)
			letGo := sync.OnceFunc(func() { close(release) })
			t.Cleanup(letGo) // runs before the stop above: a failed test must not leave the member paused
			select {
			case <-produced:
			case <-time.After(20 * time.Second):
				t.Fatal("the first member handled nothing")
			}
			if got := zombie.producedCount(); got != len(recs) {
				t.Fatalf("the first member's poll produced %d outputs, want all %d inputs in one poll", got, len(recs))
			}

			heir := &transform{p: p, out: out, prefix: "heir:"}
			ch, err := NewConsumer(cfg, "gr", []string{in}, heir, tel)
			if err != nil {
				t.Fatal(err)
			}
			stopHeir := runConsumer(t, ch)
			waitFor(t, 30*time.Second, "the new member handled records", func() bool { return heir.producedCount() > 0 })
			letGo()
			waitFor(t, 30*time.Second, "every input committed", func() bool { return committedAll(ctx, adm, "gr", in, ends) })
			stopZombie()
			stopHeir()

			visible := map[string]int{} // input value -> visible outputs
			for v, n := range countValues(readOutputs(t, cfg.Brokers, out, 3, kgo.ReadCommitted())) {
				_, input, _ := strings.Cut(v, ":")
				visible[input] += n
			}
			extra := 0
			for _, r := range recs {
				n := visible[string(r.Value)]
				if n == 0 {
					t.Errorf("read_committed: no output of %s", r.Value)
				}
				extra += max(0, n-1)
			}
			if tc.atLeastOnce {
				if extra == 0 {
					t.Errorf("at-least-once: no input has two visible outputs; the member that lost partitions committed nothing?")
				}
				return
			}
			if extra != 0 {
				t.Errorf("read_committed: %d outputs more than one per input", extra)
			}
			assertMetric(t, tel, "stockcast_kafka_transactions_aborted_total", map[string]string{"reason": "lost"}, 1)
		})
	}
}

// A group reading a topic written in transactions commits past the
// transaction markers: once it has handled everything, its committed
// offsets equal the end offsets (a lag of 0, as every caught-up check
// expects), and its handler never sees a marker.
func TestConsumerCommitsPastTransactionMarkers(t *testing.T) {
	e := startBroker(t, "")
	cfg := testConfig(e.Brokers())
	ctx := context.Background()
	const in, out = txnIn, txnOut
	tel, p, adm := txnSetup(t, cfg)
	recs, _ := produceKeyed(t, p, in)

	// Stage 1 writes out in transactions; stage 2 reads it.
	c1, err := NewConsumer(cfg, "stage1", []string{in}, &transform{p: p, out: out, prefix: "out:"}, tel)
	if err != nil {
		t.Fatal(err)
	}
	runConsumer(t, c1)
	got := &recorder{}
	c2, err := NewConsumer(cfg, "stage2", []string{out}, got, tel)
	if err != nil {
		t.Fatal(err)
	}
	runConsumer(t, c2)
	waitFor(t, 20*time.Second, "stage 2 handled every output", func() bool { return len(got.snapshot()) >= len(recs) })
	ends := map[int32]int64{}
	waitFor(t, 20*time.Second, "stage 2 committed up to the end offsets", func() bool {
		listed, err := adm.ListEndOffsets(ctx, out)
		if err != nil {
			return false
		}
		listed.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
		return committedAll(ctx, adm, "stage2", out, ends)
	})
	total := int64(0)
	for _, end := range ends {
		total += end
	}
	if total <= int64(len(recs)) {
		t.Fatalf("%s ends at %d offsets for %d records: no transaction markers?", out, total, len(recs))
	}
	for _, r := range got.snapshot() {
		if r.Attrs.IsControl() || !strings.HasPrefix(string(r.Value), "out:") {
			t.Fatalf("stage 2 was handed %q (control %v)", r.Value, r.Attrs.IsControl())
		}
	}
	if n := len(got.snapshot()); n != len(recs) {
		t.Errorf("stage 2 handled %d records, want %d", n, len(recs))
	}
}

func TestTransactionsFlag(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		atLeastOnce bool
	}{
		{nil, false},
		{[]string{"-kafka.transactions"}, false},
		{[]string{"-kafka.transactions=false"}, true},
		{[]string{"-kafka.transactions=false", "-kafka.transactions=true"}, false},
	} {
		var c Config
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		c.RegisterFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if c.AtLeastOnce != tc.atLeastOnce {
			t.Errorf("%v: AtLeastOnce = %v, want %v", tc.args, c.AtLeastOnce, tc.atLeastOnce)
		}
		if c.TransactionTimeout != time.Minute {
			t.Errorf("%v: transaction timeout %v, want 1m0s (Kafka's producer default)", tc.args, c.TransactionTimeout)
		}
	}
}

// keyFailer produces one output per input like transform, but fails every
// call that holds a record of key bad while failing is set; it notes the
// partitions of the failed calls and how often each input was handled.
type keyFailer struct {
	transform
	bad     string
	failing atomic.Bool

	fmu        sync.Mutex
	failedWith map[int32]bool // partitions in failed calls
	handled    map[string]int // input value -> calls that got it
}

func (h *keyFailer) Handle(ctx context.Context, recs []*kgo.Record) error {
	h.fmu.Lock()
	fail := false
	for _, r := range recs {
		h.handled[string(r.Value)]++
		fail = fail || (h.failing.Load() && string(r.Key) == h.bad)
	}
	if fail {
		for _, r := range recs {
			h.failedWith[r.Partition] = true
		}
	}
	h.fmu.Unlock()
	if fail {
		return errors.New("store down for key " + h.bad)
	}
	return h.transform.Handle(ctx, recs)
}

// With transactions a poll is one transaction: while the records of one
// key (one partition) fail, no partition that came in the same poll
// commits, and their records are handled again on every attempt. Once the
// failure clears, every input has exactly one visible output.
func TestFailingPartitionHoldsBackPoll(t *testing.T) {
	e := startBroker(t, "")
	cfg := testConfig(e.Brokers())
	ctx := context.Background()
	const in, out = txnIn, txnOut
	tel, p, adm := txnSetup(t, cfg)
	recs, ends := produceKeyed(t, p, in)
	badPartition := int32(-1)
	for _, r := range recs {
		if string(r.Key) == "sku0|online" {
			badPartition = r.Partition
		}
	}

	h := &keyFailer{transform: transform{p: p, out: out, prefix: "out:"}, bad: "sku0|online",
		failedWith: map[int32]bool{}, handled: map[string]int{}}
	h.failing.Store(true)
	c, err := NewConsumer(lingerFor(cfg, len(recs)), "gr", []string{in}, h, tel)
	if err != nil {
		t.Fatal(err)
	}
	stop := runConsumer(t, c)
	handledTimes := func(v string) int {
		h.fmu.Lock()
		defer h.fmu.Unlock()
		return h.handled[v]
	}
	// The first healthy input of another partition than the failing key's.
	var healthy *kgo.Record
	for _, r := range recs {
		if r.Partition != badPartition {
			healthy = r
			break
		}
	}
	waitFor(t, 20*time.Second, "the healthy partition's records handled three times", func() bool { return handledTimes(string(healthy.Value)) >= 3 })
	h.fmu.Lock()
	held := maps.Clone(h.failedWith)
	h.fmu.Unlock()
	if !held[healthy.Partition] {
		t.Fatalf("partition %d never came in a poll with the failing key's partition %d", healthy.Partition, badPartition)
	}
	offs, err := adm.FetchOffsets(ctx, "gr")
	if err != nil {
		t.Fatal(err)
	}
	for part := range held {
		if o, ok := offs.Lookup(in, part); ok && o.At > 0 {
			t.Errorf("partition %d committed offset %d while a partition of its poll failed", part, o.At)
		}
	}
	if got := countValues(readOutputs(t, cfg.Brokers, out, 3, kgo.ReadCommitted())); len(got) != 0 {
		t.Errorf("read_committed while failing: %d outputs visible, want none", len(got))
	}

	h.failing.Store(false)
	waitFor(t, 20*time.Second, "every input committed", func() bool { return committedAll(ctx, adm, "gr", in, ends) })
	stop()
	got := countValues(readOutputs(t, cfg.Brokers, out, 3, kgo.ReadCommitted()))
	for _, r := range recs {
		if n := got["out:"+string(r.Value)]; n != 1 {
			t.Errorf("read_committed: output of %s seen %d times, want 1", r.Value, n)
		}
	}
}
