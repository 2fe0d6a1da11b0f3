package app

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/replenish"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
	"github.com/stockcast/stockcast/services/replenishment/internal/store"
)

// orderLinesDDL is ingest's order_lines (services/ingest/internal/store),
// which the allocation reads its unit prices from.
const orderLinesDDL = `CREATE TABLE IF NOT EXISTS order_lines (
	event_id String, series_key String, sku String, location String, day Date, occurred_at DateTime('UTC'),
	type String, order_id String, line_number Int32, quantity Float64, raw_quantity Float64, unit_price Float64,
	currency String, customer_id String, channel String, country String, description String, is_demand UInt8,
	source_topic String, source_partition Int32, source_offset Int64, ingested_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(ingested_at) PARTITION BY toYYYYMM(day) ORDER BY (series_key, event_id)`

// allocRecord is a forecast of sku at location whose demand is k times
// forecastRecord's (7 days: 69/81/85/92 at 0.5/0.9/0.95/0.99, mean 70; 14
// days: 139/156/162/172, mean 140), its cause a snapshot of onHand at at.
func allocRecord(t *testing.T, sku, location, id string, k, onHand float64, at time.Time) *kgo.Record {
	t.Helper()
	key := topics.SeriesKey(sku, location)
	cause := &demandv1.DemandEvent{Change: &demandv1.DemandEvent_Inventory{Inventory: &inventoryv1.InventoryEvent{
		Kind: &inventoryv1.InventoryEvent_Snapshot{Snapshot: &inventoryv1.Snapshot{OnHand: onHand}}}}}
	cause.EventId, cause.SeriesKey, cause.Sku, cause.Location = id, key, sku, location
	cause.OccurredAt, cause.Day = timestamppb.New(at), at.Format(time.DateOnly)
	ev := &forecastv1.ForecastEvent{
		ForecastId: "f-" + id, EventId: id, SeriesKey: key, Sku: sku, Location: location,
		AsOf: timestamppb.New(at), IssuedAt: timestamppb.New(at.Add(time.Second)), StartDay: at.Format(time.DateOnly),
		QuantileLevels: []float64{0.5, 0.9, 0.95, 0.99},
		LeadTimeDemand: []*forecastv1.LeadTimeDemand{
			{LeadTimeDays: 7, Mean: 70 * k, Quantiles: []float64{69 * k, 81 * k, 85 * k, 92 * k}},
			{LeadTimeDays: 14, Mean: 140 * k, Quantiles: []float64{139 * k, 156 * k, 162 * k, 172 * k}},
		},
		Model: "test", ModelVersion: "1", Cause: cause,
	}
	for d := range 28 {
		ev.Daily = append(ev.Daily, &forecastv1.DailyForecast{Day: at.AddDate(0, 0, d).Format(time.DateOnly), Mean: 10 * k})
	}
	value, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topics.Forecasts, Key: []byte(key), Value: value,
		Headers: []kgo.RecordHeader{{Key: topics.HeaderEventID, Value: []byte(id)}}}
}

