package events

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/pkg/topics"
	catalogv1 "github.com/stockcast/stockcast/proto/stockcast/catalog/v1"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"
)

// The fuzz targets check invariants of what ingest does with external
// bytes, for any input:
//   - nothing panics;
//   - a rejection carries a reason of the documented set (AllReasons, less
//     the de-duplication's conflict) and a detail of at most MaxDetailLen bytes;
//   - an accepted event survives its own encodings: its protobuf (what the
//     gRPC API writes to the raw topics) and its JSON decode to the same
//     message, which validates again with the same content hash;
//   - its normalised form is consistent: the DemandEvent's key is the
//     event's series key with valid parts, the day is the UTC date of
//     occurred_at, demand is +quantity or -quantity by type, and the
//     DemandEvent fits the producer's record limit.
// Seed corpora are in testdata/fuzz/<target>; `go test` runs them as
// tests, `make fuzz` searches further.

var fuzzTopics = []string{topics.Orders, topics.Inventory, topics.Catalog, "other.v1"}

var documentedReasons = func() map[Reason]bool {
	m := map[Reason]bool{}
	for _, r := range AllReasons {
		if r != ReasonDuplicateConflict {
			m[r] = true
		}
	}
	return m
}()

func checkRejection(t *testing.T, r *Rejection) {
	t.Helper()
	if !documentedReasons[r.Reason] {
		t.Fatalf("rejection with undocumented reason %q (%s)", r.Reason, r.Detail)
	}
	if r.Detail == "" || len(r.Detail) > MaxDetailLen || !utf8.ValidString(r.Detail) {
		t.Fatalf("rejection %s has a detail of %d bytes (valid UTF-8: %v)", r.Reason, len(r.Detail), utf8.ValidString(r.Detail))
	}
}

