//go:build chaos

// Package chaos is the fault suite (`make test-chaos`; the build tag keeps it
// out of plain `go test ./...`). It replays 100,000 real Online Retail order
// lines through the four services as separate processes on real
// redis-server, clickhouse-server and the embedded Kafka-protocol broker,
// twice: once without faults, once while it kills each service with SIGKILL
// and restarts it, stops and restarts clickhouse-server (data kept on disk)
// and redis-server (no persistence: its data is lost). Both runs are checked
// against an independent computation from the CSV, and the faulty run against
// the fault-free one: ClickHouse history, Redis features, each series' latest
// forecast, the proposals and the dead-letter topics. During the two store
// outages it also checks backpressure: the groups that need the store stop
// committing, their lag grows, nothing is dead-lettered, and the services'
// memory stays bounded (docs/chaos.md).
package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/internal/replay"
	"github.com/stockcast/stockcast/internal/stack"
	"github.com/stockcast/stockcast/internal/stack/stacktest"
	"github.com/stockcast/stockcast/pkg/topics"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"
)

// lines is how many real order lines each run replays (about five months of
// the shop).
const lines = 100_000

// partitions of every topic: more than one, so that a killed consumer's
// partitions move and others keep going.
const partitions = 3

// recoversByRunbook says how the faulty run recovers from losing Redis:
// false, the services notice the loss and rebuild by themselves
// (docs/operations.md, "Recovery from Redis loss"); true runs the manual
// fallback of the runbook instead (recoverRedisRunbook).
const recoversByRunbook = false

func recoverRedis(ctx context.Context, f *faults) error {
	if recoversByRunbook {
		return recoverRedisRunbook(ctx, f)
	}
	return recoverRedisAuto(ctx, f)
}

func dataPath(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../../data/online-retail/online_retail.csv.gz")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the shipped data set is missing: %v", err)
	}
	return p
}

func TestFaults(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	bin := buildBinaries(t)
	data := dataPath(t)
	want := expect(readCSV(t, data, lines))

	clean := run(ctx, t, "clean", bin, data, want, nil)
	t.Logf("fault-free run: %s", clean.took.Round(time.Second))
	if t.Failed() {
		t.FailNow()
	}
	// STOCKCAST_CHAOS_NO_FAULTS=1 makes the second run fault-free too: the
	// comparison then shows what differs between two runs of the same input
	// by timing alone (docs/chaos.md).
	second, schedule := "faulty", &clean
	if os.Getenv("STOCKCAST_CHAOS_NO_FAULTS") != "" {
		second, schedule = "clean2", nil
	}
	faulty := run(ctx, t, second, bin, data, want, schedule)
	t.Logf("%s run: %s", second, faulty.took.Round(time.Second))

	compareRuns(t, &clean, &faulty)
	for _, o := range faulty.outages {
		t.Logf("%s", o)
	}
	t.Logf("both runs and their checks took %s", time.Since(start).Round(time.Second))
}

// runsDir is where the runs' stacks live (their data and the services'
// logs): a temporary directory, or STOCKCAST_CHAOS_DIR, kept after the test
// for diagnosis (it must not hold an earlier run's stacks).
func runsDir(t *testing.T) string {
	if d := os.Getenv("STOCKCAST_CHAOS_DIR"); d != "" {
		return d
	}
	return t.TempDir()
}

// buildBinaries builds the services and the stockcast command (the
// runbook's `offsets reset`) into one directory.
func buildBinaries(t *testing.T) string {
	bin := stacktest.BuildServices(t)
	cmd := exec.Command("go", "build", "-o", filepath.Join(bin, "stockcast"), "./cmd/stockcast")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build stockcast: %v\n%s", err, out)
	}
	return bin
}

// result is what one run left in its stores and topics.
type result struct {
	name    string
	took    time.Duration
	summary replay.Summary
	// records per topic at the end of the run (end offsets, summed).
	records map[string]int64
	state
	outages []outage
}

