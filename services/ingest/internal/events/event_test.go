package events

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/stockcast/stockcast/pkg/topics"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"
)

// orderJSON is validOrder() as a platform would write it by hand: proto
// field names, a different field order, an integer quantity.
const orderJSON = `{"event_id":"or-2","sku":"85123A","location":"online","occurred_at":"2011-12-09T11:00:00Z",
 "type":"ORDER_LINE_TYPE_PLACED","order_id":"536365","line_number":1,"quantity":6,"unit_price":2.55,
 "currency":"GBP","customer_id":"17850","country":"United Kingdom","description":"WHITE HANGING HEART T-LIGHT HOLDER"}`

// orderJSONCamel is the same event with lowerCamel names and an enum number.
const orderJSONCamel = `{"eventId":"or-2","occurredAt":"2011-12-09T11:00:00Z","type":1,"orderId":"536365","lineNumber":1,
 "sku":"85123A","location":"online","quantity":6.0,"unitPrice":2.55,"currency":"GBP","customerId":"17850",
 "country":"United Kingdom","description":"WHITE HANGING HEART T-LIGHT HOLDER"}`

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecode(t *testing.T) {
	pb := mustMarshal(t, validOrder())
	withUnknown := protowire.AppendVarint(protowire.AppendTag(append([]byte(nil), pb...), 99, protowire.VarintType), 7)
	// A snapshot whose nested message carries an unknown field 9.
	snap := mustMarshal(t, &inventoryv1.Snapshot{OnHand: 1})
	snap = protowire.AppendVarint(protowire.AppendTag(snap, 9, protowire.VarintType), 1)
	nestedUnknown := protowire.AppendBytes(protowire.AppendTag(mustMarshal(t, validInventory()), 10, protowire.BytesType), snap)

	tests := []struct {
		name        string
		topic       string
		contentType string
		value       []byte
		want        proto.Message // nil = undecodable
	}{
		{"protobuf", topics.Orders, "", pb, validOrder()},
		{"protobuf with header", topics.Orders, topics.ContentTypeProtobuf, pb, validOrder()},
		{"json by header", topics.Orders, "application/json; charset=utf-8", []byte(orderJSON), validOrder()},
		{"json sniffed without header", topics.Orders, "", []byte(orderJSON), validOrder()},
		{"json sniffed after whitespace", topics.Orders, "", []byte("\n  " + orderJSON), validOrder()},
		{"json lowerCamel and enum number", topics.Orders, "", []byte(orderJSONCamel), validOrder()},
		{"json with unknown field", topics.Orders, "", []byte(`{"event_id":"x","colour":"red"}`), nil},
		{"json syntax error", topics.Orders, topics.ContentTypeJSON, []byte(`{"event_id":`), nil},
		{"json header on protobuf bytes", topics.Orders, topics.ContentTypeJSON, pb, nil},
		{"garbage bytes", topics.Orders, "", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, nil},
		{"truncated protobuf", topics.Orders, "", pb[:len(pb)-3], nil},
		{"protobuf with unknown field", topics.Orders, "", withUnknown, nil},
		{"protobuf with unknown nested field", topics.Inventory, "", nestedUnknown, nil},
		{"unknown topic", "other.v1", "", pb, nil},
		{"empty value", topics.Orders, "", nil, nil},
		{"empty value with json header", topics.Orders, topics.ContentTypeJSON, []byte{}, nil},
		{"inventory protobuf", topics.Inventory, "", mustMarshal(t, validInventory()), validInventory()},
		{"catalog protobuf", topics.Catalog, "", mustMarshal(t, validPromotion()), validPromotion()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, rej := Decode(tt.topic, tt.contentType, tt.value)
			if tt.want == nil {
				if rej == nil || rej.Reason != ReasonUndecodable {
					t.Fatalf("Decode = %v, %v; want undecodable", ev.Message(), rej)
				}
				return
			}
			if rej != nil {
				t.Fatalf("Decode: %v", rej)
			}
			if !proto.Equal(ev.Message(), tt.want) {
				t.Fatalf("Decode = %v, want %v", ev.Message(), tt.want)
			}
			if ev.Topic() != tt.topic {
				t.Fatalf("Topic = %q, want %q", ev.Topic(), tt.topic)
			}
		})
	}
}

