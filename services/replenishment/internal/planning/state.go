package planning

import (
	"context"

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
	// Recorded with a decision, so a redelivery rebuilds the same proposal
	// even if the policy changed in between.
	Policy EffectivePolicy
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
	// As recorded when Crossed.
	ReorderPoint float64
	Policy       EffectivePolicy
}

// StateStore applies steps atomically and exactly once per (series, event),
// in the order given.
type StateStore interface {
	Apply(ctx context.Context, steps []Step) ([]Outcome, error)
}
