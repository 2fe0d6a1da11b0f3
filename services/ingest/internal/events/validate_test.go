package events

import (
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	catalogv1 "github.com/stockcast/stockcast/proto/stockcast/catalog/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"
)

var testNow = time.Date(2011, 12, 9, 12, 0, 0, 0, time.UTC)

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

func validOrder() *ordersv1.OrderLineEvent {
	return &ordersv1.OrderLineEvent{
		EventId: "or-2", OccurredAt: ts(testNow.Add(-time.Hour)), Type: ordersv1.OrderLineType_ORDER_LINE_TYPE_PLACED,
		OrderId: "536365", LineNumber: 1, Sku: "85123A", Location: "online", Quantity: 6, UnitPrice: 2.55,
		Currency: "GBP", CustomerId: "17850", Country: "United Kingdom", Description: "WHITE HANGING HEART T-LIGHT HOLDER",
	}
}

func validInventory() *inventoryv1.InventoryEvent {
	return &inventoryv1.InventoryEvent{
		EventId: "inv-1", OccurredAt: ts(testNow.Add(-time.Hour)), Sku: "85123A", Location: "online",
		Kind: &inventoryv1.InventoryEvent_Snapshot{Snapshot: &inventoryv1.Snapshot{OnHand: 40, Reserved: 2}},
	}
}

func validPrice() *catalogv1.CatalogEvent {
	return &catalogv1.CatalogEvent{
		EventId: "cat-1", OccurredAt: ts(testNow.Add(-time.Hour)),
		Kind: &catalogv1.CatalogEvent_PriceChange{PriceChange: &catalogv1.PriceChange{Sku: "85123A", Location: "online", Price: 2.95, Currency: "GBP"}},
	}
}

func validPromotion() *catalogv1.CatalogEvent {
	return &catalogv1.CatalogEvent{
		EventId: "cat-2", OccurredAt: ts(testNow.Add(-time.Hour)),
		Kind: &catalogv1.CatalogEvent_Promotion{Promotion: &catalogv1.PromotionWindow{
			Sku: "85123A", Location: "online", PromotionId: "xmas",
			StartsAt: ts(testNow), EndsAt: ts(testNow.Add(72 * time.Hour)), DiscountPct: 20,
		}},
	}
}

func validItem() *catalogv1.CatalogEvent {
	return &catalogv1.CatalogEvent{
		EventId: "cat-3", OccurredAt: ts(testNow.Add(-time.Hour)),
		Kind: &catalogv1.CatalogEvent_Item{Item: &catalogv1.ItemAttributes{Sku: "85123A", Description: "HEART", PackSize: 6, Moq: 12, UnitCost: 1.2}},
	}
}

func order(f func(*ordersv1.OrderLineEvent)) Event {
	ev := validOrder()
	f(ev)
	return Event{Order: ev}
}

func inventory(f func(*inventoryv1.InventoryEvent)) Event {
	ev := validInventory()
	f(ev)
	return Event{Inventory: ev}
}

