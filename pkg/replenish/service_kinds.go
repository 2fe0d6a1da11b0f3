package replenish

// Policy kinds and targets of the replenishment service's decisions.
//
// A ServicePolicy is a Policy (lead time, review period, order constraints,
// cycle service level) plus how the service decides with it:
//
//   - KindDefault and KindReorderUpTo, continuous review (s, S): when the
//     inventory position falls below s, order up to S = s + the mean demand
//     of OrderCoverDays after the lead time (the service's behaviour before
//     kinds existed), or S = s + EOQ when the order and holding costs are
//     given.
//   - KindReorderQuantity, continuous review (s, Q): when the position falls
//     below s, order the smallest multiple of Q that lifts it above s; Q is
//     FixedQuantity, else the EOQ from the costs.
//   - KindPeriodic, periodic review (R, S): only on review days (ReviewWeekdays,
//     or every ReviewPeriodDays from ReviewAnchor), order up to S = the
//     target level of the demand over the lead time + review period.
//
// Targets: TargetCycleServiceLevel (the quantile at ServiceLevel, the
// default), TargetFillRate (the smallest level whose expected shortage per
// order cycle is at most (1 - FillRate) of the cycle's demand) and
// TargetNewsvendor (the quantile at the critical ratio
// shortage / (shortage + holding cost of one cycle)).

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"time"
)

// PolicyKind is how the service decides.
type PolicyKind string

// Policy kinds; the values are the policy file's and the stored form's.
const (
	KindDefault         PolicyKind = ""
	KindReorderUpTo     PolicyKind = "s_S"
	KindReorderQuantity PolicyKind = "s_Q"
	KindPeriodic        PolicyKind = "R_S"
)

// TargetKind is what the level targets.
type TargetKind string

// Targets.
const (
	TargetCycleServiceLevel TargetKind = ""
	TargetFillRate          TargetKind = "fill_rate"
	TargetNewsvendor        TargetKind = "newsvendor"
)

// ServicePolicy is a Policy with the service's decision rule.
type ServicePolicy struct {
	Policy
	Kind   PolicyKind
	Target TargetKind
	// Fill-rate target in (0, 1) (TargetFillRate).
	FillRate float64
	// Cost of placing an order, of holding a unit for a day, of a unit
	// short (0: not given).
	OrderCost    float64
	HoldingCost  float64
	ShortageCost float64
	// Q of (s, Q); 0: EOQ from OrderCost and HoldingCost.
	FixedQuantity float64
	// Review calendar of (R, S): these weekdays, or (none) every
	// ReviewPeriodDays from ReviewAnchor ("YYYY-MM-DD").
	ReviewWeekdays Weekdays
	ReviewAnchor   string
}

// Weekdays is a set of weekdays, bit d for time.Weekday d (comparable, so
// policies stay comparable).
type Weekdays uint8

// WeekdaysOf is the set of the days given; ok is false for a day outside
// Sunday..Saturday.
func WeekdaysOf(days ...time.Weekday) (w Weekdays, ok bool) {
	ok = true
	for _, d := range days {
		if d < time.Sunday || d > time.Saturday {
			ok = false
			continue
		}
		w |= 1 << uint(d)
	}
	return w, ok
}

// Has says whether d is in the set.
func (w Weekdays) Has(d time.Weekday) bool { return d >= 0 && d <= 6 && w&(1<<uint(d)) != 0 }

// Days lists the set, Sunday first.
func (w Weekdays) Days() []time.Weekday {
	var out []time.Weekday
	for d := time.Sunday; d <= time.Saturday; d++ {
		if w.Has(d) {
			out = append(out, d)
		}
	}
	return out
}

