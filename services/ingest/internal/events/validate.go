package events

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	catalogv1 "github.com/stockcast/stockcast/proto/stockcast/catalog/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"
)

// Limits of a valid event. They guard the stores and the models against
// typos and unit mistakes, not against unusual but real business.
const (
	MaxEventBytes = 64 << 10       // encoded size of one event (protobuf, or JSON as received)
	MaxEventIDLen = 128            // bytes
	MaxKeyLen     = 128            // bytes of a sku or location
	MaxQuantity   = 1e6            // units in one event
	MaxPrice      = 1e7            // per unit, any currency
	MaxFuture     = 24 * time.Hour // clock skew a platform may have
)

// Oldest is the earliest occurred_at accepted, and with Latest bounds every
// other time of an event (expected_at, starts_at, ends_at): the stores keep
// times as ClickHouse DateTime (1970 to 2105), and a time outside it would
// make every insert of the batch fail, for ever.
var (
	Oldest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	Latest = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// inRange reports whether ts is set, valid and within [Oldest, Latest].
func inRange(ts *timestamppb.Timestamp) bool {
	if ts == nil || ts.CheckValid() != nil {
		return false
	}
	t := ts.AsTime()
	return !t.Before(Oldest) && !t.After(Latest)
}

// Validate checks an event against the rules of its kind and returns the
// first problem found, or nil. now is the time the event is checked at.
// An event whose protobuf encoding is larger than MaxEventBytes is refused
// first (events pushed over gRPC are not size-checked by Decode), and one
// that cannot be encoded at all is undecodable.
func Validate(e Event, now time.Time) *Rejection {
	if m := e.Message(); m != nil {
		// Events that arrive as bytes were decoded, so they encode again;
		// events built in process (tests, the fuzz targets) may hold
		// strings that are not UTF-8, which protobuf cannot encode.
		b, err := proto.Marshal(m)
		if err != nil {
			return reject(ReasonUndecodable, "event cannot be encoded as protobuf: %v", err)
		}
		if len(b) > MaxEventBytes {
			return reject(ReasonTooLarge, "event has %d bytes encoded, more than %d", len(b), MaxEventBytes)
		}
	}
	switch {
	case e.Order != nil:
		return ValidateOrderLine(e.Order, now)
	case e.Inventory != nil:
		return ValidateInventory(e.Inventory, now)
	case e.Catalog != nil:
		return ValidateCatalog(e.Catalog, now)
	}
	return reject(ReasonUndecodable, "empty event")
}

// ValidateOrderLine checks one order line.
func ValidateOrderLine(ev *ordersv1.OrderLineEvent, now time.Time) *Rejection {
	if r := checkEventID(ev.GetEventId()); r != nil {
		return r
	}
	if r := checkSeries(ev.GetSku(), ev.GetLocation()); r != nil {
		return r
	}
	if r := checkOccurredAt(ev.GetOccurredAt(), now); r != nil {
		return r
	}
	switch ev.GetType() {
	case ordersv1.OrderLineType_ORDER_LINE_TYPE_PLACED,
		ordersv1.OrderLineType_ORDER_LINE_TYPE_CANCELLED,
		ordersv1.OrderLineType_ORDER_LINE_TYPE_RETURNED:
	default:
		return reject(ReasonUnknownOrderLineType, "order line type %v", ev.GetType())
	}
	if r := checkPositive("quantity", ev.GetQuantity()); r != nil {
		return r
	}
	if r := checkPrice("unit_price", ev.GetUnitPrice()); r != nil {
		return r
	}
	return checkCurrency(ev.GetCurrency())
}

// ValidateInventory checks one stock movement.
func ValidateInventory(ev *inventoryv1.InventoryEvent, now time.Time) *Rejection {
	if r := checkEventID(ev.GetEventId()); r != nil {
		return r
	}
	if r := checkSeries(ev.GetSku(), ev.GetLocation()); r != nil {
		return r
	}
	if r := checkOccurredAt(ev.GetOccurredAt(), now); r != nil {
		return r
	}
	switch k := ev.GetKind().(type) {
	case *inventoryv1.InventoryEvent_Snapshot:
		if r := checkNonNegative("snapshot on_hand", k.Snapshot.GetOnHand()); r != nil {
			return r
		}
		return checkNonNegative("snapshot reserved", k.Snapshot.GetReserved())
	case *inventoryv1.InventoryEvent_Adjustment:
		// A delta is signed; zero is pointless but harmless.
		if d := k.Adjustment.GetDelta(); !finite(d) || math.Abs(d) > MaxQuantity {
			return reject(ReasonQuantityAbsurd, "adjustment delta %v outside [-%g, %g]", d, MaxQuantity, MaxQuantity)
		}
		return nil
	case *inventoryv1.InventoryEvent_Receipt:
		return checkPositive("receipt quantity", k.Receipt.GetQuantity())
	case *inventoryv1.InventoryEvent_PurchaseOrderPlaced:
		if r := checkPositive("purchase order quantity", k.PurchaseOrderPlaced.GetQuantity()); r != nil {
			return r
		}
		if at := k.PurchaseOrderPlaced.GetExpectedAt(); !inRange(at) {
			return reject(ReasonMissingExpectedAt, "purchase order without a valid expected_at between %s and %s",
				Oldest.Format(DayLayout), Latest.Format(DayLayout))
		}
		return nil
	case *inventoryv1.InventoryEvent_StockoutStarted, *inventoryv1.InventoryEvent_StockoutEnded:
		return nil
	}
	return reject(ReasonUnknownInventoryKind, "inventory event without a known kind")
}

// ValidateCatalog checks one item, price or promotion event.
func ValidateCatalog(ev *catalogv1.CatalogEvent, now time.Time) *Rejection {
	if r := checkEventID(ev.GetEventId()); r != nil {
		return r
	}
	switch k := ev.GetKind().(type) {
	case *catalogv1.CatalogEvent_Item:
		if r := checkKey("sku", k.Item.GetSku(), ReasonMissingSKU); r != nil {
			return r
		}
		if r := checkOccurredAt(ev.GetOccurredAt(), now); r != nil {
			return r
		}
		if r := checkNonNegative("pack_size", k.Item.GetPackSize()); r != nil {
			return r
		}
		if r := checkNonNegative("moq", k.Item.GetMoq()); r != nil {
			return r
		}
		return checkPrice("unit_cost", k.Item.GetUnitCost())
	case *catalogv1.CatalogEvent_PriceChange:
		p := k.PriceChange
		if r := checkSeries(p.GetSku(), p.GetLocation()); r != nil {
			return r
		}
		if r := checkOccurredAt(ev.GetOccurredAt(), now); r != nil {
			return r
		}
		if r := checkPrice("price", p.GetPrice()); r != nil {
			return r
		}
		return checkCurrency(p.GetCurrency())
	case *catalogv1.CatalogEvent_Promotion:
		p := k.Promotion
		if r := checkSeries(p.GetSku(), p.GetLocation()); r != nil {
			return r
		}
		if r := checkOccurredAt(ev.GetOccurredAt(), now); r != nil {
			return r
		}
		if strings.TrimSpace(p.GetPromotionId()) == "" {
			return reject(ReasonMissingPromotionID, "promotion without promotion_id")
		}
		start, end := p.GetStartsAt(), p.GetEndsAt()
		if !inRange(start) || !inRange(end) {
			return reject(ReasonInvalidPromotionWindow, "promotion needs valid starts_at and ends_at between %s and %s",
				Oldest.Format(DayLayout), Latest.Format(DayLayout))
		}
		if !end.AsTime().After(start.AsTime()) {
			return reject(ReasonInvalidPromotionWindow, "promotion ends_at %s not after starts_at %s",
				end.AsTime().Format(time.RFC3339), start.AsTime().Format(time.RFC3339))
		}
		if d := p.GetDiscountPct(); !finite(d) || d < 0 || d > 100 {
			return reject(ReasonDiscountOutOfRange, "discount_pct %v outside [0, 100]", d)
		}
		return nil
	}
	// Without a kind there is no series to check: the event id and the kind
	// are all that can be wrong.
	return reject(ReasonUnknownCatalogKind, "catalog event without a known kind")
}

func checkEventID(id string) *Rejection {
	if strings.TrimSpace(id) == "" {
		return reject(ReasonMissingEventID, "event_id is empty")
	}
	if len(id) > MaxEventIDLen {
		return reject(ReasonEventIDTooLong, "event_id has %d bytes, more than %d", len(id), MaxEventIDLen)
	}
	if why := unprintable(id, false); why != "" {
		return reject(ReasonInvalidEventID, "event_id %q %s", id, why)
	}
	return nil
}

func checkSeries(sku, location string) *Rejection {
	if r := checkKey("sku", sku, ReasonMissingSKU); r != nil {
		return r
	}
	return checkKey("location", location, ReasonMissingLocation)
}

// checkKey checks a part of a series key: it must be present, short, valid
// UTF-8, free of the separator '|', and printable with no surrounding
// spaces (control, format and bidi characters, non-ASCII spaces and
// unassigned code points would break the key layout of Kafka, Redis and
// the logs, or make two keys look the same). Keys are compared byte for
// byte: no Unicode normalisation.
func checkKey(field, v string, missing Reason) *Rejection {
	if strings.TrimSpace(v) == "" {
		return reject(missing, "%s is empty", field)
	}
	if len(v) > MaxKeyLen {
		return reject(ReasonInvalidKey, "%s has %d bytes, more than %d", field, len(v), MaxKeyLen)
	}
	if why := unprintable(v, true); why != "" {
		return reject(ReasonInvalidKey, "%s %q %s", field, v, why)
	}
	return nil
}

// unprintable says what is wrong with an id or key, or "" when nothing is:
// invalid UTF-8, a leading or trailing space, a character that is not
// printable (unicode.IsPrint: letters, marks, numbers, punctuation,
// symbols and the ASCII space), or, when noPipe, the key separator '|'.
func unprintable(v string, noPipe bool) string {
	if !utf8.ValidString(v) {
		return "is not valid UTF-8"
	}
	if strings.TrimSpace(v) != v {
		return "has leading or trailing spaces"
	}
	for i, r := range v {
		if noPipe && r == '|' {
			return fmt.Sprintf("has the key separator '|' at byte %d", i)
		}
		if !unicode.IsPrint(r) {
			return fmt.Sprintf("has the unprintable character %U at byte %d", r, i)
		}
	}
	return ""
}

func checkOccurredAt(ts *timestamppb.Timestamp, now time.Time) *Rejection {
	if ts == nil {
		return reject(ReasonMissingOccurred, "occurred_at is not set")
	}
	if err := ts.CheckValid(); err != nil {
		return reject(ReasonMissingOccurred, "occurred_at is not a valid time: %v", err)
	}
	t := ts.AsTime()
	if t.After(now.Add(MaxFuture)) {
		return reject(ReasonOccurredInFuture, "occurred_at %s is more than %s after %s",
			t.Format(time.RFC3339), MaxFuture, now.UTC().Format(time.RFC3339))
	}
	if t.Before(Oldest) {
		return reject(ReasonOccurredTooOld, "occurred_at %s is before %s", t.Format(time.RFC3339), Oldest.Format("2006-01-02"))
	}
	return nil
}

func checkPositive(field string, q float64) *Rejection {
	if !finite(q) || q > MaxQuantity {
		return reject(ReasonQuantityAbsurd, "%s %v is not a number up to %g", field, q, MaxQuantity)
	}
	if q <= 0 {
		return reject(ReasonQuantityNotPositive, "%s %v is not positive", field, q)
	}
	return nil
}

func checkNonNegative(field string, q float64) *Rejection {
	if !finite(q) || q > MaxQuantity {
		return reject(ReasonQuantityAbsurd, "%s %v is not a number up to %g", field, q, MaxQuantity)
	}
	if q < 0 {
		return reject(ReasonQuantityNegative, "%s %v is negative", field, q)
	}
	return nil
}

func checkPrice(field string, p float64) *Rejection {
	if !finite(p) || p > MaxPrice {
		return reject(ReasonPriceAbsurd, "%s %v is not a number up to %g", field, p, MaxPrice)
	}
	if p < 0 {
		return reject(ReasonPriceNegative, "%s %v is negative", field, p)
	}
	return nil
}

func checkCurrency(c string) *Rejection {
	if c == "" {
		return reject(ReasonMissingCurrency, "currency is empty")
	}
	if len(c) != 3 || strings.IndexFunc(c, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0 {
		return reject(ReasonInvalidCurrency, "currency %q is not three upper-case letters (ISO 4217)", c)
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
