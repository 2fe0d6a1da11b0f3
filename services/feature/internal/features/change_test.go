package features

import (
	"errors"
	"math"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	catalogv1 "github.com/stockcast/stockcast/proto/stockcast/catalog/v1"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
)

func TestChangeOf(t *testing.T) {
	occurred := time.Date(2024, 9, 30, 13, 5, 0, 0, time.UTC)
	type mod = func(*demandv1.DemandEvent)
	ev := func(mods ...mod) *demandv1.DemandEvent {
		e := &demandv1.DemandEvent{EventId: "e1", OccurredAt: timestamppb.New(occurred), SeriesKey: "a|b",
			Sku: "a", Location: "b", Day: "2024-09-30"}
		for _, m := range mods {
			m(e)
		}
		return e
	}
	demand := func(q float64) mod {
		return func(e *demandv1.DemandEvent) {
			e.Change = &demandv1.DemandEvent_Demand{Demand: &demandv1.Demand{Quantity: q}}
		}
	}
	inventory := func(ie *inventoryv1.InventoryEvent) mod {
		return func(e *demandv1.DemandEvent) { e.Change = &demandv1.DemandEvent_Inventory{Inventory: ie} }
	}
	price := func(p float64) mod {
		return func(e *demandv1.DemandEvent) {
			e.Change = &demandv1.DemandEvent_Price{Price: &catalogv1.PriceChange{Price: p}}
		}
	}
	promotion := func(p *catalogv1.PromotionWindow) mod {
		return func(e *demandv1.DemandEvent) { e.Change = &demandv1.DemandEvent_Promotion{Promotion: p} }
	}
	item := func(i *catalogv1.ItemAttributes) mod {
		return func(e *demandv1.DemandEvent) { e.Change = &demandv1.DemandEvent_Item{Item: i} }
	}
	tests := []struct {
		name   string
		ev     *demandv1.DemandEvent
		want   Change
		reason string
	}{
		{name: "demand", ev: ev(demand(-2)),
			want: Change{EventID: "e1", SKU: "a", Location: "b", Day: monday, At: occurred, Kind: KindDemand, Quantity: -2}},
		{name: "stockout started", ev: ev(inventory(&inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_StockoutStarted{StockoutStarted: &inventoryv1.StockoutStarted{}}})),
			want: Change{EventID: "e1", SKU: "a", Location: "b", Day: monday, At: occurred, Kind: KindStockoutStarted}},
		{name: "stockout ended", ev: ev(inventory(&inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_StockoutEnded{StockoutEnded: &inventoryv1.StockoutEnded{}}})),
			want: Change{EventID: "e1", SKU: "a", Location: "b", Day: monday, At: occurred, Kind: KindStockoutEnded}},
		{name: "receipt changes no feature", ev: ev(inventory(&inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_Receipt{Receipt: &inventoryv1.Receipt{Quantity: 5}}})),
			want: Change{EventID: "e1", SKU: "a", Location: "b", Day: monday, At: occurred, Kind: KindOther}},
		{name: "price", ev: ev(price(2.5)),
			want: Change{EventID: "e1", SKU: "a", Location: "b", Day: monday, At: occurred, Kind: KindPrice, Price: 2.5}},
		{name: "promotion", ev: ev(promotion(&catalogv1.PromotionWindow{PromotionId: "p",
			StartsAt: timestamppb.New(occurred), EndsAt: timestamppb.New(occurred.Add(time.Hour))})),
			want: Change{EventID: "e1", SKU: "a", Location: "b", Day: monday, At: occurred, Kind: KindPromotion,
				PromotionID: "p", PromotionStart: occurred, PromotionEnd: occurred.Add(time.Hour)}},
		{name: "item, keyed by sku", ev: ev(item(&catalogv1.ItemAttributes{Sku: "a", Category: "c", Department: "d"}),
			func(e *demandv1.DemandEvent) { e.SeriesKey, e.Location = "a", "" }),
			want: Change{EventID: "e1", SKU: "a", Day: monday, At: occurred, Kind: KindItem, Item: Item{Category: "c", Department: "d"}}},
		{name: "day from occurred_at when missing", ev: ev(demand(1), func(e *demandv1.DemandEvent) { e.Day = "" }),
			want: Change{EventID: "e1", SKU: "a", Location: "b", Day: monday, At: occurred, Kind: KindDemand, Quantity: 1}},
		{name: "no event id", ev: ev(demand(1), func(e *demandv1.DemandEvent) { e.EventId = "" }), reason: "event_id_missing"},
		{name: "no occurred_at", ev: ev(demand(1), func(e *demandv1.DemandEvent) { e.OccurredAt = nil }), reason: "occurred_at_invalid"},
		{name: "bad day", ev: ev(demand(1), func(e *demandv1.DemandEvent) { e.Day = "30.09.2024" }), reason: "day_invalid"},
		{name: "no change", ev: ev(), reason: "change_missing"},
		{name: "NaN quantity", ev: ev(demand(math.NaN())), reason: "quantity_invalid"},
		{name: "negative price", ev: ev(price(-1)), reason: "price_invalid"},
		{name: "promotion without window", ev: ev(promotion(&catalogv1.PromotionWindow{PromotionId: "p"})), reason: "promotion_invalid"},
		{name: "series key of another series", ev: ev(demand(1), func(e *demandv1.DemandEvent) { e.SeriesKey = "a|c" }), reason: "series_key_mismatch"},
		{name: "no location", ev: ev(demand(1), func(e *demandv1.DemandEvent) { e.Location, e.SeriesKey = "", "a|" }), reason: "location_missing"},
		{name: "no sku", ev: ev(demand(1), func(e *demandv1.DemandEvent) { e.Sku = "" }), reason: "sku_missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ChangeOf(tt.ev)
			if tt.reason != "" {
				var inv *InvalidError
				if !errors.As(err, &inv) || inv.Reason != tt.reason {
					t.Fatalf("err = %v, want reason %s", err, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.At.Equal(tt.want.At) || !got.PromotionStart.Equal(tt.want.PromotionStart) || !got.PromotionEnd.Equal(tt.want.PromotionEnd) {
				t.Fatalf("times %v %v %v", got.At, got.PromotionStart, got.PromotionEnd)
			}
			got.At, got.PromotionStart, got.PromotionEnd = tt.want.At, tt.want.PromotionStart, tt.want.PromotionEnd
			if got != tt.want {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
