package kafkax

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/topics"
)

// startBroker starts an embedded broker for one test.
func startBroker(t *testing.T, dataDir string) *Embedded {
	t.Helper()
	e, err := StartEmbedded(EmbeddedConfig{DataDir: dataDir, Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// testConfig is a consumer config for tests. The group session is long: a
// test process stalled for a second (-race on a loaded machine) must not
// lose its partitions mid-batch (with 1 s, four tests handled records twice
// or aborted a transaction). Tests in which a killed member's partitions
// must move to the next one shorten it (shortSession).
func testConfig(brokers []string) Config {
	return Config{Brokers: brokers, Partitions: 3, SessionTimeout: 30 * time.Second, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond}
}

// shortSession makes the group drop a killed (SIGKILL) member after a
// second, so its partitions move without waiting for testConfig's session.
func shortSession(cfg Config) Config {
	cfg.SessionTimeout = time.Second
	return cfg
}

// lingerFor makes a consumer's gather wait (up to 5 s) until it holds n
// records: tests that need every input in the first batch (one handler
// call, one transaction) get it even when the broker's first fetch brings
// only some partitions (seen under -race on a loaded machine: 16 of 36).
func lingerFor(cfg Config, n int) Config {
	cfg.BatchRecords = n
	cfg.BatchWait = 5 * time.Second
	return cfg
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// recorder is a Handler that keeps what it was given.
type recorder struct {
	mu       sync.Mutex
	recs     []*kgo.Record
	failLeft int // fail this many calls first
	calls    int
	onHandle func(ctx context.Context, recs []*kgo.Record)
}

func (r *recorder) Handle(ctx context.Context, recs []*kgo.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.failLeft > 0 {
		r.failLeft--
		return errors.New("dependency down")
	}
	if r.onHandle != nil {
		r.onHandle(ctx, recs)
	}
	r.recs = append(r.recs, recs...)
	return nil
}

func (r *recorder) snapshot() []*kgo.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.recs)
}

// runConsumer starts c.Run and returns a stop function that cancels it and
// checks that Run returned nil.
func runConsumer(t *testing.T, c *Consumer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("consumer Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("consumer Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func keyedRecords(topic string, keys, perKey int) []*kgo.Record {
	var recs []*kgo.Record
	for i := 0; i < perKey; i++ {
		for k := 0; k < keys; k++ {
			key := fmt.Sprintf("sku%d|online", k)
			recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(key + "#" + strconv.Itoa(i))})
		}
	}
	return recs
}

func produce(t *testing.T, p *Producer, ctx context.Context, recs []*kgo.Record) {
	t.Helper()
	if err := p.Produce(ctx, recs...); err != nil {
		t.Fatal(err)
	}
}

// The input and output topics of the transaction tests.
const txnIn, txnOut = "features.v1", "forecasts.v1"

// txnSetup creates txnIn and txnOut on cfg's broker and returns a test
// telemetry, a producer and an admin client, closed when the test ends.
func txnSetup(t *testing.T, cfg Config) (*telemetry.Telemetry, *Producer, *kadm.Client) {
	t.Helper()
	if err := EnsureTopics(context.Background(), cfg, txnIn, txnOut); err != nil {
		t.Fatal(err)
	}
	tel := telemetry.NewForTest(t.Output())
	p, err := NewProducer(cfg, tel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	adm, err := kadm.NewOptClient(kgo.SeedBrokers(cfg.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(adm.Close)
	return tel, p, adm
}

// produceKeyed produces 4 records for each of 9 keys to topic and returns
// them with each partition's end offset.
func produceKeyed(t *testing.T, p *Producer, topic string) ([]*kgo.Record, map[int32]int64) {
	t.Helper()
	recs := keyedRecords(topic, 9, 4)
	produce(t, p, context.Background(), recs)
	ends := map[int32]int64{}
	for _, r := range recs {
		ends[r.Partition] = max(ends[r.Partition], r.Offset+1)
	}
	return recs, ends
}

func TestProduceConsumeRetryCommit(t *testing.T) {
	e := startBroker(t, "")
	cfg := testConfig(e.Brokers())
	ctx := context.Background()
	const topic = "orders.v1"
	if err := EnsureTopics(ctx, cfg, topic, topics.DLQ(topic)); err != nil {
		t.Fatal(err)
	}

	tel := telemetry.NewForTest(t.Output())
	p, err := NewProducer(cfg, tel)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	spanCtx, span := tel.Tracer.Tracer("test").Start(ctx, "produce")
	traceID := span.SpanContext().TraceID()
	const keys, perKey = 10, 6
	produce(t, p, spanCtx, keyedRecords(topic, keys, perKey))
	span.End()

	var traceIDs sync.Map
	rec := &recorder{failLeft: 2, onHandle: func(ctx context.Context, recs []*kgo.Record) {
		for _, r := range recs {
			traceIDs.Store(string(r.Value), traceFromRecord(tel, r))
		}
	}}
	c, err := NewConsumer(cfg, "g1", []string{topic}, rec, tel)
	if err != nil {
		t.Fatal(err)
	}
	stop := runConsumer(t, c)
	waitFor(t, 20*time.Second, "all records", func() bool { return len(rec.snapshot()) >= keys*perKey })
	stop()

	got := rec.snapshot()
	if len(got) != keys*perKey {
		t.Fatalf("delivered %d records, want exactly %d", len(got), keys*perKey)
	}
	// Per key: values in produce order, all on the partition Kafka's Java
	// client would choose.
	next := map[string]int{}
	lastOffset := map[int32]int64{}
	for _, r := range got {
		key := string(r.Key)
		if want := key + "#" + strconv.Itoa(next[key]); string(r.Value) != want {
			t.Fatalf("key %s: got %s, want %s", key, r.Value, want)
		}
		next[key]++
		if want := javaPartition(r.Key, 3); r.Partition != want {
			t.Fatalf("key %s on partition %d, Java client would choose %d", key, r.Partition, want)
		}
		if off, ok := lastOffset[r.Partition]; ok && r.Offset <= off {
			t.Fatalf("partition %d: offset %d after %d", r.Partition, r.Offset, off)
		}
		lastOffset[r.Partition] = r.Offset
	}
	traceIDs.Range(func(k, v any) bool {
		if v.(string) != traceID.String() {
			t.Errorf("record %s carries trace %s, want %s", k, v, traceID)
		}
		return true
	})

	rec.mu.Lock()
	calls := rec.calls
	rec.mu.Unlock()
	if calls < 3 {
		t.Fatalf("handler called %d times, want the 2 failures retried", calls)
	}
	assertMetric(t, tel, "stockcast_handler_errors_total", map[string]string{"topic": topic}, 2)
	assertMetric(t, tel, "stockcast_consumed_total", map[string]string{"topic": topic}, keys*perKey)
	assertMetric(t, tel, "stockcast_produced_total", map[string]string{"topic": topic}, keys*perKey)
	if lag, err := telemetry.MetricValue(tel.Registry, "stockcast_consumer_lag", map[string]string{"topic": topic}); err != nil || lag != 0 {
		t.Errorf("consumer lag = %v, %v; want 0 after consuming everything", lag, err)
	}

	// The offsets are committed: a new member of the group sees only new records.
	rec2 := &recorder{}
	c2, err := NewConsumer(cfg, "g1", []string{topic}, rec2, tel)
	if err != nil {
		t.Fatal(err)
	}
	runConsumer(t, c2)
	produce(t, p, ctx, []*kgo.Record{{Topic: topic, Key: []byte("new|online"), Value: []byte("sentinel")}})
	waitFor(t, 20*time.Second, "sentinel", func() bool { return len(rec2.snapshot()) > 0 })
	if got := rec2.snapshot(); len(got) != 1 || string(got[0].Value) != "sentinel" {
		t.Fatalf("second member got %d records (first %q), want only the sentinel", len(got), got[0].Value)
	}

	// DLQ records count as rejected by reason.
	produce(t, p, ctx, []*kgo.Record{DLQRecord(got[0], "test", "bad_input", "detail")})
	assertMetric(t, tel, "stockcast_rejected_total", map[string]string{"reason": "bad_input"}, 1)
}

func TestConsumerRestartGetsUncommittedRest(t *testing.T) {
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
	all := keyedRecords(topic, 7, 20)
	produce(t, p, ctx, all)

	// The first consumer is told to stop while handling its first batch: it
	// must finish that batch with a live context and commit it. Small polls
	// leave records fetched but not started, which must stay uncommitted.
	cfg.MaxPollRecords = 10
	runCtx, cancel := context.WithCancel(ctx)
	var handleCtxErr error
	first := &recorder{}
	first.onHandle = func(hctx context.Context, recs []*kgo.Record) {
		if first.calls == 1 {
			cancel()
			handleCtxErr = hctx.Err()
		}
	}
	c1, err := NewConsumer(cfg, "g", []string{topic}, first, tel)
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.Run(runCtx); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	if handleCtxErr != nil {
		t.Fatalf("handler context was cancelled by shutdown: %v", handleCtxErr)
	}
	firstGot := first.snapshot()
	if len(firstGot) == 0 || len(firstGot) == len(all) {
		t.Fatalf("first consumer handled %d of %d records, want a strict part", len(firstGot), len(all))
	}

	rest := &recorder{}
	c2, err := NewConsumer(cfg, "g", []string{topic}, rest, tel)
	if err != nil {
		t.Fatal(err)
	}
	stop := runConsumer(t, c2)
	want := len(all) - len(firstGot)
	waitFor(t, 20*time.Second, "the uncommitted rest", func() bool { return len(rest.snapshot()) >= want })
	stop()

	seen := map[string]int{}
	for _, r := range append(firstGot, rest.snapshot()...) {
		seen[string(r.Value)]++
	}
	for _, r := range all {
		if n := seen[string(r.Value)]; n != 1 {
			t.Errorf("record %s delivered %d times, want exactly once", r.Value, n)
		}
	}
	if len(seen) != len(all) {
		t.Errorf("delivered %d distinct records, want %d", len(seen), len(all))
	}
}

func TestEmbeddedPersistence(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	const topic = "features.v1"
	tel := telemetry.NewForTest(t.Output())

	e1, err := StartEmbedded(EmbeddedConfig{DataDir: dir, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(e1.Brokers())
	cfg.Partitions = 2
	if err := EnsureTopics(ctx, cfg, topic); err != nil {
		t.Fatal(err)
	}
	p, err := NewProducer(cfg, tel)
	if err != nil {
		t.Fatal(err)
	}
	produce(t, p, ctx, keyedRecords(topic, 4, 5))
	p.Close()
	rec := &recorder{}
	c, err := NewConsumer(cfg, "g", []string{topic}, rec, tel)
	if err != nil {
		t.Fatal(err)
	}
	stop := runConsumer(t, c)
	waitFor(t, 20*time.Second, "records before restart", func() bool { return len(rec.snapshot()) >= 20 })
	stop()
	e1.Close()

	e2, err := StartEmbedded(EmbeddedConfig{DataDir: dir, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	cfg.Brokers = e2.Brokers()

	// Topic and records survived.
	adm, err := kadm.NewOptClient(kgo.SeedBrokers(cfg.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total != 20 || len(ends[topic]) != 2 {
		t.Fatalf("after restart: %d records in %d partitions, want 20 in 2", total, len(ends[topic]))
	}

	// Committed offsets survived: the group sees only the new record.
	p2, err := NewProducer(cfg, tel)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	produce(t, p2, ctx, []*kgo.Record{{Topic: topic, Key: []byte("after|restart"), Value: []byte("new")}})
	rec2 := &recorder{}
	c2, err := NewConsumer(cfg, "g", []string{topic}, rec2, tel)
	if err != nil {
		t.Fatal(err)
	}
	stop2 := runConsumer(t, c2)
	waitFor(t, 20*time.Second, "the new record", func() bool { return len(rec2.snapshot()) > 0 })
	stop2()
	if got := rec2.snapshot(); len(got) != 1 || string(got[0].Value) != "new" {
		t.Fatalf("group after restart got %d records, want only the new one", len(got))
	}
}

func TestEnsureTopicsIdempotent(t *testing.T) {
	e := startBroker(t, "")
	cfg := testConfig(e.Brokers())
	ctx := context.Background()
	for range 2 {
		if err := EnsureTopics(ctx, cfg, topics.Orders, topics.Inventory); err != nil {
			t.Fatal(err)
		}
	}
	adm, err := kadm.NewOptClient(kgo.SeedBrokers(cfg.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	md, err := adm.Metadata(ctx, topics.Orders, topics.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range []string{topics.Orders, topics.Inventory} {
		if n := len(md.Topics[tp].Partitions); n != 3 {
			t.Errorf("%s has %d partitions, want 3", tp, n)
		}
	}
}

func TestEnsureTopicsUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err := EnsureTopics(ctx, testConfig([]string{"127.0.0.1:1"}), "x")
	if err == nil || !strings.Contains(err.Error(), "create topics") {
		t.Fatalf("EnsureTopics on a closed port = %v, want a create topics error", err)
	}
}

func assertMetric(t *testing.T, tel *telemetry.Telemetry, name string, labels map[string]string, want float64) {
	t.Helper()
	got, err := telemetry.MetricValue(tel.Registry, name, labels)
	if err != nil || got != want {
		t.Errorf("%s%v = %v, %v; want %v", name, labels, got, err, want)
	}
}

func traceFromRecord(tel *telemetry.Telemetry, r *kgo.Record) string {
	return spanContextTraceID(ExtractTrace(context.Background(), tel, r))
}