// run starts a stack, produces the hostile records, replays the lines
// (with the fault schedule when clean is given: the fault-free run's record
// counts say when each fault is due), waits until everything is accounted
// for, checks the stores against the CSV and collects the outputs.
func run(ctx context.Context, t *testing.T, name, bin, data string, want expected, clean *result) result {
	t.Helper()
	started := time.Now()
	log := slog.New(slog.NewTextHandler(testWriter{t, name}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dir := filepath.Join(runsDir(t), name)
	st, err := stack.Start(ctx, stack.Config{
		Dir: dir, BinDir: bin, Partitions: partitions, Logger: log,
	})
	if err != nil {
		t.Fatalf("%s: start stack: %v", name, err)
	}
	defer func() {
		if err := st.Stop(); err != nil {
			t.Errorf("%s: stop stack: %v", name, err)
		}
		left, err := stacktest.ProcessesMentioning(dir, bin)
		if err != nil || len(left) > 0 {
			t.Errorf("%s: processes left after Stop: %v %v", name, left, err)
		}
	}()
	kcl, err := kgo.NewClient(kgo.SeedBrokers(st.Brokers()...), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer kcl.Close()
	adm := kadm.NewClient(kcl)

	rejected := produceHostile(ctx, t, kcl)
	for id, reason := range want.rejected {
		rejected[id] = reason
	}

	res := result{name: name}
	rp := replay.New(replay.Config{
		Data: data, Limit: lines, InitialStock: true, Rate: replayRate,
		// A series' write-offs on orders.v1 with its lines (header
		// stockcast-event-type: inventory): ingest applies them in the
		// order produced, so two runs give the same outputs.
		OneTopic: true,
		// Long enough for a store outage and the Redis recovery.
		StallTimeout:   4 * time.Minute,
		NonProductSKUs: keys(nonProduct),
	}, st.Kafka(), log, nil)
	g, gctx := errgroup.WithContext(ctx)
	replayDone := make(chan struct{})
	g.Go(func() error {
		defer close(replayDone)
		var err error
		res.summary, err = rp.Run(gctx)
		if err != nil {
			return fmt.Errorf("replay: %w (summary %+v)", err, res.summary)
		}
		return nil
	})
	if clean != nil {
		f := &faults{t: t, st: st, adm: adm, bin: bin, totals: clean.records, replayDone: replayDone}
		g.Go(func() error {
			err := f.run(gctx)
			res.outages = f.outages
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	sum := res.summary
	if sum.Read != lines || sum.Unaccounted != 0 {
		t.Fatalf("%s: replay read %d lines, %d unaccounted; want %d, 0", name, sum.Read, sum.Unaccounted, lines)
	}
	// Every stage has committed everything (the replay waited for that):
	// the counts below are final.
	res.records = topicRecords(ctx, t, adm)
	res.state = collect(ctx, t, name, st, adm)
	checkAgainstCSV(ctx, t, name, st, &res, want, rejected)
	res.took = time.Since(started)
	return res
}

// produceHostile produces invalid records (before the replay) and returns
// event id (or the stockcast-event-id header of records without one) ->
// the DLQ reason they must get.
func produceHostile(ctx context.Context, t *testing.T, cl *kgo.Client) map[string]string {
	t.Helper()
	pb := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	at := timestamppb.New(time.Date(2010, 12, 1, 9, 0, 0, 0, time.UTC))
	recs := []*kgo.Record{
		{Topic: topics.Orders, Key: []byte("x|online"), Value: []byte("\x00\xffgarbage"), Headers: []kgo.RecordHeader{{Key: topics.HeaderEventID, Value: []byte("bad-garbage")}}},
		{Topic: topics.Orders, Key: []byte("85123A|online"), Value: []byte(`{"eventId":"bad-negative","occurredAt":"2010-12-01T09:00:00Z","type":"ORDER_LINE_TYPE_PLACED","orderId":"X1","sku":"85123A","location":"online","quantity":-5,"unitPrice":2.55,"currency":"GBP"}`),
			Headers: []kgo.RecordHeader{{Key: topics.HeaderContentType, Value: []byte(topics.ContentTypeJSON)}}},
		{Topic: topics.Orders, Key: []byte("85123A|online"), Value: pb(&ordersv1.OrderLineEvent{EventId: "bad-future", OccurredAt: timestamppb.New(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)), Type: ordersv1.OrderLineType_ORDER_LINE_TYPE_PLACED, OrderId: "X2", Sku: "85123A", Location: "online", Quantity: 1, UnitPrice: 1, Currency: "GBP"})},
		{Topic: topics.Inventory, Key: []byte("|online"), Value: pb(&inventoryv1.InventoryEvent{EventId: "bad-nosku", OccurredAt: at, Location: "online", Kind: &inventoryv1.InventoryEvent_Snapshot{Snapshot: &inventoryv1.Snapshot{OnHand: 5}}})},
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce hostile records: %v", err)
	}
	return map[string]string{
		"bad-garbage":  "undecodable",
		"bad-negative": "quantity_not_positive",
		"bad-future":   "occurred_at_in_future",
		"bad-nosku":    "missing_sku",
	}
}

// topicRecords returns the records of every stack topic.
func topicRecords(ctx context.Context, t *testing.T, adm *kadm.Client) map[string]int64 {
	t.Helper()
	ends, err := adm.ListEndOffsets(ctx, stack.Topics()...)
	if err != nil {
		t.Fatalf("end offsets: %v", err)
	}
	out := map[string]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Topic] += o.Offset })
	return out
}

// recoverRedisRunbook is the manual fallback of docs/operations.md,
// "Recovery from Redis loss": feature and replenishment stopped (they would write into the empty
// Redis), Redis back, `feature rebuild -all` from ClickHouse, the
// replenishment group moved to the start of forecasts.v1 with `stockcast
// offsets reset` (its state is rebuilt by replaying the log), both started
// again.
func recoverRedisRunbook(ctx context.Context, f *faults) error {
	st := f.st
	for _, name := range []string{stack.Feature, stack.Replenishment} {
		if err := st.Kill(name); err != nil {
			return err
		}
	}
	if err := st.StartRedis(ctx); err != nil {
		return err
	}
	out, err := runCmd(ctx, st.Binary(stack.Feature), "rebuild", "-all",
		"-redis.addr="+st.RedisAddr(), "-clickhouse.addr="+st.ClickHouse().Addr, "-clickhouse.database="+stack.Database)
	if err != nil {
		return fmt.Errorf("feature rebuild -all: %w", err)
	}
	f.t.Logf("faulty: feature rebuild -all: %s", strings.TrimSpace(out))
	// The command refuses while the killed member is still in the group
	// (until its session times out): retry until it is empty.
	reset := []string{"offsets", "reset", "--kafka.brokers", strings.Join(st.Brokers(), ","),
		"--group", "stockcast-replenishment", "--topic", topics.Forecasts, "--to-earliest", "--execute"}
	deadline := time.Now().Add(time.Minute)
	for {
		out, err = runCmd(ctx, filepath.Join(f.bin, "stockcast"), reset...)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stockcast offsets reset: %w", err)
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
	f.t.Logf("faulty: stockcast %s: %s", strings.Join(reset, " "), strings.TrimSpace(out))
	for _, name := range []string{stack.Feature, stack.Replenishment} {
		if err := st.Restart(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// recoverRedisAuto only starts Redis again: the services notice the loss
// and rebuild their state themselves.
func recoverRedisAuto(ctx context.Context, f *faults) error { return f.st.StartRedis(ctx) }

func runCmd(ctx context.Context, bin string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// sleepCtx waits d between two polls of a condition.
func sleepCtx(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type testWriter struct {
	t    *testing.T
	name string
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(w.name + ": " + strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var errNotMidStream = errors.New("not mid-stream")
