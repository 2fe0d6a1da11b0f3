// Package planning turns each series' ordered stream of forecast events into
// inventory positions and purchase proposals: one proposal each time the
// inventory position falls below the reorder point, with a deterministic id,
// so a replay of the log gives the same proposals.
package planning

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/replenish"
)

// Planner applies events to the inventory state and decides.
type Planner struct {
	policies *Policies
	state    StateStore
	log      *slog.Logger
}

// NewPlanner returns a planner.
func NewPlanner(policies *Policies, state StateStore, log *slog.Logger) *Planner {
	return &Planner{policies: policies, state: state, log: log}
}

// Result is what a batch of events produced.
type Result struct {
	// In event order. A redelivered decision is rebuilt identically.
	Proposals []*replenishmentv1.Proposal
	// Events applied without a decision because the forecast does not
	// cover the series' policy (lead time or service level).
	Undecided int
	// Events that had been applied before.
	Replayed int
}

// Plan applies the events, in order, and returns the proposals they cause.
// It fails only when a store fails; the caller retries the same events.
func (p *Planner) Plan(ctx context.Context, events []Event) (Result, error) {
	var res Result
	if len(events) == 0 {
		return res, nil
	}
	scopes := make([]Scope, 0, len(events))
	for _, ev := range events {
		scopes = append(scopes, ev.Series)
	}
	policies, err := p.policies.EffectiveAll(ctx, scopes)
	if err != nil {
		return res, err
	}
	steps := make([]Step, len(events))
	for i, ev := range events {
		pol := policies[ev.Series]
		steps[i] = Step{Series: ev.Series, EventID: ev.EventID, Change: ev.Change, Policy: pol}
		levels, err := levelsOf(ev, pol.Policy)
		if err != nil {
			// The position still moves; the crossing waits for a forecast
			// that covers the policy.
			res.Undecided++
			p.log.Warn("no reorder point for event", "series", ev.SeriesKey(), "event_id", ev.EventID, "err", err)
			continue
		}
		steps[i].HasReorderPoint, steps[i].ReorderPoint, steps[i].OrderUpTo = true, levels.ReorderPoint, levels.OrderUpTo
	}
	outcomes, err := p.state.Apply(ctx, steps)
	if err != nil {
		return res, err
	}
	for i, o := range outcomes {
		if o.Replayed {
			res.Replayed++
		}
		if !o.Crossed {
			continue
		}
		prop, err := newProposal(events[i], o)
		if err != nil {
			// Only reachable if the same event came back with another forecast.
			res.Undecided++
			p.log.Error("rebuild decision", "series", events[i].SeriesKey(), "event_id", events[i].EventID, "err", err)
			continue
		}
		res.Proposals = append(res.Proposals, prop)
	}
	return res, nil
}

func levelsOf(ev Event, pol replenish.Policy) (replenish.Levels, error) {
	f, err := forecastOf(ev.Source)
	if err != nil {
		return replenish.Levels{}, err
	}
	return replenish.ComputeLevels(f, pol)
}

// ProposalID is hex(sha256(series_key + "|" + event_id)[:16]): one decision
// per event of a series, the same on every replay.
func ProposalID(seriesKey, eventID string) string {
	sum := sha256.Sum256([]byte(seriesKey + "|" + eventID))
	return hex.EncodeToString(sum[:16])
}

// newProposal builds the proposal of a crossing from the recorded outcome
// and policy; the forecast comes with the (identical) redelivered event.
func newProposal(ev Event, o Outcome) (*replenishmentv1.Proposal, error) {
	f, err := forecastOf(ev.Source)
	if err != nil {
		return nil, err
	}
	plan, err := replenish.NewPlan(f, o.Policy.Policy, o.Position, f.StartDay)
	if err != nil {
		return nil, err
	}
	decidedAt := ev.Source.GetAsOf()
	if decidedAt == nil {
		decidedAt = ev.Source.GetCause().GetOccurredAt()
	}
	prop := &replenishmentv1.Proposal{
		ProposalId:             ProposalID(ev.SeriesKey(), ev.EventID),
		SeriesKey:              ev.SeriesKey(),
		Sku:                    ev.Series.SKU,
		Location:               ev.Series.Location,
		EventId:                ev.EventID,
		ForecastId:             ev.Source.GetForecastId(),
		DecidedAt:              decidedAt,
		Reason:                 o.Reason,
		Quantity:               plan.Constrained,
		UnconstrainedQuantity:  plan.Unconstrained,
		ReorderPoint:           plan.ReorderPoint,
		OrderUpTo:              plan.OrderUpTo,
		InventoryPosition:      plan.InventoryPosition,
		OnHand:                 plan.OnHand,
		OnOrder:                plan.OnOrder,
		Backorders:             plan.Backorders,
		SafetyStock:            plan.SafetyStock,
		ExpectedLeadTimeDemand: plan.ExpectedLeadTimeDemand,
		Policy:                 PolicyToProto(o.Policy.From, o.Policy.Policy),
		ExpectedArrivalDay:     plan.ExpectedArrivalDay.Format(time.DateOnly),
		Status:                 replenishmentv1.ProposalStatus_PROPOSAL_STATUS_PROPOSED,
		DecisionSeq:            o.DecisionSeq,
	}
	if !plan.ProjectedStockoutDay.IsZero() {
		prop.ProjectedStockoutDay = plan.ProjectedStockoutDay.Format(time.DateOnly)
	}
	if plan.ReorderPoint != o.ReorderPoint {
		return nil, fmt.Errorf("reorder point %v differs from the recorded %v", plan.ReorderPoint, o.ReorderPoint)
	}
	return prop, nil
}

// PolicyToProto is the contract form of a policy stored under scope.
func PolicyToProto(scope Scope, p replenish.Policy) *replenishmentv1.Policy {
	return &replenishmentv1.Policy{
		Sku:              scope.SKU,
		Location:         scope.Location,
		ServiceLevel:     p.ServiceLevel,
		LeadTimeDays:     int32(p.LeadTimeDays),
		ReviewPeriodDays: int32(p.ReviewPeriodDays),
		Moq:              p.MOQ,
		PackSize:         p.PackSize,
		MaxOrder:         p.MaxOrder,
		OrderCoverDays:   int32(p.OrderCoverDays),
	}
}

// PolicyFromProto reads the scope and policy of a contract policy.
func PolicyFromProto(p *replenishmentv1.Policy) (Scope, replenish.Policy) {
	return Scope{SKU: p.GetSku(), Location: p.GetLocation()}, replenish.Policy{
		ServiceLevel:     p.GetServiceLevel(),
		LeadTimeDays:     int(p.GetLeadTimeDays()),
		ReviewPeriodDays: int(p.GetReviewPeriodDays()),
		MOQ:              p.GetMoq(),
		PackSize:         p.GetPackSize(),
		MaxOrder:         p.GetMaxOrder(),
		OrderCoverDays:   int(p.GetOrderCoverDays()),
	}
}