// Validate reports the first field out of range or missing for the kind.
func (p ServicePolicy) Validate() error {
	if err := p.Policy.Validate(); err != nil {
		return err
	}
	for _, c := range []struct {
		name string
		v    float64
	}{{"order cost", p.OrderCost}, {"holding cost", p.HoldingCost}, {"shortage cost", p.ShortageCost}, {"order quantity", p.FixedQuantity}} {
		if !nonNegative(c.v) {
			return fmt.Errorf("%s %v: must be >= 0", c.name, c.v)
		}
	}
	switch p.Target {
	case TargetCycleServiceLevel:
	case TargetFillRate:
		if !(p.FillRate > 0 && p.FillRate < 1) {
			return fmt.Errorf("fill rate %v: must be in (0, 1) for target fill_rate", p.FillRate)
		}
	case TargetNewsvendor:
		if !(p.ShortageCost > 0 && p.HoldingCost > 0) {
			return fmt.Errorf("target newsvendor needs shortage cost > 0 and holding cost > 0 (got %v, %v)", p.ShortageCost, p.HoldingCost)
		}
	default:
		return fmt.Errorf("target %q: want cycle_service_level (empty), fill_rate or newsvendor", p.Target)
	}
	if (p.OrderCost > 0) != (p.HoldingCost > 0) && p.Kind != KindPeriodic && p.FixedQuantity == 0 && p.Target != TargetNewsvendor {
		return fmt.Errorf("EOQ needs both order cost and holding cost (got %v, %v)", p.OrderCost, p.HoldingCost)
	}
	switch p.Kind {
	case KindDefault, KindReorderUpTo:
	case KindReorderQuantity:
		if p.FixedQuantity == 0 && !(p.OrderCost > 0 && p.HoldingCost > 0) {
			return errors.New("kind s_Q needs an order quantity or both order cost and holding cost (EOQ)")
		}
	case KindPeriodic:
		if p.ReviewPeriodDays < 1 {
			return fmt.Errorf("kind R_S needs review period days >= 1 (got %d)", p.ReviewPeriodDays)
		}
		if p.ReviewWeekdays >= 1<<7 {
			return fmt.Errorf("review weekdays %#b: not a set of Sunday..Saturday", p.ReviewWeekdays)
		}
		if p.ReviewWeekdays == 0 {
			if _, err := time.Parse(time.DateOnly, p.ReviewAnchor); err != nil {
				return fmt.Errorf("kind R_S needs review weekdays or a review anchor date YYYY-MM-DD (got %q)", p.ReviewAnchor)
			}
		}
	default:
		return fmt.Errorf("kind %q: want s_S, s_Q or R_S", p.Kind)
	}
	return nil
}

// IsReviewDay says whether the UTC day of t is a review day of a periodic
// policy (always false for the continuous kinds).
func (p ServicePolicy) IsReviewDay(t time.Time) bool {
	if p.Kind != KindPeriodic {
		return false
	}
	t = t.UTC()
	if p.ReviewWeekdays != 0 {
		return p.ReviewWeekdays.Has(t.Weekday())
	}
	anchor, err := time.Parse(time.DateOnly, p.ReviewAnchor)
	if err != nil || p.ReviewPeriodDays < 1 {
		return false
	}
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	n := int(math.Round(day.Sub(anchor).Hours() / 24))
	return ((n%p.ReviewPeriodDays)+p.ReviewPeriodDays)%p.ReviewPeriodDays == 0
}

// MeanDailyDemand is the forecast's mean daily demand over its horizon.
func MeanDailyDemand(f Forecast) float64 {
	if len(f.DailyMeans) == 0 {
		return 0
	}
	var s float64
	for _, m := range f.DailyMeans {
		s += m
	}
	return s / float64(len(f.DailyMeans))
}

// cycleDays is the holding period of the newsvendor's overage cost: one
// review period under (R, S), the order's cover days under continuous review
// (at least one day).
func (p ServicePolicy) cycleDays() int {
	if p.Kind == KindPeriodic {
		return max(p.ReviewPeriodDays, 1)
	}
	return max(p.OrderCoverDays, 1)
}

// TargetServiceLevel is the quantile level the reorder point is taken at
// for the quantile targets: ServiceLevel, or the newsvendor critical ratio
// NewsvendorLevel(ShortageCost, HoldingCost * cycle days).
func (p ServicePolicy) TargetServiceLevel() float64 {
	if p.Target == TargetNewsvendor {
		return NewsvendorLevel(p.ShortageCost, p.HoldingCost*float64(p.cycleDays()))
	}
	return p.ServiceLevel
}

