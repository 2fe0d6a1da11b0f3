package events

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Reason is the code a rejected event is dead-lettered with (header
// stockcast-dlq-reason) and refused with by the gRPC API. The codes are
// part of the operators' interface: the README lists them, keep both in step.
type Reason string

// Reason codes, one place for all of them.
const (
	ReasonUndecodable Reason = "undecodable"
	ReasonTooLarge    Reason = "event_too_large"
	// ReasonUnknownEventType: the stockcast-event-type header names no
	// kind of event (DecodeRecord).
	ReasonUnknownEventType Reason = "unknown_event_type"

	ReasonMissingEventID   Reason = "missing_event_id"
	ReasonEventIDTooLong   Reason = "event_id_too_long"
	ReasonInvalidEventID   Reason = "invalid_event_id"
	ReasonMissingSKU       Reason = "missing_sku"
	ReasonMissingLocation  Reason = "missing_location"
	ReasonInvalidKey       Reason = "invalid_key"
	ReasonMissingOccurred  Reason = "missing_occurred_at"
	ReasonOccurredInFuture Reason = "occurred_at_in_future"
	ReasonOccurredTooOld   Reason = "occurred_at_too_old"

	ReasonUnknownOrderLineType Reason = "unknown_order_line_type"
	ReasonQuantityNotPositive  Reason = "quantity_not_positive"
	ReasonQuantityAbsurd       Reason = "quantity_absurd"
	ReasonPriceNegative        Reason = "price_negative"
	ReasonPriceAbsurd          Reason = "price_absurd"
	ReasonMissingCurrency      Reason = "missing_currency"
	ReasonInvalidCurrency      Reason = "invalid_currency"

	ReasonUnknownInventoryKind Reason = "unknown_inventory_kind"
	ReasonQuantityNegative     Reason = "quantity_negative"
	ReasonMissingExpectedAt    Reason = "missing_expected_at"

	ReasonUnknownCatalogKind     Reason = "unknown_catalog_kind"
	ReasonMissingPromotionID     Reason = "missing_promotion_id"
	ReasonInvalidPromotionWindow Reason = "invalid_promotion_window"
	ReasonDiscountOutOfRange     Reason = "discount_out_of_range"

	ReasonDuplicateConflict Reason = "duplicate_event_id_conflict"
)

// AllReasons lists every code, for documentation checks and for
// pre-registering metric series.
var AllReasons = []Reason{
	ReasonUndecodable, ReasonTooLarge, ReasonUnknownEventType,
	ReasonMissingEventID, ReasonEventIDTooLong, ReasonInvalidEventID, ReasonMissingSKU, ReasonMissingLocation, ReasonInvalidKey,
	ReasonMissingOccurred, ReasonOccurredInFuture, ReasonOccurredTooOld,
	ReasonUnknownOrderLineType, ReasonQuantityNotPositive, ReasonQuantityAbsurd,
	ReasonPriceNegative, ReasonPriceAbsurd, ReasonMissingCurrency, ReasonInvalidCurrency,
	ReasonUnknownInventoryKind, ReasonQuantityNegative, ReasonMissingExpectedAt,
	ReasonUnknownCatalogKind, ReasonMissingPromotionID, ReasonInvalidPromotionWindow, ReasonDiscountOutOfRange,
	ReasonDuplicateConflict,
}

// Rejection says why an event was refused. Detail is for humans.
type Rejection struct {
	Reason Reason
	Detail string
}

func (r *Rejection) Error() string { return string(r.Reason) + ": " + r.Detail }

// MaxDetailLen bounds a rejection's detail (it becomes a DLQ header and a
// log attribute, and may quote the input).
const MaxDetailLen = 512

func reject(reason Reason, format string, args ...any) *Rejection {
	d := strings.ToValidUTF8(fmt.Sprintf(format, args...), "\uFFFD")
	if len(d) > MaxDetailLen {
		cut := MaxDetailLen - len("...")
		for cut > 0 && !utf8.RuneStart(d[cut]) {
			cut--
		}
		d = d[:cut] + "..."
	}
	return &Rejection{Reason: reason, Detail: d}
}
