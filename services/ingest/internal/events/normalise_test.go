package events

import (
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/stockcast/stockcast/pkg/topics"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"
)

func TestNormaliseOrderLines(t *testing.T) {
	n := NewNormaliser(ParseSKUList(DefaultNonProductSKUs))
	src := Source{Topic: topics.Orders, Partition: 3, Offset: 41}
	ingested := testNow.Add(time.Minute)
	tests := []struct {
		name     string
		ev       Event
		wantQty  float64
		wantKind demandv1.DemandKind
		wantType string
		isDemand bool
	}{
		{"placed adds", order(func(*ordersv1.OrderLineEvent) {}), 6, demandv1.DemandKind_DEMAND_KIND_ORDER, "placed", true},
		{"cancelled takes back", order(func(e *ordersv1.OrderLineEvent) { e.Type = ordersv1.OrderLineType_ORDER_LINE_TYPE_CANCELLED }),
			-6, demandv1.DemandKind_DEMAND_KIND_CANCELLATION, "cancelled", true},
		{"returned takes back", order(func(e *ordersv1.OrderLineEvent) { e.Type = ordersv1.OrderLineType_ORDER_LINE_TYPE_RETURNED }),
			-6, demandv1.DemandKind_DEMAND_KIND_RETURN, "returned", true},
		{"postage is not demand", order(func(e *ordersv1.OrderLineEvent) { e.Sku = "POST" }), 6, 0, "placed", false},
		{"cancelled postage is not demand", order(func(e *ordersv1.OrderLineEvent) {
			e.Sku, e.Type = "BANK CHARGES", ordersv1.OrderLineType_ORDER_LINE_TYPE_CANCELLED
		}), -6, 0, "cancelled", false},
		{"the list is case-sensitive", order(func(e *ordersv1.OrderLineEvent) { e.Sku = "post" }), 6, demandv1.DemandKind_DEMAND_KIND_ORDER, "placed", true},
		{"the list is exact", order(func(e *ordersv1.OrderLineEvent) { e.Sku = "POST2" }), 6, demandv1.DemandKind_DEMAND_KIND_ORDER, "placed", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := n.Normalise(tt.ev, src, ingested)
			if err != nil {
				t.Fatal(err)
			}
			o := tt.ev.Order
			wantRow := &OrderLineRow{
				EventID: "or-2", SeriesKey: o.Sku + "|online", SKU: o.Sku, Location: "online",
				Day: time.Date(2011, 12, 9, 0, 0, 0, 0, time.UTC), OccurredAt: testNow.Add(-time.Hour),
				Type: tt.wantType, OrderID: "536365", LineNumber: 1, Quantity: tt.wantQty, RawQuantity: 6, UnitPrice: 2.55,
				Currency: "GBP", CustomerID: "17850", Country: "United Kingdom", Description: o.Description,
				IsDemand: tt.isDemand, Source: src, IngestedAt: ingested,
			}
			if !reflect.DeepEqual(got.Order, wantRow) {
				t.Fatalf("row\n got %+v\nwant %+v", got.Order, wantRow)
			}
			if got.Inventory != nil || got.Catalog != nil {
				t.Fatal("an order line made an inventory or catalog row")
			}
			if !tt.isDemand {
				if got.Demand != nil {
					t.Fatalf("non-product line published: %v", got.Demand)
				}
				return
			}
			want := &demandv1.DemandEvent{
				EventId: "or-2", OccurredAt: o.OccurredAt, SeriesKey: o.Sku + "|online", Sku: o.Sku, Location: "online",
				Day: "2011-12-09", Source: &demandv1.SourcePosition{Topic: topics.Orders, Partition: 3, Offset: 41},
				IngestedAt: ts(ingested),
				Change: &demandv1.DemandEvent_Demand{Demand: &demandv1.Demand{
					Quantity: tt.wantQty, Kind: tt.wantKind, UnitPrice: 2.55, Currency: "GBP",
					OrderId: "536365", CustomerId: "17850", Country: "United Kingdom",
				}},
			}
			if !proto.Equal(got.Demand, want) {
				t.Fatalf("demand event\n got %v\nwant %v", got.Demand, want)
			}
		})
	}
}

func TestNormaliseDayIsUTC(t *testing.T) {
	n := NewNormaliser(nil)
	tests := []struct {
		occurred time.Time
		day      string
	}{
		// 23:30 in New York is already the next day in UTC.
		{time.Date(2011, 12, 9, 23, 30, 0, 0, time.FixedZone("EST", -5*3600)), "2011-12-10"},
		// 00:30 in Paris is still the previous day in UTC.
		{time.Date(2011, 12, 10, 0, 30, 0, 0, time.FixedZone("CET", 3600)), "2011-12-09"},
		{time.Date(2011, 12, 9, 0, 0, 0, 0, time.UTC), "2011-12-09"},
		{time.Date(2011, 12, 9, 23, 59, 59, 999999999, time.UTC), "2011-12-09"},
	}
	for _, tt := range tests {
		ev := order(func(e *ordersv1.OrderLineEvent) { e.OccurredAt = ts(tt.occurred) })
		got, err := n.Normalise(ev, Source{}, testNow)
		if err != nil {
			t.Fatal(err)
		}
		if got.Demand.Day != tt.day || got.Order.Day.Format(DayLayout) != tt.day || got.Order.Day.Location() != time.UTC {
			t.Errorf("%s: day = %q / %v, want %s", tt.occurred, got.Demand.Day, got.Order.Day, tt.day)
		}
	}
}