// TestAllocationJob runs the service with a 95% allocation target over
// location online on kfake, redis-server and clickhouse-server. Under a
// weekly (R, S) location policy (L = R = 7, Tuesdays), four series at
// online have a forecast (demand x1, x1, x2, x1) and a Tuesday snapshot of
// 1,000 units (no order); order_lines gives CHEAP 1, DEAR 20 and BIG 5 as
// their latest demand lines' prices (an older line, a return and a
// zero-price line are not the latest demand price), NOPRICE none. The job
// stores each valued series' fill-rate policy at the fill of the level an
// independent allocation of the same inputs gives (pkg/replenish on the
// quantiles written here, LostSalesTarget(0.95)), bit for bit; NOPRICE
// keeps the location policy, and a series of another location is not
// touched. A week later each series at position 0 orders up to its level
// (to FillRateLevel's 1e-6); /metrics shows 3 allocated, 1 unvalued and
// the expected portfolio fill.
func TestAllocationJob(t *testing.T) {
	ctx := context.Background()
	brokers := testenv.Kafka(t)
	redisAddr := testenv.Redis(t)
	ch := testenv.ClickHouse(t)

	conn, err := chx.Open(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if err := conn.Exec(ctx, orderLinesDDL); err != nil {
		t.Fatal(err)
	}
	type line struct {
		id, sku, location, at string
		price                 float64
		demand                uint8
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO order_lines (event_id, series_key, sku, location, day, occurred_at, unit_price, is_demand, ingested_at)")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []line{
		{"l1", "BIG", "online", "2011-02-01 10:00:00", 3, 1},
		{"l2", "BIG", "online", "2011-02-20 10:00:00", 5, 1},
		{"l3", "CHEAP", "online", "2011-02-20 10:00:00", 1, 1},
		{"l4", "CHEAP", "online", "2011-02-25 10:00:00", 7, 0}, // a return: not a price of demand
		{"l5", "DEAR", "online", "2011-02-20 10:00:00", 20, 1},
		{"l6", "NOPRICE", "online", "2011-02-20 10:00:00", 0, 1}, // no price: left out
		{"l7", "ELSEWHERE", "store-2", "2011-02-20 10:00:00", 2, 1},
	} {
		at, err := time.Parse(time.DateTime, l.at)
		if err != nil {
			t.Fatal(err)
		}
		if err := batch.Append(l.id, topics.SeriesKey(l.sku, l.location), l.sku, l.location, at, at, l.price, l.demand, at); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}

	svc := start(t, brokers, redisAddr, ch, "-replenishment.allocation-target", "0.95",
		"-replenishment.allocation-interval", "2s", "-replenishment.allocation-location", "online")
	defer svc.stop(t)
	gconn, err := grpc.NewClient(svc.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gconn.Close() })
	client := replenishmentv1.NewReplenishmentServiceClient(gconn)
	weekly := &replenishmentv1.Policy{Location: "online", ServiceLevel: 0.95, LeadTimeDays: 7, ReviewPeriodDays: 7, Moq: 1, PackSize: 1,
		OrderCoverDays: 14, Kind: replenishmentv1.PolicyKind_POLICY_KIND_R_S, ReviewWeekdays: []int32{int32(time.Tuesday)}}
	if _, err := client.SetPolicy(ctx, &replenishmentv1.SetPolicyRequest{Policy: weekly}); err != nil {
		t.Fatal(err)
	}
	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	proposalsOut := newOutputs(t, brokers, topics.Proposals)

	tue := time.Date(2011, 3, 1, 9, 0, 0, 0, time.UTC)
	skus, scale, value := []string{"BIG", "CHEAP", "DEAR"}, []float64{2, 1, 1}, []float64{5, 1, 20}
	var recs []*kgo.Record
	for i, sku := range append(skus, "NOPRICE") {
		recs = append(recs, allocRecord(t, sku, "online", sku+"-1", append(scale, 1)[i], 1000, tue))
	}
	recs = append(recs, allocRecord(t, "ELSEWHERE", "store-2", "ELSEWHERE-1", 1, 1000, tue))
	if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// The independent allocation: the same quantiles, values and target.
	levels := []float64{0.5, 0.9, 0.95, 0.99}
	q := func(k float64, vs ...float64) replenish.Quantiles {
		for j := range vs {
			vs[j] *= k
		}
		return replenish.Quantiles{Levels: levels, Values: vs}
	}
	items := make([]replenish.AllocItem, len(skus))
	for i, k := range scale {
		lead := q(k, 69, 81, 85, 92)
		items[i] = replenish.AllocItem{Protect: q(k, 139, 156, 162, 172), ProtectMean: 140 * k, Lead: &lead, LeadMean: 70 * k, UnitValue: value[i]}
	}
	want, _, err := replenish.AllocateFillRateBounded(items, make([]string, len(items)), replenish.LostSalesTarget(0.95), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantPolicy := make([]*replenishmentv1.Policy, len(skus))
	for i, s := range want.Levels {
		cycle := items[i].ProtectMean - items[i].LeadMean
		short := items[i].Protect.ExpectedShortage(s) - items[i].Lead.ExpectedShortage(s)
		p := proto.Clone(weekly).(*replenishmentv1.Policy)
		p.Sku, p.Target, p.FillRate = skus[i], replenishmentv1.PolicyTarget_POLICY_TARGET_FILL_RATE, 1-max(short, 0)/cycle
		wantPolicy[i] = p
	}
	t.Logf("independent levels %v (values %v, demand x%v)", want.Levels, value, scale)

	testenv.Eventually(t, 60*time.Second, "allocated policies", func() bool {
		for i, sku := range skus {
			got, err := client.GetPolicy(ctx, &replenishmentv1.GetPolicyRequest{Sku: sku, Location: "online"})
			if err != nil || got.GetSource() != "series" || !proto.Equal(got.GetPolicy(), wantPolicy[i]) {
				return false
			}
		}
		return true
	})
	// policy_log keeps them for a Redis loss (one insert for the portfolio).
	var logged uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM policy_log FINAL WHERE scope_location = 'online' AND scope_sku IN ('BIG', 'CHEAP', 'DEAR')").Scan(&logged); err != nil || logged != 3 {
		t.Errorf("policy_log: %d allocated series (%v), want 3", logged, err)
	}
	for _, s := range []struct{ sku, location, source string }{{"NOPRICE", "online", "location"}, {"ELSEWHERE", "store-2", "built-in"}} {
		got, err := client.GetPolicy(ctx, &replenishmentv1.GetPolicyRequest{Sku: s.sku, Location: s.location})
		if err != nil || got.GetSource() != s.source {
			t.Errorf("%s|%s: policy %v from %q (%v), want its %s policy", s.sku, s.location, got.GetPolicy(), got.GetSource(), err, s.source)
		}
	}

	// The metrics of the last run.
	metrics := func() map[string]bool {
		resp, err := http.Get("http://" + svc.adminAddr + "/metrics")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		out := map[string]bool{}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "stockcast_replenishment_allocation_") {
				out[l] = true
			}
		}
		return out
	}
	var fill, cycle float64
	for i := range want.Levels {
		c := items[i].ProtectMean - items[i].LeadMean
		fill += wantPolicy[i].GetFillRate() * c
		cycle += c
	}
	fill = 1 / (2 - fill/cycle)
	testenv.Eventually(t, 30*time.Second, "allocation metrics", func() bool {
		m := metrics()
		var allocated, unvalued, expected bool
		for l := range m {
			allocated = allocated || strings.HasPrefix(l, "stockcast_replenishment_allocation_series") && strings.Contains(l, `outcome="allocated"`) && strings.HasSuffix(l, " 3")
			unvalued = unvalued || strings.HasPrefix(l, "stockcast_replenishment_allocation_series") && strings.Contains(l, `outcome="unvalued"`) && strings.HasSuffix(l, " 1")
			if strings.HasPrefix(l, "stockcast_replenishment_allocation_expected_fill") {
				f := strings.Fields(l)
				if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil && math.Abs(v-fill) < 1e-12 {
					expected = true
				}
			}
		}
		if !(allocated && unvalued && expected) {
			t.Logf("metrics %v, want 3 allocated, 1 unvalued, expected fill %v", m, fill)
		}
		return allocated && unvalued && expected
	})

	// A week later, position 0 on the review day: each orders up to its level.
	recs = recs[:0]
	for i, sku := range skus {
		recs = append(recs, allocRecord(t, sku, "online", sku+"-2", scale[i], 0, tue.AddDate(0, 0, 7)))
	}
	if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	got := decodeProposals(t, proposalsOut.waitFor(t, 3))
	for i, sku := range skus {
		var p *replenishmentv1.Proposal
		for _, g := range got {
			if g.GetSku() == sku {
				p = g
			}
		}
		if p == nil || p.GetReason() != replenishmentv1.ProposalReason_PROPOSAL_REASON_PERIODIC_REVIEW ||
			math.Abs(p.GetOrderUpTo()-want.Levels[i]) > 1e-6 || !proto.Equal(p.GetPolicy(), wantPolicy[i]) {
			t.Errorf("%s: proposal %v, want a periodic review up to %v under %v", sku, p, want.Levels[i], wantPolicy[i])
		}
	}
}

