// Package events decodes, validates and normalises the raw events ingest
// reads from orders.v1, inventory.v1 and catalog.v1. Everything here is a
// pure function of its inputs (the clock is a parameter), so it is tested
// with tables and shared by the Kafka consumer and the gRPC API.
package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"mime"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/pkg/topics"
	catalogv1 "github.com/stockcast/stockcast/proto/stockcast/catalog/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"
)

// Event is one decoded raw event; exactly one field is set.
type Event struct {
	Order     *ordersv1.OrderLineEvent
	Inventory *inventoryv1.InventoryEvent
	Catalog   *catalogv1.CatalogEvent
}

// Message returns the protobuf message the event holds.
func (e Event) Message() proto.Message {
	switch {
	case e.Order != nil:
		return e.Order
	case e.Inventory != nil:
		return e.Inventory
	case e.Catalog != nil:
		return e.Catalog
	}
	return nil
}

// EventID returns the platform's id of the event.
func (e Event) EventID() string {
	switch {
	case e.Order != nil:
		return e.Order.GetEventId()
	case e.Inventory != nil:
		return e.Inventory.GetEventId()
	case e.Catalog != nil:
		return e.Catalog.GetEventId()
	}
	return ""
}

// OccurredAt returns the event time.
func (e Event) OccurredAt() *timestamppb.Timestamp {
	switch {
	case e.Order != nil:
		return e.Order.GetOccurredAt()
	case e.Inventory != nil:
		return e.Inventory.GetOccurredAt()
	case e.Catalog != nil:
		return e.Catalog.GetOccurredAt()
	}
	return nil
}

// Topic returns the raw topic that carries this kind of event.
func (e Event) Topic() string {
	switch {
	case e.Order != nil:
		return topics.Orders
	case e.Inventory != nil:
		return topics.Inventory
	}
	return topics.Catalog
}

// SKU and Location return the series the event belongs to; Location is
// empty for item attributes, which hold for every location.
func (e Event) SKU() string { s, _ := e.series(); return s }

// Location: see SKU.
func (e Event) Location() string { _, l := e.series(); return l }

func (e Event) series() (sku, location string) {
	switch {
	case e.Order != nil:
		return e.Order.GetSku(), e.Order.GetLocation()
	case e.Inventory != nil:
		return e.Inventory.GetSku(), e.Inventory.GetLocation()
	case e.Catalog != nil:
		switch k := e.Catalog.GetKind().(type) {
		case *catalogv1.CatalogEvent_Item:
			return k.Item.GetSku(), ""
		case *catalogv1.CatalogEvent_PriceChange:
			return k.PriceChange.GetSku(), k.PriceChange.GetLocation()
		case *catalogv1.CatalogEvent_Promotion:
			return k.Promotion.GetSku(), k.Promotion.GetLocation()
		}
	}
	return "", ""
}

// Key is the record key of the event on its raw topic and of its
// DemandEvent: the series key, or the sku alone for item attributes.
func (e Event) Key() string {
	sku, location := e.series()
	if e.Catalog != nil && e.Catalog.GetItem() != nil {
		return sku
	}
	return topics.SeriesKey(sku, location)
}