// TestDecodeRecord: the stockcast-event-type header decides the kind of
// event on any raw topic; without it (or with an empty value) the topic
// does; an unknown value is refused.
func TestDecodeRecord(t *testing.T) {
	order, inv, promo := mustMarshal(t, validOrder()), mustMarshal(t, validInventory()), mustMarshal(t, validPromotion())
	tests := []struct {
		name, topic, eventType, contentType string
		value                               []byte
		want                                proto.Message // nil: rejected with reason
		reason                              Reason
	}{
		{"no header: the topic's kind", topics.Orders, "", "", order, validOrder(), ""},
		{"no header: inventory topic", topics.Inventory, "", "", inv, validInventory(), ""},
		{"inventory on orders.v1", topics.Orders, topics.EventTypeInventory, "", inv, validInventory(), ""},
		{"catalog on orders.v1", topics.Orders, topics.EventTypeCatalog, "", promo, validPromotion(), ""},
		{"order line on inventory.v1", topics.Inventory, topics.EventTypeOrderLine, "", order, validOrder(), ""},
		{"order line on its own topic with header", topics.Orders, topics.EventTypeOrderLine, "", order, validOrder(), ""},
		{"inventory JSON on orders.v1", topics.Orders, topics.EventTypeInventory, topics.ContentTypeJSON,
			[]byte(`{"event_id":"inv-1","sku":"85123A","location":"online","occurred_at":"2011-12-09T11:00:00Z","snapshot":{"on_hand":40}}`),
			&inventoryv1.InventoryEvent{EventId: "inv-1", Sku: "85123A", Location: "online", OccurredAt: validOrder().GetOccurredAt(),
				Kind: &inventoryv1.InventoryEvent_Snapshot{Snapshot: &inventoryv1.Snapshot{OnHand: 40}}}, ""},
		// The header names the message: an order line's bytes named
		// inventory are no inventory event (unknown fields).
		{"header names another message", topics.Orders, topics.EventTypeInventory, "", order, nil, ReasonUndecodable},
		{"unknown header value", topics.Orders, "stock", "", inv, nil, ReasonUnknownEventType},
		{"header is case-sensitive", topics.Orders, "Inventory", "", inv, nil, ReasonUnknownEventType},
		{"header with spaces", topics.Orders, " inventory", "", inv, nil, ReasonUnknownEventType},
		{"header on an unknown topic still decodes", "other.v1", topics.EventTypeInventory, "", inv, validInventory(), ""},
		{"unknown header before an empty value", topics.Orders, "x", "", nil, nil, ReasonUnknownEventType},
		{"known header, empty value", topics.Orders, topics.EventTypeInventory, "", nil, nil, ReasonUndecodable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, rej := DecodeRecord(tt.topic, tt.eventType, tt.contentType, tt.value)
			if tt.want == nil {
				if rej == nil || rej.Reason != tt.reason {
					t.Fatalf("DecodeRecord = %v, %v; want %s", ev.Message(), rej, tt.reason)
				}
				if ev.Message() != nil {
					t.Fatalf("rejected but returned %v", ev.Message())
				}
				return
			}
			if rej != nil {
				t.Fatalf("DecodeRecord: %v", rej)
			}
			if !proto.Equal(ev.Message(), tt.want) {
				t.Fatalf("DecodeRecord = %v, want %v", ev.Message(), tt.want)
			}
			if tt.eventType != "" && ev.EventType() != tt.eventType {
				t.Fatalf("EventType = %q, want %q", ev.EventType(), tt.eventType)
			}
		})
	}
	_, rej := DecodeRecord(topics.Orders, "stock", "", inv)
	if want := `header stockcast-event-type "stock": want order_line, inventory or catalog`; rej.Detail != want {
		t.Fatalf("detail %q, want %q", rej.Detail, want)
	}
}

func TestDecodeRefusesLargeValuesUnread(t *testing.T) {
	// Valid JSON of one byte more than the limit: refused for its size.
	pad := MaxEventBytes + 1 - len(`{"event_id":"","description":"x"}`)
	value := []byte(`{"event_id":"","description":"` + strings.Repeat("x", pad+1) + `"}`)
	if len(value) != MaxEventBytes+1 {
		t.Fatalf("test value has %d bytes", len(value))
	}
	if _, rej := Decode(topics.Orders, "", value); rej == nil || rej.Reason != ReasonTooLarge {
		t.Fatalf("Decode of %d bytes = %v, want %s", len(value), rej, ReasonTooLarge)
	}
	if _, rej := Decode(topics.Orders, "", value[:0:0]); rej == nil || rej.Reason != ReasonUndecodable {
		t.Fatalf("Decode of no bytes = %v, want undecodable", rej)
	}
}

func TestHashSameForJSONAndProtobuf(t *testing.T) {
	hashOf := func(contentType string, value []byte) string {
		t.Helper()
		ev, rej := Decode(topics.Orders, contentType, value)
		if rej != nil {
			t.Fatal(rej)
		}
		h, err := ev.Hash()
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	pb := hashOf("", mustMarshal(t, validOrder()))
	if js := hashOf("", []byte(orderJSON)); js != pb {
		t.Fatalf("json hash %s != protobuf hash %s", js, pb)
	}
	if js := hashOf(topics.ContentTypeJSON, []byte(orderJSONCamel)); js != pb {
		t.Fatalf("lowerCamel json hash %s != protobuf hash %s", js, pb)
	}
	changed := validOrder()
	changed.Quantity = 7
	if h := hashOf("", mustMarshal(t, changed)); h == pb {
		t.Fatal("a changed quantity has the same hash")
	}
	// Same id, same (empty) body, different message type: different content.
	a, _ := Event{Order: &ordersv1.OrderLineEvent{EventId: "x"}}.Hash()
	b, _ := Event{Inventory: &inventoryv1.InventoryEvent{EventId: "x"}}.Hash()
	if a == b {
		t.Fatal("an order line and an inventory event with the same fields hash the same")
	}
}

func TestKey(t *testing.T) {
	tests := []struct {
		name string
		ev   Event
		want string
	}{
		{"order line", Event{Order: validOrder()}, "85123A|online"},
		{"inventory", Event{Inventory: validInventory()}, "85123A|online"},
		{"price change", Event{Catalog: validPrice()}, "85123A|online"},
		{"promotion", Event{Catalog: validPromotion()}, "85123A|online"},
		{"item attributes: sku alone", Event{Catalog: validItem()}, "85123A"},
	}
	for _, tt := range tests {
		if got := tt.ev.Key(); got != tt.want {
			t.Errorf("%s: Key = %q, want %q", tt.name, got, tt.want)
		}
	}
}
