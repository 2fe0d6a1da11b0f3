package app

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/recovery"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"
)

// lossStream is a forecasts.v1 stream over four series: each starts with a
// stock count, then orders run it down (crossings), a purchase order and
// its receipt re-arm it, and orders cross again. The forecast is the one of
// forecastRecord.
func lossStream(t *testing.T) []*kgo.Record {
	t.Helper()
	var out []*kgo.Record
	for step := range 16 {
		for s := range 4 {
			sku := fmt.Sprintf("SKU%d", s)
			id := fmt.Sprintf("%s-e%d", sku, step)
			var cause *demandv1.DemandEvent
			switch step {
			case 0:
				cause = stock(&inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_Snapshot{Snapshot: &inventoryv1.Snapshot{OnHand: float64(100 + 10*s)}}})
			case 7:
				cause = stock(&inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_PurchaseOrderPlaced{
					PurchaseOrderPlaced: &inventoryv1.PurchaseOrderPlaced{PurchaseOrderId: "PO-" + sku, Quantity: 150}}})
			case 9:
				cause = stock(&inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_Receipt{
					Receipt: &inventoryv1.Receipt{PurchaseOrderId: "PO-" + sku, Quantity: 150}}})
			default:
				cause = order(float64(5 + 3*s + step))
			}
			out = append(out, seriesForecast(t, sku, step*4+s, id, cause))
		}
	}
	return out
}

// seriesForecast is forecastRecord for another SKU at location "online".
func seriesForecast(t *testing.T, sku string, i int, eventID string, cause *demandv1.DemandEvent) *kgo.Record {
	t.Helper()
	r := forecastRecord(t, i, eventID, cause)
	var ev forecastv1.ForecastEvent
	if err := proto.Unmarshal(r.Value, &ev); err != nil {
		t.Fatal(err)
	}
	key := sku + "|online"
	ev.SeriesKey, ev.Sku = key, sku
	ev.Cause.SeriesKey, ev.Cause.Sku = key, sku
	ev.AsOf = timestamppb.New(ev.GetAsOf().AsTime())
	value, err := proto.Marshal(&ev)
	if err != nil {
		t.Fatal(err)
	}
	r.Key, r.Value = []byte(key), value
	return r
}

// waitCommitted polls until the group committed every record of forecasts.v1.
func waitCommitted(t *testing.T, brokers []string) {
	t.Helper()
	cfg := kafkax.Config{Brokers: brokers}
	testenv.Eventually(t, 60*time.Second, "forecasts.v1 committed", func() bool {
		ends, err := recovery.Ends(context.Background(), cfg, topics.Forecasts)
		if err != nil {
			return false
		}
		committed, err := recovery.Committed(context.Background(), cfg, Group, topics.Forecasts)
		if err != nil {
			return false
		}
		for p, end := range ends {
			if end > 0 && committed[p] != end {
				return false
			}
		}
		return true
	})
}

// stateDump is every replenishment key but the state sentinel, by type.
func stateDump(t *testing.T, rdb *redis.Client) map[string]string {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "stockcast:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		if strings.HasPrefix(k, recovery.Key("")) {
			continue
		}
		switch rdb.Type(ctx, k).Val() {
		case "hash":
			h := rdb.HGetAll(ctx, k).Val()
			var fs []string
			for f, v := range h {
				fs = append(fs, f+"="+v)
			}
			sort.Strings(fs)
			out[k] = strings.Join(fs, " ")
		case "zset":
			out[k] = fmt.Sprint(rdb.ZRangeWithScores(ctx, k, 0, -1).Val())
		case "list":
			out[k] = fmt.Sprint(rdb.LRange(ctx, k, 0, -1).Val())
		default:
			out[k] = rdb.Get(ctx, k).Val()
		}
	}
	return out
}