// checkEvent validates ev as ingest does and checks the invariants of an
// accepted event. It reports whether ev was accepted.
func checkEvent(t *testing.T, ev Event, now time.Time) bool {
	t.Helper()
	r := Validate(ev, now)
	if r != nil {
		checkRejection(t, r)
		return false
	}
	hash, err := ev.Hash()
	if err != nil {
		t.Fatalf("hash of an accepted event: %v", err)
	}

	// Its protobuf encoding, without a content-type header (as the gRPC
	// API and most platforms write it), decodes to the same event.
	b, err := ev.Encode()
	if err != nil {
		t.Fatalf("encode an accepted event: %v", err)
	}
	again, rej := Decode(ev.Topic(), "", b)
	if rej != nil {
		t.Fatalf("the protobuf encoding of an accepted event is refused: %v\nevent: %v", rej, ev.Message())
	}
	if !proto.Equal(again.Message(), ev.Message()) {
		t.Fatalf("protobuf round trip changed the event:\n got %v\nwant %v", again.Message(), ev.Message())
	}
	if r := Validate(again, now); r != nil {
		t.Fatalf("decoded again, the accepted event is refused: %v", r)
	}
	if h, _ := again.Hash(); h != hash {
		t.Fatalf("protobuf round trip changed the hash")
	}
	// And on any raw topic with its stockcast-event-type header.
	for _, topic := range fuzzTopics {
		other, rej := DecodeRecord(topic, ev.EventType(), "", b)
		if rej != nil {
			t.Fatalf("the protobuf encoding of an accepted event with header %s on %s is refused: %v", ev.EventType(), topic, rej)
		}
		if !proto.Equal(other.Message(), ev.Message()) {
			t.Fatalf("decoded with header %s on %s as another event:\n got %v\nwant %v", ev.EventType(), topic, other.Message(), ev.Message())
		}
	}
	// And so does its JSON, when it fits the size limit.
	js, err := protojson.Marshal(ev.Message())
	if err != nil {
		t.Fatalf("marshal an accepted event as JSON: %v", err)
	}
	if len(js) <= MaxEventBytes {
		fromJSON, rej := Decode(ev.Topic(), topics.ContentTypeJSON, js)
		if rej != nil {
			t.Fatalf("the JSON of an accepted event is refused: %v\n%s", rej, js)
		}
		if h, _ := fromJSON.Hash(); h != hash {
			t.Fatalf("JSON round trip changed the event:\n got %v\nwant %v", fromJSON.Message(), ev.Message())
		}
	}

	// The normalised form.
	norm := NewNormaliser(ParseSKUList(DefaultNonProductSKUs))
	src := Source{Topic: ev.Topic(), Partition: 1, Offset: 42}
	n, err := norm.Normalise(ev, src, now)
	if err != nil {
		t.Fatalf("normalise an accepted event: %v", err)
	}
	occurred := ev.OccurredAt().AsTime()
	day := occurred.UTC().Format(DayLayout)
	if n.Demand == nil {
		if ev.Order == nil || norm.IsDemand(ev.SKU()) {
			t.Fatalf("no DemandEvent for an accepted %v", ev.Message())
		}
	} else {
		de := n.Demand
		if de.GetSeriesKey() != ev.Key() || de.GetEventId() != ev.EventID() || de.GetDay() != day || !de.GetOccurredAt().AsTime().Equal(occurred) {
			t.Fatalf("DemandEvent %v does not match the event %v", de, ev.Message())
		}
		if r := checkKey("sku", de.GetSku(), ReasonMissingSKU); r != nil {
			t.Fatalf("DemandEvent sku: %v", r)
		}
		if de.GetLocation() != "" || ev.Catalog.GetItem() == nil {
			if r := checkKey("location", de.GetLocation(), ReasonMissingLocation); r != nil {
				t.Fatalf("DemandEvent location: %v", r)
			}
			if de.GetSeriesKey() != topics.SeriesKey(de.GetSku(), de.GetLocation()) {
				t.Fatalf("series key %q is not sku|location", de.GetSeriesKey())
			}
		}
		if size := proto.Size(de); size > 1<<20-1024 {
			t.Fatalf("DemandEvent of %d bytes does not fit a 1 MB record", size)
		}
		if d, ok := de.GetChange().(*demandv1.DemandEvent_Demand); ok {
			want := ev.Order.GetQuantity()
			if ev.Order.GetType() != ordersv1.OrderLineType_ORDER_LINE_TYPE_PLACED {
				want = -want
			}
			if d.Demand.GetQuantity() != want {
				t.Fatalf("demand %v for a %v line of %v", d.Demand.GetQuantity(), ev.Order.GetType(), ev.Order.GetQuantity())
			}
		}
	}
	rows := Rows{}
	rows.Add(n)
	if rows.Len() != 1 {
		t.Fatalf("%d history rows for one event", rows.Len())
	}
	for _, row := range rows.Orders {
		if row.Day.Format(DayLayout) != day || row.SeriesKey != ev.Key() {
			t.Fatalf("order row day %s key %q, want %s %q", row.Day.Format(DayLayout), row.SeriesKey, day, ev.Key())
		}
	}
	return true
}

// FuzzDecode: any bytes on any topic, with any content type.
func FuzzDecode(f *testing.F) {
	order, _ := proto.Marshal(validOrder())
	inv, _ := proto.Marshal(validInventory())
	promo, _ := proto.Marshal(validPromotion())
	f.Add(uint8(0), "", order)
	f.Add(uint8(0), topics.ContentTypeProtobuf, order)
	f.Add(uint8(0), topics.ContentTypeJSON, []byte(orderJSON))
	f.Add(uint8(0), "", []byte(orderJSONCamel))
	f.Add(uint8(1), "", inv)
	f.Add(uint8(2), "", promo)
	f.Add(uint8(3), "", order)
	f.Add(uint8(0), "", []byte{})
	f.Add(uint8(0), "", order[:len(order)/2])
	f.Fuzz(func(t *testing.T, topicIdx uint8, contentType string, value []byte) {
		topic := fuzzTopics[int(topicIdx)%len(fuzzTopics)]
		ev, rej := Decode(topic, contentType, value)
		if rej != nil {
			checkRejection(t, rej)
			if ev.Message() != nil {
				t.Fatalf("rejected (%v) but returned an event", rej)
			}
			return
		}
		if ev.Topic() != topic {
			t.Fatalf("decoded on %s as an event of %s", topic, ev.Topic())
		}
		if len(value) > MaxEventBytes {
			t.Fatalf("decoded a value of %d bytes", len(value))
		}
		checkEvent(t, ev, testNow)
	})
}

