package replenish

// Inventory policies beyond the single reorder point of ComputeLevels:
// fill-rate targets for periodic review (R, S), continuous review (s, Q) and
// (s, S), the economic order quantity, the newsvendor critical ratio and the
// classic normal-approximation safety stock that the simulator compares with.
//
// Timing convention of this file (the simulator's): an order placed at the
// start of day 0 arrives at the start of day L; under periodic review the
// next order is placed on day R and arrives on day L+R. So an order-up-to
// level S protects days 0..L+R-1 (L+R days), and the shortage that the order
// of day 0 can still prevent is the one of days L..L+R-1.

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// ErrFillRateNotCovered is returned when the fill rate asked for is not in (0, 1).
var ErrFillRateNotCovered = errors.New("fill rate must be in (0, 1)")

// Quantiles is a demand distribution given by its quantile function at
// ascending levels in (0, 1), like the forecast's lead-time demand.
type Quantiles struct {
	Levels []float64
	Values []float64
}

// ExpectedShortage returns E[(D - s)+], the expected demand above s, with the
// quantile function taken linear between the listed levels and flat beyond
// them (the tail above the last level is not extrapolated: list levels up to
// 0.999 or so when the tail matters).
func (q Quantiles) ExpectedShortage(s float64) float64 {
	n := len(q.Levels)
	if n == 0 || n != len(q.Values) {
		return 0
	}
	var sum float64
	// Below the first level and above the last: flat.
	sum += q.Levels[0] * max(q.Values[0]-s, 0)
	sum += (1 - q.Levels[n-1]) * max(q.Values[n-1]-s, 0)
	for i := 1; i < n; i++ {
		sum += segmentExcess(q.Levels[i]-q.Levels[i-1], q.Values[i-1], q.Values[i], s)
	}
	return sum
}

// segmentExcess integrates (v(u) - s)+ over a segment of width w on which v
// goes linearly from a to b (a <= b).
func segmentExcess(w, a, b, s float64) float64 {
	switch {
	case w <= 0 || b <= s:
		return 0
	case a >= s:
		return w * ((a+b)/2 - s)
	}
	// Only the part from s to b counts: a triangle.
	frac := (b - s) / (b - a)
	return w * frac * (b - s) / 2
}

// Max is the largest listed value.
func (q Quantiles) Max() float64 {
	if len(q.Values) == 0 {
		return 0
	}
	return q.Values[len(q.Values)-1]
}

// FillRateLevel returns the order-up-to level S of a periodic review (R, S)
// policy that meets a fill-rate target (share of demand served from stock):
// the smallest S with
//
//	E[(D(L+R) - S)+] - E[(D(L) - S)+] <= (1 - fillRate) * E[D(R)]
//
// where D(L+R) is the demand over the L+R days the order protects, D(L) the
// demand before it arrives, and E[D(R)] = mean(L+R) - mean(L) the demand of
// one review cycle (the standard backorder formula; with lost sales it errs
// on the safe side). lead is nil when L = 0. The left side only falls as S
// grows, so S is found by bisection; when even the largest listed quantile of
// D(L+R) does not meet the target, that quantile is returned.
func FillRateLevel(protect Quantiles, protectMean float64, lead *Quantiles, leadMean, fillRate float64) (float64, error) {
	if !(fillRate > 0 && fillRate < 1) {
		return 0, fmt.Errorf("%w: %v", ErrFillRateNotCovered, fillRate)
	}
	cycle := protectMean
	if lead != nil {
		cycle -= leadMean
	}
	if !(cycle > 0) {
		return 0, nil
	}
	allowed := (1 - fillRate) * cycle
	short := func(s float64) float64 {
		v := protect.ExpectedShortage(s)
		if lead != nil {
			v -= lead.ExpectedShortage(s)
		}
		return v
	}
	lo, hi := 0.0, protect.Max()
	if short(lo) <= allowed {
		return 0, nil
	}
	if short(hi) > allowed {
		return hi, nil
	}
	for range 60 {
		mid := (lo + hi) / 2
		if short(mid) <= allowed {
			hi = mid
		} else {
			lo = mid
		}
		if hi-lo < 1e-6 {
			break
		}
	}
	return hi, nil
}

