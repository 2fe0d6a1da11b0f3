package kafkax

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockcast/stockcast/pkg/telemetry"
)

// deliveries are the two delivery paths every gather test runs.
var deliveries = []struct {
	name        string
	atLeastOnce bool
}{{"transactions", false}, {"at-least-once", true}}

// metricValue returns a metric's value (0 when it has no series yet).
func metricValue(tel *telemetry.Telemetry, name string, labels map[string]string) float64 {
	v, _ := telemetry.MetricValue(tel.Registry, name, labels)
	return v
}

// committedSum is the sum of the offsets group committed on topic's
// partitions in ends (records handled and committed, markers included).
func committedSum(t *testing.T, adm *kadm.Client, group, topic string, ends map[int32]int64) int64 {
	t.Helper()
	offs, err := adm.FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for p := range ends {
		if o, ok := offs.Lookup(topic, p); ok && o.Err == nil && o.At > 0 {
			n += o.At
		}
	}
	return n
}

// assertOutputsOnce checks that every input of recs has exactly one output
// on out, at the given isolation level, and nothing else is there.
func assertOutputsOnce(t *testing.T, brokers []string, out string, recs []*kgo.Record, level kgo.IsolationLevel, what string) {
	t.Helper()
	got := countValues(readOutputs(t, brokers, out, 3, level))
	for _, r := range recs {
		if n := got["out:"+string(r.Value)]; n != 1 {
			t.Errorf("%s: output of %s seen %d times, want 1", what, r.Value, n)
		}
	}
	if len(got) != len(recs) {
		t.Errorf("%s: %d distinct outputs, want %d", what, len(got), len(recs))
	}
}

// A batch gathers polls until it holds BatchRecords records: with a wait of
// an hour and 36 records wanted, the first 20 inputs are polled (the
// consumer's poll counter moves) and nothing is handled or committed; the
// other 16 complete the batch, which reaches the handler in one call of
// all 36 (several partitions, several polls of at most 5 records) and
// commits once, after the handler's outputs. Every output is on its topic
// once.
func TestGatherSpansPollsCommitsOnceAfterTheEffect(t *testing.T) {
	for _, tc := range deliveries {
		t.Run(tc.name, func(t *testing.T) {
			e := startBroker(t, "")
			cfg := testConfig(e.Brokers())
			cfg.AtLeastOnce = tc.atLeastOnce
			cfg.instanceLockDir = t.TempDir()
			cfg.MaxPollRecords, cfg.BatchRecords, cfg.BatchWait = 5, 36, time.Hour
			ctx := context.Background()
			tel, p, adm := txnSetup(t, cfg)
			recs := keyedRecords(txnIn, 9, 4)
			ends := map[int32]int64{}

			var mu sync.Mutex
			var calls []int
			var committedInCall int64 = -1
			h := &transform{p: p, out: txnOut, prefix: "out:"}
			h.onInputs = func(in []*kgo.Record) {
				n := committedSum(t, adm, "gg", txnIn, map[int32]int64{0: 0, 1: 0, 2: 0})
				mu.Lock()
				defer mu.Unlock()
				calls = append(calls, len(in))
				if committedInCall < 0 {
					committedInCall = n
				}
			}
			c, err := NewConsumer(cfg, "gg", []string{txnIn}, h, tel)
			if err != nil {
				t.Fatal(err)
			}
			stop := runConsumer(t, c)
			produce(t, p, ctx, recs[:20])
			waitFor(t, 30*time.Second, "the first 20 inputs polled", func() bool {
				return metricValue(tel, "stockcast_consumer_polls_total", nil) >= 4 // at most 5 a poll
			})
			mu.Lock()
			early := len(calls)
			mu.Unlock()
			if early != 0 {
				t.Fatalf("handler called %d times before the batch held 36 records", early)
			}
			if n := committedSum(t, adm, "gg", txnIn, map[int32]int64{0: 0, 1: 0, 2: 0}); n != 0 {
				t.Fatalf("committed %d offsets before the batch was handled", n)
			}
			produce(t, p, ctx, recs[20:])
			for _, r := range recs {
				ends[r.Partition] = max(ends[r.Partition], r.Offset+1)
			}
			waitFor(t, 30*time.Second, "every input committed", func() bool { return committedAll(ctx, adm, "gg", txnIn, ends) })
			stop()

			mu.Lock()
			defer mu.Unlock()
			if len(calls) != 1 || calls[0] != len(recs) {
				t.Errorf("handler calls %v, want one call of %d records", calls, len(recs))
			}
			if committedInCall != 0 {
				t.Errorf("%d offsets committed while the handler ran, want 0 (commit after the effect)", committedInCall)
			}
			polls := metricValue(tel, "stockcast_consumer_polls_total", nil)
			if polls < 8 {
				t.Errorf("%v polls made the batch of 36 with at most 5 records a poll, want at least 8", polls)
			}
			assertOutputsOnce(t, cfg.Brokers, txnOut, recs, kgo.ReadCommitted(), "read_committed")
			if !tc.atLeastOnce {
				// No attempt was aborted: the log holds no other copy.
				assertOutputsOnce(t, cfg.Brokers, txnOut, recs, kgo.ReadUncommitted(), "read_uncommitted")
				if n := metricValue(tel, "stockcast_kafka_transactions_aborted_total", nil); n != 0 {
					t.Errorf("%v transactions aborted, want 0", n)
				}
			}
		})
	}
}