// FuzzDecodeRecord: any bytes on any topic with any stockcast-event-type
// header and content type. Without a header it is Decode; with one, the
// event (if any) is of the kind the header names, whatever the topic.
func FuzzDecodeRecord(f *testing.F) {
	order, _ := proto.Marshal(validOrder())
	inv, _ := proto.Marshal(validInventory())
	promo, _ := proto.Marshal(validPromotion())
	f.Add(uint8(0), "", "", order)
	f.Add(uint8(0), topics.EventTypeInventory, "", inv)
	f.Add(uint8(1), topics.EventTypeOrderLine, topics.ContentTypeJSON, []byte(orderJSON))
	f.Add(uint8(0), topics.EventTypeCatalog, "", promo)
	f.Add(uint8(3), topics.EventTypeInventory, "", inv)
	f.Add(uint8(0), topics.EventTypeInventory, "", order)
	f.Add(uint8(0), "stock", "", inv)
	f.Add(uint8(2), "\x00", "", []byte{})
	f.Fuzz(func(t *testing.T, topicIdx uint8, eventType, contentType string, value []byte) {
		topic := fuzzTopics[int(topicIdx)%len(fuzzTopics)]
		ev, rej := DecodeRecord(topic, eventType, contentType, value)
		if eventType == "" {
			ev2, rej2 := Decode(topic, contentType, value)
			if !proto.Equal(ev.Message(), ev2.Message()) || (rej == nil) != (rej2 == nil) || (rej != nil && *rej != *rej2) {
				t.Fatalf("without a header DecodeRecord = %v, %v; Decode = %v, %v", ev.Message(), rej, ev2.Message(), rej2)
			}
		}
		if rej != nil {
			checkRejection(t, rej)
			if ev.Message() != nil {
				t.Fatalf("rejected (%v) but returned an event", rej)
			}
			if _, known := eventTypeTopics[eventType]; eventType != "" && !known && rej.Reason != ReasonUnknownEventType {
				t.Fatalf("header %q refused with %s, want %s", eventType, rej.Reason, ReasonUnknownEventType)
			}
			return
		}
		if eventType != "" && ev.EventType() != eventType {
			t.Fatalf("header %q decoded as %s", eventType, ev.EventType())
		}
		checkEvent(t, ev, testNow)
	})
}