// TestRecoverAfterRedisLoss: the running service loses Redis (FLUSHALL)
// between two halves of a stream, after a SetPolicy and an approval. It
// notices before applying the second half, restores the policy and the
// decision from ClickHouse, replays the first half silently, and goes on:
// the proposals published (ids, quantities, everything) and the state in
// Redis are those of a run without the loss, and no proposal is published
// twice.
func TestRecoverAfterRedisLoss(t *testing.T) {
	ctx := context.Background()
	recs := lossStream(t)
	first, second := recs[:32], recs[32:]
	// A policy of a location no series of the stream is at: SetPolicy
	// re-evaluates nothing, so both runs see the same decisions.
	otherPolicy := &replenishmentv1.Policy{Location: "warehouse", ServiceLevel: 0.9, LeadTimeDays: 5, Moq: 10, PackSize: 5, OrderCoverDays: 10}

	run := func(lose bool) (proposals []*replenishmentv1.Proposal, dump map[string]string, rdb *redis.Client, client replenishmentv1.ReplenishmentServiceClient, svc *instance) {
		brokers, redisAddr, ch := testenv.Kafka(t), testenv.Redis(t), testenv.ClickHouse(t)
		rdb = redis.NewClient(&redis.Options{Addr: redisAddr})
		t.Cleanup(func() { rdb.Close() })
		producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			t.Fatal(err)
		}
		defer producer.Close()
		if err := kafkax.EnsureTopics(ctx, kafkax.Config{Brokers: brokers, Partitions: 3}, topics.Forecasts); err != nil {
			t.Fatal(err)
		}
		if err := producer.ProduceSync(ctx, first...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		svc = start(t, brokers, redisAddr, ch)
		waitCommitted(t, brokers)
		conn, err := grpc.NewClient(svc.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		client = replenishmentv1.NewReplenishmentServiceClient(conn)
		if _, err := client.SetPolicy(ctx, &replenishmentv1.SetPolicyRequest{Policy: otherPolicy}); err != nil {
			t.Fatal(err)
		}
		out := newOutputs(t, brokers, topics.Proposals)
		listed, err := client.ListProposals(ctx, &replenishmentv1.ListProposalsRequest{PageSize: 100})
		if err != nil || len(listed.GetProposals()) == 0 {
			t.Fatalf("proposals after the first half: %v, %v", listed, err)
		}
		approve := listed.GetProposals()[len(listed.GetProposals())-1].GetProposalId() // the oldest
		if _, err := client.Approve(ctx, &replenishmentv1.ApproveRequest{ProposalId: approve, DecidedBy: "planner"}); err != nil {
			t.Fatal(err)
		}
		if lose {
			if err := rdb.FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := producer.ProduceSync(ctx, second...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		waitCommitted(t, brokers)
		// Proposals (status changes have their own event id header).
		countUntilQuiet(t, out) // produced before the offsets were committed
		var got []*kgo.Record
		for _, r := range out.recs {
			if kafkax.HeaderValue(r, topics.HeaderEventID) == approve+":PROPOSAL_STATUS_APPROVED" {
				continue
			}
			got = append(got, r)
		}
		return decodeProposals(t, got), stateDump(t, rdb), rdb, client, svc
	}

	want, wantState, _, _, ref := run(false)
	ref.stop(t)
	got, gotState, rdb, client, svc := run(true)
	defer svc.stop(t)

	if len(want) == 0 {
		t.Fatal("the stream made no proposals")
	}
	assertSame(t, "proposals after the loss", got, want)
	seen := map[string]bool{}
	for _, p := range got {
		if seen[p.GetProposalId()] {
			t.Errorf("proposal %s published twice", p.GetProposalId())
		}
		seen[p.GetProposalId()] = true
	}
	var diff []string
	// The approval: restored, completed; its time and the rest differ
	// between the runs, so it is compared apart.
	for k := range wantState {
		if strings.HasPrefix(k, "stockcast:r:decision:") {
			d := rdb.HGetAll(ctx, k).Val()
			if d["status"] != "PROPOSAL_STATUS_APPROVED" || d["by"] != "planner" || d["done"] != "1" {
				t.Errorf("decision %s after the loss: %v", k, d)
			}
			delete(wantState, k)
			delete(gotState, k)
		}
	}
	for k, w := range wantState {
		if gotState[k] != w {
			diff = append(diff, fmt.Sprintf("%s: got %.200q, want %.200q", k, gotState[k], w))
		}
	}
	// The rebuild recorded the replayed events (the first half) in markers
	// too (recover.go), which the run without the loss, with transactions,
	// does not have: one per replayed event, its outcome.
	markers := 0
	for k := range gotState {
		if _, ok := wantState[k]; !ok {
			if strings.Contains(k, ":seen:") && strings.Contains(gotState[k], "decision_seq=") {
				markers++
				continue
			}
			diff = append(diff, "extra "+k)
		}
	}
	if markers != len(first) {
		t.Errorf("%d markers after the rebuild, want one per replayed event (%d)", markers, len(first))
	}
	sort.Strings(diff)
	if len(diff) > 0 {
		t.Errorf("recovered state differs from the run without loss:\n%s", strings.Join(diff, "\n"))
	}
	pol, err := client.GetPolicy(ctx, &replenishmentv1.GetPolicyRequest{Location: "warehouse"})
	if err != nil || !proto.Equal(pol.GetPolicy(), otherPolicy) {
		t.Errorf("policy set before the loss: %v, %v; want %v", pol, err, otherPolicy)
	}
	if gen := rdb.Get(ctx, recovery.Key("replenishment")).Val(); gen == "" {
		t.Error("no state sentinel after the recovery")
	}
}

// countUntilQuiet polls o until a poll brings nothing new.
func countUntilQuiet(t *testing.T, o *outputs) {
	t.Helper()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
		recs := o.cl.PollFetches(ctx).Records()
		cancel()
		if len(recs) == 0 {
			return
		}
		o.recs = append(o.recs, recs...)
	}
}

// TestManualRebuildAfterRedisLoss: with -replenishment.recover=false the
// service stops consuming after the loss and is not ready;
// `replenishment rebuild` rebuilds the state and marks it complete, and
// the service goes on with the proposals of a run without the loss.
func TestManualRebuildAfterRedisLoss(t *testing.T) {
	ctx := context.Background()
	recs := lossStream(t)
	first, second := recs[:32], recs[32:]
	run := func(lose bool) []*replenishmentv1.Proposal {
		brokers, redisAddr, ch := testenv.Kafka(t), testenv.Redis(t), testenv.ClickHouse(t)
		rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
		defer rdb.Close()
		producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			t.Fatal(err)
		}
		defer producer.Close()
		if err := kafkax.EnsureTopics(ctx, kafkax.Config{Brokers: brokers, Partitions: 3}, topics.Forecasts); err != nil {
			t.Fatal(err)
		}
		if err := producer.ProduceSync(ctx, first...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		svc := start(t, brokers, redisAddr, ch, "-replenishment.recover=false")
		defer svc.stop(t)
		waitCommitted(t, brokers)
		out := newOutputs(t, brokers, topics.Proposals)
		if lose {
			if err := rdb.FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := producer.ProduceSync(ctx, second...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if lose {
			testenv.Eventually(t, 30*time.Second, "not ready after the loss", func() bool {
				resp, err := http.Get("http://" + svc.adminAddr + "/readyz")
				if err != nil {
					return false
				}
				resp.Body.Close()
				return resp.StatusCode == http.StatusServiceUnavailable
			})
			committed, err := recovery.Committed(ctx, kafkax.Config{Brokers: brokers}, Group, topics.Forecasts)
			if err != nil {
				t.Fatal(err)
			}
			n := int64(0)
			for _, o := range committed {
				n += o
			}
			if n != int64(len(first)) {
				t.Fatalf("%d records committed while the state is lost, want the %d before it", n, len(first))
			}
			var stdout strings.Builder
			args := []string{"rebuild", "-kafka.brokers", strings.Join(brokers, ","), "-redis.addr", redisAddr,
				"-clickhouse.addr", ch.Addr, "-clickhouse.database", ch.Database}
			if err := Run(ctx, args, func(string) string { return "" }, &stdout); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(stdout.String(), "replayed 32 records of forecasts.v1") || !strings.Contains(stdout.String(), "marked complete") {
				t.Fatalf("replenishment rebuild printed %q", stdout.String())
			}
		}
		waitCommitted(t, brokers)
		countUntilQuiet(t, out)
		return decodeProposals(t, out.recs)
	}
	want := run(false)
	assertSame(t, "proposals after the manual rebuild", run(true), want)
}