// A batch that never reaches BatchRecords is handed over BatchWait after
// its first poll: with 10,000 records wanted and a 200ms wait, 36 inputs
// and then one more are handled and committed (each in a batch of its
// own: the second is produced after the first batch committed).
func TestGatherHandsOverAfterBatchWait(t *testing.T) {
	for _, tc := range deliveries {
		t.Run(tc.name, func(t *testing.T) {
			e := startBroker(t, "")
			cfg := testConfig(e.Brokers())
			cfg.AtLeastOnce = tc.atLeastOnce
			cfg.instanceLockDir = t.TempDir()
			cfg.BatchRecords, cfg.BatchWait = 10_000, 200*time.Millisecond
			ctx := context.Background()
			tel, p, adm := txnSetup(t, cfg)
			recs, ends := produceKeyed(t, p, txnIn)
			h := &recorder{}
			c, err := NewConsumer(cfg, "gt", []string{txnIn}, h, tel)
			if err != nil {
				t.Fatal(err)
			}
			stop := runConsumer(t, c)
			waitFor(t, 30*time.Second, "every input committed", func() bool { return committedAll(ctx, adm, "gt", txnIn, ends) })
			one := keyedRecords(txnIn, 1, 1)
			produce(t, p, ctx, one)
			ends[one[0].Partition] = max(ends[one[0].Partition], one[0].Offset+1)
			waitFor(t, 30*time.Second, "the last input committed", func() bool { return committedAll(ctx, adm, "gt", txnIn, ends) })
			stop()
			got := h.snapshot()
			if len(got) != len(recs)+1 {
				t.Errorf("handled %d records, want %d", len(got), len(recs)+1)
			}
			if v := string(got[len(got)-1].Value); v != string(one[0].Value) {
				t.Errorf("last handled %q, want %q", v, one[0].Value)
			}
		})
	}
}

// gatherHelperEnv makes the test binary run gatherHelper instead of the
// tests: "<brokers>|<at-least-once>|<instance lock dir>".
const gatherHelperEnv = "STOCKCAST_KAFKAX_GATHER_HELPER"