// FuzzOrderLine: an order line built from arbitrary field values, the way
// a platform's JSON or protobuf could carry them.
func FuzzOrderLine(f *testing.F) {
	v := validOrder()
	f.Add(v.GetEventId(), v.GetSku(), v.GetLocation(), int32(1), v.GetQuantity(), v.GetUnitPrice(), v.GetCurrency(), v.GetOccurredAt().GetSeconds(), int32(0), v.GetDescription())
	f.Add("or-1", "85123A|x", "online", int32(2), 0.0, -1.0, "gbp", int64(253402300799), int32(0), "")
	f.Add(" ", "a\u202eb", "on\x00line", int32(99), math.NaN(), math.Inf(1), "", int64(-62135596800), int32(-1), "")
	f.Add(strings.Repeat("i", 123), "POST", "online", int32(3), 1e6, 1e7, "EUR", int64(946684800), int32(999999999), "d")
	f.Fuzz(func(t *testing.T, id, sku, location string, typ int32, qty, price float64, currency string, sec int64, nanos int32, desc string) {
		ev := Event{Order: &ordersv1.OrderLineEvent{
			EventId: id, Sku: sku, Location: location, Type: ordersv1.OrderLineType(typ), Quantity: qty, UnitPrice: price,
			Currency: currency, OccurredAt: &timestamppb.Timestamp{Seconds: sec, Nanos: nanos}, Description: desc,
		}}
		if !checkEvent(t, ev, testNow) {
			return
		}
		// What an accepted line promises.
		o := ev.Order
		if !(o.GetQuantity() > 0 && o.GetQuantity() <= MaxQuantity) || !(o.GetUnitPrice() >= 0 && o.GetUnitPrice() <= MaxPrice) {
			t.Fatalf("accepted quantity %v price %v", o.GetQuantity(), o.GetUnitPrice())
		}
		at := o.GetOccurredAt().AsTime()
		if at.Before(Oldest) || at.After(testNow.Add(MaxFuture)) {
			t.Fatalf("accepted occurred_at %s", at)
		}
		if len(o.GetEventId()) > MaxEventIDLen || strings.ContainsAny(o.GetSku()+o.GetLocation(), "|\x00\n") {
			t.Fatalf("accepted id %q sku %q location %q", o.GetEventId(), o.GetSku(), o.GetLocation())
		}
	})
}

// FuzzInventory: stock movements with arbitrary quantities and times.
func FuzzInventory(f *testing.F) {
	f.Add("inv-1", "85123A", "online", uint8(0), 40.0, 2.0, "", testNow.Unix(), testNow.Unix())
	f.Add("inv-2", "85123A", "online", uint8(3), 24.0, 0.0, "po-1", testNow.Unix(), int64(253402300799))
	f.Add("inv-3", "85123A", "online", uint8(1), -2e6, 0.0, "damaged", testNow.Unix(), int64(0))
	f.Add("inv-4", "85123A", "online", uint8(6), 0.0, 0.0, "", testNow.Unix(), int64(0))
	f.Fuzz(func(t *testing.T, id, sku, location string, kind uint8, q1, q2 float64, ref string, sec, expected int64) {
		ev := &inventoryv1.InventoryEvent{EventId: id, Sku: sku, Location: location, OccurredAt: &timestamppb.Timestamp{Seconds: sec}}
		switch kind % 7 {
		case 0:
			ev.Kind = &inventoryv1.InventoryEvent_Snapshot{Snapshot: &inventoryv1.Snapshot{OnHand: q1, Reserved: q2}}
		case 1:
			ev.Kind = &inventoryv1.InventoryEvent_Adjustment{Adjustment: &inventoryv1.Adjustment{Delta: q1, Reason: ref}}
		case 2:
			ev.Kind = &inventoryv1.InventoryEvent_Receipt{Receipt: &inventoryv1.Receipt{PurchaseOrderId: ref, Quantity: q1}}
		case 3:
			ev.Kind = &inventoryv1.InventoryEvent_PurchaseOrderPlaced{PurchaseOrderPlaced: &inventoryv1.PurchaseOrderPlaced{
				PurchaseOrderId: ref, Quantity: q1, ExpectedAt: &timestamppb.Timestamp{Seconds: expected}}}
		case 4:
			ev.Kind = &inventoryv1.InventoryEvent_StockoutStarted{StockoutStarted: &inventoryv1.StockoutStarted{}}
		case 5:
			ev.Kind = &inventoryv1.InventoryEvent_StockoutEnded{StockoutEnded: &inventoryv1.StockoutEnded{}}
		}
		if !checkEvent(t, Event{Inventory: ev}, testNow) {
			return
		}
		if po := ev.GetPurchaseOrderPlaced(); po != nil {
			if at := po.GetExpectedAt().AsTime(); at.Before(Oldest) || at.After(Latest) {
				t.Fatalf("accepted expected_at %s", at)
			}
		}
		finite := func(q float64) bool { return !math.IsNaN(q) && !math.IsInf(q, 0) }
		switch {
		case ev.GetSnapshot() != nil && !(finite(q1) && finite(q2) && q1 >= 0 && q2 >= 0),
			ev.GetAdjustment() != nil && !finite(q1),
			(ev.GetReceipt() != nil || ev.GetPurchaseOrderPlaced() != nil) && !(q1 > 0 && q1 <= MaxQuantity):
			t.Fatalf("accepted quantities %v, %v in %v", q1, q2, ev)
		}
	})
}

