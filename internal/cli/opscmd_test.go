package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
)

func opsClient(t *testing.T, brokers []string, opts ...kgo.Opt) (*kgo.Client, *kadm.Client) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, kadm.NewClient(cl)
}

// readAll reads every record of topic that read_committed readers see now,
// from the start. It reads up to the last stable offsets (not the high
// watermarks: an open transaction's records are not readable yet) and
// counts positions, not records: the markers of committed and aborted
// transactions, and aborted records, take offsets but are no data, so on a
// transactional topic a count of records would never reach the end.
func readAll(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, adm := opsClient(t, brokers)
	stable, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	ends, limit := map[int32]int64{}, map[int32]int64{}
	stable.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			ends[o.Partition], limit[o.Partition] = o.Offset, o.Offset
		}
	})
	cl, _ := opsClient(t, brokers, append(kafkax.ReadToEnd(), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	var recs []*kgo.Record
	for len(ends) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: got %d records, partitions short of their end: %v", topic, len(recs), ends)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := ends[r.Partition]; ok && r.Offset+1 >= end {
				delete(ends, r.Partition)
			}
			if !kafkax.IsControl(r) && r.Offset < limit[r.Partition] {
				recs = append(recs, r)
			}
		})
	}
	return recs
}

// readAll returns a transactional topic's committed records: not the
// aborted ones, not those of a transaction still open, and it ends although
// markers and aborted records take offsets past the last data record.
func TestReadAllTransactionalTopic(t *testing.T) {
	brokers := testenv.Kafka(t)
	ctx := context.Background()
	const topic = "readall-txn.v1"
	_, adm := opsClient(t, brokers)
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	txn := func(id string, commit bool, values ...string) *kgo.Client {
		t.Helper()
		cl, _ := opsClient(t, brokers, kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			if err := cl.ProduceSync(ctx, kgo.StringRecord(v)).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if commit {
			if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
				t.Fatal(err)
			}
		}
		return cl
	}
	txn("readall-a", true, "c1", "c2", "c3")
	aborted := txn("readall-b", false, "a1", "a2")
	if err := aborted.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	txn("readall-c", true, "c4")
	txn("readall-d", false, "open1") // left open
	var got []string
	for _, r := range readAll(t, brokers, topic) {
		got = append(got, string(r.Value))
	}
	slices.Sort(got)
	if want := []string{"c1", "c2", "c3", "c4"}; !slices.Equal(got, want) {
		t.Fatalf("readAll = %q, want %q", got, want)
	}
}

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out syncBuffer
	err := Run(context.Background(), args, noEnv, &out, &out)
	return out.String(), err
}

func TestTopicsCreate(t *testing.T) {
	brokers := testenv.Kafka(t)
	out, err := runCLI(t, "topics", "create", "--kafka.brokers", strings.Join(brokers, ","), "--kafka.partitions", "3")
	if err != nil {
		t.Fatalf("topics create: %v\n%s", err, out)
	}
	_, adm := opsClient(t, brokers)
	details, err := adm.ListTopics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range AllTopics() {
		d, ok := details[tp]
		if !ok {
			t.Errorf("topic %s not created", tp)
			continue
		}
		if len(d.Partitions) != 3 {
			t.Errorf("topic %s has %d partitions, want 3", tp, len(d.Partitions))
		}
		if !strings.Contains(out, tp+"\n") {
			t.Errorf("output does not list %s:\n%s", tp, out)
		}
	}
	if _, ok := details[topics.DLQ(topics.Orders)]; !ok {
		t.Errorf("no %s", topics.DLQ(topics.Orders))
	}
	// Running it again (upgrade hook) is fine.
	if out, err := runCLI(t, "topics", "create", "--kafka.brokers", strings.Join(brokers, ",")); err != nil {
		t.Fatalf("second topics create: %v\n%s", err, out)
	}
}

