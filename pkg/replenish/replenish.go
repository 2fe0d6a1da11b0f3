// Package replenish is the policy math of replenishment: reorder point,
// order-up-to level, order quantity under supplier constraints, safety
// stock, projected stockout and expected arrival. It is pure: no I/O, no
// clock, no randomness; the same inputs always give the same plan.
//
// Conventions, shared with the forecast service:
//   - A Forecast starts at StartDay (day 0 = the decision day). DailyMeans[i]
//     is the mean demand of StartDay+i.
//   - A LeadTimeDemand entry of Days = d describes demand over the rest of
//     day 0 and the next d days (the forecast's lead_time_days plus
//     review_period_days). Its quantiles are aligned with QuantileLevels.
//   - The reorder point of a policy is the quantile at ServiceLevel of the
//     lead-time demand over L+R days (lead time plus review period).
//     When no entry lists exactly L+R days, the value is interpolated
//     linearly between the two nearest listed spans on either side; when the
//     service level is not a listed level, it is interpolated linearly
//     between the two nearest levels. Nothing is extrapolated: a span or a
//     level outside what the forecast lists is an error, because guessing a
//     tail from its neighbours is exactly where stockouts come from.
//   - Daily quantiles are never added up: lead-time quantiles come from the
//     forecast, which computes them from sample paths or a convolution.
package replenish

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"time"
)

// Errors returned when the forecast does not carry what a policy needs.
var (
	ErrLeadTimeNotCovered     = errors.New("lead time not covered by the forecast's lead-time demand")
	ErrServiceLevelNotCovered = errors.New("service level not covered by the forecast's quantile levels")
	ErrMalformedForecast      = errors.New("malformed forecast")
)

// Policy says how a series is replenished.
type Policy struct {
	// Target cycle service level, in (0, 1).
	ServiceLevel float64
	// Supplier lead time and review period, in days.
	LeadTimeDays     int
	ReviewPeriodDays int
	// Minimum order quantity and pack size; 0 means no constraint.
	MOQ      float64
	PackSize float64
	// Largest order; 0 means no maximum.
	MaxOrder float64
	// Days of forecast demand an order covers beyond the reorder point.
	OrderCoverDays int
}

// Policy bounds, checked by Validate.
const (
	MaxLeadTimeDays     = 365
	MaxReviewPeriodDays = 365
	MaxOrderCoverDays   = 365
)

// Validate reports the first field out of range.
func (p Policy) Validate() error {
	switch {
	case !(p.ServiceLevel > 0 && p.ServiceLevel < 1):
		return fmt.Errorf("service level %v: must be in (0, 1)", p.ServiceLevel)
	case p.LeadTimeDays < 0 || p.LeadTimeDays > MaxLeadTimeDays:
		return fmt.Errorf("lead time %d days: must be in 0..%d", p.LeadTimeDays, MaxLeadTimeDays)
	case p.ReviewPeriodDays < 0 || p.ReviewPeriodDays > MaxReviewPeriodDays:
		return fmt.Errorf("review period %d days: must be in 0..%d", p.ReviewPeriodDays, MaxReviewPeriodDays)
	case p.OrderCoverDays < 0 || p.OrderCoverDays > MaxOrderCoverDays:
		return fmt.Errorf("order cover %d days: must be in 0..%d", p.OrderCoverDays, MaxOrderCoverDays)
	case !nonNegative(p.MOQ):
		return fmt.Errorf("moq %v: must be >= 0", p.MOQ)
	case !nonNegative(p.PackSize):
		return fmt.Errorf("pack size %v: must be >= 0", p.PackSize)
	case !nonNegative(p.MaxOrder):
		return fmt.Errorf("max order %v: must be >= 0", p.MaxOrder)
	}
	return nil
}

// nonNegative is false for NaN and infinities too.
func nonNegative(x float64) bool { return x >= 0 && !math.IsInf(x, 1) }

// Forecast is the part of a forecast the policy math reads.
type Forecast struct {
	// Day 0 of DailyMeans, at midnight UTC.
	StartDay time.Time
	// Ascending quantile levels, e.g. 0.05, 0.5, 0.95.
	QuantileLevels []float64
	// Mean demand per day from StartDay on.
	DailyMeans []float64
	// Lead-time demand for several spans.
	LeadTimeDemand []LeadTimeDemand
}

