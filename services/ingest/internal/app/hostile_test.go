package app

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
	catalogv1 "github.com/stockcast/stockcast/proto/stockcast/catalog/v1"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	ingestv1 "github.com/stockcast/stockcast/proto/stockcast/ingest/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"
	"github.com/stockcast/stockcast/services/ingest/internal/consumer"
	"github.com/stockcast/stockcast/services/ingest/internal/events"
	"github.com/stockcast/stockcast/services/ingest/internal/publish"
)

// Outcomes of a hostile input besides a rejection reason.
const (
	accepted  = "accepted"  // stored once in ClickHouse, one DemandEvent (order lines of goods and all other events)
	duplicate = "duplicate" // dropped: neither stored again nor published nor dead-lettered
)

// hostileCase is one record a platform (or an attacker with write access
// to a raw topic) might produce, with what ingest must make of it.
type hostileCase struct {
	name string
	rec  *kgo.Record
	want string // accepted, duplicate or a events.Reason
	// For accepted order lines and stock movements: the sku and location
	// ClickHouse must hold, byte for byte.
	sku, location string
}

// hostileOrder is a valid order line of a series no good event uses.
func hostileOrder(id string, f func(*ordersv1.OrderLineEvent)) *ordersv1.OrderLineEvent {
	ev := orderLine(id, "HOSTILE", placed, 1)
	if f != nil {
		f(ev)
	}
	return ev
}

func jsonRecord(topic, key, value string) *kgo.Record {
	return &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(value),
		Headers: []kgo.RecordHeader{{Key: topics.HeaderContentType, Value: []byte(topics.ContentTypeJSON)}}}
}

// orderJSON is a valid order line as JSON with the given fields replaced
// or added (raw JSON values).
func orderJSON(id string, fields ...string) string {
	base := map[string]string{
		"event_id": fmt.Sprintf("%q", id), "occurred_at": `"2011-12-09T10:00:00Z"`, "type": `"ORDER_LINE_TYPE_PLACED"`,
		"sku": `"HOSTILE"`, "location": `"online"`, "quantity": "1", "unit_price": "2.55", "currency": `"GBP"`,
	}
	var extra []string
	for i := 0; i+1 < len(fields); i += 2 {
		if _, ok := base[fields[i]]; ok {
			base[fields[i]] = fields[i+1]
		} else {
			extra = append(extra, fmt.Sprintf("%q:%s", fields[i], fields[i+1]))
		}
	}
	keys := make([]string, 0, len(base))
	for k := range base {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%q:%s", k, base[k]))
	}
	return "{" + strings.Join(append(parts, extra...), ",") + "}"
}

func promotion(id string, start, end time.Time, discount float64) *catalogv1.CatalogEvent {
	return &catalogv1.CatalogEvent{EventId: id, OccurredAt: timestamppb.New(occurred),
		Kind: &catalogv1.CatalogEvent_Promotion{Promotion: &catalogv1.PromotionWindow{Sku: "HOSTILE", Location: "online",
			PromotionId: "p", StartsAt: timestamppb.New(start), EndsAt: timestamppb.New(end), DiscountPct: discount}}}
}

func hostileInventory(id string, kind any) *inventoryv1.InventoryEvent {
	ev := inventoryEvent(id, kind)
	ev.Sku = "HOSTILE"
	switch k := kind.(type) {
	case *inventoryv1.Adjustment:
		ev.Kind = &inventoryv1.InventoryEvent_Adjustment{Adjustment: k}
	case nil:
		ev.Kind = nil
	}
	return ev
}

