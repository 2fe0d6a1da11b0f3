package features

import (
	"fmt"
	"math"
	"time"

	"github.com/stockcast/stockcast/pkg/topics"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
)

// Kind says what a change does to a series.
type Kind int

const (
	// KindOther changes no feature (snapshots, receipts, adjustments, ...);
	// the event is still counted and passed on.
	KindOther Kind = iota
	KindDemand
	KindStockoutStarted
	KindStockoutEnded
	KindPrice
	KindPromotion
	// KindItem sets the attributes of a SKU at every location.
	KindItem
)

// Change is a validated DemandEvent reduced to what the feature state needs.
type Change struct {
	EventID       string
	SKU, Location string // Location is empty for KindItem
	Day           Day
	At            time.Time
	Kind          Kind
	// Quantity is the signed demand (KindDemand).
	Quantity float64
	// Price is the new selling price (KindPrice).
	Price float64
	// Promotion window (KindPromotion).
	PromotionID                  string
	PromotionStart, PromotionEnd time.Time
	// Item attributes (KindItem).
	Item Item
	// Pos is where the consumer read the change; nil for a rebuild.
	Pos *Position
}

// Position is where a change was read from demand.v1. The store keeps, per
// series, what each change since Start changed, so that a batch delivered
// again (from the committed position) gets the same states as the first
// time.
type Position struct {
	Partition int32
	Offset    int64
	// Start is the offset of the partition's first record in the batch
	// being handled: the consumer (re)starts a partition at its committed
	// offset, so offsets before Start will not be delivered again.
	Start int64
}

// SeriesKey is the record key of the change: "sku|location", or the SKU
// alone for item attributes.
func (c Change) SeriesKey() string {
	if c.Kind == KindItem {
		return c.SKU
	}
	return topics.SeriesKey(c.SKU, c.Location)
}

// InvalidError is an event that can never be applied; Reason is the DLQ
// reason code.
type InvalidError struct {
	Reason, Detail string
}

func (e *InvalidError) Error() string { return e.Reason + ": " + e.Detail }

func invalid(reason, format string, args ...any) *InvalidError {
	return &InvalidError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// ChangeOf validates a DemandEvent and returns its change, or an
// *InvalidError. ingest has validated the raw event already; this checks
// what the feature state depends on, so a bad record goes to the DLQ instead
// of corrupting a series.
func ChangeOf(ev *demandv1.DemandEvent) (Change, error) {
	c := Change{EventID: ev.GetEventId(), SKU: ev.GetSku(), Location: ev.GetLocation()}
	if c.EventID == "" {
		return c, invalid("event_id_missing", "event has no event_id")
	}
	if ev.GetOccurredAt() == nil || !ev.GetOccurredAt().IsValid() {
		return c, invalid("occurred_at_invalid", "occurred_at is missing or out of range")
	}
	c.At = ev.GetOccurredAt().AsTime()
	c.Day = DayOf(c.At)
	if ev.GetDay() != "" {
		d, err := ParseDay(ev.GetDay())
		if err != nil {
			return c, invalid("day_invalid", "%v", err)
		}
		c.Day = d
	}
	if c.SKU == "" {
		return c, invalid("sku_missing", "event has no sku")
	}

	switch ch := ev.GetChange().(type) {
	case *demandv1.DemandEvent_Item:
		c.Kind, c.Location = KindItem, ""
		c.Item = Item{Category: ch.Item.GetCategory(), Department: ch.Item.GetDepartment()}
		if ch.Item.GetSku() != "" && ch.Item.GetSku() != c.SKU {
			return c, invalid("series_key_mismatch", "item sku %q in event of sku %q", ch.Item.GetSku(), c.SKU)
		}
		if ev.GetSeriesKey() != c.SKU {
			return c, invalid("series_key_mismatch", "series_key %q of item %q", ev.GetSeriesKey(), c.SKU)
		}
		return c, nil
	case *demandv1.DemandEvent_Demand:
		c.Kind, c.Quantity = KindDemand, ch.Demand.GetQuantity()
		if math.IsNaN(c.Quantity) || math.IsInf(c.Quantity, 0) {
			return c, invalid("quantity_invalid", "quantity %v", c.Quantity)
		}
	case *demandv1.DemandEvent_Inventory:
		switch ch.Inventory.GetKind().(type) {
		case *inventoryv1.InventoryEvent_StockoutStarted:
			c.Kind = KindStockoutStarted
		case *inventoryv1.InventoryEvent_StockoutEnded:
			c.Kind = KindStockoutEnded
		default:
			c.Kind = KindOther
		}
	case *demandv1.DemandEvent_Price:
		c.Kind, c.Price = KindPrice, ch.Price.GetPrice()
		if math.IsNaN(c.Price) || math.IsInf(c.Price, 0) || c.Price < 0 {
			return c, invalid("price_invalid", "price %v", c.Price)
		}
	case *demandv1.DemandEvent_Promotion:
		p := ch.Promotion
		c.Kind, c.PromotionID = KindPromotion, p.GetPromotionId()
		if c.PromotionID == "" || !p.GetStartsAt().IsValid() || !p.GetEndsAt().IsValid() {
			return c, invalid("promotion_invalid", "promotion needs an id, starts_at and ends_at")
		}
		c.PromotionStart, c.PromotionEnd = p.GetStartsAt().AsTime(), p.GetEndsAt().AsTime()
	default:
		return c, invalid("change_missing", "event carries no change")
	}
	if c.Location == "" {
		return c, invalid("location_missing", "event has no location")
	}
	if want := topics.SeriesKey(c.SKU, c.Location); ev.GetSeriesKey() != want {
		return c, invalid("series_key_mismatch", "series_key %q, want %q", ev.GetSeriesKey(), want)
	}
	return c, nil
}