// LeadTimeDemand is the demand distribution over the rest of day 0 and the
// next Days days.
type LeadTimeDemand struct {
	Days      int
	Mean      float64
	Quantiles []float64 // aligned with Forecast.QuantileLevels
}

// Position is the stock of a series.
type Position struct {
	OnHand     float64
	OnOrder    float64
	Backorders float64
}

// Inventory is on hand + on order - backorders: what an order decision
// compares with the reorder point.
func (p Position) Inventory() float64 { return p.OnHand + p.OnOrder - p.Backorders }

// Levels are a policy's stock levels under one forecast.
type Levels struct {
	// Quantile of lead-time (+ review period) demand at the service level.
	ReorderPoint float64
	// Mean demand over the lead time (+ review period).
	ExpectedLeadTimeDemand float64
	// ReorderPoint - ExpectedLeadTimeDemand.
	SafetyStock float64
	// ReorderPoint + mean demand over the OrderCoverDays after the lead time.
	OrderUpTo float64
}

// ComputeLevels returns the reorder point, safety stock and order-up-to
// level of a policy under a forecast.
func ComputeLevels(f Forecast, p Policy) (Levels, error) {
	span := p.LeadTimeDays + p.ReviewPeriodDays
	quantile, mean, err := leadTimeDemand(f, span, p.ServiceLevel)
	if err != nil {
		return Levels{}, err
	}
	cover := coverDemand(f.DailyMeans, span+1, p.OrderCoverDays)
	return Levels{
		ReorderPoint:           quantile,
		ExpectedLeadTimeDemand: mean,
		SafetyStock:            quantile - mean,
		OrderUpTo:              quantile + cover,
	}, nil
}

// leadTimeDemand returns the quantile at level and the mean of demand over
// span days, interpolating between listed spans.
func leadTimeDemand(f Forecast, span int, level float64) (quantile, mean float64, err error) {
	if err := checkShape(f); err != nil {
		return 0, 0, err
	}
	entries := sortedBySpan(f.LeadTimeDemand)
	i := sort.Search(len(entries), func(i int) bool { return entries[i].Days >= span })
	if i == len(entries) || (entries[i].Days > span && i == 0) {
		return 0, 0, fmt.Errorf("%w: %d days, forecast lists %s", ErrLeadTimeNotCovered, span, spans(entries))
	}
	hi := entries[i]
	qHi, err := quantileAt(f.QuantileLevels, hi.Quantiles, level)
	if err != nil {
		return 0, 0, err
	}
	if hi.Days == span {
		return qHi, hi.Mean, nil
	}
	lo := entries[i-1]
	qLo, err := quantileAt(f.QuantileLevels, lo.Quantiles, level)
	if err != nil {
		return 0, 0, err
	}
	w := float64(span-lo.Days) / float64(hi.Days-lo.Days)
	return lerp(qLo, qHi, w), lerp(lo.Mean, hi.Mean, w), nil
}

func checkShape(f Forecast) error {
	for i := 1; i < len(f.QuantileLevels); i++ {
		if !(f.QuantileLevels[i] > f.QuantileLevels[i-1]) {
			return fmt.Errorf("%w: quantile levels not ascending: %v", ErrMalformedForecast, f.QuantileLevels)
		}
	}
	for _, e := range f.LeadTimeDemand {
		if len(e.Quantiles) != len(f.QuantileLevels) {
			return fmt.Errorf("%w: lead time %d has %d quantiles for %d levels",
				ErrMalformedForecast, e.Days, len(e.Quantiles), len(f.QuantileLevels))
		}
	}
	return nil
}

// sortedBySpan returns the entries ascending by Days, the first of equal
// spans kept, without touching the caller's slice.
func sortedBySpan(in []LeadTimeDemand) []LeadTimeDemand {
	out := make([]LeadTimeDemand, len(in))
	copy(out, in)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Days < out[j].Days })
	uniq := out[:0]
	for _, e := range out {
		if len(uniq) == 0 || uniq[len(uniq)-1].Days != e.Days {
			uniq = append(uniq, e)
		}
	}
	return uniq
}