// TestAllocationMarker: two replicas share redis-server's marker. The first
// to look runs the allocation and the other does not, until the marker is
// gone (deleted here, as docs/operations.md says, or expired); a failed run
// frees it at once. Invalid flags are rejected.
func TestAllocationMarker(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	policies, err := planning.NewPolicies(store.NewPolicies(rdb), replenish.Policy{ServiceLevel: 0.95, LeadTimeDays: 7, MOQ: 1, PackSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	weekly := replenish.ServicePolicy{Policy: replenish.Policy{ServiceLevel: 0.95, LeadTimeDays: 7, ReviewPeriodDays: 7, MOQ: 1, PackSize: 1},
		Kind: replenish.KindPeriodic, ReviewWeekdays: 1 << time.Tuesday}
	if err := policies.Set(ctx, planning.Scope{Location: "online"}, weekly); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	planner := planning.NewPlanner(policies, store.NewState(rdb, time.Hour), log)
	var fe forecastv1.ForecastEvent
	if err := proto.Unmarshal(allocRecord(t, "A", "online", "A-1", 1, 1000, time.Date(2011, 3, 1, 9, 0, 0, 0, time.UTC)).Value, &fe); err != nil {
		t.Fatal(err)
	}
	ev, err := planning.NewEvent(&fe)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := planner.Plan(ctx, []planning.Event{ev}); err != nil {
		t.Fatal(err)
	}

	cfg := AllocationConfig{Target: 0.95, Interval: time.Hour, Location: "online"}
	calls := map[string]int{}
	replica := func(name string, fail bool) *allocator {
		prices := func(context.Context, string) (map[planning.Scope]float64, error) {
			calls[name]++
			if fail {
				return nil, errors.New("clickhouse down")
			}
			return map[planning.Scope]float64{{SKU: "A", Location: "online"}: 2}, nil
		}
		a, err := newAllocator(cfg, rdb, prices, planner, func() bool { return true }, log, noop.NewMeterProvider().Meter("test"))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a, b, failing := replica("a", false), replica("b", false), replica("failing", true)
	a.runIfDue(ctx)
	b.runIfDue(ctx)
	if calls["a"] != 1 || calls["b"] != 0 {
		t.Fatalf("runs a %d, b %d: want one run, by the first to look", calls["a"], calls["b"])
	}
	if ttl := rdb.PTTL(ctx, allocationKey).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("marker ttl %v, want up to the interval", ttl)
	}
	if got, err := policies.Effective(ctx, planning.Scope{SKU: "A", Location: "online"}); err != nil || got.Source != planning.SourceSeries {
		t.Errorf("A's policy from %q (%v), want the allocated series policy", got.Source, err)
	}
	rdb.Del(ctx, allocationKey)
	failing.runIfDue(ctx)
	if calls["failing"] != 1 || rdb.Exists(ctx, allocationKey).Val() != 0 {
		t.Errorf("a failed run (%d) left the marker (%d), want it freed", calls["failing"], rdb.Exists(ctx, allocationKey).Val())
	}
	b.runIfDue(ctx)
	a.runIfDue(ctx)
	if calls["a"] != 1 || calls["b"] != 1 {
		t.Errorf("after the failed run: a %d, b %d runs, want b's one more", calls["a"], calls["b"])
	}

	for _, bad := range []AllocationConfig{{Target: 1, Interval: time.Hour}, {Target: -0.5, Interval: time.Hour},
		{Target: 0.95, Band: 0.95, Interval: time.Hour}, {Target: 0.95}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v: valid, want an error", bad)
		}
	}
	if err := (&AllocationConfig{Target: 0}).Validate(); err != nil {
		t.Errorf("target 0 (off): %v", err)
	}
}