// Hash is the content hash the de-duplication compares: SHA-256 of the
// message's full name and its deterministic protobuf encoding, so the JSON
// and the protobuf form of one event hash the same, and an order line and a
// stock movement that share an id do not.
func (e Event) Hash() (string, error) {
	m := e.Message()
	if m == nil {
		return "", fmt.Errorf("hash empty event")
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("marshal %s for hashing: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	h := sha256.New()
	h.Write([]byte(m.ProtoReflect().Descriptor().FullName()))
	h.Write([]byte{0})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// EventType returns the value of the stockcast-event-type header that
// names this kind of event (see DecodeRecord).
func (e Event) EventType() string {
	switch {
	case e.Order != nil:
		return topics.EventTypeOrderLine
	case e.Inventory != nil:
		return topics.EventTypeInventory
	}
	return topics.EventTypeCatalog
}

// eventTypeTopics maps each stockcast-event-type value to the raw topic
// whose kind of event it names.
var eventTypeTopics = map[string]string{
	topics.EventTypeOrderLine: topics.Orders,
	topics.EventTypeInventory: topics.Inventory,
	topics.EventTypeCatalog:   topics.Catalog,
}

// DecodeRecord decodes a record read from the raw topic topic. Its kind of
// event is the one its stockcast-event-type header (eventType) names, on
// any raw topic, so that a platform can publish a series' order lines,
// stock movements and catalog changes on one topic, keyed by the series,
// and have them applied in the partition's order; without the header (an
// empty value counts as none) the kind is the topic's, as Decode. A value
// that names no kind is refused (unknown_event_type).
func DecodeRecord(topic, eventType, contentType string, value []byte) (Event, *Rejection) {
	if eventType == "" {
		return Decode(topic, contentType, value)
	}
	kind, ok := eventTypeTopics[eventType]
	if !ok {
		return Event{}, reject(ReasonUnknownEventType, "header %s %q: want %s, %s or %s", topics.HeaderEventType, eventType,
			topics.EventTypeOrderLine, topics.EventTypeInventory, topics.EventTypeCatalog)
	}
	return Decode(kind, contentType, value)
}

// Decode turns a raw record value into an Event. JSON (protojson, unknown
// fields refused) is used when contentType is application/json or the value
// starts with '{' after white space ('{' never starts a valid protobuf
// encoding of our messages: it would be field 15 as a deprecated group);
// protobuf otherwise, and also when a value sniffed (not declared) as JSON
// is no JSON but valid protobuf.
// Protobuf with unknown fields is refused too, for the same strictness as
// JSON, and because random bytes often parse as nothing but unknown fields.
//
// An empty value (a tombstone) is undecodable, and a value of more than
// MaxEventBytes is refused unread (event_too_large).
func Decode(topic, contentType string, value []byte) (Event, *Rejection) {
	var ev Event
	var m proto.Message
	switch topic {
	case topics.Orders:
		ev.Order = &ordersv1.OrderLineEvent{}
		m = ev.Order
	case topics.Inventory:
		ev.Inventory = &inventoryv1.InventoryEvent{}
		m = ev.Inventory
	case topics.Catalog:
		ev.Catalog = &catalogv1.CatalogEvent{}
		m = ev.Catalog
	default:
		return Event{}, reject(ReasonUndecodable, "no event type for topic %q", topic)
	}
	if len(value) == 0 {
		return Event{}, reject(ReasonUndecodable, "empty value")
	}
	if len(value) > MaxEventBytes {
		return Event{}, reject(ReasonTooLarge, "value has %d bytes, more than %d", len(value), MaxEventBytes)
	}
	header, sniffed := jsonHeader(contentType), sniffJSON(value)
	if header || sniffed {
		err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(value, m)
		if err == nil {
			return ev, nil
		}
		// Without the header, a value sniffed as JSON may still be
		// protobuf: one that starts with field 1 (tag byte 0x0a, '\n')
		// whose length byte is '{' (a 123-byte event id) or white space.
		jsonErr := reject(ReasonUndecodable, "json %s: %v", m.ProtoReflect().Descriptor().FullName(), err)
		if header {
			return Event{}, jsonErr
		}
		proto.Reset(m)
		if proto.Unmarshal(value, m) != nil {
			return Event{}, jsonErr
		}
		if _, unknown := unknownFields(m.ProtoReflect(), ""); unknown {
			return Event{}, jsonErr
		}
		return ev, nil
	}
	if err := proto.Unmarshal(value, m); err != nil {
		return Event{}, reject(ReasonUndecodable, "protobuf %s: %v", m.ProtoReflect().Descriptor().FullName(), err)
	}
	if path, ok := unknownFields(m.ProtoReflect(), ""); ok {
		return Event{}, reject(ReasonUndecodable, "protobuf %s: unknown fields in %s", m.ProtoReflect().Descriptor().FullName(), path)
	}
	return ev, nil
}

// jsonHeader reports whether the content-type header says JSON.
func jsonHeader(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == topics.ContentTypeJSON
}

// sniffJSON reports whether value looks like a JSON object.
func sniffJSON(value []byte) bool {
	v := bytes.TrimLeft(value, " \t\r\n")
	return len(v) > 0 && v[0] == '{'
}

// unknownFields reports the path of the first (sub)message that carries
// fields its descriptor does not know.
func unknownFields(m protoreflect.Message, path string) (string, bool) {
	if len(m.GetUnknown()) > 0 {
		if path == "" {
			return "the message", true
		}
		return path, true
	}
	var found string
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		// Our raw events have no repeated or map fields of messages.
		if fd.Message() == nil || fd.IsList() || fd.IsMap() {
			return true
		}
		if p, ok := unknownFields(v.Message(), joinPath(path, string(fd.Name()))); ok {
			found = p
			return false
		}
		return true
	})
	return found, found != ""
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// Encode is the protobuf encoding the gRPC API writes to the raw topics.
func (e Event) Encode() ([]byte, error) {
	m := e.Message()
	if m == nil {
		return nil, fmt.Errorf("encode empty event")
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return b, nil
}
