// Package topics holds the Kafka topic names, record keys and header names
// shared by every stockcast service (see docs/design.md, "Topics" and "Headers").
package topics

import "strings"

// Topic names. The .v1 suffix follows the protobuf package version of the
// message the topic carries.
const (
	Orders    = "orders.v1"
	Inventory = "inventory.v1"
	Catalog   = "catalog.v1"
	Demand    = "demand.v1"
	Features  = "features.v1"
	Forecasts = "forecasts.v1"
	Proposals = "replenishment.v1"
	// Stockouts carries the stockout periods the replenishment service
	// detects (inventory.v1.InventoryEvent stockout_started/ended, key:
	// series), for downstream consumers; it is no input of stockcast.
	Stockouts = "stockouts.v1"
	// Alerts carries the console's fired alert rules (alert.v1.Alert, key:
	// alert_id).
	Alerts = "alerts.v1"
)

// Header names.
const (
	HeaderEventID     = "stockcast-event-id"
	HeaderContentType = "content-type"
	// HeaderEventType names the kind of event a raw record carries (one of
	// the EventType values). A platform that needs a defined order between
	// a series' kinds of events publishes them on one raw topic, keyed by
	// the series, with this header; without it, the kind follows the topic.
	HeaderEventType = "stockcast-event-type"

	HeaderDLQReason  = "stockcast-dlq-reason"
	HeaderDLQDetail  = "stockcast-dlq-detail"
	HeaderDLQSource  = "stockcast-dlq-source"
	HeaderDLQService = "stockcast-dlq-service"
)

// Values of HeaderEventType: the message each kind of raw event is.
const (
	EventTypeOrderLine = "order_line" // stockcast.orders.v1.OrderLineEvent (the kind of orders.v1)
	EventTypeInventory = "inventory"  // stockcast.inventory.v1.InventoryEvent (the kind of inventory.v1)
	EventTypeCatalog   = "catalog"    // stockcast.catalog.v1.CatalogEvent (the kind of catalog.v1)
)

// Content types accepted on the raw topics.
const (
	ContentTypeProtobuf = "application/x-protobuf"
	ContentTypeJSON     = "application/json"
)

// dlqSuffix is appended to a topic name to get its dead-letter topic.
const dlqSuffix = ".dlq"

// seriesSep separates sku and location in a series key.
const seriesSep = "|"

// DLQ returns the dead-letter topic of topic.
func DLQ(topic string) string { return topic + dlqSuffix }

// IsDLQ reports whether topic is a dead-letter topic.
func IsDLQ(topic string) bool { return strings.HasSuffix(topic, dlqSuffix) }

// SeriesKey is the record key of a series: sku + "|" + location. The key
// decides the partition, so one partition owns a series at every stage.
func SeriesKey(sku, location string) string { return sku + seriesSep + location }

// SplitSeriesKey splits a series key at its first "|". ok is false when the
// key has no separator or either part is empty.
func SplitSeriesKey(key string) (sku, location string, ok bool) {
	sku, location, found := strings.Cut(key, seriesSep)
	if !found || sku == "" || location == "" {
		return "", "", false
	}
	return sku, location, true
}