func catalog(base func() *catalogv1.CatalogEvent, f func(*catalogv1.CatalogEvent)) Event {
	ev := base()
	f(ev)
	return Event{Catalog: ev}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		ev   Event
		want Reason // "" = valid
	}{
		{"valid placed order line", order(func(*ordersv1.OrderLineEvent) {}), ""},
		{"valid cancellation", order(func(e *ordersv1.OrderLineEvent) { e.Type = ordersv1.OrderLineType_ORDER_LINE_TYPE_CANCELLED }), ""},
		{"valid return", order(func(e *ordersv1.OrderLineEvent) { e.Type = ordersv1.OrderLineType_ORDER_LINE_TYPE_RETURNED }), ""},
		{"free order line", order(func(e *ordersv1.OrderLineEvent) { e.UnitPrice = 0 }), ""},
		{"sku with inner space", order(func(e *ordersv1.OrderLineEvent) { e.Sku = "BANK CHARGES" }), ""},
		{"unicode location", order(func(e *ordersv1.OrderLineEvent) { e.Location = "Zürich-Süd" }), ""},
		{"event id of 128 bytes", order(func(e *ordersv1.OrderLineEvent) { e.EventId = strings.Repeat("x", 128) }), ""},
		{"occurred just under 24h ahead", order(func(e *ordersv1.OrderLineEvent) { e.OccurredAt = ts(testNow.Add(24 * time.Hour)) }), ""},
		{"occurred 2000-01-01", order(func(e *ordersv1.OrderLineEvent) { e.OccurredAt = ts(Oldest) }), ""},

		{"missing event id", order(func(e *ordersv1.OrderLineEvent) { e.EventId = "" }), ReasonMissingEventID},
		{"blank event id", order(func(e *ordersv1.OrderLineEvent) { e.EventId = "  " }), ReasonMissingEventID},
		{"event id too long", order(func(e *ordersv1.OrderLineEvent) { e.EventId = strings.Repeat("x", 129) }), ReasonEventIDTooLong},
		{"event id with a newline", order(func(e *ordersv1.OrderLineEvent) { e.EventId = "or-1\nor-2" }), ReasonInvalidEventID},
		{"event id with a trailing space", order(func(e *ordersv1.OrderLineEvent) { e.EventId = "or-1 " }), ReasonInvalidEventID},
		{"event id with a pipe", order(func(e *ordersv1.OrderLineEvent) { e.EventId = "or|1" }), ""},
		{"missing sku", order(func(e *ordersv1.OrderLineEvent) { e.Sku = "" }), ReasonMissingSKU},
		{"NUL in sku", order(func(e *ordersv1.OrderLineEvent) { e.Sku = "85123A\x00" }), ReasonInvalidKey},
		{"RTL override in sku", order(func(e *ordersv1.OrderLineEvent) { e.Sku = "85\u202e123A" }), ReasonInvalidKey},
		{"zero-width space in sku", order(func(e *ordersv1.OrderLineEvent) { e.Sku = "85123\u200bA" }), ReasonInvalidKey},
		{"no-break space in location", order(func(e *ordersv1.OrderLineEvent) { e.Location = "on\u00a0line" }), ReasonInvalidKey},
		{"trailing space in sku", order(func(e *ordersv1.OrderLineEvent) { e.Sku = "85123A " }), ReasonInvalidKey},
		{"sku of 128 bytes", order(func(e *ordersv1.OrderLineEvent) { e.Sku = strings.Repeat("s", 128) }), ""},
		{"emoji and CJK in sku", order(func(e *ordersv1.OrderLineEvent) { e.Sku = "杯子-☕" }), ""},
		{"missing location", order(func(e *ordersv1.OrderLineEvent) { e.Location = "" }), ReasonMissingLocation},
		{"separator in sku", order(func(e *ordersv1.OrderLineEvent) { e.Sku = "a|b" }), ReasonInvalidKey},
		{"control char in location", order(func(e *ordersv1.OrderLineEvent) { e.Location = "on\nline" }), ReasonInvalidKey},
		{"sku too long", order(func(e *ordersv1.OrderLineEvent) { e.Sku = strings.Repeat("s", 129) }), ReasonInvalidKey},
		// Decoding refuses such strings; in process they cannot be encoded.
		{"invalid utf-8 sku", order(func(e *ordersv1.OrderLineEvent) { e.Sku = "ab\xffcd" }), ReasonUndecodable},
		{"invalid utf-8 description", order(func(e *ordersv1.OrderLineEvent) { e.Description = "\xff" }), ReasonUndecodable},
		{"missing occurred_at", order(func(e *ordersv1.OrderLineEvent) { e.OccurredAt = nil }), ReasonMissingOccurred},
		{"invalid occurred_at", order(func(e *ordersv1.OrderLineEvent) { e.OccurredAt = &timestamppb.Timestamp{Nanos: -1} }), ReasonMissingOccurred},
		{"occurred in future", order(func(e *ordersv1.OrderLineEvent) { e.OccurredAt = ts(testNow.Add(24*time.Hour + time.Second)) }), ReasonOccurredInFuture},
		{"occurred too old", order(func(e *ordersv1.OrderLineEvent) { e.OccurredAt = ts(Oldest.Add(-time.Second)) }), ReasonOccurredTooOld},
		{"unspecified type", order(func(e *ordersv1.OrderLineEvent) { e.Type = ordersv1.OrderLineType_ORDER_LINE_TYPE_UNSPECIFIED }), ReasonUnknownOrderLineType},
		{"unknown type number", order(func(e *ordersv1.OrderLineEvent) { e.Type = 42 }), ReasonUnknownOrderLineType},
		{"zero quantity", order(func(e *ordersv1.OrderLineEvent) { e.Quantity = 0 }), ReasonQuantityNotPositive},
		{"negative quantity", order(func(e *ordersv1.OrderLineEvent) { e.Quantity = -3 }), ReasonQuantityNotPositive},
		{"huge quantity", order(func(e *ordersv1.OrderLineEvent) { e.Quantity = 1e6 + 1 }), ReasonQuantityAbsurd},
		{"NaN quantity", order(func(e *ordersv1.OrderLineEvent) { e.Quantity = math.NaN() }), ReasonQuantityAbsurd},
		{"-Inf quantity", order(func(e *ordersv1.OrderLineEvent) { e.Quantity = math.Inf(-1) }), ReasonQuantityAbsurd},
		{"negative price", order(func(e *ordersv1.OrderLineEvent) { e.UnitPrice = -0.01 }), ReasonPriceNegative},
		{"huge price", order(func(e *ordersv1.OrderLineEvent) { e.UnitPrice = 1e7 + 1 }), ReasonPriceAbsurd},
		{"Inf price", order(func(e *ordersv1.OrderLineEvent) { e.UnitPrice = math.Inf(1) }), ReasonPriceAbsurd},
		{"missing currency", order(func(e *ordersv1.OrderLineEvent) { e.Currency = "" }), ReasonMissingCurrency},
		{"lower-case currency", order(func(e *ordersv1.OrderLineEvent) { e.Currency = "gbp" }), ReasonInvalidCurrency},
		{"long currency", order(func(e *ordersv1.OrderLineEvent) { e.Currency = "GBPX" }), ReasonInvalidCurrency},

		{"valid snapshot", inventory(func(*inventoryv1.InventoryEvent) {}), ""},
		{"valid adjustment down", inventory(func(e *inventoryv1.InventoryEvent) {
			e.Kind = &inventoryv1.InventoryEvent_Adjustment{Adjustment: &inventoryv1.Adjustment{Delta: -5, Reason: "damaged"}}
		}), ""},
		{"valid receipt", inventory(func(e *inventoryv1.InventoryEvent) {
			e.Kind = &inventoryv1.InventoryEvent_Receipt{Receipt: &inventoryv1.Receipt{PurchaseOrderId: "po-1", Quantity: 24}}
		}), ""},
		{"valid purchase order", inventory(func(e *inventoryv1.InventoryEvent) {
			e.Kind = &inventoryv1.InventoryEvent_PurchaseOrderPlaced{PurchaseOrderPlaced: &inventoryv1.PurchaseOrderPlaced{PurchaseOrderId: "po-1", Quantity: 24, ExpectedAt: ts(testNow.Add(72 * time.Hour))}}
		}), ""},
		{"valid stockout", inventory(func(e *inventoryv1.InventoryEvent) {
			e.Kind = &inventoryv1.InventoryEvent_StockoutStarted{StockoutStarted: &inventoryv1.StockoutStarted{}}
		}), ""},
		{"inventory missing location", inventory(func(e *inventoryv1.InventoryEvent) { e.Location = "" }), ReasonMissingLocation},
		{"inventory without kind", inventory(func(e *inventoryv1.InventoryEvent) { e.Kind = nil }), ReasonUnknownInventoryKind},
		{"snapshot on hand negative", inventory(func(e *inventoryv1.InventoryEvent) { e.GetSnapshot().OnHand = -1 }), ReasonQuantityNegative},
		{"snapshot reserved negative", inventory(func(e *inventoryv1.InventoryEvent) { e.GetSnapshot().Reserved = -1 }), ReasonQuantityNegative},
		{"snapshot on hand NaN", inventory(func(e *inventoryv1.InventoryEvent) { e.GetSnapshot().OnHand = math.NaN() }), ReasonQuantityAbsurd},
		{"adjustment absurd", inventory(func(e *inventoryv1.InventoryEvent) {
			e.Kind = &inventoryv1.InventoryEvent_Adjustment{Adjustment: &inventoryv1.Adjustment{Delta: -2e6}}
		}), ReasonQuantityAbsurd},
		{"receipt of zero", inventory(func(e *inventoryv1.InventoryEvent) {
			e.Kind = &inventoryv1.InventoryEvent_Receipt{Receipt: &inventoryv1.Receipt{PurchaseOrderId: "po-1"}}
		}), ReasonQuantityNotPositive},
		{"purchase order negative", inventory(func(e *inventoryv1.InventoryEvent) {
			e.Kind = &inventoryv1.InventoryEvent_PurchaseOrderPlaced{PurchaseOrderPlaced: &inventoryv1.PurchaseOrderPlaced{Quantity: -1, ExpectedAt: ts(testNow)}}
		}), ReasonQuantityNotPositive},
		{"purchase order expected in 9999", inventory(func(e *inventoryv1.InventoryEvent) {
			e.Kind = &inventoryv1.InventoryEvent_PurchaseOrderPlaced{PurchaseOrderPlaced: &inventoryv1.PurchaseOrderPlaced{Quantity: 10, ExpectedAt: ts(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))}}
		}), ReasonMissingExpectedAt},
		{"purchase order without expected_at", inventory(func(e *inventoryv1.InventoryEvent) {
			e.Kind = &inventoryv1.InventoryEvent_PurchaseOrderPlaced{PurchaseOrderPlaced: &inventoryv1.PurchaseOrderPlaced{Quantity: 10}}
		}), ReasonMissingExpectedAt},

		{"valid price change", catalog(validPrice, func(*catalogv1.CatalogEvent) {}), ""},
		{"valid promotion", catalog(validPromotion, func(*catalogv1.CatalogEvent) {}), ""},
		{"valid item", catalog(validItem, func(*catalogv1.CatalogEvent) {}), ""},
		{"catalog without kind", catalog(validPrice, func(e *catalogv1.CatalogEvent) { e.Kind = nil }), ReasonUnknownCatalogKind},
		{"catalog missing event id", catalog(validItem, func(e *catalogv1.CatalogEvent) { e.EventId = "" }), ReasonMissingEventID},
		{"item missing sku", catalog(validItem, func(e *catalogv1.CatalogEvent) { e.GetItem().Sku = "" }), ReasonMissingSKU},
		{"item negative pack size", catalog(validItem, func(e *catalogv1.CatalogEvent) { e.GetItem().PackSize = -6 }), ReasonQuantityNegative},
		{"item negative cost", catalog(validItem, func(e *catalogv1.CatalogEvent) { e.GetItem().UnitCost = -1 }), ReasonPriceNegative},
		{"item occurred in future", catalog(validItem, func(e *catalogv1.CatalogEvent) { e.OccurredAt = ts(testNow.Add(48 * time.Hour)) }), ReasonOccurredInFuture},
		{"price change missing location", catalog(validPrice, func(e *catalogv1.CatalogEvent) { e.GetPriceChange().Location = "" }), ReasonMissingLocation},
		{"price change negative", catalog(validPrice, func(e *catalogv1.CatalogEvent) { e.GetPriceChange().Price = -1 }), ReasonPriceNegative},
		{"price change NaN", catalog(validPrice, func(e *catalogv1.CatalogEvent) { e.GetPriceChange().Price = math.NaN() }), ReasonPriceAbsurd},
		{"price change bad currency", catalog(validPrice, func(e *catalogv1.CatalogEvent) { e.GetPriceChange().Currency = "£" }), ReasonInvalidCurrency},
		{"price change missing occurred_at", catalog(validPrice, func(e *catalogv1.CatalogEvent) { e.OccurredAt = nil }), ReasonMissingOccurred},
		{"promotion ending in 9999", catalog(validPromotion, func(e *catalogv1.CatalogEvent) {
			e.GetPromotion().EndsAt = ts(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
		}), ReasonInvalidPromotionWindow},
		{"promotion starting in 1900", catalog(validPromotion, func(e *catalogv1.CatalogEvent) {
			e.GetPromotion().StartsAt = ts(time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC))
		}), ReasonInvalidPromotionWindow},
		{"promotion ending 2100-01-01", catalog(validPromotion, func(e *catalogv1.CatalogEvent) { e.GetPromotion().EndsAt = ts(Latest) }), ""},
		{"promotion missing id", catalog(validPromotion, func(e *catalogv1.CatalogEvent) { e.GetPromotion().PromotionId = "" }), ReasonMissingPromotionID},
		{"promotion without end", catalog(validPromotion, func(e *catalogv1.CatalogEvent) { e.GetPromotion().EndsAt = nil }), ReasonInvalidPromotionWindow},
		{"promotion ends before start", catalog(validPromotion, func(e *catalogv1.CatalogEvent) {
			e.GetPromotion().EndsAt = ts(testNow.Add(-time.Hour))
		}), ReasonInvalidPromotionWindow},
		{"promotion discount over 100", catalog(validPromotion, func(e *catalogv1.CatalogEvent) { e.GetPromotion().DiscountPct = 101 }), ReasonDiscountOutOfRange},
		{"promotion separator in sku", catalog(validPromotion, func(e *catalogv1.CatalogEvent) { e.GetPromotion().Sku = "a|b" }), ReasonInvalidKey},

		{"empty event", Event{}, ReasonUndecodable},
		{"event over 64 KiB", order(func(e *ordersv1.OrderLineEvent) { e.Description = strings.Repeat("d", MaxEventBytes) }), ReasonTooLarge},
		{"event just under 64 KiB", order(func(e *ordersv1.OrderLineEvent) { e.Description = strings.Repeat("d", MaxEventBytes-200) }), ""},
	}
	covered := map[Reason]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before proto.Message
			if m := tt.ev.Message(); m != nil {
				before = proto.Clone(m)
			}
			got := Validate(tt.ev, testNow)
			switch {
			case tt.want == "" && got != nil:
				t.Fatalf("Validate = %v, want valid", got)
			case tt.want != "" && got == nil:
				t.Fatalf("Validate = valid, want %s", tt.want)
			case tt.want != "" && got.Reason != tt.want:
				t.Fatalf("Validate = %v, want %s", got, tt.want)
			case got != nil && got.Detail == "":
				t.Fatalf("rejection %s has no detail", got.Reason)
			}
			if before != nil && !proto.Equal(before, tt.ev.Message()) {
				t.Fatalf("Validate changed the event")
			}
		})
		covered[tt.want] = true
	}
	// Every reason that validation can give has a case above; the duplicate
	// conflict is decided by the de-duplication, an unknown event type by
	// DecodeRecord (TestDecodeRecord), not here.
	for _, r := range AllReasons {
		if r == ReasonDuplicateConflict || r == ReasonUnknownEventType {
			continue
		}
		if !covered[r] {
			t.Errorf("no test case for reason %s", r)
		}
	}
}
