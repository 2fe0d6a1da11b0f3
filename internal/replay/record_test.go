package replay

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockcast/stockcast/pkg/retail"
	"github.com/stockcast/stockcast/pkg/topics"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"
)

// TestSeriesRecord: with -one-topic every event of a series goes to
// orders.v1 under the series key, its kind in the stockcast-event-type
// header; without it each kind keeps its own topic and no such header.
func TestSeriesRecord(t *testing.T) {
	order := retail.Event{Order: &ordersv1.OrderLineEvent{EventId: "or-1", Sku: "85123A", Location: "online"}}
	stock := retail.Event{Inventory: &inventoryv1.InventoryEvent{EventId: "or-2", Sku: "85123A", Location: "online",
		Kind: &inventoryv1.InventoryEvent_Adjustment{Adjustment: &inventoryv1.Adjustment{Delta: -3}}}}
	hdr := func(r *kgo.Record, key string) string {
		for _, h := range r.Headers {
			if h.Key == key {
				return string(h.Value)
			}
		}
		return ""
	}
	for _, c := range []struct {
		ev            retail.Event
		oneTopic      bool
		topic, evType string
	}{
		{order, false, topics.Orders, ""},
		{stock, false, topics.Inventory, ""},
		{order, true, topics.Orders, topics.EventTypeOrderLine},
		{stock, true, topics.Orders, topics.EventTypeInventory},
	} {
		record := Record
		if c.oneTopic {
			record = SeriesRecord
		}
		r, err := record(c.ev)
		if err != nil {
			t.Fatal(err)
		}
		if r.Topic != c.topic || string(r.Key) != "85123A|online" || hdr(r, topics.HeaderEventType) != c.evType ||
			hdr(r, topics.HeaderEventID) != c.ev.ID() {
			t.Errorf("%s one topic %v: topic %s key %s type %q id %q; want %s, 85123A|online, %q, %s", c.ev.ID(), c.oneTopic,
				r.Topic, r.Key, hdr(r, topics.HeaderEventType), hdr(r, topics.HeaderEventID), c.topic, c.evType, c.ev.ID())
		}
	}
}