func hostileCases(t *testing.T) []hostileCase {
	t.Helper()
	pb := func(topic string, m proto.Message) *kgo.Record { return pbRecord(t, topic, "HOSTILE|online", m) }
	o := func(id string, f func(*ordersv1.OrderLineEvent)) *kgo.Record {
		return pb(topics.Orders, hostileOrder(id, f))
	}
	j := func(id string, fields ...string) *kgo.Record {
		return jsonRecord(topics.Orders, "HOSTILE|online", orderJSON(id, fields...))
	}
	at := func(year int) *timestamppb.Timestamp {
		return timestamppb.New(time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC))
	}

	// Bytes that protobuf encoders refuse to write: a sku that is not UTF-8.
	notUTF8 := mustMarshal(t, hostileOrder("h-not-utf8", func(e *ordersv1.OrderLineEvent) { e.Sku = "85123Z" }))
	notUTF8 = bytes.Replace(notUTF8, []byte("85123Z"), []byte("85123\xff"), 1)
	full := mustMarshal(t, hostileOrder("h-truncated", nil))
	// 10 MB of JSON that compresses to a few KB, so the broker (1 MB
	// limit on the compressed batch) takes it.
	tenMB := orderJSON("h-10mb", "description", `"`+strings.Repeat("A", 10<<20)+`"`)
	justOver := orderJSON("h-64k", "description", `""`)
	justOver = orderJSON("h-64k", "description", `"`+strings.Repeat("B", events.MaxEventBytes+1-len(justOver))+`"`)
	bigKey := pb(topics.Orders, hostileOrder("h-big-key", func(e *ordersv1.OrderLineEvent) { e.Quantity = -1 }))
	bigKey.Key = bytes.Repeat([]byte("K"), 200_000)
	// typed sets the stockcast-event-type header (a series' kinds of
	// events on one topic, docs/design.md "Delivery").
	typed := func(r *kgo.Record, eventType string) *kgo.Record {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: topics.HeaderEventType, Value: []byte(eventType)})
		return r
	}
	wrongKey := pb(topics.Orders, hostileOrder("h-wrong-key", nil))
	wrongKey.Key = []byte("SOMETHING|else")

	return []hostileCase{
		// Wrong types and malformed encodings.
		{name: "json quantity is a word", rec: j("h-q-word", "quantity", `"three"`), want: "undecodable"},
		{name: "json quantity is a bool", rec: j("h-q-bool", "quantity", "true"), want: "undecodable"},
		{name: "json line_number over int32", rec: j("h-line", "line_number", "1e12"), want: "undecodable"},
		{name: "json duplicate key", rec: jsonRecord(topics.Orders, "HOSTILE|online", `{"event_id":"a","event_id":"b"}`), want: "undecodable"},
		{name: "json null", rec: jsonRecord(topics.Orders, "HOSTILE|online", "null"), want: "undecodable"},
		{name: "json array", rec: jsonRecord(topics.Orders, "HOSTILE|online", `[{"event_id":"h-array"}]`), want: "undecodable"},
		{name: "json not utf-8", rec: jsonRecord(topics.Orders, "HOSTILE|online", orderJSON("h-json-utf8", "sku", "\"A\xffB\"")), want: "undecodable"},
		{name: "json header on protobuf bytes", rec: func() *kgo.Record {
			r := o("h-pb-as-json", nil)
			r.Headers = []kgo.RecordHeader{{Key: topics.HeaderContentType, Value: []byte(topics.ContentTypeJSON)}}
			return r
		}(), want: "undecodable"},
		{name: "protobuf sku not utf-8", rec: &kgo.Record{Topic: topics.Orders, Key: []byte("HOSTILE|online"), Value: notUTF8}, want: "undecodable"},
		{name: "truncated protobuf", rec: &kgo.Record{Topic: topics.Orders, Key: []byte("HOSTILE|online"), Value: full[:len(full)-5]}, want: "undecodable"},
		{name: "random bytes", rec: &kgo.Record{Topic: topics.Orders, Key: []byte("HOSTILE|online"), Value: []byte{0x08, 0x96, 0x01, 0xff, 0xfe, 0x00, 0x13}}, want: "undecodable"},
		{name: "empty value (tombstone)", rec: &kgo.Record{Topic: topics.Orders, Key: []byte("HOSTILE|online")}, want: "undecodable"},
		{name: "stock movement on orders.v1", rec: pb(topics.Orders, hostileInventory("h-inv-on-orders", &inventoryv1.Snapshot{OnHand: 1})), want: "undecodable"},
		{name: "order line on inventory.v1", rec: pb(topics.Inventory, hostileOrder("h-order-on-inv", nil)), want: "undecodable"},
		{name: "price change JSON on orders.v1", rec: jsonRecord(topics.Orders, "HOSTILE|online",
			`{"event_id":"h-price-on-orders","price_change":{"sku":"HOSTILE","location":"online","price":1}}`), want: "undecodable"},
		// Sizes.
		{name: "10 MB payload (compressed by the producer)", rec: jsonRecord(topics.Orders, "HOSTILE|online", tenMB), want: "event_too_large"},
		{name: "64 KiB + 1 byte payload", rec: jsonRecord(topics.Orders, "HOSTILE|online", justOver), want: "event_too_large"},
		{name: "200 KB record key on an invalid line", rec: bigKey, want: "quantity_not_positive"},

		// Numbers.
		{name: "json quantity NaN", rec: j("h-nan", "quantity", `"NaN"`), want: "quantity_absurd"},
		{name: "json quantity Infinity", rec: j("h-inf", "quantity", `"Infinity"`), want: "quantity_absurd"},
		{name: "quantity 1e6+1", rec: o("h-huge", func(e *ordersv1.OrderLineEvent) { e.Quantity = 1e6 + 1 }), want: "quantity_absurd"},
		{name: "quantity max float64", rec: o("h-maxfloat", func(e *ordersv1.OrderLineEvent) { e.Quantity = math.MaxFloat64 }), want: "quantity_absurd"},
		{name: "quantity exactly 1e6", rec: o("h-1e6", func(e *ordersv1.OrderLineEvent) { e.Quantity = 1e6 }), want: accepted, sku: "HOSTILE", location: "online"},
		{name: "zero quantity", rec: o("h-zero", func(e *ordersv1.OrderLineEvent) { e.Quantity = 0 }), want: "quantity_not_positive"},
		{name: "negative zero quantity", rec: o("h-negzero", func(e *ordersv1.OrderLineEvent) { e.Quantity = math.Copysign(0, -1) }), want: "quantity_not_positive"},
		{name: "negative price", rec: o("h-negprice", func(e *ordersv1.OrderLineEvent) { e.UnitPrice = -0.01 }), want: "price_negative"},
		{name: "price 1e300", rec: o("h-bigprice", func(e *ordersv1.OrderLineEvent) { e.UnitPrice = 1e300 }), want: "price_absurd"},
		{name: "snapshot on hand NaN (json)", rec: jsonRecord(topics.Inventory, "HOSTILE|online",
			`{"event_id":"h-snap-nan","occurred_at":"2011-12-09T10:00:00Z","sku":"HOSTILE","location":"online","snapshot":{"on_hand":"NaN"}}`), want: "quantity_absurd"},
		{name: "adjustment of -1e7", rec: pb(topics.Inventory, hostileInventory("h-adj", &inventoryv1.Adjustment{Delta: -1e7})), want: "quantity_absurd"},
		{name: "price change Infinity (json)", rec: jsonRecord(topics.Catalog, "HOSTILE|online",
			`{"event_id":"h-price-inf","occurred_at":"2011-12-09T10:00:00Z","price_change":{"sku":"HOSTILE","location":"online","price":"Infinity","currency":"GBP"}}`), want: "price_absurd"},
		{name: "discount 150%", rec: pb(topics.Catalog, promotion("h-disc", occurred, occurred.Add(time.Hour), 150)), want: "discount_out_of_range"},
		{name: "unknown enum number", rec: o("h-enum", func(e *ordersv1.OrderLineEvent) { e.Type = 99 }), want: "unknown_order_line_type"},
		{name: "lower-case currency", rec: o("h-gbp", func(e *ordersv1.OrderLineEvent) { e.Currency = "gbp" }), want: "invalid_currency"},

		// Keys and ids.
		{name: "NUL in sku", rec: o("h-nul", func(e *ordersv1.OrderLineEvent) { e.Sku = "851\x0023A" }), want: "invalid_key"},
		{name: "RTL override in sku", rec: o("h-rtl", func(e *ordersv1.OrderLineEvent) { e.Sku = "85123A\u202eevil" }), want: "invalid_key"},
		{name: "zero-width space in location", rec: o("h-zwsp", func(e *ordersv1.OrderLineEvent) { e.Location = "on\u200bline" }), want: "invalid_key"},
		{name: "trailing space in sku", rec: o("h-space", func(e *ordersv1.OrderLineEvent) { e.Sku = "85123A " }), want: "invalid_key"},
		{name: "pipe in sku (the key separator)", rec: o("h-pipe", func(e *ordersv1.OrderLineEvent) { e.Sku = "85123A|online" }), want: "invalid_key"},
		{name: "pipe in location", rec: o("h-pipe-loc", func(e *ordersv1.OrderLineEvent) { e.Location = "a|b" }), want: "invalid_key"},
		{name: "sku of 10 000 bytes", rec: o("h-longsku", func(e *ordersv1.OrderLineEvent) { e.Sku = strings.Repeat("S", 10_000) }), want: "invalid_key"},
		{name: "item sku is just a pipe", rec: pb(topics.Catalog, &catalogv1.CatalogEvent{EventId: "h-item-pipe", OccurredAt: timestamppb.New(occurred),
			Kind: &catalogv1.CatalogEvent_Item{Item: &catalogv1.ItemAttributes{Sku: "|"}}}), want: "invalid_key"},
		{name: "missing event id", rec: o("", nil), want: "missing_event_id"},
		{name: "blank event id", rec: o(" \t ", nil), want: "missing_event_id"},
		{name: "event id with a newline (log injection)", rec: o("h-1\nlevel=ERROR msg=forged", nil), want: "invalid_event_id"},
		{name: "event id of 129 bytes", rec: o(strings.Repeat("i", 129), nil), want: "event_id_too_long"},
		{name: "sql in sku", rec: o("h-sql", func(e *ordersv1.OrderLineEvent) { e.Sku = "'; DROP TABLE order_lines; --" }),
			want: accepted, sku: "'; DROP TABLE order_lines; --", location: "online"},
		{name: "quotes and backslashes in sku and location", rec: o("h-quotes", func(e *ordersv1.OrderLineEvent) {
			e.Sku, e.Location = `O'Brien\"x\\`, "loc'\\n"
		}), want: accepted, sku: `O'Brien\"x\\`, location: "loc'\\n"},
		{name: "CJK, emoji and combining marks in sku", rec: o("h-unicode", func(e *ordersv1.OrderLineEvent) { e.Sku = "杯子☕e\u0301" }),
			want: accepted, sku: "杯子☕e\u0301", location: "online"},
		{name: "unknown SKU (never in the catalog)", rec: o("h-unknown-sku", func(e *ordersv1.OrderLineEvent) { e.Sku = "NEVER-SEEN" }),
			want: accepted, sku: "NEVER-SEEN", location: "online"},
		{name: "record key not the event's series", rec: wrongKey, want: accepted, sku: "HOSTILE", location: "online"},

		// Time.
		{name: "year 9999", rec: o("h-9999", func(e *ordersv1.OrderLineEvent) { e.OccurredAt = at(9999) }), want: "occurred_at_in_future"},
		{name: "year 0 (before the Timestamp range)", rec: o("h-year0", func(e *ordersv1.OrderLineEvent) {
			e.OccurredAt = &timestamppb.Timestamp{Seconds: -62167219200}
		}), want: "missing_occurred_at"},
		{name: "year 1999", rec: o("h-1999", func(e *ordersv1.OrderLineEvent) { e.OccurredAt = at(1999) }), want: "occurred_at_too_old"},
		{name: "missing occurred_at", rec: o("h-no-time", func(e *ordersv1.OrderLineEvent) { e.OccurredAt = nil }), want: "missing_occurred_at"},
		{name: "very late: 2000-01-01", rec: o("h-late", func(e *ordersv1.OrderLineEvent) { e.OccurredAt = at(2000) }),
			want: accepted, sku: "HOSTILE", location: "online"},
		{name: "out of order: a day before the previous lines", rec: o("h-ooo", func(e *ordersv1.OrderLineEvent) {
			e.OccurredAt = timestamppb.New(occurred.Add(-24 * time.Hour))
		}), want: accepted, sku: "HOSTILE", location: "online"},
		{name: "purchase order expected in 9999", rec: pb(topics.Inventory, func() *inventoryv1.InventoryEvent {
			ev := hostileInventory("h-po-9999", nil)
			ev.Kind = &inventoryv1.InventoryEvent_PurchaseOrderPlaced{PurchaseOrderPlaced: &inventoryv1.PurchaseOrderPlaced{
				PurchaseOrderId: "po", Quantity: 5, ExpectedAt: at(9999)}}
			return ev
		}()), want: "missing_expected_at"},
		{name: "promotion ending in 9999", rec: pb(topics.Catalog, promotion("h-promo-9999", occurred, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), 10)),
			want: "invalid_promotion_window"},
		{name: "promotion starting in 1900", rec: pb(topics.Catalog, promotion("h-promo-1900", time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), occurred, 10)),
			want: "invalid_promotion_window"},
		{name: "promotion ending before it starts", rec: pb(topics.Catalog, promotion("h-promo-back", occurred, occurred.Add(-time.Hour), 10)),
			want: "invalid_promotion_window"},
		{name: "inventory event without a kind", rec: pb(topics.Inventory, hostileInventory("h-nokind", nil)), want: "unknown_inventory_kind"},

		// Duplicates (the first line of the pair is accepted).
		{name: "first of a duplicated id", rec: o("h-dup", nil), want: accepted, sku: "HOSTILE", location: "online"},
		{name: "same id, same content", rec: o("h-dup", nil), want: duplicate},
		{name: "same id, same content as JSON", rec: j("h-dup", "order_id", `"536365"`, "line_number", "1", "customer_id", `"17850"`,
			"country", `"United Kingdom"`), want: duplicate},
		{name: "same id, other quantity", rec: o("h-dup", func(e *ordersv1.OrderLineEvent) { e.Quantity = 2 }), want: "duplicate_event_id_conflict"},

		// The stockcast-event-type header: the kind of event on any raw topic.
		{name: "stock movement on orders.v1 with header inventory", rec: typed(pb(topics.Orders,
			hostileInventory("h-inv-typed", &inventoryv1.Adjustment{Delta: -2, Reason: "damaged"})), topics.EventTypeInventory),
			want: accepted, sku: "HOSTILE", location: "online"},
		{name: "price change JSON on orders.v1 with header catalog", rec: typed(jsonRecord(topics.Orders, "HOSTILE|online",
			`{"event_id":"h-price-typed","occurred_at":"2011-12-09T10:00:00Z","price_change":{"sku":"HOSTILE","location":"online","price":1,"currency":"GBP"}}`),
			topics.EventTypeCatalog), want: accepted, sku: "HOSTILE", location: "online"},
		{name: "order line on orders.v1 with header inventory", rec: typed(o("h-order-typed-inv", nil), topics.EventTypeInventory), want: "undecodable"},
		{name: "unknown stockcast-event-type header", rec: typed(pb(topics.Orders, hostileInventory("h-inv-unknown-type",
			&inventoryv1.Snapshot{OnHand: 1})), "stock_movement"), want: "unknown_event_type"},
		{name: "stock movement with header inventory on inventory.v1, then dead-lettered there", rec: typed(pb(topics.Inventory,
			hostileInventory("h-inv-typed-bad", &inventoryv1.Adjustment{Delta: math.Inf(-1)})), topics.EventTypeInventory), want: "quantity_absurd"},
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// produceSized writes recs in order like produce, compressed with zstd and
// with a batch limit above 10 MB, as a platform that sends big events
// would configure its producer; it returns the records with their
// partitions and offsets.
func produceSized(t *testing.T, brokers []string, recs []*kgo.Record) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerBatchMaxBytes(16<<20),
		kgo.ProducerBatchCompression(kgo.ZstdCompression()), kgo.MaxBufferedRecords(len(recs)+1))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		out[i] = &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: r.Headers}
	}
	if err := cl.ProduceSync(ctx, out...).FirstErr(); err != nil {
		t.Fatalf("produce hostile input: %v", err)
	}
	return out
}