func TestDLQRedrive(t *testing.T) {
	brokers := testenv.Kafka(t)
	ctx := context.Background()
	cfg := kafkax.Config{Brokers: brokers}
	dlq := topics.DLQ(topics.Orders)
	if err := kafkax.EnsureTopics(ctx, cfg, topics.Orders, dlq); err != nil {
		t.Fatal(err)
	}
	prod, _ := opsClient(t, brokers)
	var recs []*kgo.Record
	for i := range 10 {
		src := &kgo.Record{Topic: topics.Orders, Partition: int32(i % 3), Offset: int64(i),
			Key: []byte(fmt.Sprintf("sku%d|online", i)), Value: []byte(fmt.Sprintf("order-%d", i))}
		kafkax.SetHeader(src, topics.HeaderEventID, fmt.Sprintf("ev-%d", i))
		reason := "decode"
		if i%2 == 1 {
			reason = "clickhouse"
		}
		recs = append(recs, kafkax.DLQRecord(src, "ingest", reason, "boom"))
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--kafka.brokers", strings.Join(brokers, ","), "--topic", dlq}

	// Dry run: counts, produces and commits nothing.
	out, err := runCLI(t, append([]string{"dlq", "redrive", "--dry-run"}, flags...)...)
	if err != nil || !strings.Contains(out, "would redrive 10") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if got := readAll(t, brokers, topics.Orders); len(got) != 0 {
		t.Fatalf("dry run produced %d records", len(got))
	}

	// Only one reason: 5 records go back, the other 5 are skipped (and committed).
	out, err = runCLI(t, append([]string{"dlq", "redrive", "--reason", "clickhouse"}, flags...)...)
	if err != nil || !strings.Contains(out, "read 10, redriven 5, skipped 5") {
		t.Fatalf("redrive --reason: %v\n%s", err, out)
	}
	got := readAll(t, brokers, topics.Orders)
	if len(got) != 5 {
		t.Fatalf("orders.v1 has %d records after re-drive, want 5", len(got))
	}
	for _, r := range got {
		var i int
		if _, err := fmt.Sscanf(string(r.Value), "order-%d", &i); err != nil || i%2 != 1 {
			t.Errorf("re-driven %q, want only odd (clickhouse) orders", r.Value)
		}
		if string(r.Key) != fmt.Sprintf("sku%d|online", i) {
			t.Errorf("key %q for %q", r.Key, r.Value)
		}
		if kafkax.HeaderValue(r, topics.HeaderEventID) != fmt.Sprintf("ev-%d", i) {
			t.Errorf("event id header lost on %q", r.Value)
		}
		if kafkax.HeaderValue(r, topics.HeaderDLQReason) != "" || kafkax.HeaderValue(r, topics.HeaderDLQSource) != "" {
			t.Errorf("DLQ headers kept on %q", r.Value)
		}
		if !strings.HasPrefix(kafkax.HeaderValue(r, HeaderRedriven), dlq+"/") {
			t.Errorf("no %s header on %q", HeaderRedriven, r.Value)
		}
	}

	// Running again re-drives nothing: the group's offsets are at the end.
	out, err = runCLI(t, append([]string{"dlq", "redrive"}, flags...)...)
	if err != nil || !strings.Contains(out, "read 0, redriven 0") {
		t.Fatalf("second redrive: %v\n%s", err, out)
	}
	// New dead letters are picked up; --max bounds the run.
	if err := prod.ProduceSync(ctx, recs[0], recs[2], recs[4]).FirstErr(); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, append([]string{"dlq", "redrive", "--max", "2"}, flags...)...)
	if err != nil || !strings.Contains(out, "redriven 2") {
		t.Fatalf("redrive --max 2: %v\n%s", err, out)
	}
	out, err = runCLI(t, append([]string{"dlq", "redrive"}, flags...)...)
	if err != nil || !strings.Contains(out, "redriven 1,") {
		t.Fatalf("redrive of the rest: %v\n%s", err, out)
	}
	if got := readAll(t, brokers, topics.Orders); len(got) != 8 {
		t.Fatalf("orders.v1 has %d records, want 8", len(got))
	}

	if _, err := runCLI(t, "dlq", "redrive", "--kafka.brokers", brokers[0], "--topic", topics.Orders); err == nil ||
		!strings.Contains(err.Error(), "not a dead-letter topic") {
		t.Fatalf("redrive of a non-DLQ topic: %v", err)
	}
}

