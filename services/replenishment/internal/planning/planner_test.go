package planning_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/replenish"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
	"github.com/stockcast/stockcast/services/replenishment/internal/store"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

var builtIn = replenish.Policy{ServiceLevel: 0.95, LeadTimeDays: 7, MOQ: 1, PackSize: 1, OrderCoverDays: 14}

var asOf = time.Date(2011, 3, 1, 9, 30, 0, 0, time.UTC)

// forecastEvent: daily mean 10 for 28 days from 2011-03-01; lead-time demand
// for 3, 7 and 14 days at levels 0.5/0.9/0.95/0.99 (withLeadTimes false: none).
func forecastEvent(id string, cause *demandv1.DemandEvent, withLeadTimes bool) *forecastv1.ForecastEvent {
	ev := &forecastv1.ForecastEvent{
		ForecastId: "f-" + id, EventId: id, SeriesKey: "85123A|online", Sku: "85123A", Location: "online",
		AsOf: timestamppb.New(asOf), StartDay: "2011-03-01", QuantileLevels: []float64{0.5, 0.9, 0.95, 0.99},
		Cause: cause,
	}
	for i := range 28 {
		ev.Daily = append(ev.Daily, &forecastv1.DailyForecast{Day: asOf.AddDate(0, 0, i).Format(time.DateOnly), Mean: 10})
	}
	if withLeadTimes {
		ev.LeadTimeDemand = []*forecastv1.LeadTimeDemand{
			{LeadTimeDays: 3, Mean: 30, Quantiles: []float64{29, 37, 40, 45}},
			{LeadTimeDays: 7, Mean: 70, Quantiles: []float64{69, 81, 85, 92}},
			{LeadTimeDays: 14, Mean: 140, Quantiles: []float64{139, 156, 162, 172}},
		}
	}
	cause.EventId = id
	return ev
}

func order(q float64) *demandv1.DemandEvent {
	return &demandv1.DemandEvent{Change: &demandv1.DemandEvent_Demand{Demand: &demandv1.Demand{Quantity: q, Kind: demandv1.DemandKind_DEMAND_KIND_ORDER}}}
}

func stock(inv *inventoryv1.InventoryEvent) *demandv1.DemandEvent {
	return &demandv1.DemandEvent{Change: &demandv1.DemandEvent_Inventory{Inventory: inv}}
}

func snapshot(onHand float64) *demandv1.DemandEvent {
	return stock(&inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_Snapshot{Snapshot: &inventoryv1.Snapshot{OnHand: onHand}}})
}

func adjustment(delta float64) *demandv1.DemandEvent {
	return stock(&inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_Adjustment{Adjustment: &inventoryv1.Adjustment{Delta: delta}}})
}

func events(t *testing.T, fs ...*forecastv1.ForecastEvent) []planning.Event {
	t.Helper()
	out := make([]planning.Event, len(fs))
	for i, f := range fs {
		ev, err := planning.NewEvent(f)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = ev
	}
	return out
}

