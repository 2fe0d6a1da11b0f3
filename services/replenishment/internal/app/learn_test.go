package app

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	catalogv1 "github.com/stockcast/stockcast/proto/stockcast/catalog/v1"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
)

const day = 24 * 60 // minutes

func placed(id string, qty float64, supplier string) *inventoryv1.InventoryEvent {
	return &inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_PurchaseOrderPlaced{
		PurchaseOrderPlaced: &inventoryv1.PurchaseOrderPlaced{PurchaseOrderId: id, Quantity: qty, SupplierId: supplier}}}
}

func received(id string, qty float64) *inventoryv1.InventoryEvent {
	return &inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_Receipt{Receipt: &inventoryv1.Receipt{PurchaseOrderId: id, Quantity: qty}}}
}

// TestLearnedLeadTimeAndPolicyChange: three receipts 3 days after their
// orders teach the series a lead time of 3 days (variance 0), which then
// replaces the policy's 7 days; SetPolicy re-evaluates the series at once.
func TestLearnedLeadTimeAndPolicyChange(t *testing.T) {
	ctx := context.Background()
	brokers := testenv.Kafka(t)
	svc := start(t, brokers, testenv.Redis(t), testenv.ClickHouse(t))
	defer svc.stop(t)
	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	conn, err := grpc.NewClient(svc.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := replenishmentv1.NewReplenishmentServiceClient(conn)
	out := newOutputs(t, brokers, topics.Proposals)

	recs := []*kgo.Record{
		forecastRecord(t, 1, "e1", stock(&inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_Snapshot{Snapshot: &inventoryv1.Snapshot{OnHand: 300}}})),
		forecastRecord(t, 2, "e2", stock(placed("A", 10, "S1"))),
		forecastRecord(t, 3, "e3", stock(placed("B", 10, "S1"))),
		forecastRecord(t, 4, "e4", stock(placed("C", 10, "S2"))),
		forecastRecord(t, 3*day+2, "e5", stock(received("A", 10))), // 3 days after A
		forecastRecord(t, 3*day+3, "e6", stock(received("B", 10))),
		forecastRecord(t, 3*day+4, "e7", stock(received("C", 10))), // 330 on hand, 3 samples of 3 days
		// 70: above the learned lead time's reorder point q95(3) = 40 (the
		// policy's 7 days would give q95(7) = 85 and a proposal here).
		forecastRecord(t, 3*day+5, "e8", order(260)),
		forecastRecord(t, 3*day+6, "e9", order(35)), // 35 < 40: P1
	}
	if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	builtInPolicy := &replenishmentv1.Policy{ServiceLevel: 0.95, LeadTimeDays: 7, Moq: 1, PackSize: 1, OrderCoverDays: 14}
	p1 := expected("e9", 3*day+6, 1, &replenishmentv1.Proposal{
		// order-up-to 40 + 14 days at 10 after day 3 = 180; 180 - 35 = 145.
		Quantity: 145, UnconstrainedQuantity: 145, ReorderPoint: 40, OrderUpTo: 180,
		InventoryPosition: 35, OnHand: 35, SafetyStock: 10, ExpectedLeadTimeDemand: 30,
		Policy:               builtInPolicy,
		ProjectedStockoutDay: "2011-03-04", // cumulative 10, 20, 30, 40 >= 35
		ExpectedArrivalDay:   "2011-03-04", // 2011-03-01 + the learned 3 days
	})
	p1.ProposalId = "ad21ea9946017991eed4b30070d16409" // printf '%s' '85123A|online|e9' | sha256sum
	got := decodeProposals(t, out.waitFor(t, 1))
	assertSame(t, "learned lead time", got, []*replenishmentv1.Proposal{p1})

	lt := &replenishmentv1.LeadTimeStats{Samples: 3, MeanDays: 3}
	st, err := client.GetSeriesState(ctx, &replenishmentv1.GetSeriesStateRequest{Sku: "85123A", Location: "online"})
	if err != nil {
		t.Fatal(err)
	}
	wantState := &replenishmentv1.GetSeriesStateResponse{
		OnHand: 35, InventoryPosition: 35, ReorderPoint: 40, BelowReorderPoint: true, DecisionSeq: 1, LastEventId: "e9",
		LeadTime: lt, LeadTimeLearned: true,
		SupplierLeadTimes: []*replenishmentv1.LeadTimeStats{{Samples: 2, MeanDays: 3, SupplierId: "S1"}, {Samples: 1, MeanDays: 3, SupplierId: "S2"}},
	}
	if !proto.Equal(st, wantState) {
		t.Fatalf("GetSeriesState =\n%v\nwant\n%v", st, wantState)
	}
	pol, err := client.GetPolicy(ctx, &replenishmentv1.GetPolicyRequest{Sku: "85123A", Location: "online"})
	if err != nil || !proto.Equal(pol.GetLearnedLeadTime(), lt) || !pol.GetLeadTimeLearned() {
		t.Fatalf("GetPolicy = %v, %v; want the learned lead time %v", pol, err, lt)
	}

	// A series policy with 28 cover days re-evaluates at once with the latest
	// forecast: q99(3) = 45, order-up-to 45 + days 4..27 (240) + 4 days past
	// the horizon at the last week's mean 10 (40) = 325, which moves the open
	// proposal's 180 by more than the 50% threshold: revised, 325 - 35 = 290.
	seriesPolicy := &replenishmentv1.Policy{Sku: "85123A", Location: "online", ServiceLevel: 0.99, LeadTimeDays: 7, Moq: 1, PackSize: 1, OrderCoverDays: 28}
	set, err := client.SetPolicy(ctx, &replenishmentv1.SetPolicyRequest{Policy: seriesPolicy})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.GetProposals()) != 1 {
		t.Fatalf("SetPolicy proposals %v, want one", set.GetProposals())
	}
	p2 := set.GetProposals()[0]
	want := &replenishmentv1.Proposal{
		ProposalId: p2.GetProposalId(), SeriesKey: series, Sku: "85123A", Location: "online",
		EventId: p2.GetEventId(), ForecastId: "f-e9", DecidedAt: p1.GetDecidedAt(),
		Reason:   replenishmentv1.ProposalReason_PROPOSAL_REASON_POLICY_CHANGED,
		Quantity: 290, UnconstrainedQuantity: 290, ReorderPoint: 45, OrderUpTo: 325,
		InventoryPosition: 35, OnHand: 35, SafetyStock: 15, ExpectedLeadTimeDemand: 30,
		Policy: seriesPolicy, ProjectedStockoutDay: "2011-03-04", ExpectedArrivalDay: "2011-03-04",
		Status: replenishmentv1.ProposalStatus_PROPOSAL_STATUS_PROPOSED, DecisionSeq: 2,
	}
	if !proto.Equal(p2, want) || !strings.HasPrefix(p2.GetEventId(), "policy:") || !strings.HasSuffix(p2.GetEventId(), "@e9") {
		t.Fatalf("policy proposal =\n%v\nwant\n%v", p2, want)
	}
	if p2.GetProposalId() == p1.GetProposalId() || len(p2.GetProposalId()) != 32 {
		t.Fatalf("policy proposal id %q", p2.GetProposalId())
	}
	// The same SetPolicy again (a retry): the same decision, nothing new.
	again, err := client.SetPolicy(ctx, &replenishmentv1.SetPolicyRequest{Policy: seriesPolicy})
	if err != nil || len(again.GetProposals()) != 1 || !proto.Equal(again.GetProposals()[0], p2) {
		t.Fatalf("SetPolicy again = %v, %v; want %v", again, err, p2)
	}
	assertSame(t, "policy change", decodeProposals(t, out.waitFor(t, 3)[1:]), []*replenishmentv1.Proposal{p2, p2})
	listed, err := client.ListProposals(ctx, &replenishmentv1.ListProposalsRequest{Sku: "85123A"})
	if err != nil || len(listed.GetProposals()) != 2 {
		t.Fatalf("ListProposals = %v, %v; want 2", listed, err)
	}
}