// NormalQuantile is the inverse of the standard normal distribution function.
func NormalQuantile(p float64) float64 { return math.Sqrt2 * math.Erfinv(2*p-1) }

// ClassicLevel is the textbook order-up-to level under normally distributed
// demand: mean*days + z*sigma*sqrt(days), with z the standard normal quantile
// at the cycle service level, mean and sigma the daily demand's mean and
// standard deviation and days the protection period (L+R under periodic
// review, L under continuous review).
func ClassicLevel(mean, sigma float64, days int, serviceLevel float64) float64 {
	d := float64(days)
	return mean*d + NormalQuantile(serviceLevel)*sigma*math.Sqrt(d)
}

// EOQ is the economic order quantity sqrt(2*D*K/h): D the demand per period,
// K the cost of placing an order and h the cost of holding a unit for one
// period. It is 0 when any input is not positive.
func EOQ(demand, orderCost, holdingCost float64) float64 {
	if !(demand > 0 && orderCost > 0 && holdingCost > 0) {
		return 0
	}
	return math.Sqrt(2 * demand * orderCost / holdingCost)
}

// NewsvendorLevel is the critical ratio cu/(cu+co): the service level that
// minimises expected cost when a unit short costs cu and a unit left over
// costs co. It is 0 when either cost is not positive.
func NewsvendorLevel(shortageCost, overageCost float64) float64 {
	if !(shortageCost > 0 && overageCost > 0) {
		return 0
	}
	return shortageCost / (shortageCost + overageCost)
}

// QuantileAt returns the value at level, interpolated linearly between the
// listed levels; a level outside them is an error.
func (q Quantiles) QuantileAt(level float64) (float64, error) {
	if len(q.Levels) != len(q.Values) || !sort.Float64sAreSorted(q.Levels) {
		return 0, fmt.Errorf("%w: %d levels, %d values", ErrMalformedForecast, len(q.Levels), len(q.Values))
	}
	return quantileAt(q.Levels, q.Values, level)
}

// Kind is a replenishment policy family.
type Kind int

// Policy families.
const (
	// PeriodicUpTo (R, S): every review, order up to S.
	PeriodicUpTo Kind = iota
	// ReorderQuantity (s, Q): when the position is at or below s, order
	// the smallest multiple of Q that lifts it above s.
	ReorderQuantity
	// ReorderUpTo (s, S): when the position is at or below s, order up to S.
	ReorderUpTo
)

// Decide returns the quantity a policy of kind k orders at inventory
// position pos, before supplier constraints: s is the reorder point, upTo the
// order-up-to level (S) and q the fixed quantity of (s, Q). PeriodicUpTo
// ignores s: on a review day it always lifts the position to S.
func Decide(k Kind, pos, s, upTo, q float64) float64 {
	switch k {
	case PeriodicUpTo:
		return max(upTo-pos, 0)
	case ReorderQuantity:
		if pos > s || !(q > 0) {
			return 0
		}
		n := math.Floor((s-pos)/q) + 1
		return n * q
	case ReorderUpTo:
		if pos > s {
			return 0
		}
		return max(upTo-pos, 0)
	}
	return 0
}

// Constrain applies the supplier constraints of p (pack size, MOQ, maximum)
// to a quantity, in OrderQuantity's order; 0 stays 0.
func Constrain(q float64, p Policy) float64 {
	return OrderQuantity(q, 0, p).Constrained
}

// LostSalesTarget converts a fill-rate target under lost sales into the
// target of FillRateLevel's backorder formula. With backorders, the units
// short in a cycle are a share 1-b of its demand; with lost sales the same
// shortage is lost instead and the lost share of all demand (served plus
// lost) is (1-b)/(1+(1-b)). Solving for b: 1-b = (1-fillRate)/fillRate.
// Without it a lost-sales system over-delivers, the more so the lower the
// target.
func LostSalesTarget(fillRate float64) float64 {
	if !(fillRate > 0 && fillRate < 1) {
		return fillRate
	}
	return 1 - (1-fillRate)/fillRate
}