// gatherHelper consumes txnIn as group "gk" in batches of 20 records (a
// wait of an hour), producing one output per input, and prints
// "gathered <records> after <handler calls> calls" after each poll.
func gatherHelper(v string) {
	f := strings.Split(v, "|")
	cfg := shortSession(testConfig(strings.Split(f[0], ",")))
	cfg.AtLeastOnce = f[1] == "true"
	cfg.instanceLockDir = f[2]
	cfg.MaxPollRecords, cfg.BatchRecords, cfg.BatchWait = 5, 20, time.Hour
	p, err := NewProducer(cfg, telemetry.NewDiscard())
	if err != nil {
		panic(err)
	}
	h := &transform{p: p, out: txnOut, prefix: "out:"}
	c, err := NewConsumer(cfg, "gk", []string{txnIn}, h, telemetry.NewDiscard())
	if err != nil {
		panic(err)
	}
	c.gathered = func(n int) {
		h.mu.Lock()
		calls := h.calls
		h.mu.Unlock()
		fmt.Fprintf(os.Stdout, "gathered %d after %d calls\n", n, calls)
	}
	_ = c.Run(context.Background())
}

// A consumer killed (SIGKILL) mid-gather: its first batch (20 records) was
// handled and committed; of the second it has gathered the remaining 16
// and waits for 4 more. The next member handles those 16 and nothing else:
// every output is on its topic exactly once, with and without
// transactions (the gathered records had no effect yet).
func TestGatherKilledMidGatherRedeliversTheUncommitted(t *testing.T) {
	for _, tc := range deliveries {
		t.Run(tc.name, func(t *testing.T) {
			e := startBroker(t, "")
			cfg := shortSession(testConfig(e.Brokers()))
			cfg.AtLeastOnce = tc.atLeastOnce
			cfg.instanceLockDir = t.TempDir()
			cfg.TransactionTimeout = 2 * time.Second
			ctx := context.Background()
			tel, p, adm := txnSetup(t, cfg)
			recs, ends := produceKeyed(t, p, txnIn)

			v := strings.Join([]string{strings.Join(cfg.Brokers, ","), fmt.Sprint(cfg.AtLeastOnce), cfg.instanceLockDir}, "|")
			runHelperUntil(t, gatherHelperEnv+"="+v, "gathered 16 after 1 calls")
			offs, err := adm.FetchOffsets(ctx, "gk")
			if err != nil {
				t.Fatal(err)
			}
			if n := committedSum(t, adm, "gk", txnIn, ends); n != 20 {
				t.Errorf("the killed member committed %d offsets, want its first batch's 20", n)
			}
			// The inputs past the committed offsets, which the next member
			// must handle, and nothing else.
			want := map[string]bool{}
			for _, r := range recs {
				if o, ok := offs.Lookup(txnIn, r.Partition); !ok || o.Err != nil || r.Offset >= o.At {
					want[string(r.Value)] = true
				}
			}

			var mu sync.Mutex
			handled := map[string]bool{}
			h := &transform{p: p, out: txnOut, prefix: "out:"}
			h.onInputs = func(in []*kgo.Record) {
				mu.Lock()
				defer mu.Unlock()
				for _, r := range in {
					handled[string(r.Value)] = true
				}
			}
			c, err := NewConsumer(cfg, "gk", []string{txnIn}, h, tel)
			if err != nil {
				t.Fatal(err)
			}
			stop := runConsumer(t, c)
			waitFor(t, 30*time.Second, "every input committed", func() bool { return committedAll(ctx, adm, "gk", txnIn, ends) })
			stop()
			mu.Lock()
			if len(handled) != len(want) || len(want) != 16 {
				t.Errorf("the next member handled %d inputs, want the %d uncommitted (16)", len(handled), len(want))
			}
			for v := range handled {
				if !want[v] {
					t.Errorf("the next member handled %s, which the killed one had committed", v)
				}
			}
			mu.Unlock()
			assertOutputsOnce(t, cfg.Brokers, txnOut, recs, kgo.ReadCommitted(), "read_committed")
		})
	}
}

// helperProc is a running helper process and its output lines.
type helperProc struct {
	out  chan string
	kill func()
}

