package kafkax

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Default transactional ids are <group>-<host>-<n>, n the lowest slot that
// no live holder has: replicas on one host get different ids, and a slot
// given back (a stopped or killed instance) is the next one's. An explicit
// instance id is <prefix>-<id>, and a second live holder is refused.
func TestTransactionalIdentity(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{instanceLockDir: t.TempDir()}
	take := func(cfg Config, group string) identity {
		t.Helper()
		id, err := cfg.transactionalIdentity(group)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(id.release)
		return id
	}
	a, b := take(cfg, "gr"), take(cfg, "gr")
	if want := "gr-" + host + "-0"; a.id != want {
		t.Errorf("first id %q, want %q", a.id, want)
	}
	if want := "gr-" + host + "-1"; b.id != want {
		t.Errorf("second live id %q, want %q", b.id, want)
	}
	if other := take(cfg, "other"); other.id != "other-"+host+"-0" {
		t.Errorf("another group's first id %q, want slot 0", other.id)
	}
	a.release()
	if c := take(cfg, "gr"); c.id != "gr-"+host+"-0" {
		t.Errorf("id after the first was released %q, want slot 0 again", c.id)
	}

	named := cfg
	named.InstanceID = "stockcast-feature-7d9f-x2"
	named.TransactionalIDPrefix = "prod"
	if n := take(named, "gr"); n.id != "prod-stockcast-feature-7d9f-x2" {
		t.Errorf("explicit id %q", n.id)
	}
	if _, err := named.transactionalIdentity("gr"); err == nil || !errors.Is(err, errIDHeld) || !strings.Contains(err.Error(), "must not share") {
		t.Errorf("second live holder of an explicit id: err %v, want it refused", err)
	}
}

// A transactional consumer killed (SIGKILL) with a transaction open holds
// back read_committed readers of the partitions it wrote until the broker
// aborts that transaction. An instance with another transactional id does
// not end it (the transaction timeout, 5 minutes here, would), while the
// killed instance restarted with its identity (same host, its slot free
// again) aborts it as it starts: the readers and the group go on at once,
// and each input has one visible output.
func TestRestartAbortsPredecessorTransaction(t *testing.T) {
	e := startBroker(t, "")
	cfg := shortSession(testConfig(e.Brokers()))
	cfg.instanceLockDir = t.TempDir()
	cfg.TransactionTimeout = 5 * time.Minute
	ctx := context.Background()
	const in, out = txnIn, txnOut
	tel, p, adm := txnSetup(t, cfg)
	recs, ends := produceKeyed(t, p, in)
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	id := "gr-" + host + "-0"

	killAfterProduce(t, killHelperValue(cfg))
	killed := time.Now()
	before := describeTxn(t, adm, id)
	if before.State != "Ongoing" {
		t.Fatalf("the killed instance's transaction %s is %s, want Ongoing", id, before.State)
	}
	if held := heldBack(t, adm, out); held == 0 {
		t.Fatal("no record of the killed instance's transaction held back from read_committed readers")
	}

	// Another identity: its InitProducerID leaves the open transaction.
	stranger := cfg
	stranger.InstanceID = "elsewhere"
	cs, err := NewConsumer(stranger, "gr", []string{in}, &transform{p: p, out: out, prefix: "stranger:"}, tel)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := cs.cl.ProducerID(ctx); err != nil { // what its Run does first
		t.Fatal(err)
	}
	stopStranger := runConsumer(t, cs)
	if d := describeTxn(t, adm, id); d.State != "Ongoing" || d.ProducerEpoch != before.ProducerEpoch {
		t.Errorf("after another id started: %s is %s at epoch %d, want still Ongoing at %d", id, d.State, d.ProducerEpoch, before.ProducerEpoch)
	}
	if held := heldBack(t, adm, out); held == 0 {
		t.Error("after another id started: nothing held back any more")
	}
	stopStranger()

	// The killed instance restarted: same host, same lock dir.
	h := &transform{p: p, out: out, prefix: "out:"}
	c, err := NewConsumer(cfg, "gr", []string{in}, h, tel)
	if err != nil {
		t.Fatal(err)
	}
	if c.txnID != id {
		t.Fatalf("restarted instance's id %q, want its predecessor's %q", c.txnID, id)
	}
	restarted := time.Now()
	stop := runConsumer(t, c)
	waitFor(t, 30*time.Second, "the predecessor's transaction aborted", func() bool { return heldBack(t, adm, out) == 0 })
	released := time.Now()
	waitFor(t, 30*time.Second, "every input committed", func() bool { return committedAll(ctx, adm, "gr", in, ends) })
	done := time.Now()
	stop()
	if d := describeTxn(t, adm, id); d.ProducerEpoch <= before.ProducerEpoch || d.State == "Ongoing" {
		t.Errorf("after the restart: %s is %s at epoch %d, want a later epoch than %d and no open transaction", id, d.State, d.ProducerEpoch, before.ProducerEpoch)
	}
	t.Logf("kill -9 -> restart %v; restart -> readers released %v, -> every input committed %v (transaction timeout %v)",
		restarted.Sub(killed).Round(time.Millisecond), released.Sub(restarted).Round(time.Millisecond),
		done.Sub(restarted).Round(time.Millisecond), cfg.TransactionTimeout)

	got := countValues(readOutputs(t, cfg.Brokers, out, 3, kgo.ReadCommitted()))
	for _, r := range recs {
		if n := got["out:"+string(r.Value)]; n != 1 {
			t.Errorf("read_committed: output of %s seen %d times, want 1", r.Value, n)
		}
	}
	if len(got) != len(recs) {
		t.Errorf("read_committed: %d distinct outputs, want %d (the other instance handled nothing)", len(got), len(recs))
	}
}