// TestHostileInputs sends a table of malformed and hostile records, each
// followed by a valid order line, through the real ingest (kfake, Redis,
// ClickHouse) and checks what became of every one of them: stored once
// and published, dropped as a duplicate, or dead-lettered with its reason;
// and that the good lines around them are all there with exact sums.
func TestHostileInputs(t *testing.T) {
	s := stores{brokers: testenv.Kafka(t), redis: testenv.Redis(t), ch: testenv.ClickHouse(t)}
	cases := hostileCases(t)
	if len(cases) < 30 {
		t.Fatalf("only %d hostile cases", len(cases))
	}

	// Every hostile record is followed by a good order line of one of
	// two series, with quantity i+1.
	type input struct {
		rec  *kgo.Record
		c    *hostileCase // nil for the good lines
		good string       // the good line's event id
	}
	var ins []input
	goodSum := map[string]float64{}
	for i := range cases {
		ins = append(ins, input{rec: cases[i].rec, c: &cases[i]})
		sku := []string{"85123A", "71053"}[i%2]
		id := fmt.Sprintf("good-%d", i)
		goodSum[sku+"|online"] += float64(i + 1)
		ins = append(ins, input{rec: pbRecord(t, topics.Orders, sku+"|online", orderLine(id, sku, placed, float64(i+1))), good: id})
	}
	recs := make([]*kgo.Record, len(ins))
	for i, in := range ins {
		recs[i] = in.rec
	}

	app := start(t, s)
	produced := produceSized(t, s.brokers, recs)
	waitCommitted(t, s.brokers, consumer.Group, consumer.Topics...)

	// What ingest did, read back from the broker and ClickHouse.
	dlqBySource := map[string][]*kgo.Record{}
	dlq := dlqRecords(t, s.brokers)
	for _, r := range dlq {
		dlqBySource[header(r, topics.HeaderDLQSource)] = append(dlqBySource[header(r, topics.HeaderDLQSource)], r)
	}
	demandByID := map[string][]*demandv1.DemandEvent{}
	for _, r := range testenv.ReadTopics(t, s.brokers, topics.Demand) {
		var de demandv1.DemandEvent
		if err := proto.Unmarshal(r.Value, &de); err != nil {
			t.Fatal(err)
		}
		demandByID[de.GetEventId()] = append(demandByID[de.GetEventId()], &de)
	}
	type storedRow struct {
		sku, location string
		n             uint64
	}
	stored := map[string]storedRow{} // event id -> row, over the three tables
	ctx := context.Background()
	conn, err := chx.Open(ctx, s.ch)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, table := range []string{"order_lines", "inventory_events", "catalog_events"} {
		rows, err := conn.Query(ctx, "SELECT event_id, any(sku), any(location), count() FROM "+table+" FINAL GROUP BY event_id")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			var r storedRow
			if err := rows.Scan(&id, &r.sku, &r.location, &r.n); err != nil {
				t.Fatal(err)
			}
			if _, ok := stored[id]; ok {
				t.Errorf("event %q stored in two tables", id)
			}
			stored[id] = r
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}

	wantDLQ, wantStored, wantDup := 0, 0, 0
	for i, in := range ins {
		src := fmt.Sprintf("%s/%d/%d", produced[i].Topic, produced[i].Partition, produced[i].Offset)
		if in.c == nil {
			wantStored++
			if r := stored[in.good]; r.n != 1 || len(demandByID[in.good]) != 1 || len(dlqBySource[src]) != 0 {
				t.Errorf("good line %s: stored %+v, %d demand events, %d DLQ records; want once, once, none",
					in.good, r, len(demandByID[in.good]), len(dlqBySource[src]))
			}
			continue
		}
		c := in.c
		id := ""
		if ev, rej := events.DecodeRecord(c.rec.Topic, header(c.rec, topics.HeaderEventType), header(c.rec, topics.HeaderContentType), c.rec.Value); rej == nil {
			id = ev.EventID()
		}
		got := dlqBySource[src]
		switch c.want {
		case accepted:
			wantStored++
			r := stored[id]
			if len(got) != 0 || r.n != 1 || len(demandByID[id]) != 1 {
				t.Errorf("%s: %d DLQ records, stored %+v, %d demand events; want accepted once", c.name, len(got), r, len(demandByID[id]))
				continue
			}
			if r.sku != c.sku || r.location != c.location {
				t.Errorf("%s: ClickHouse holds sku %q location %q, want %q %q", c.name, r.sku, r.location, c.sku, c.location)
			}
			if de := demandByID[id][0]; de.GetSeriesKey() != c.sku+"|"+c.location || de.GetSku() != c.sku {
				t.Errorf("%s: DemandEvent series %q sku %q, want %q", c.name, de.GetSeriesKey(), de.GetSku(), c.sku+"|"+c.location)
			}
		case duplicate:
			wantDup++
			if len(got) != 0 {
				t.Errorf("%s: dead-lettered (%s), want dropped as a duplicate", c.name, header(got[0], topics.HeaderDLQReason))
			}
		default:
			wantDLQ++
			if len(got) != 1 {
				t.Errorf("%s: %d DLQ records, want 1 with reason %s", c.name, len(got), c.want)
				continue
			}
			r := got[0]
			if reason := header(r, topics.HeaderDLQReason); reason != c.want || header(r, topics.HeaderDLQDetail) == "" {
				t.Errorf("%s: DLQ reason %q (%s), want %s", c.name, reason, header(r, topics.HeaderDLQDetail), c.want)
			}
			if r.Topic != topics.DLQ(c.rec.Topic) {
				t.Errorf("%s: on %s, want %s", c.name, r.Topic, topics.DLQ(c.rec.Topic))
			}
			// The original bytes, cut to 64 KiB when larger (and said so).
			wantValue, wantKey, wantCut := c.rec.Value, c.rec.Key, ""
			if len(wantValue) > events.MaxEventBytes {
				wantValue, wantCut = wantValue[:events.MaxEventBytes], fmt.Sprintf("value=%d", len(c.rec.Value))
			}
			if len(wantKey) > events.MaxEventBytes {
				wantKey, wantCut = wantKey[:events.MaxEventBytes], fmt.Sprintf("key=%d", len(c.rec.Key))
			}
			if !bytes.Equal(r.Value, wantValue) || !bytes.Equal(r.Key, wantKey) || header(r, publish.HeaderDLQTruncated) != wantCut {
				t.Errorf("%s: DLQ record has %d value bytes, %d key bytes, truncated %q; want %d, %d, %q", c.name,
					len(r.Value), len(r.Key), header(r, publish.HeaderDLQTruncated), len(wantValue), len(wantKey), wantCut)
			}
			if id != "" && stored[id].n != 0 && c.want != "duplicate_event_id_conflict" {
				t.Errorf("%s: rejected but stored", c.name)
			}
		}
	}
	if len(dlq) != wantDLQ {
		t.Errorf("%d DLQ records, want %d", len(dlq), wantDLQ)
	}
	if len(stored) != wantStored {
		t.Errorf("%d events stored, want %d", len(stored), wantStored)
	}
	if got := len(demandByID); got != wantStored {
		t.Errorf("%d event ids on demand.v1, want %d", got, wantStored)
	}
	// The good lines' demand, exactly.
	rows, err := conn.Query(ctx, "SELECT series_key, sum(quantity) FROM order_lines FINAL WHERE event_id LIKE 'good-%' GROUP BY series_key")
	if err != nil {
		t.Fatal(err)
	}
	gotSum := map[string]float64{}
	for rows.Next() {
		var k string
		var q float64
		if err := rows.Scan(&k, &q); err != nil {
			t.Fatal(err)
		}
		gotSum[k] = q
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(gotSum) != fmt.Sprint(goodSum) {
		t.Errorf("good demand per series %v, want %v", gotSum, goodSum)
	}
	if got := app.metric(t, "stockcast_ingest_duplicates_total", `topic="orders.v1"`); got != float64(wantDup) {
		t.Errorf("duplicates metric %v, want %d", got, wantDup)
	}
	t.Logf("%d hostile cases: %d accepted, %d duplicates, %d dead-lettered; %d good lines around them",
		len(cases), len(cases)-wantDup-wantDLQ, wantDup, wantDLQ, len(ins)-len(cases))

	t.Run("grpc", func(t *testing.T) { hostilePushes(t, s, app) })
	app.stop(t)
}

// hostilePushes sends oversized requests and events over gRPC.
func hostilePushes(t *testing.T, s stores, app *running) {
	conn, err := grpc.NewClient(app.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cl := ingestv1.NewIngestServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// One 10 MB event in a request under the 16 MiB limit: refused for its
	// size and dead-lettered cut to 64 KiB; the good one beside it goes through.
	big := hostileOrder("push-10mb", func(e *ordersv1.OrderLineEvent) { e.Description = strings.Repeat("A", 10<<20) })
	resp, err := cl.PublishOrderLines(ctx, &ingestv1.PublishOrderLinesRequest{Events: []*ordersv1.OrderLineEvent{
		big, orderLine("push-good", "85123A", placed, 1),
	}})
	if err != nil {
		t.Fatalf("push of a 10 MB event: %v", err)
	}
	res := resp.GetResult()
	if res.GetAccepted() != 1 || len(res.GetRejected()) != 1 || res.GetRejected()[0].GetReason() != "event_too_large" || res.GetRejected()[0].GetIndex() != 0 {
		t.Fatalf("push of a 10 MB event: %v", res)
	}
	var found []*kgo.Record
	for _, r := range testenv.ReadTopics(t, s.brokers, topics.DLQ(topics.Orders)) {
		if header(r, topics.HeaderDLQSource) == "grpc/orders.v1/0" && header(r, topics.HeaderDLQReason) == "event_too_large" {
			found = append(found, r)
		}
	}
	want := mustMarshal(t, big)
	if len(found) != 1 || !bytes.Equal(found[0].Value, want[:events.MaxEventBytes]) ||
		header(found[0], publish.HeaderDLQTruncated) != fmt.Sprintf("value=%d", len(want)) {
		t.Fatalf("DLQ records of the 10 MB push: %d", len(found))
	}

	// A request over -grpc.max-recv-bytes (16 MiB) is refused whole.
	huge := hostileOrder("push-17mb", func(e *ordersv1.OrderLineEvent) { e.Description = strings.Repeat("A", 17<<20) })
	_, err = cl.PublishOrderLines(ctx, &ingestv1.PublishOrderLinesRequest{Events: []*ordersv1.OrderLineEvent{huge}})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("push of 17 MB: %v, want ResourceExhausted", err)
	}
}