// startHelper runs the test binary as a helper (env: its selector), its
// stdout lines on out; kill (also at the test's end) kills it with SIGKILL.
func startHelper(t *testing.T, env string) *helperProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env)
	cmd.Stderr = t.Output()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helperProc{out: make(chan string, 1024)}
	go func() {
		defer close(h.out)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.out <- sc.Text()
		}
	}()
	var once sync.Once
	h.kill = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	t.Cleanup(h.kill)
	return h
}

// runHelperUntil runs the test binary as a helper (env: its selector),
// waits until it prints the line want, and kills it (SIGKILL).
func runHelperUntil(t *testing.T, env, want string) {
	t.Helper()
	lines := startHelper(t, env)
	deadline := time.After(60 * time.Second)
	for {
		select {
		case s, ok := <-lines.out:
			if !ok {
				t.Fatalf("the helper exited before printing %q", want)
			}
			if s == want {
				lines.kill()
				return
			}
		case <-deadline:
			lines.kill()
			t.Fatalf("the helper did not print %q", want)
		}
	}
}

// A transactional member whose partitions are revoked while it gathers
// does not handle the gathered batch: the session would abort it anyway,
// so it aborts at once and the member gathers again what it keeps. The
// revoked partitions' records go to the new member. The log then holds
// every output once, even read_uncommitted (no aborted copy was ever
// produced). An at-least-once member instead ends its gather when the
// rebalance waits for it, handles and commits what it has, and then lets
// the rebalance go on: again every output once. Both members drain on
// shutdown: the batch each has gathered is handled and committed.
func TestGatherRevokedMidGather(t *testing.T) {
	for _, tc := range deliveries {
		t.Run(tc.name, func(t *testing.T) {
			e := startBroker(t, "")
			cfg := testConfig(e.Brokers())
			cfg.AtLeastOnce = tc.atLeastOnce
			cfg.instanceLockDir = t.TempDir()
			cfg.BatchRecords, cfg.BatchWait = 10_000, time.Hour
			ctx := context.Background()
			tel, p, adm := txnSetup(t, cfg)
			recs, ends := produceKeyed(t, p, txnIn)

			var mu sync.Mutex
			gathered, calls := 0, 0
			ha := &transform{p: p, out: txnOut, prefix: "out:"}
			ha.onInputs = func([]*kgo.Record) {
				mu.Lock()
				calls++
				mu.Unlock()
			}
			a, err := NewConsumer(cfg, "gr", []string{txnIn}, ha, tel)
			if err != nil {
				t.Fatal(err)
			}
			a.gathered = func(n int) {
				mu.Lock()
				gathered = max(gathered, n)
				mu.Unlock()
			}
			stopA := runConsumer(t, a)
			waitFor(t, 30*time.Second, "member A gathered every input", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return gathered >= len(recs)
			})

			telB := telemetry.NewForTest(t.Output())
			hb := &transform{p: p, out: txnOut, prefix: "out:"}
			b, err := NewConsumer(cfg, "gr", []string{txnIn}, hb, telB)
			if err != nil {
				t.Fatal(err)
			}
			stopB := runConsumer(t, b)
			if tc.atLeastOnce {
				waitFor(t, 30*time.Second, "A's batch handed over for the rebalance", func() bool { return committedAll(ctx, adm, "gr", txnIn, ends) })
				mu.Lock()
				if calls != 1 {
					t.Errorf("member A made %d handler calls, want 1 (its gathered batch)", calls)
				}
				mu.Unlock()
			} else {
				waitFor(t, 30*time.Second, "A's transaction aborted for the revoke", func() bool {
					return metricValue(tel, "stockcast_kafka_transactions_aborted_total", map[string]string{"reason": "lost"}) >= 1
				})
				mu.Lock()
				if calls != 0 {
					t.Errorf("member A made %d handler calls before its partitions were revoked mid-gather, want 0", calls)
				}
				mu.Unlock()
			}
			// Both gather for an hour: shutting down hands their batches over.
			waitFor(t, 30*time.Second, "member B has gathered", func() bool {
				return tc.atLeastOnce || metricValue(telB, "stockcast_consumer_polls_total", nil) >= 1
			})
			stopB()
			stopA()
			if !committedAll(ctx, adm, "gr", txnIn, ends) {
				// What neither had polled: a last member, gathering nothing.
				last := cfg
				last.BatchWait = 0
				c, err := NewConsumer(last, "gr", []string{txnIn}, ha, tel)
				if err != nil {
					t.Fatal(err)
				}
				stop := runConsumer(t, c)
				waitFor(t, 30*time.Second, "every input committed", func() bool { return committedAll(ctx, adm, "gr", txnIn, ends) })
				stop()
			}
			assertOutputsOnce(t, cfg.Brokers, txnOut, recs, kgo.ReadCommitted(), "read_committed")
			if !tc.atLeastOnce {
				assertOutputsOnce(t, cfg.Brokers, txnOut, recs, kgo.ReadUncommitted(), "read_uncommitted")
			}
		})
	}
}