// Two live instances given the same instance id (on two hosts: the lock
// cannot see it) fence each other: the older one's next transaction fails,
// and its Run stops with errFenced and counts an abort with reason fenced,
// instead of going on as if nothing happened.
func TestSharedInstanceIDIsFenced(t *testing.T) {
	e := startBroker(t, "")
	cfg := testConfig(e.Brokers())
	cfg.InstanceID = "same"
	ctx := context.Background()
	const in, out = txnIn, txnOut
	tel, p, _ := txnSetup(t, cfg)

	hostA, hostB := cfg, cfg
	hostA.instanceLockDir, hostB.instanceLockDir = t.TempDir(), t.TempDir()
	older := &transform{p: p, out: out, prefix: "a:"}
	ca, err := NewConsumer(hostA, "gr", []string{in}, older, tel)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- ca.Run(runCtx) }()
	first := keyedRecords(in, 9, 1)
	produce(t, p, ctx, first)
	waitFor(t, 20*time.Second, "the older instance handled the first inputs", func() bool { return older.producedCount() >= len(first) })

	cb, err := NewConsumer(hostB, "gr", []string{in}, &transform{p: p, out: out, prefix: "b:"}, tel)
	if err != nil {
		t.Fatal(err)
	}
	if cb.txnID != ca.txnID {
		t.Fatalf("ids %q and %q, want the same", ca.txnID, cb.txnID)
	}
	if _, _, err := cb.cl.ProducerID(ctx); err != nil { // what its Run does first: fences the older
		t.Fatal(err)
	}
	runConsumer(t, cb)
	// Inputs on every partition: whichever the older instance still owns
	// make it open a transaction with its stale epoch.
	for i := 0; ; i++ {
		produce(t, p, ctx, keyedRecords(in, 9, 1))
		select {
		case err := <-errc:
			if !errors.Is(err, errFenced) {
				t.Fatalf("older instance's Run: %v, want errFenced", err)
			}
			assertMetric(t, tel, "stockcast_kafka_transactions_aborted_total", map[string]string{"reason": "fenced"}, 1)
			return
		case <-time.After(200 * time.Millisecond):
		}
		if i == 100 {
			t.Fatal("the older instance was not stopped as fenced")
		}
	}
}

// describeTxn describes the transactional id id.
func describeTxn(t *testing.T, adm *kadm.Client, id string) kadm.DescribedTransaction {
	t.Helper()
	d, err := adm.DescribeTransactions(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if d[id].Err != nil {
		t.Fatalf("describe transaction %s: %v", id, d[id].Err)
	}
	return d[id]
}

// heldBack is how many offsets of topic read_committed readers cannot read
// yet: high watermarks minus last stable offsets, over the partitions.
func heldBack(t *testing.T, adm *kadm.Client, topic string) int64 {
	t.Helper()
	ctx := context.Background()
	hw, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	lso, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	hw.Each(func(o kadm.ListedOffset) {
		if s, ok := lso.Lookup(topic, o.Partition); ok {
			n += o.Offset - s.Offset
		}
	})
	return n
}
