package planning

import (
	"fmt"
	"math"
	"time"

	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"

	"github.com/stockcast/stockcast/pkg/replenish"
	"github.com/stockcast/stockcast/pkg/topics"
)

// InvalidEventError is a forecast event that cannot be applied at all; it
// goes to the dead-letter topic with Reason.
type InvalidEventError struct {
	Reason string
	Detail string
}

func (e *InvalidEventError) Error() string { return e.Reason + ": " + e.Detail }

// Reasons of invalid events.
const (
	ReasonMissingEventID    = "missing_event_id"
	ReasonInvalidSeriesKey  = "invalid_series_key"
	ReasonMissingCause      = "missing_cause"
	ReasonInvalidQuantity   = "invalid_quantity"
	ReasonMissingPurchaseID = "missing_purchase_order_id"
)

// Event is a validated forecast event: which series, which stock change,
// and the forecast to decide with.
type Event struct {
	Series  Scope
	EventID string
	Change  Change
	Source  *forecastv1.ForecastEvent
	// Where the event was read in forecasts.v1; nil for steps without a
	// position (SetPolicy's re-evaluation).
	Pos *Position
}

// Position is a record's place in its partition and the offset of that
// partition's first record in the batch being handled (where the consumer
// restarted: the committed position under Kafka transactions).
type Position struct {
	Partition int32
	Offset    int64
	Start     int64
}

// SeriesKey is sku|location.
func (e Event) SeriesKey() string { return topics.SeriesKey(e.Series.SKU, e.Series.Location) }

// NewEvent validates a forecast event and reads its cause's stock change.
func NewEvent(ev *forecastv1.ForecastEvent) (Event, error) {
	if ev.GetEventId() == "" {
		return Event{}, &InvalidEventError{ReasonMissingEventID, "forecast " + ev.GetForecastId() + " has no event_id"}
	}
	sku, location, ok := topics.SplitSeriesKey(ev.GetSeriesKey())
	if !ok {
		return Event{}, &InvalidEventError{ReasonInvalidSeriesKey, fmt.Sprintf("series_key %q is not sku|location", ev.GetSeriesKey())}
	}
	if ev.GetCause() == nil {
		return Event{}, &InvalidEventError{ReasonMissingCause, "forecast of event " + ev.GetEventId() + " carries no cause"}
	}
	ch, err := changeOf(ev.GetCause())
	if err != nil {
		return Event{}, err
	}
	if at := ev.GetCause().GetOccurredAt(); at != nil {
		ch.OccurredAtNs = at.AsTime().UnixNano()
	}
	return Event{Series: Scope{SKU: sku, Location: location}, EventID: ev.GetEventId(), Change: ch, Source: ev}, nil
}

// changeOf maps a cause to its stock change.
func changeOf(cause *demandv1.DemandEvent) (Change, error) {
	var ch Change
	switch {
	case cause.GetDemand() != nil:
		d := cause.GetDemand()
		ch = Change{Kind: ChangeDemand, Quantity: d.GetQuantity()}
		if d.GetKind() == demandv1.DemandKind_DEMAND_KIND_RETURN {
			ch = Change{Kind: ChangeReturn, Quantity: math.Abs(d.GetQuantity())}
		}
	case cause.GetInventory() != nil:
		inv := cause.GetInventory()
		switch {
		case inv.GetSnapshot() != nil:
			ch = Change{Kind: ChangeSnapshot, Quantity: inv.GetSnapshot().GetOnHand(), Reserved: inv.GetSnapshot().GetReserved()}
		case inv.GetAdjustment() != nil:
			ch = Change{Kind: ChangeAdjustment, Quantity: inv.GetAdjustment().GetDelta()}
		case inv.GetReceipt() != nil:
			ch = Change{Kind: ChangeReceipt, Quantity: inv.GetReceipt().GetQuantity(), PurchaseOrderID: inv.GetReceipt().GetPurchaseOrderId()}
		case inv.GetPurchaseOrderPlaced() != nil:
			p := inv.GetPurchaseOrderPlaced()
			ch = Change{Kind: ChangePurchaseOrder, Quantity: p.GetQuantity(), PurchaseOrderID: p.GetPurchaseOrderId(), SupplierID: p.GetSupplierId()}
			if p.GetExpectedAt() != nil {
				ch.ExpectedDay = p.GetExpectedAt().AsTime().UTC().Format(time.DateOnly)
			}
			if ch.PurchaseOrderID == "" {
				return Change{}, &InvalidEventError{ReasonMissingPurchaseID, "purchase order placed without an id"}
			}
		case inv.GetStockoutStarted() != nil:
			ch = Change{Kind: ChangeStockoutStarted}
		case inv.GetStockoutEnded() != nil:
			ch = Change{Kind: ChangeStockoutEnded}
		default:
			ch = Change{Kind: ChangeNone}
		}
	case cause.GetItem() != nil:
		ch = Change{Kind: ChangeItem, Category: cause.GetItem().GetCategory()}
	default: // price, promotion: no stock change
		ch = Change{Kind: ChangeNone}
	}
	if bad(ch.Quantity) || bad(ch.Reserved) {
		return Change{}, &InvalidEventError{ReasonInvalidQuantity, fmt.Sprintf("%s quantity %v reserved %v", ch.Kind, ch.Quantity, ch.Reserved)}
	}
	return ch, nil
}

func bad(x float64) bool { return math.IsNaN(x) || math.IsInf(x, 0) }

// forecastOf reads the policy math's view of a forecast event.
func forecastOf(ev *forecastv1.ForecastEvent) (replenish.Forecast, error) {
	start, err := time.Parse(time.DateOnly, ev.GetStartDay())
	if err != nil {
		return replenish.Forecast{}, fmt.Errorf("%w: start_day %q", replenish.ErrMalformedForecast, ev.GetStartDay())
	}
	f := replenish.Forecast{
		StartDay:       start,
		QuantileLevels: ev.GetQuantileLevels(),
		DailyMeans:     make([]float64, len(ev.GetDaily())),
		LeadTimeDemand: make([]replenish.LeadTimeDemand, len(ev.GetLeadTimeDemand())),
	}
	for i, d := range ev.GetDaily() {
		f.DailyMeans[i] = d.GetMean()
	}
	for i, l := range ev.GetLeadTimeDemand() {
		f.LeadTimeDemand[i] = replenish.LeadTimeDemand{
			Days:      int(l.GetLeadTimeDays() + l.GetReviewPeriodDays()),
			Mean:      l.GetMean(),
			Quantiles: l.GetQuantiles(),
		}
	}
	return f, nil
}
