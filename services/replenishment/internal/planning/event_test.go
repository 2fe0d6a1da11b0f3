package planning

import (
	"errors"
	"math"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	catalogv1 "github.com/stockcast/stockcast/proto/stockcast/catalog/v1"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
)

func forecastWith(cause *demandv1.DemandEvent) *forecastv1.ForecastEvent {
	return &forecastv1.ForecastEvent{EventId: "e1", SeriesKey: "85123A|online", Cause: cause}
}

func demand(q float64, kind demandv1.DemandKind) *demandv1.DemandEvent {
	return &demandv1.DemandEvent{Change: &demandv1.DemandEvent_Demand{Demand: &demandv1.Demand{Quantity: q, Kind: kind}}}
}

func inventory(inv *inventoryv1.InventoryEvent) *demandv1.DemandEvent {
	return &demandv1.DemandEvent{Change: &demandv1.DemandEvent_Inventory{Inventory: inv}}
}

func TestNewEventChanges(t *testing.T) {
	expected := timestamppb.New(time.Date(2011, 3, 8, 23, 30, 0, 0, time.FixedZone("x", -2*3600))) // 9 March UTC
	tests := []struct {
		name  string
		cause *demandv1.DemandEvent
		want  Change
	}{
		{"placed order line", demand(3, demandv1.DemandKind_DEMAND_KIND_ORDER), Change{Kind: ChangeDemand, Quantity: 3}},
		{"cancellation keeps its sign", demand(-2, demandv1.DemandKind_DEMAND_KIND_CANCELLATION), Change{Kind: ChangeDemand, Quantity: -2}},
		{"return becomes a positive return", demand(-4, demandv1.DemandKind_DEMAND_KIND_RETURN), Change{Kind: ChangeReturn, Quantity: 4}},
		{"snapshot", inventory(&inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_Snapshot{Snapshot: &inventoryv1.Snapshot{OnHand: 12, Reserved: 2}}}),
			Change{Kind: ChangeSnapshot, Quantity: 12, Reserved: 2}},
		{"adjustment", inventory(&inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_Adjustment{Adjustment: &inventoryv1.Adjustment{Delta: -5}}}),
			Change{Kind: ChangeAdjustment, Quantity: -5}},
		{"purchase order with its expected UTC day", inventory(&inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_PurchaseOrderPlaced{
			PurchaseOrderPlaced: &inventoryv1.PurchaseOrderPlaced{PurchaseOrderId: "PO1", Quantity: 40, ExpectedAt: expected}}}),
			Change{Kind: ChangePurchaseOrder, Quantity: 40, PurchaseOrderID: "PO1", ExpectedDay: "2011-03-09"}},
		{"receipt", inventory(&inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_Receipt{Receipt: &inventoryv1.Receipt{PurchaseOrderId: "PO1", Quantity: 38}}}),
			Change{Kind: ChangeReceipt, Quantity: 38, PurchaseOrderID: "PO1"}},
		{"stockout started", inventory(&inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_StockoutStarted{StockoutStarted: &inventoryv1.StockoutStarted{}}}),
			Change{Kind: ChangeStockoutStarted}},
		{"stockout ended", inventory(&inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_StockoutEnded{StockoutEnded: &inventoryv1.StockoutEnded{}}}),
			Change{Kind: ChangeStockoutEnded}},
		{"price change moves no stock", &demandv1.DemandEvent{Change: &demandv1.DemandEvent_Price{Price: &catalogv1.PriceChange{}}}, Change{Kind: ChangeNone}},
		{"inventory event without a kind", inventory(&inventoryv1.InventoryEvent{}), Change{Kind: ChangeNone}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := NewEvent(forecastWith(tt.cause))
			if err != nil {
				t.Fatal(err)
			}
			if ev.Change != tt.want {
				t.Fatalf("change = %+v, want %+v", ev.Change, tt.want)
			}
			if ev.Series != (Scope{SKU: "85123A", Location: "online"}) || ev.EventID != "e1" {
				t.Fatalf("series %+v event %q", ev.Series, ev.EventID)
			}
		})
	}
}

func TestNewEventRejects(t *testing.T) {
	tests := []struct {
		name   string
		ev     *forecastv1.ForecastEvent
		reason string
	}{
		{"no event id", &forecastv1.ForecastEvent{SeriesKey: "a|b", Cause: demand(1, 1)}, ReasonMissingEventID},
		{"series key without location", &forecastv1.ForecastEvent{EventId: "e", SeriesKey: "a", Cause: demand(1, 1)}, ReasonInvalidSeriesKey},
		{"empty series key", &forecastv1.ForecastEvent{EventId: "e", Cause: demand(1, 1)}, ReasonInvalidSeriesKey},
		{"no cause", &forecastv1.ForecastEvent{EventId: "e", SeriesKey: "a|b"}, ReasonMissingCause},
		{"NaN demand", forecastWith(demand(math.NaN(), 1)), ReasonInvalidQuantity},
		{"infinite snapshot", forecastWith(inventory(&inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_Snapshot{Snapshot: &inventoryv1.Snapshot{OnHand: math.Inf(1)}}})), ReasonInvalidQuantity},
		{"purchase order without id", forecastWith(inventory(&inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_PurchaseOrderPlaced{
			PurchaseOrderPlaced: &inventoryv1.PurchaseOrderPlaced{Quantity: 4}}})), ReasonMissingPurchaseID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewEvent(tt.ev)
			var invalid *InvalidEventError
			if !errors.As(err, &invalid) || invalid.Reason != tt.reason {
				t.Fatalf("err = %v, want reason %s", err, tt.reason)
			}
		})
	}
}

func TestProposalID(t *testing.T) {
	// sha256("85123A|online|or-42"), first 16 bytes, computed with sha256sum.
	const want = "e3e34d0094fe48f780ef778e0a153824"
	got := ProposalID("85123A|online", "or-42")
	if len(got) != 32 {
		t.Fatalf("id %q: want 32 hex digits", got)
	}
	if got != want {
		t.Fatalf("ProposalID = %s, want %s", got, want)
	}
}