func TestOffsetsReset(t *testing.T) {
	brokers := testenv.Kafka(t)
	ctx := context.Background()
	cfg := kafkax.Config{Brokers: brokers, Partitions: 1}
	if err := kafkax.EnsureTopics(ctx, cfg, topics.Demand); err != nil {
		t.Fatal(err)
	}
	prod, adm := opsClient(t, brokers)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10 {
		r := &kgo.Record{Topic: topics.Demand, Value: []byte{byte(i)}, Timestamp: base.Add(time.Duration(i) * time.Hour)}
		if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	const group = "stockcast-feature"
	var commit kadm.Offsets
	commit.Add(kadm.Offset{Topic: topics.Demand, Partition: 0, At: 10, LeaderEpoch: -1})
	if err := adm.CommitAllOffsets(ctx, group, commit); err != nil {
		t.Fatal(err)
	}
	committed := func() int64 {
		t.Helper()
		os, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := os.Lookup(topics.Demand, 0)
		return o.At
	}
	args := []string{"offsets", "reset", "--kafka.brokers", strings.Join(brokers, ","), "--group", group, "--topic", topics.Demand}

	out, err := runCLI(t, append(args, "--to-time", base.Add(4*time.Hour).Format(time.RFC3339))...)
	if err != nil || !strings.Contains(out, group+" demand.v1/0 10 -> 4") || !strings.Contains(out, "dry run") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if got := committed(); got != 10 {
		t.Fatalf("dry run moved the offset to %d", got)
	}
	out, err = runCLI(t, append(args, "--to-time", base.Add(4*time.Hour).Format(time.RFC3339), "--execute")...)
	if err != nil {
		t.Fatalf("reset --to-time: %v\n%s", err, out)
	}
	if got := committed(); got != 4 {
		t.Fatalf("after --to-time 04:00 the offset is %d, want 4", got)
	}
	if _, err := runCLI(t, append(args, "--to-earliest", "--execute")...); err != nil {
		t.Fatal(err)
	}
	if got := committed(); got != 0 {
		t.Fatalf("after --to-earliest the offset is %d, want 0", got)
	}
	if _, err := runCLI(t, append(args, "--to-latest", "--execute")...); err != nil {
		t.Fatal(err)
	}
	if got := committed(); got != 10 {
		t.Fatalf("after --to-latest the offset is %d, want 10", got)
	}

	// A running consumer of the group blocks the reset. Its session
	// outlasts any stall of this loaded test process: a member fenced for
	// a late heartbeat would let the reset through.
	member, _ := opsClient(t, brokers, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topics.Demand),
		kgo.SessionTimeout(time.Minute), kgo.HeartbeatInterval(time.Second))
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	member.PollFetches(pctx)
	cancel()
	testenv.Eventually(t, 10*time.Second, "the consumer to join", func() bool {
		gs, err := adm.DescribeGroups(ctx, group)
		return err == nil && len(gs[group].Members) == 1
	})
	_, err = runCLI(t, append(args, "--to-earliest", "--execute")...)
	if err == nil || !strings.Contains(err.Error(), "active members") {
		t.Fatalf("reset with a running consumer: %v", err)
	}
	if got := committed(); got != 10 {
		t.Fatalf("refused reset still moved the offset to %d", got)
	}

	for _, bad := range [][]string{
		{"offsets", "reset", "--kafka.brokers", brokers[0], "--topic", "x", "--to-latest"},
		{"offsets", "reset", "--kafka.brokers", brokers[0], "--group", "g", "--to-latest"},
		{"offsets", "reset", "--kafka.brokers", brokers[0], "--group", "g", "--topic", "x"},
		{"offsets", "reset", "--kafka.brokers", brokers[0], "--group", "g", "--topic", "x", "--to-latest", "--to-earliest"},
		{"offsets", "reset", "--kafka.brokers", brokers[0], "--group", "g", "--topic", "x", "--to-time", "yesterday"},
		{"offsets"},
		{"offsets", "rewind"},
	} {
		if _, err := runCLI(t, bad...); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}
