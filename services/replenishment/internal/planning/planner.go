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
	"math"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/replenish"
)

// Planner applies events to the inventory state and decides.
type Planner struct {
	policies   *Policies
	state      StateStore
	log        *slog.Logger
	minSamples int
}

// NewPlanner returns a planner that uses policies' lead times only.
func NewPlanner(policies *Policies, state StateStore, log *slog.Logger) *Planner {
	return &Planner{policies: policies, state: state, log: log}
}

// NewPlannerLearning returns a planner that replaces a policy's lead time by
// the series' learned one once it has minSamples receipts (0: never).
func NewPlannerLearning(policies *Policies, state StateStore, log *slog.Logger, minSamples int) *Planner {
	return &Planner{policies: policies, state: state, log: log, minSamples: minSamples}
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
	// Stockout periods the service detected and the platform did not
	// report, as inventory events for inventory.v1 (censoring flags for
	// forecasting), in event order.
	Stockouts []*inventoryv1.InventoryEvent
}

// Plan applies the events, in order, and returns the proposals they cause.
// It fails only when a store fails; the caller retries the same events.
func (p *Planner) Plan(ctx context.Context, events []Event) (Result, error) {
	var res Result
	if len(events) == 0 {
		return res, nil
	}
	steps := make([]Step, len(events))
	last := make(map[Scope]int, len(events))
	for i, ev := range events {
		steps[i] = Step{Series: ev.Series, EventID: ev.EventID, Change: ev.Change, Pos: ev.Pos}
		if at := eventTime(ev); at.UnixNano() > 0 {
			steps[i].DecidedAtNs = at.UnixNano()
		}
		last[ev.Series] = i
	}
	for _, i := range last {
		steps[i].Forecast = latestForecast(events[i].Source)
	}
	// Learned lead times change with receipts and categories with item
	// events: the steps are applied in runs that end at such an event, each
	// run deciding with the state before it, so every event sees the events
	// before it whatever the batch boundaries.
	outcomes := make([]Outcome, 0, len(events))
	for start := 0; start < len(steps); {
		end := start + 1
		for end < len(steps) && steps[end-1].Change.Kind != ChangeReceipt && steps[end-1].Change.Kind != ChangeItem {
			end++
		}
		info, policies, err := p.inputs(ctx, uniqueSeries(steps[start:end]))
		if err != nil {
			return res, err
		}
		for i := start; i < end; i++ {
			ev := events[i]
			steps[i].Policy = policies[ev.Series]
			var lt replenish.LeadTimeStats
			if l := info[ev.Series].LeadTime; p.minSamples > 0 && l.N >= p.minSamples {
				lt = l
			}
			levels, err := levelsOf(ev, steps[i].Policy.ServicePolicy, lt)
			if err != nil {
				// The position still moves; the crossing waits for a forecast
				// that covers the policy.
				res.Undecided++
				p.log.Warn("no reorder point for event", "series", ev.SeriesKey(), "event_id", ev.EventID, "err", err)
				continue
			}
			steps[i].HasReorderPoint, steps[i].ReorderPoint, steps[i].OrderUpTo = true, levels.ReorderPoint, levels.OrderUpTo
			steps[i].LeadTime = lt
			if pol := steps[i].Policy; pol.Kind == replenish.KindPeriodic {
				steps[i].Periodic = true
				steps[i].ReviewDay, steps[i].ReviewIsToday = lastReviewDay(pol.ServicePolicy, eventTime(ev))
			}
		}
		out, err := p.state.Apply(ctx, steps[start:end])
		if err != nil {
			return res, err
		}
		outcomes = append(outcomes, out...)
		start = end
	}
	for i, o := range outcomes {
		if o.Replayed {
			res.Replayed++
		}
		if o.StockoutSignal != "" {
			res.Stockouts = append(res.Stockouts, StockoutEvent(events[i], o.StockoutSignal))
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

// uniqueSeries is the steps' series, each once, in order.
func uniqueSeries(steps []Step) []Scope {
	series := make([]Scope, 0, len(steps))
	seen := make(map[Scope]bool, len(steps))
	for _, st := range steps {
		if !seen[st.Series] {
			seen[st.Series] = true
			series = append(series, st.Series)
		}
	}
	return series
}

// inputs reads what deciding the series needs: their learned lead times
// and categories, and the policies in force (categories select the policy
// file's category policies). When the state store reads the policy store's
// policies too (the Redis stores) both reads are one round trip, else two.
func (p *Planner) inputs(ctx context.Context, series []Scope) (map[Scope]SeriesInfo, map[Scope]EffectivePolicy, error) {
	if shared, ok := p.policies.store.(SharedPolicyStore); ok && shared.SharesWith(p.state) {
		if r, ok := p.state.(SeriesPolicyReader); ok {
			info, stored, err := r.SeriesInfoAndPolicies(ctx, series, lookupScopes(series))
			if err != nil {
				return nil, nil, err
			}
			return info, p.policies.resolve(stored, series, categoriesOf(series, info)), nil
		}
	}
	info, err := p.state.SeriesInfo(ctx, series)
	if err != nil {
		return nil, nil, err
	}
	policies, err := p.policies.EffectiveIn(ctx, series, categoriesOf(series, info))
	if err != nil {
		return nil, nil, err
	}
	return info, policies, nil
}

// categoriesOf is the series' categories from their info.
func categoriesOf(series []Scope, info map[Scope]SeriesInfo) map[Scope]string {
	categories := make(map[Scope]string, len(info))
	for _, s := range series {
		if c := info[s].Category; c != "" {
			categories[s] = c
		}
	}
	return categories
}

// lastReviewDay is the latest review day of a periodic policy on or before
// the UTC day of at ("" when there is none within a year), and whether it
// is that day.
func lastReviewDay(pol replenish.ServicePolicy, at time.Time) (string, bool) {
	at = at.UTC()
	for back := 0; back <= 366; back++ {
		if d := at.AddDate(0, 0, -back); pol.IsReviewDay(d) {
			return d.Format(time.DateOnly), back == 0
		}
	}
	return "", false
}

// levelsOf computes the policy kind's levels with the policy's lead time, or
// with the learned one (lt.N > 0) as a mixture over lead times.
func levelsOf(ev Event, pol replenish.ServicePolicy, lt replenish.LeadTimeStats) (replenish.ServiceDecision, error) {
	f, err := forecastOf(ev.Source)
	if err != nil {
		return replenish.ServiceDecision{}, err
	}
	return replenish.ServiceLevels(f, pol, lt)
}

// eventTime is when the event happened (its cause's occurred_at), else the
// forecast's as_of: the day a periodic policy's review calendar is read on.
func eventTime(ev Event) time.Time {
	if ns := ev.Change.OccurredAtNs; ns != 0 {
		return time.Unix(0, ns).UTC()
	}
	return ev.Source.GetAsOf().AsTime().UTC()
}

// LatestForecast is the part of a forecast event kept as the series'
// latest forecast, for re-evaluating the series when its policy changes and
// for a portfolio allocation: exactly the fields those read (ids, as_of,
// start day, quantile levels, daily means, lead-time demand, demand class;
// the cause's occurred_at only when as_of is missing), so a decision from
// it equals one from the whole event. Daily quantiles, the global model's
// part, the reason and the cause (about 3/4 of an event) are left out.
func LatestForecast(ev *forecastv1.ForecastEvent) *forecastv1.ForecastEvent {
	c := &forecastv1.ForecastEvent{
		ForecastId:     ev.GetForecastId(),
		EventId:        ev.GetEventId(),
		AsOf:           ev.GetAsOf(),
		StartDay:       ev.GetStartDay(),
		QuantileLevels: ev.GetQuantileLevels(),
		LeadTimeDemand: ev.GetLeadTimeDemand(),
		DemandClass:    ev.GetDemandClass(),
	}
	if c.AsOf == nil && ev.GetCause().GetOccurredAt() != nil {
		c.Cause = &demandv1.DemandEvent{OccurredAt: ev.GetCause().GetOccurredAt()}
	}
	if d := ev.GetDaily(); len(d) > 0 {
		c.Daily = make([]*forecastv1.DailyForecast, len(d))
		for i, day := range d {
			c.Daily[i] = &forecastv1.DailyForecast{Mean: day.GetMean()}
		}
	}
	return c
}

// latestForecast is LatestForecast encoded, as the state store keeps it
// (EncodeLatest; DecodeLatest reads it back).
func latestForecast(ev *forecastv1.ForecastEvent) []byte {
	return EncodeLatest(LatestForecast(ev))
}

// planOf is replenish.NewPlan with the levels and order size of the
// policy's kind (levelsOf): a learned lead time also sets the expected
// arrival (decision day + its rounded mean).
func planOf(f replenish.Forecast, pol replenish.ServicePolicy, lt replenish.LeadTimeStats, pos replenish.Position, day time.Time) (replenish.Plan, error) {
	d, err := replenish.ServiceLevels(f, pol, lt)
	if err != nil {
		return replenish.Plan{}, err
	}
	lead := pol.LeadTimeDays
	if lt.N > 0 {
		lead = int(math.Round(math.Max(lt.Mean, 0)))
	}
	plan := replenish.Plan{
		Levels:             d.Levels,
		Position:           pos,
		InventoryPosition:  pos.Inventory(),
		Quantities:         replenish.ServiceOrderQuantity(pol, d, pos.Inventory()),
		ExpectedArrivalDay: day.AddDate(0, 0, lead),
	}
	if d, ok := replenish.ProjectedStockout(f, pos.OnHand); ok {
		plan.ProjectedStockoutDay = d
	}
	return plan, nil
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
	plan, err := planOf(f, o.Policy.ServicePolicy, o.LeadTime, o.Position, f.StartDay)
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
		Policy:                 PolicyToProto(o.Policy.From, o.Policy.ServicePolicy),
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

var (
	kindToProto = map[replenish.PolicyKind]replenishmentv1.PolicyKind{
		replenish.KindDefault:         replenishmentv1.PolicyKind_POLICY_KIND_UNSPECIFIED,
		replenish.KindReorderUpTo:     replenishmentv1.PolicyKind_POLICY_KIND_S_S,
		replenish.KindReorderQuantity: replenishmentv1.PolicyKind_POLICY_KIND_S_Q,
		replenish.KindPeriodic:        replenishmentv1.PolicyKind_POLICY_KIND_R_S,
	}
	targetToProto = map[replenish.TargetKind]replenishmentv1.PolicyTarget{
		replenish.TargetCycleServiceLevel: replenishmentv1.PolicyTarget_POLICY_TARGET_UNSPECIFIED,
		replenish.TargetFillRate:          replenishmentv1.PolicyTarget_POLICY_TARGET_FILL_RATE,
		replenish.TargetNewsvendor:        replenishmentv1.PolicyTarget_POLICY_TARGET_NEWSVENDOR,
	}
)

// PolicyToProto is the contract form of a policy stored under scope.
func PolicyToProto(scope Scope, p replenish.ServicePolicy) *replenishmentv1.Policy {
	var days []int32
	for _, d := range p.ReviewWeekdays.Days() {
		days = append(days, int32(d))
	}
	return &replenishmentv1.Policy{
		Kind:             kindToProto[p.Kind],
		Target:           targetToProto[p.Target],
		FillRate:         p.FillRate,
		OrderCost:        p.OrderCost,
		HoldingCost:      p.HoldingCost,
		ShortageCost:     p.ShortageCost,
		OrderQuantity:    p.FixedQuantity,
		ReviewWeekdays:   days,
		ReviewAnchorDate: p.ReviewAnchor,
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

// PolicyFromProto reads the scope and policy of a contract policy. An
// unknown kind or target enum value becomes a kind or target that Validate
// rejects.
func PolicyFromProto(p *replenishmentv1.Policy) (Scope, replenish.ServicePolicy) {
	sp := replenish.ServicePolicy{
		Kind:          replenish.PolicyKind(fmt.Sprintf("unknown kind %d", p.GetKind())),
		Target:        replenish.TargetKind(fmt.Sprintf("unknown target %d", p.GetTarget())),
		FillRate:      p.GetFillRate(),
		OrderCost:     p.GetOrderCost(),
		HoldingCost:   p.GetHoldingCost(),
		ShortageCost:  p.GetShortageCost(),
		FixedQuantity: p.GetOrderQuantity(),
		ReviewAnchor:  p.GetReviewAnchorDate(),
	}
	for k, v := range kindToProto {
		if v == p.GetKind() {
			sp.Kind = k
		}
	}
	if p.GetKind() == replenishmentv1.PolicyKind_POLICY_KIND_UNSPECIFIED {
		sp.Kind = replenish.KindDefault
	}
	for k, v := range targetToProto {
		if v == p.GetTarget() {
			sp.Target = k
		}
	}
	if t := p.GetTarget(); t == replenishmentv1.PolicyTarget_POLICY_TARGET_UNSPECIFIED || t == replenishmentv1.PolicyTarget_POLICY_TARGET_CYCLE_SERVICE_LEVEL {
		sp.Target = replenish.TargetCycleServiceLevel
	}
	for _, d := range p.GetReviewWeekdays() {
		if d < 0 || d > 6 {
			sp.ReviewWeekdays = 1 << 7 // rejected by Validate
			continue
		}
		sp.ReviewWeekdays |= 1 << uint(d)
	}
	sp.Policy = replenish.Policy{
		ServiceLevel:     p.GetServiceLevel(),
		LeadTimeDays:     int(p.GetLeadTimeDays()),
		ReviewPeriodDays: int(p.GetReviewPeriodDays()),
		MOQ:              p.GetMoq(),
		PackSize:         p.GetPackSize(),
		MaxOrder:         p.GetMaxOrder(),
		OrderCoverDays:   int(p.GetOrderCoverDays()),
	}
	return Scope{SKU: p.GetSku(), Location: p.GetLocation()}, sp
}

// Reevaluate decides a series again, at once, with its latest forecast and
// its policy in force: after SetPolicy. The decision point is the policy
// and the latest event, so a retried SetPolicy decides nothing new (same
// id, recorded outcome), and a series without a forecast yet waits for its
// next event.
func (p *Planner) Reevaluate(ctx context.Context, series Scope) (Result, error) {
	return p.reevaluate(ctx, []Scope{series}, nil)
}

// ReevaluateBatch is how many series ReevaluateScope decides in one Plan.
const ReevaluateBatch = 500

// ReevaluateScope decides again, at once, every series whose policy in
// force is the one stored under a location or the global scope (after
// SetPolicy there): the series with a latest forecast are scanned in pages
// of about ReevaluateBatch, each page planned as one batch and handed to
// emit before the next is read. Series that another (more specific) policy
// governs are skipped. The decision points are Reevaluate's, so a retried
// SetPolicy decides nothing new and emits the recorded decisions again.
func (p *Planner) ReevaluateScope(ctx context.Context, scope Scope, emit func(Result) error) error {
	if scope.SKU != "" {
		res, err := p.Reevaluate(ctx, scope)
		if err != nil {
			return err
		}
		return emit(res)
	}
	from := func(eff EffectivePolicy) bool { return eff.From == scope && eff.Source == scope.source() }
	var cursor uint64
	for {
		page, next, err := p.state.ScanSeries(ctx, scope.Location, cursor, ReevaluateBatch)
		if err != nil {
			return err
		}
		if len(page) > 0 {
			res, err := p.reevaluate(ctx, page, from)
			if err != nil {
				return err
			}
			if err := emit(res); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// reevaluate decides the series with their latest forecasts, those whose
// effective policy keep accepts (nil: all), in one Plan.
func (p *Planner) reevaluate(ctx context.Context, series []Scope, keep func(EffectivePolicy) bool) (Result, error) {
	seen := make(map[Scope]bool, len(series))
	uniq := series[:0:0]
	for _, s := range series {
		if !seen[s] {
			seen[s] = true
			uniq = append(uniq, s)
		}
	}
	_, all, err := p.inputs(ctx, uniq)
	if err != nil {
		return Result{}, err
	}
	var evs []Event
	for _, s := range uniq {
		eff := all[s]
		if keep != nil && !keep(eff) {
			continue
		}
		raw, err := p.state.LastForecast(ctx, s)
		if err != nil {
			return Result{}, err
		}
		if raw == nil {
			continue // no forecast yet: the series' next event decides
		}
		fe, err := DecodeLatest(raw)
		if err != nil {
			return Result{}, fmt.Errorf("decode latest forecast of %s|%s: %w", s.SKU, s.Location, err)
		}
		sum := sha256.Sum256([]byte(fmt.Sprintf("%+v", eff)))
		evs = append(evs, Event{
			Series:  s,
			EventID: "policy:" + hex.EncodeToString(sum[:8]) + "@" + fe.GetEventId(),
			Change:  Change{Kind: ChangePolicy},
			Source:  fe,
		})
	}
	return p.Plan(ctx, evs)
}

// StockoutEventPrefix starts the event ids of the stockout events the
// service publishes; the state script ignores them when they come back.
const StockoutEventPrefix = "replenishment-stockout:"

// StockoutEvent is the inventory event publishing a stockout period's start
// or end ("started" / "ended") detected at ev: event id
// StockoutEventPrefix + hex(sha256(series_key|event_id|signal)[:16]), time
// the event's (its cause's occurred_at, else the forecast's as_of).
func StockoutEvent(ev Event, signal string) *inventoryv1.InventoryEvent {
	sum := sha256.Sum256([]byte(ev.SeriesKey() + "|" + ev.EventID + "|" + signal))
	out := &inventoryv1.InventoryEvent{
		EventId:    StockoutEventPrefix + hex.EncodeToString(sum[:16]),
		OccurredAt: timestamppb.New(eventTime(ev)),
		Sku:        ev.Series.SKU,
		Location:   ev.Series.Location,
	}
	if signal == "ended" {
		out.Kind = &inventoryv1.InventoryEvent_StockoutEnded{StockoutEnded: &inventoryv1.StockoutEnded{}}
	} else {
		out.Kind = &inventoryv1.InventoryEvent_StockoutStarted{StockoutStarted: &inventoryv1.StockoutStarted{}}
	}
	return out
}