// spanQuantiles is the forecast's demand distribution over span days (the
// quantiles interpolated between listed spans as ComputeLevels does).
func spanQuantiles(f Forecast, span int) (Quantiles, float64, error) {
	if err := checkShape(f); err != nil {
		return Quantiles{}, 0, err
	}
	entries := sortedBySpan(f.LeadTimeDemand)
	i := sort.Search(len(entries), func(i int) bool { return entries[i].Days >= span })
	if i == len(entries) || (entries[i].Days > span && i == 0) {
		return Quantiles{}, 0, fmt.Errorf("%w: %d days, forecast lists %s", ErrLeadTimeNotCovered, span, spans(entries))
	}
	hi := entries[i]
	if hi.Days == span {
		return Quantiles{Levels: f.QuantileLevels, Values: hi.Quantiles}, hi.Mean, nil
	}
	lo := entries[i-1]
	w := float64(span-lo.Days) / float64(hi.Days-lo.Days)
	vals := make([]float64, len(hi.Quantiles))
	for k := range vals {
		vals[k] = lerp(lo.Quantiles[k], hi.Quantiles[k], w)
	}
	return Quantiles{Levels: f.QuantileLevels, Values: vals}, lerp(lo.Mean, hi.Mean, w), nil
}

// ContinuousFillRateLevel is the reorder point s of a continuous review
// policy ordering q at a time that meets a fill-rate target: the smallest s
// with E[(D(L) - s)+] <= (1 - fillRate) * q (the shortage of one order
// cycle at most the allowed share of the q units it serves), by bisection;
// the largest listed quantile when even that does not meet it.
func ContinuousFillRateLevel(lead Quantiles, q, fillRate float64) (float64, error) {
	if !(fillRate > 0 && fillRate < 1) {
		return 0, fmt.Errorf("%w: %v", ErrFillRateNotCovered, fillRate)
	}
	allowed := (1 - fillRate) * q
	lo, hi := 0.0, lead.Max()
	if lead.ExpectedShortage(lo) <= allowed {
		return 0, nil
	}
	if lead.ExpectedShortage(hi) > allowed {
		return hi, nil
	}
	for range 100 {
		mid := (lo + hi) / 2
		if lead.ExpectedShortage(mid) <= allowed {
			hi = mid
		} else {
			lo = mid
		}
		if hi-lo < 1e-9 {
			break
		}
	}
	return hi, nil
}

// ServiceDecision is what a kind decides from: the levels (ReorderPoint = s,
// OrderUpTo = S, or s + Q under (s, Q)) and Q of (s, Q).
type ServiceDecision struct {
	Levels
	Quantity float64
}

// orderSize is the order size of the continuous kinds: FixedQuantity, else
// the EOQ from the mean daily demand and the costs, else 0 (use the cover).
func (p ServicePolicy) orderSize(f Forecast) float64 {
	if p.Kind == KindReorderQuantity && p.FixedQuantity > 0 {
		return p.FixedQuantity
	}
	return EOQ(MeanDailyDemand(f), p.OrderCost, p.HoldingCost)
}

// ServiceLevels computes s and S (and Q) of a service policy under a
// forecast. lt.N > 0 is a learned lead time: the quantile targets use the
// mixture over lead times (MixtureLevels); the fill-rate target uses the
// lead time round(lt.Mean).
func ServiceLevels(f Forecast, p ServicePolicy, lt LeadTimeStats) (ServiceDecision, error) {
	base := p.Policy
	base.ServiceLevel = p.TargetServiceLevel()
	if lt.N > 0 && p.Target == TargetFillRate {
		base.LeadTimeDays = int(math.Round(math.Max(lt.Mean, 0)))
		lt = LeadTimeStats{}
	}
	var lv Levels
	var err error
	switch {
	case p.Target == TargetFillRate:
		lv, err = fillRateLevels(f, p, base)
	case lt.N > 0:
		lv, err = MixtureLevels(f, base, lt)
	default:
		lv, err = ComputeLevels(f, base)
	}
	if err != nil {
		return ServiceDecision{}, err
	}
	d := ServiceDecision{Levels: lv}
	switch p.Kind {
	case KindPeriodic:
		d.OrderUpTo = d.ReorderPoint
	case KindReorderQuantity:
		d.Quantity = p.orderSize(f)
		d.OrderUpTo = d.ReorderPoint + d.Quantity
	default:
		if q := p.orderSize(f); q > 0 {
			d.OrderUpTo = d.ReorderPoint + q
		}
	}
	return d, nil
}