// TestPolicyFileCategory: -policies.file gives the HOBBIES category a lead
// time of 3 days; an item event puts the series in it, and its decisions
// use q95(3) = 40 instead of the built-in q95(7) = 85.
func TestPolicyFileCategory(t *testing.T) {
	ctx := context.Background()
	brokers := testenv.Kafka(t)
	file := filepath.Join(t.TempDir(), "policies.yaml")
	if err := os.WriteFile(file, []byte("categories:\n  HOBBIES:\n    lead_time_days: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	svc := start(t, brokers, testenv.Redis(t), testenv.ClickHouse(t), "-policies.file", file)
	defer svc.stop(t)
	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	conn, err := grpc.NewClient(svc.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := replenishmentv1.NewReplenishmentServiceClient(conn)
	out := newOutputs(t, brokers, topics.Proposals)
	item := &demandv1.DemandEvent{Change: &demandv1.DemandEvent_Item{Item: &catalogv1.ItemAttributes{Sku: "85123A", Category: "HOBBIES"}}}
	recs := []*kgo.Record{
		forecastRecord(t, 1, "e1", stock(&inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_Snapshot{Snapshot: &inventoryv1.Snapshot{OnHand: 100}}})),
		forecastRecord(t, 2, "e2", item),
		forecastRecord(t, 3, "e3", order(50)), // 50: above 40 (the built-in policy would propose here)
		forecastRecord(t, 4, "e4", order(15)), // 35 < 40
	}
	if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	filePolicy := &replenishmentv1.Policy{Location: "online", ServiceLevel: 0.95, LeadTimeDays: 3, Moq: 1, PackSize: 1, OrderCoverDays: 14}
	p1 := expected("e4", 4, 1, &replenishmentv1.Proposal{
		// order-up-to 40 + 14 days at 10 = 180; 180 - 35 = 145.
		Quantity: 145, UnconstrainedQuantity: 145, ReorderPoint: 40, OrderUpTo: 180,
		InventoryPosition: 35, OnHand: 35, SafetyStock: 10, ExpectedLeadTimeDemand: 30,
		Policy: filePolicy, ProjectedStockoutDay: "2011-03-04", ExpectedArrivalDay: "2011-03-04",
	})
	p1.ProposalId = "76fa7afe053500660288f480e6303648" // printf '%s' '85123A|online|e4' | sha256sum
	got := decodeProposals(t, out.waitFor(t, 1))
	assertSame(t, "file category", got, []*replenishmentv1.Proposal{p1})
	pol, err := client.GetPolicy(ctx, &replenishmentv1.GetPolicyRequest{Sku: "85123A", Location: "online"})
	if err != nil || pol.GetSource() != "file:category" || !proto.Equal(pol.GetPolicy(), filePolicy) {
		t.Fatalf("GetPolicy = %v, %v; want %v from file:category", pol, err, filePolicy)
	}
}