func spans(entries []LeadTimeDemand) string {
	if len(entries) == 0 {
		return "none"
	}
	return fmt.Sprintf("%d..%d", entries[0].Days, entries[len(entries)-1].Days)
}

// quantileAt interpolates linearly between the two levels around level.
func quantileAt(levels, quantiles []float64, level float64) (float64, error) {
	i := sort.SearchFloat64s(levels, level)
	switch {
	case i < len(levels) && levels[i] == level:
		return quantiles[i], nil
	case i == 0 || i == len(levels):
		return 0, fmt.Errorf("%w: %v, forecast lists %v", ErrServiceLevelNotCovered, level, levels)
	}
	w := (level - levels[i-1]) / (levels[i] - levels[i-1])
	return lerp(quantiles[i-1], quantiles[i], w), nil
}

func lerp(a, b, w float64) float64 { return a + (b-a)*w }

// coverDemand sums the daily means of days [from, from+days). Days past the
// forecast horizon take the average of the horizon's last week (or of all
// of it when shorter), which keeps a weekly pattern from biasing the tail.
func coverDemand(daily []float64, from, days int) float64 {
	var sum float64
	var tail float64
	if n := len(daily); n > 0 {
		k := min(7, n)
		for _, m := range daily[n-k:] {
			tail += m
		}
		tail /= float64(k)
	}
	for d := from; d < from+days; d++ {
		if d < len(daily) {
			sum += daily[d]
		} else {
			sum += tail
		}
	}
	return sum
}

// Quantities are an order's size before and after supplier constraints.
type Quantities struct {
	// OrderUpTo - inventory position, or 0 when the position is at or above it.
	Unconstrained float64
	// After pack size, MOQ and maximum.
	Constrained float64
}

// OrderQuantity sizes an order that lifts the inventory position to the
// order-up-to level. Constraints apply in this order: round up to a multiple
// of the pack size, at least the MOQ, at most the maximum; so a MOQ or
// maximum that is not a multiple of the pack size wins over the pack size.
// Nothing to order stays 0: the MOQ never creates an order.
func OrderQuantity(orderUpTo, position float64, p Policy) Quantities {
	need := orderUpTo - position
	if !(need > 0) {
		return Quantities{}
	}
	q := need
	if p.PackSize > 0 {
		// The tolerance keeps 10.000000000001 units from costing a whole pack.
		q = math.Ceil(q/p.PackSize-1e-9) * p.PackSize
	}
	q = max(q, p.MOQ)
	if p.MaxOrder > 0 {
		q = min(q, p.MaxOrder)
	}
	return Quantities{Unconstrained: need, Constrained: q}
}

// ProjectedStockout returns the first day on which cumulative mean demand
// reaches on hand, and false when on hand lasts the whole horizon. Day 0's
// mean is taken as the forecast gives it. Stock on order is not counted:
// the question is when the shelf runs empty without action.
func ProjectedStockout(f Forecast, onHand float64) (time.Time, bool) {
	if onHand <= 0 {
		return f.StartDay, true
	}
	var cum float64
	for i, m := range f.DailyMeans {
		cum += m
		if cum >= onHand {
			return f.StartDay.AddDate(0, 0, i), true
		}
	}
	return time.Time{}, false
}

// Plan is a complete replenishment decision.
type Plan struct {
	Levels
	Position
	InventoryPosition float64
	Quantities
	// Zero when on hand lasts beyond the horizon.
	ProjectedStockoutDay time.Time
	// Decision day + lead time.
	ExpectedArrivalDay time.Time
}

// NewPlan computes the decision for a position under a policy and forecast,
// taken on decisionDay (midnight UTC).
func NewPlan(f Forecast, p Policy, pos Position, decisionDay time.Time) (Plan, error) {
	levels, err := ComputeLevels(f, p)
	if err != nil {
		return Plan{}, err
	}
	plan := Plan{
		Levels:             levels,
		Position:           pos,
		InventoryPosition:  pos.Inventory(),
		Quantities:         OrderQuantity(levels.OrderUpTo, pos.Inventory(), p),
		ExpectedArrivalDay: decisionDay.AddDate(0, 0, p.LeadTimeDays),
	}
	if day, ok := ProjectedStockout(f, pos.OnHand); ok {
		plan.ProjectedStockoutDay = day
	}
	return plan, nil
}
