package planning_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	catalogv1 "github.com/stockcast/stockcast/proto/stockcast/catalog/v1"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"

	"github.com/stockcast/stockcast/pkg/replenish"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
	"github.com/stockcast/stockcast/services/replenishment/internal/store"
)

// readTrips counts a client's round trips that only read (those without
// the state script).
type readTrips struct{ n int }

func (r *readTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *readTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.count([]redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

func (r *readTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.count(cmds)
		return next(ctx, cmds)
	}
}

func (r *readTrips) count(cmds []redis.Cmder) {
	for _, c := range cmds {
		if name := strings.ToLower(c.Name()); name != "get" && name != "hmget" {
			return
		}
	}
	r.n++
}

// TestSharedReadsDecideAsSeparateReads: with the Redis policy store on the
// state store's client, the series' info and the stored policies are read
// in one round trip per run of steps (SeriesInfoAndPolicies), not two; the
// decisions are the same, proposal for proposal, as with the policy store
// on a client of its own (two reads). The events exercise every input of
// the reads: a category from an item event (the policy file's category
// policy), a learned lead time from a receipt, a stored series policy and a
// stored location policy; the item event and the receipt each end a run.
func TestSharedReadsDecideAsSeparateReads(t *testing.T) {
	ctx := context.Background()
	pf, err := planning.ParsePolicyFile([]byte("categories:\n  HOBBIES:\n    lead_time_days: 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	plan := func(policyClient, stateClient *redis.Client) (planning.Result, error) {
		policies, err := planning.NewPolicies(store.NewPolicies(policyClient), builtIn)
		if err != nil {
			return planning.Result{}, err
		}
		policies.WithFile(pf)
		if err := policies.Set(ctx, planning.Scope{SKU: "C", Location: "online"},
			replenish.ServicePolicy{Policy: replenish.Policy{ServiceLevel: 0.95, LeadTimeDays: 14, MOQ: 1, PackSize: 1, OrderCoverDays: 7}}); err != nil {
			return planning.Result{}, err
		}
		if err := policies.Set(ctx, planning.Scope{Location: "online"},
			replenish.ServicePolicy{Policy: replenish.Policy{ServiceLevel: 0.9, LeadTimeDays: 7, MOQ: 5, PackSize: 5, OrderCoverDays: 10}}); err != nil {
			return planning.Result{}, err
		}
		planner := planning.NewPlannerLearning(policies, store.NewState(stateClient, time.Hour), log, 1)
		return planner.Plan(ctx, sharedReadEvents(t))
	}
	client := func(addr string) (*redis.Client, *readTrips) {
		c := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { _ = c.Close() })
		trips := &readTrips{}
		c.AddHook(trips)
		return c, trips
	}

	sharedClient, sharedTrips := client(testenv.Redis(t))
	shared, err := plan(sharedClient, sharedClient)
	if err != nil {
		t.Fatal(err)
	}
	sepAddr := testenv.Redis(t)
	policyClient, policyTrips := client(sepAddr)
	stateClient, stateTrips := client(sepAddr)
	separate, err := plan(policyClient, stateClient)
	if err != nil {
		t.Fatal(err)
	}

	// Three runs (the item event and the receipt end one each).
	if sharedTrips.n != 3 || policyTrips.n+stateTrips.n != 6 {
		t.Errorf("read round trips: shared %d, separate %d (policies) + %d (state); want 3 and 3 + 3",
			sharedTrips.n, policyTrips.n, stateTrips.n)
	}
	if shared.Undecided != separate.Undecided || shared.Replayed != separate.Replayed || len(shared.Proposals) != len(separate.Proposals) {
		t.Fatalf("shared reads: %d proposals, undecided %d, replayed %d; separate: %d, %d, %d",
			len(shared.Proposals), shared.Undecided, shared.Replayed, len(separate.Proposals), separate.Undecided, separate.Replayed)
	}
	for i := range shared.Proposals {
		if !proto.Equal(shared.Proposals[i], separate.Proposals[i]) {
			t.Errorf("proposal %d\nshared   %v\nseparate %v", i, shared.Proposals[i], separate.Proposals[i])
		}
	}
	// Each input decided one proposal: B by its learned lead time under the
	// stored location policy (q90(3) = 37; 137 - 30 = 107 in packs of 5),
	// A by the file's category (q95(3) = 40), C by its stored policy
	// (q95(14) = 162, at its snapshot: 232 - 100).
	var got []string
	for _, p := range shared.Proposals {
		got = append(got, fmt.Sprintf("%s rop=%v qty=%v policy=%s|%s lt=%d", p.GetSku(), p.GetReorderPoint(), p.GetQuantity(),
			p.GetPolicy().GetSku(), p.GetPolicy().GetLocation(), p.GetPolicy().GetLeadTimeDays()))
	}
	want := []string{
		"B rop=37 qty=110 policy=|online lt=7",
		"A rop=40 qty=145 policy=|online lt=3",
		"C rop=162 qty=132 policy=C|online lt=14",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("proposals\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// sharedReadEvents: series A gets the category HOBBIES, B a learned lead
// time of 3 days, C has a stored policy.
func sharedReadEvents(t *testing.T) []planning.Event {
	at := func(days int) *timestamppb.Timestamp { return timestamppb.New(asOf.AddDate(0, 0, days)) }
	ev := func(sku, id string, cause *demandv1.DemandEvent, days int) *forecastv1.ForecastEvent {
		f := forecastEvent(id, cause, true)
		f.SeriesKey, f.Sku = sku+"|online", sku
		cause.OccurredAt = at(days)
		return f
	}
	item := &demandv1.DemandEvent{Change: &demandv1.DemandEvent_Item{Item: &catalogv1.ItemAttributes{Sku: "A", Category: "HOBBIES"}}}
	placed := stock(&inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_PurchaseOrderPlaced{
		PurchaseOrderPlaced: &inventoryv1.PurchaseOrderPlaced{PurchaseOrderId: "PO1", Quantity: 10, ExpectedAt: at(3)}}})
	received := stock(&inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_Receipt{
		Receipt: &inventoryv1.Receipt{PurchaseOrderId: "PO1", Quantity: 10}}})
	return events(t,
		ev("A", "a1", snapshot(100), 0),
		ev("B", "b1", snapshot(100), 0),
		ev("A", "a2", item, 0), // ends a run
		ev("A", "a3", order(50), 1),
		ev("B", "b2", placed, 1),
		ev("B", "b3", received, 4), // ends a run: placed -> received 3 days
		ev("B", "b4", order(80), 4),
		ev("A", "a4", order(15), 4),
		ev("C", "c1", snapshot(100), 4),
	)
}