func TestNormaliseCarriesInventoryAndCatalogUnchanged(t *testing.T) {
	n := NewNormaliser(ParseSKUList(DefaultNonProductSKUs))
	po := inventory(func(e *inventoryv1.InventoryEvent) {
		e.Kind = &inventoryv1.InventoryEvent_PurchaseOrderPlaced{PurchaseOrderPlaced: &inventoryv1.PurchaseOrderPlaced{
			PurchaseOrderId: "po-7", Quantity: 48, ExpectedAt: ts(testNow.Add(72 * time.Hour)), SupplierId: "sup-1"}}
	})
	tests := []struct {
		name      string
		ev        Event
		wantKey   string
		wantLoc   string
		change    func(*demandv1.DemandEvent) proto.Message
		carried   proto.Message
		checkRows func(t *testing.T, got Normalised)
	}{
		{"snapshot", Event{Inventory: validInventory()}, "85123A|online", "online",
			func(d *demandv1.DemandEvent) proto.Message { return d.GetInventory() }, validInventory(),
			func(t *testing.T, got Normalised) {
				r := got.Inventory
				if r == nil || r.Kind != "snapshot" || r.Quantity != 40 || r.Reserved != 2 || r.SeriesKey != "85123A|online" {
					t.Fatalf("row %+v", r)
				}
			}},
		{"purchase order", po, "85123A|online", "online",
			func(d *demandv1.DemandEvent) proto.Message { return d.GetInventory() }, po.Inventory,
			func(t *testing.T, got Normalised) {
				r := got.Inventory
				if r == nil || r.Kind != "purchase_order_placed" || r.Quantity != 48 || r.Reference != "po-7" ||
					r.SupplierID != "sup-1" || !r.ExpectedAt.Equal(testNow.Add(72*time.Hour)) {
					t.Fatalf("row %+v", r)
				}
			}},
		{"price change", Event{Catalog: validPrice()}, "85123A|online", "online",
			func(d *demandv1.DemandEvent) proto.Message { return d.GetPrice() }, validPrice().GetPriceChange(),
			func(t *testing.T, got Normalised) {
				r := got.Catalog
				if r == nil || r.Kind != "price_change" || r.Price != 2.95 || r.Currency != "GBP" || r.Location != "online" {
					t.Fatalf("row %+v", r)
				}
			}},
		{"promotion", Event{Catalog: validPromotion()}, "85123A|online", "online",
			func(d *demandv1.DemandEvent) proto.Message { return d.GetPromotion() }, validPromotion().GetPromotion(),
			func(t *testing.T, got Normalised) {
				r := got.Catalog
				if r == nil || r.Kind != "promotion" || r.PromotionID != "xmas" || r.DiscountPct != 20 ||
					!r.StartsAt.Equal(testNow) || !r.EndsAt.Equal(testNow.Add(72*time.Hour)) {
					t.Fatalf("row %+v", r)
				}
			}},
		{"item attributes keyed by sku", Event{Catalog: validItem()}, "85123A", "",
			func(d *demandv1.DemandEvent) proto.Message { return d.GetItem() }, validItem().GetItem(),
			func(t *testing.T, got Normalised) {
				r := got.Catalog
				if r == nil || r.Kind != "item" || r.SeriesKey != "85123A" || r.Location != "" || r.Price != 1.2 {
					t.Fatalf("row %+v", r)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := n.Normalise(tt.ev, Source{Topic: tt.ev.Topic(), Offset: 9}, testNow)
			if err != nil {
				t.Fatal(err)
			}
			d := got.Demand
			if d == nil || d.SeriesKey != tt.wantKey || d.Sku != "85123A" || d.Location != tt.wantLoc || d.Day != "2011-12-09" ||
				d.EventId != tt.ev.EventID() || d.GetSource().GetOffset() != 9 {
				t.Fatalf("demand event %v", d)
			}
			if !proto.Equal(tt.change(d), tt.carried) {
				t.Fatalf("carried %v, want %v", tt.change(d), tt.carried)
			}
			tt.checkRows(t, got)
			// The payload is the event itself, and the same bytes every time.
			payload := ""
			if got.Inventory != nil {
				payload = got.Inventory.Payload
			} else {
				payload = got.Catalog.Payload
			}
			back := proto.Clone(tt.ev.Message())
			proto.Reset(back)
			if err := protojson.Unmarshal([]byte(payload), back); err != nil || !proto.Equal(back, tt.ev.Message()) {
				t.Fatalf("payload %s does not decode to the event: %v", payload, err)
			}
			again, _ := n.Normalise(tt.ev, Source{}, testNow)
			if p := again.Inventory; p != nil && p.Payload != payload {
				t.Fatalf("payload not stable: %s vs %s", p.Payload, payload)
			}
			if p := again.Catalog; p != nil && p.Payload != payload {
				t.Fatalf("payload not stable: %s vs %s", p.Payload, payload)
			}
		})
	}
	// The DemandEvent must not alias the raw event.
	ev := Event{Inventory: validInventory()}
	got, _ := n.Normalise(ev, Source{}, testNow)
	ev.Inventory.GetSnapshot().OnHand = 1
	if got.Demand.GetInventory().GetSnapshot().GetOnHand() != 40 {
		t.Fatal("DemandEvent shares the raw event's message")
	}
}