// adaptiveGatherConfig is testConfig with the flags -kafka.batch-wait=0
// (the adaptive gather) and the default -kafka.batch-records.
func adaptiveGatherConfig(t *testing.T, brokers []string) Config {
	t.Helper()
	var d Config
	fs := flag.NewFlagSet("adaptive", flag.ContinueOnError)
	d.RegisterFlags(fs)
	if err := fs.Parse([]string{"-kafka.batch-wait=0"}); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(brokers)
	cfg.BatchWait, cfg.BatchRecords = d.BatchWait, d.BatchRecords
	return cfg
}

// gatherLog records a consumer's polls ("wait": a poll that may wait for
// the broker, "buffered": one that takes only what is already fetched),
// gathers ("gathered N") and handler calls ("handle N"), in order.
type gatherLog struct {
	mu     sync.Mutex
	events []string
}

func (l *gatherLog) add(e string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *gatherLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// watch makes c log its polls and gathers to l.
func (l *gatherLog) watch(c *Consumer) {
	c.polling = func(blocking bool) {
		if blocking {
			l.add("wait")
		} else {
			l.add("buffered")
		}
	}
	c.gathered = func(n int) { l.add(fmt.Sprintf("gathered %d", n)) }
}

// With -kafka.batch-wait=0 a gather takes what the client has already
// fetched and never waits for more: 50 inputs fetched before the
// first poll (the test holds that poll until the client has buffered all
// of them) make a batch of 36 (-kafka.batch-records 36), in one poll that
// may wait (it returns at once) and seven of what is buffered (at most 5
// records a poll), then a batch of the other 14 in one poll of each kind
// and a last poll of what is buffered that finds nothing. No poll that may
// wait for the broker runs while a batch is gathered: with a wait (the
// default -kafka.batch-wait 100ms) each gather's later polls do, and on
// session 6's code, where a zero wait made a batch one poll, each batch
// holds 5.
func TestGatherTakesWhatIsFetchedWithoutWaiting(t *testing.T) {
	for _, tc := range deliveries {
		t.Run(tc.name, func(t *testing.T) {
			e := startBroker(t, "")
			cfg := adaptiveGatherConfig(t, e.Brokers())
			cfg.AtLeastOnce = tc.atLeastOnce
			cfg.instanceLockDir = t.TempDir()
			cfg.MaxPollRecords, cfg.BatchRecords = 5, 36
			ctx := context.Background()
			tel, p, adm := txnSetup(t, cfg)
			recs := keyedRecords(txnIn, 10, 5)
			produce(t, p, ctx, recs)
			ends := map[int32]int64{}
			for _, r := range recs {
				ends[r.Partition] = max(ends[r.Partition], r.Offset+1)
			}

			var log gatherLog
			h := &recorder{onHandle: func(_ context.Context, in []*kgo.Record) { log.add(fmt.Sprintf("handle %d", len(in))) }}
			c, err := NewConsumer(cfg, "gb", []string{txnIn}, h, tel)
			if err != nil {
				t.Fatal(err)
			}
			log.watch(c)
			watched := c.polling
			first := true
			c.polling = func(blocking bool) {
				if first {
					first = false
					waitFor(t, 30*time.Second, "every input fetched before the first poll", func() bool {
						return c.cl.BufferedFetchRecords() == int64(len(recs))
					})
				}
				watched(blocking)
			}
			stop := runConsumer(t, c)
			waitFor(t, 30*time.Second, "every input committed", func() bool { return committedAll(ctx, adm, "gb", txnIn, ends) })
			stop()

			want := []string{"wait", "gathered 5"}
			for n := 10; n <= 35; n += 5 {
				want = append(want, "buffered", fmt.Sprintf("gathered %d", n))
			}
			want = append(want, "buffered", "gathered 36", "handle 36",
				"wait", "gathered 5", "buffered", "gathered 10", "buffered", "gathered 14", "buffered", "handle 14")
			got := log.snapshot()
			if len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
				t.Errorf("polls, gathers and handler calls:\n got %q\nwant %q (then polls that wait for more)", got, want)
			}
			for _, ev := range got[min(len(want), len(got)):] {
				if ev != "wait" {
					t.Errorf("after the last batch: %q, want only polls that wait for more input", ev)
				}
			}
			if n := len(h.snapshot()); n != len(recs) {
				t.Errorf("handled %d records, want %d", n, len(recs))
			}
		})
	}
}