func TestPlannerDecidesOncePerCrossingAndReplaysIdentically(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	policies, err := planning.NewPolicies(store.NewPolicies(rdb), builtIn)
	if err != nil {
		t.Fatal(err)
	}
	planner := planning.NewPlanner(policies, store.NewState(rdb, time.Hour), slog.New(slog.NewTextHandler(io.Discard, nil)))

	// Built-in policy: reorder point q95(7 days) = 85; order-up-to 85 + 14*10 = 225.
	first, err := planner.Plan(ctx, events(t,
		forecastEvent("e1", snapshot(100), true), // position 100
		forecastEvent("e2", order(20), true),     // 80 < 85: decide
		forecastEvent("e3", order(5), false),     // 75, forecast without lead times: undecided
	))
	if err != nil {
		t.Fatal(err)
	}
	want1 := &replenishmentv1.Proposal{
		ProposalId: planning.ProposalID("85123A|online", "e2"), SeriesKey: "85123A|online", Sku: "85123A", Location: "online",
		EventId: "e2", ForecastId: "f-e2", DecidedAt: timestamppb.New(asOf),
		Reason:   replenishmentv1.ProposalReason_PROPOSAL_REASON_CROSSED_REORDER_POINT,
		Quantity: 145, UnconstrainedQuantity: 145, ReorderPoint: 85, OrderUpTo: 225,
		InventoryPosition: 80, OnHand: 80, SafetyStock: 15, ExpectedLeadTimeDemand: 70,
		Policy:               planning.PolicyToProto(planning.Scope{}, replenish.ServicePolicy{Policy: builtIn}),
		ProjectedStockoutDay: "2011-03-08", // 80 on hand at 10 a day: cumulative 80 on day index 7
		ExpectedArrivalDay:   "2011-03-08",
		Status:               replenishmentv1.ProposalStatus_PROPOSAL_STATUS_PROPOSED,
		DecisionSeq:          1,
	}
	assertResult(t, first, planning.Result{Proposals: []*replenishmentv1.Proposal{want1}, Undecided: 1})

	// A location policy: lead time 3 -> reorder point q95(3) = 40; order-up-to
	// 40 + 7*10 = 110; packs of 50, at least 100.
	online := planning.Scope{Location: "online"}
	locPolicy := replenish.Policy{ServiceLevel: 0.95, LeadTimeDays: 3, MOQ: 100, PackSize: 50, OrderCoverDays: 7}
	if err := policies.Set(ctx, online, replenish.ServicePolicy{Policy: locPolicy}); err != nil {
		t.Fatal(err)
	}
	second, err := planner.Plan(ctx, events(t,
		forecastEvent("e4", adjustment(50), true), // 125 >= 40: re-armed
		forecastEvent("e5", order(90), true),      // 35 < 40: decide
		forecastEvent("e2", order(20), true),      // redelivered: the first decision, built-in policy and all
	))
	if err != nil {
		t.Fatal(err)
	}
	want2 := &replenishmentv1.Proposal{
		ProposalId: planning.ProposalID("85123A|online", "e5"), SeriesKey: "85123A|online", Sku: "85123A", Location: "online",
		EventId: "e5", ForecastId: "f-e5", DecidedAt: timestamppb.New(asOf),
		Reason: replenishmentv1.ProposalReason_PROPOSAL_REASON_CROSSED_REORDER_POINT,
		// need 110 - 35 = 75 -> 100 in packs of 50 (and the MOQ).
		Quantity: 100, UnconstrainedQuantity: 75, ReorderPoint: 40, OrderUpTo: 110,
		InventoryPosition: 35, OnHand: 35, SafetyStock: 10, ExpectedLeadTimeDemand: 30,
		Policy:               planning.PolicyToProto(online, replenish.ServicePolicy{Policy: locPolicy}),
		ProjectedStockoutDay: "2011-03-04", // cumulative 10, 20, 30, 40
		ExpectedArrivalDay:   "2011-03-04",
		Status:               replenishmentv1.ProposalStatus_PROPOSAL_STATUS_PROPOSED,
		DecisionSeq:          2,
	}
	assertResult(t, second, planning.Result{Proposals: []*replenishmentv1.Proposal{want2, want1}, Replayed: 1})

	eff, err := policies.Effective(ctx, planning.Scope{SKU: "85123A", Location: "online"})
	if err != nil || eff.Source != planning.SourceLocation || eff.Policy != locPolicy {
		t.Fatalf("effective policy = %+v, %v; want the location's", eff, err)
	}
}

func assertResult(t *testing.T, got, want planning.Result) {
	t.Helper()
	if got.Undecided != want.Undecided || got.Replayed != want.Replayed {
		t.Errorf("undecided %d replayed %d; want %d %d", got.Undecided, got.Replayed, want.Undecided, want.Replayed)
	}
	if len(got.Proposals) != len(want.Proposals) {
		t.Fatalf("%d proposals, want %d: %v", len(got.Proposals), len(want.Proposals), got.Proposals)
	}
	for i := range want.Proposals {
		if !proto.Equal(got.Proposals[i], want.Proposals[i]) {
			t.Errorf("proposal %d\n got %v\nwant %v", i, got.Proposals[i], want.Proposals[i])
		}
	}
}
