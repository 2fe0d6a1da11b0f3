package planning

import (
	"context"

	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/replenish"
)

// ChangeKind is how an event moves a series' stock.
type ChangeKind string

// Change kinds; the values are what the state script switches on.
const (
	// Prices, promotions, item attributes: stock unchanged, the crossing is
	// still re-evaluated against the new forecast.
	ChangeNone ChangeKind = "none"
	// Signed order-line demand: > 0 takes from on hand (shortfall becomes
	// backorders), < 0 (cancellation) reduces backorders first.
	ChangeDemand ChangeKind = "demand"
	// A customer return: on hand += quantity.
	ChangeReturn          ChangeKind = "return"
	ChangeSnapshot        ChangeKind = "snapshot"
	ChangeAdjustment      ChangeKind = "adjustment"
	ChangePurchaseOrder   ChangeKind = "purchase_order"
	ChangeReceipt         ChangeKind = "receipt"
	ChangeStockoutStarted ChangeKind = "stockout_started"
	ChangeStockoutEnded   ChangeKind = "stockout_ended"
	// A policy change re-evaluating the series (SetPolicy): no stock moves.
	ChangePolicy ChangeKind = "policy"
	// Item attributes: no stock moves; the category is kept.
	ChangeItem ChangeKind = "item"
)

// Change is one event's effect on stock.
type Change struct {
	Kind ChangeKind
	// Demand (signed), return, snapshot on hand, adjustment delta,
	// purchase order or receipt quantity.
	Quantity float64
	// Snapshot: units promised to open orders, taken as the backorders.
	Reserved float64
	// Purchase order and receipt.
	PurchaseOrderID string
	// Purchase order: expected arrival, "YYYY-MM-DD" or empty.
	ExpectedDay string
	// Purchase order: the supplier, for lead-time statistics.
	SupplierID string
	// Item attributes: the category (empty: unchanged).
	Category string
	// Event time in ns since the epoch (the cause's occurred_at); 0 when
	// unknown: then the event is applied in log order and not journaled.
	OccurredAtNs int64
}

// Step is one event to apply to a series' state.
type Step struct {
	Series  Scope
	EventID string
	Change  Change
	// The reorder point of this event's forecast under Policy; without one
	// (the forecast does not cover the policy) the crossing state is kept.
	HasReorderPoint bool
	ReorderPoint    float64
	// The order-up-to level under the same forecast and policy; a move
	// beyond the revise threshold revises an open proposal.
	OrderUpTo float64
	// Periodic review (R, S): decide once per review point, at the series'
	// first event on or after it (by event time), whenever the position is
	// below the order-up-to level (ReorderPoint = OrderUpTo = S).
	// ReviewDay is the latest review day on or before the event time's day
	// (empty: none within a year), ReviewIsToday whether it is that day. A
	// series' first review point is only taken on its day.
	Periodic      bool
	ReviewDay     string
	ReviewIsToday bool
	// The learned lead time the levels used (N = 0: the policy's).
	LeadTime replenish.LeadTimeStats
	// When a decision of this event is taken, in ns since the epoch: the
	// event time, else the forecast's as_of; 0 when unknown. Revisions for
	// a new forecast are spaced by it (StateConfig.ReviseInterval).
	DecidedAtNs int64
	// The forecast event without its cause, set on a batch's last event of
	// each series: kept as the series' latest forecast for SetPolicy.
	Forecast []byte
	// Recorded with a decision, so a redelivery rebuilds the same proposal
	// even if the policy changed in between.
	Policy EffectivePolicy
	// The event's place in forecasts.v1 (nil: none): with it, the store
	// may recognise a redelivery by the series' offset watermark instead
	// of a marker per event.
	Pos *Position
}

// Outcome is what applying a step did. A redelivered step returns the
// outcome recorded the first time, unchanged.
type Outcome struct {
	Position    replenish.Position
	DecisionSeq int64
	// The position fell below the reorder point with this event: decide.
	Crossed bool
	// The event had been applied before; nothing changed now.
	Replayed bool
	// "started" / "ended": the event began or ended a stockout period that
	// the platform did not report (on hand reached 0 / came back above 0),
	// to publish as a stockout event (recorded: a redelivery publishes the
	// same event again, which ingest de-duplicates).
	StockoutSignal string
	// As recorded when Crossed.
	ReorderPoint float64
	Policy       EffectivePolicy
	Reason       replenishmentv1.ProposalReason
	LeadTime     replenish.LeadTimeStats
}

// SeriesInfo is what decisions read from a series' state besides its position.
type SeriesInfo struct {
	LeadTime replenish.LeadTimeStats
	Category string
}

// SeriesPolicyReader is a StateStore that reads the series' info
// (SeriesInfo) and the stored policies of a SharedPolicyStore (its Lookup)
// in one round trip: the reads that precede every run of steps.
type SeriesPolicyReader interface {
	SeriesInfoAndPolicies(ctx context.Context, series, policies []Scope) (map[Scope]SeriesInfo, map[Scope]replenish.ServicePolicy, error)
}

// StateStore applies steps atomically and exactly once per (series, event),
// in the order given.
type StateStore interface {
	Apply(ctx context.Context, steps []Step) ([]Outcome, error)
	// SeriesInfo returns the series' learned lead times and categories
	// (absent: neither).
	SeriesInfo(ctx context.Context, series []Scope) (map[Scope]SeriesInfo, error)
	// LastForecast returns the series' latest forecast event (nil: none).
	LastForecast(ctx context.Context, series Scope) ([]byte, error)
	// ScanSeries returns a page of the series with a latest forecast, at
	// location (all series when empty), from cursor (0 first); the next
	// cursor is 0 after the last page. A series may come back twice.
	ScanSeries(ctx context.Context, location string, cursor uint64, count int64) ([]Scope, uint64, error)
}