// With -kafka.batch-wait=0 a lone record is handed over without waiting
// for more: after the poll that returned it, the gather makes one poll of
// what is buffered, which finds nothing, and the handler gets the record.
// With a wait (the default 100ms) the gather polls on, waiting for the
// broker, first; on session 6's code a zero wait made no second poll.
func TestGatherHandsOverALoneRecordAtOnce(t *testing.T) {
	for _, tc := range deliveries {
		t.Run(tc.name, func(t *testing.T) {
			e := startBroker(t, "")
			cfg := adaptiveGatherConfig(t, e.Brokers())
			cfg.AtLeastOnce = tc.atLeastOnce
			cfg.instanceLockDir = t.TempDir()
			ctx := context.Background()
			tel, p, adm := txnSetup(t, cfg)

			var log gatherLog
			h := &recorder{onHandle: func(_ context.Context, in []*kgo.Record) { log.add(fmt.Sprintf("handle %d", len(in))) }}
			c, err := NewConsumer(cfg, "gl", []string{txnIn}, h, tel)
			if err != nil {
				t.Fatal(err)
			}
			log.watch(c)
			stop := runConsumer(t, c)
			defer stop()
			ends := map[int32]int64{}
			for i, one := range keyedRecords(txnIn, 2, 1) {
				produce(t, p, ctx, []*kgo.Record{one})
				ends[one.Partition] = max(ends[one.Partition], one.Offset+1)
				waitFor(t, 30*time.Second, fmt.Sprintf("record %d committed", i), func() bool { return committedAll(ctx, adm, "gl", txnIn, ends) })
			}
			stop()
			got := log.snapshot()
			// Drop the polls that waited for input and found none (the
			// consumer's idle polls return only with records).
			var seen []string
			for i, ev := range got {
				if ev == "wait" && (i+1 == len(got) || got[i+1] == "wait") {
					continue
				}
				seen = append(seen, ev)
			}
			want := []string{"wait", "gathered 1", "buffered", "handle 1", "wait", "gathered 1", "buffered", "handle 1"}
			if !slices.Equal(seen, want) {
				t.Errorf("polls, gathers and handler calls %q, want %q", got, want)
			}
		})
	}
}