// FuzzPromotion: promotion windows and discounts.
func FuzzPromotion(f *testing.F) {
	f.Add("cat-2", "85123A", "online", "xmas", testNow.Unix(), testNow.Add(72*time.Hour).Unix(), 20.0)
	f.Add("cat-2", "85123A", "online", "", testNow.Unix(), testNow.Unix(), 101.0)
	f.Add("cat-2", "85123A", "online", "p", int64(-2208988800), int64(253402300799), math.NaN())
	f.Fuzz(func(t *testing.T, id, sku, location, promoID string, start, end int64, discount float64) {
		ev := &catalogv1.CatalogEvent{EventId: id, OccurredAt: timestamppb.New(testNow),
			Kind: &catalogv1.CatalogEvent_Promotion{Promotion: &catalogv1.PromotionWindow{
				Sku: sku, Location: location, PromotionId: promoID,
				StartsAt: &timestamppb.Timestamp{Seconds: start}, EndsAt: &timestamppb.Timestamp{Seconds: end}, DiscountPct: discount,
			}}}
		if !checkEvent(t, Event{Catalog: ev}, testNow) {
			return
		}
		p := ev.GetPromotion()
		s, e := p.GetStartsAt().AsTime(), p.GetEndsAt().AsTime()
		if !e.After(s) || s.Before(Oldest) || e.After(Latest) || !(discount >= 0 && discount <= 100) {
			t.Fatalf("accepted promotion %s..%s discount %v", s, e, discount)
		}
	})
}

// FuzzJSON: JSON as platforms send it, with the content-type header, on
// each raw topic; the seeds are real events and near misses.
func FuzzJSON(f *testing.F) {
	f.Add(uint8(0), []byte(orderJSON))
	f.Add(uint8(0), []byte(orderJSONCamel))
	f.Add(uint8(0), []byte(`{"event_id":"a","event_id":"b"}`))
	f.Add(uint8(0), []byte(`{"eventId":"or-1","quantity":"NaN","occurredAt":"9999-12-31T23:59:59Z"}`))
	f.Add(uint8(1), []byte(`{"event_id":"inv-1","occurred_at":"2011-12-09T10:00:00Z","sku":"85123A","location":"online","snapshot":{"on_hand":"Infinity"}}`))
	f.Add(uint8(2), []byte(`{"event_id":"cat-1","occurred_at":"2011-12-09T10:00:00Z","price_change":{"sku":"85123A","location":"online","price":2.95,"currency":"GBP"}}`))
	f.Add(uint8(2), []byte(`{"event_id":"cat-3","occurred_at":"2011-12-09T10:00:00Z","item":{"sku":"85123A","pack_size":6}}`))
	f.Fuzz(func(t *testing.T, topicIdx uint8, value []byte) {
		topic := fuzzTopics[int(topicIdx)%3]
		ev, rej := Decode(topic, topics.ContentTypeJSON, value)
		if rej != nil {
			checkRejection(t, rej)
			return
		}
		// Declared JSON is only ever read as JSON.
		if !bytes.Contains(value, []byte("{")) {
			t.Fatalf("accepted JSON without an object: %q", value)
		}
		checkEvent(t, ev, testNow)
	})
}