// fillRateLevels sets the reorder point by the fill rate.
func fillRateLevels(f Forecast, p ServicePolicy, base Policy) (Levels, error) {
	span := base.LeadTimeDays + base.ReviewPeriodDays
	protect, mean, err := spanQuantiles(f, span)
	if err != nil {
		return Levels{}, err
	}
	var s float64
	if p.Kind == KindPeriodic {
		var lead *Quantiles
		var leadMean float64
		if base.LeadTimeDays > 0 {
			q, m, err := spanQuantiles(f, base.LeadTimeDays)
			if err != nil {
				return Levels{}, err
			}
			lead, leadMean = &q, m
		}
		s, err = FillRateLevel(protect, mean, lead, leadMean, p.FillRate)
	} else {
		q := p.orderSize(f)
		if q == 0 {
			q = coverDemand(f.DailyMeans, span+1, base.OrderCoverDays)
		}
		s, err = ContinuousFillRateLevel(protect, q, p.FillRate)
	}
	if err != nil {
		return Levels{}, err
	}
	return Levels{
		ReorderPoint:           s,
		ExpectedLeadTimeDemand: mean,
		SafetyStock:            s - mean,
		OrderUpTo:              s + coverDemand(f.DailyMeans, span+1, base.OrderCoverDays),
	}, nil
}

// ServiceOrderQuantity sizes the order of a decision at inventory position
// pos: (s, Q) the smallest multiple of Q lifting the position above s, the
// others up to S; then the supplier constraints (OrderQuantity's order).
func ServiceOrderQuantity(p ServicePolicy, d ServiceDecision, pos float64) Quantities {
	if p.Kind == KindReorderQuantity {
		q := Decide(ReorderQuantity, pos, d.ReorderPoint, 0, d.Quantity)
		if !(q > 0) {
			return Quantities{}
		}
		return Quantities{Unconstrained: q, Constrained: Constrain(q, p.Policy)}
	}
	return OrderQuantity(d.OrderUpTo, pos, p.Policy)
}

// PeriodicAllocItem is the AllocItem of a periodic review (R, S) series
// under a forecast, with the spans ServiceLevels' fill-rate target uses:
// Protect the demand over L+R days, Lead over L (nil when L = 0). So
// ImpliedFillRate of an allocated level, set as the policy's FillRate,
// gives that level back (FillRateLevel, to its bisection's 1e-6).
func PeriodicAllocItem(f Forecast, p ServicePolicy, unitValue float64) (AllocItem, error) {
	protect, mean, err := spanQuantiles(f, p.LeadTimeDays+p.ReviewPeriodDays)
	if err != nil {
		return AllocItem{}, err
	}
	it := AllocItem{Protect: protect, ProtectMean: mean, UnitValue: unitValue}
	if p.LeadTimeDays > 0 {
		lead, leadMean, err := spanQuantiles(f, p.LeadTimeDays)
		if err != nil {
			return AllocItem{}, err
		}
		it.Lead, it.LeadMean = &lead, leadMean
	}
	return it, nil
}

// ImpliedFillRate is the expected fill rate (backorder formula) of an
// item's level s: 1 - B(s) / E[D(R)], B(s) = E[(D(L+R) - s)+] - E[(D(L) -
// s)+]; 1 when the item has no demand per cycle.
func ImpliedFillRate(it AllocItem, s float64) float64 {
	cycle := it.ProtectMean
	short := it.Protect.ExpectedShortage(s)
	if it.Lead != nil {
		cycle -= it.LeadMean
		short -= it.Lead.ExpectedShortage(s)
	}
	if !(cycle > 0) {
		return 1
	}
	return 1 - max(short, 0)/cycle
}
