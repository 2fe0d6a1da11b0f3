// Package simulate replays real daily demand through replenishment policies
// day by day and measures what each achieves: fill rate, cycle service
// level, stockouts, lost sales and the inventory it holds. It is what
// `stockcast simulate` and `make bench-replenishment` run.
//
// The day of a simulated series, with lead time L and review period R:
//
//  1. orders due today arrive (an order placed on day t arrives on day t+L);
//  2. on a review day (every R days from the first simulated day) the
//     policy, which has seen the sales of every earlier day and nothing
//     else, names an order-up-to level S; the order lifts the inventory
//     position (on hand + on order) to S, rounded by the supplier
//     constraints;
//  3. the day's demand takes what is on hand; what is missing is lost (no
//     backorders: a shop's customer goes elsewhere);
//  4. the policy observes the day's sales, flagged censored when the shelf
//     ended the day empty (the true demand may have been higher).
//
// Policies never see demand, only sales: a policy that runs out learns less,
// as in a real shop. Before the first simulated day every policy gets the
// warm-up history uncensored (the past sales a new system starts from).
package simulate

import (
	"fmt"
	"math"

	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/replenish"
)

// Series is one item's daily demand with its unit value.
type Series struct {
	ID string
	// Start is the day of Demand[0]; the days are consecutive.
	Start  forecasting.Day
	Demand []float64
	// Price is the unit value of each day (same length as Demand, finite).
	Price []float64
	// Class is the series' demand class, for the per-class report.
	Class forecasting.Class
}

// Policy decides order-up-to levels for one series. A Policy is used by one
// simulation only.
type Policy interface {
	// Observe gives the sales of a closed day, in day order; censored
	// means the shelf ended the day empty.
	Observe(day forecasting.Day, sales float64, censored bool)
	// Levels returns the reorder point s and order-up-to level S for an
	// order placed at the start of day, before any of day's demand. A
	// periodic order-up-to policy returns s = +Inf (always order).
	Levels(day forecasting.Day) (s, upTo float64)
}

// Config is a simulation's setting.
type Config struct {
	LeadTimeDays int
	ReviewDays   int
	// WarmupDays of each series are history, given to the policy before
	// the first simulated day.
	WarmupDays int
	// MaxCoverDays caps the stockcast policy's order-up-to level at this
	// many days of its forecast mean demand (0: no cap): a days-of-supply
	// limit, as buyers set, against a forecast whose spread is briefly
	// absurd (an item selling again after months without a sale).
	MaxCoverDays int
	// PeakFactor caps the stockcast policy's order-up-to level at this
	// multiple of the largest sales of L+R consecutive days in the last
	// 364 days it has seen (0: no cap): a bound from the data itself that
	// normal operation does not reach, against the same absurd spreads.
	PeakFactor float64
	// Supplier constraints: MOQ, PackSize, MaxOrder of a replenish.Policy
	// (the other fields are not read).
	Constraints replenish.Policy
}

// Validate reports the first setting out of range.
func (c Config) Validate() error {
	switch {
	case c.LeadTimeDays < 0:
		return fmt.Errorf("lead time %d days: must be >= 0", c.LeadTimeDays)
	case c.ReviewDays < 1:
		return fmt.Errorf("review period %d days: must be >= 1", c.ReviewDays)
	case c.WarmupDays < 0:
		return fmt.Errorf("warm-up %d days: must be >= 0", c.WarmupDays)
	}
	return nil
}

// Result is what a policy achieved on one or more series. Sums, so that
// results of several series add up (Add).
type Result struct {
	Series int
	// Measured days (series x days).
	Days        int
	Demand      float64
	Sold        float64
	LostUnits   float64
	LostValue   float64
	DemandValue float64
	// Days with lost sales.
	StockoutDays int
	// Sums over measured days of the end-of-day stock on hand.
	OnHandUnits float64
	OnHandValue float64
	Orders      int
	// Review cycles measured, and those without a lost unit.
	Cycles   int
	CyclesOK int
}

// Add adds o to r.
func (r *Result) Add(o Result) {
	r.Series += o.Series
	r.Days += o.Days
	r.Demand += o.Demand
	r.Sold += o.Sold
	r.LostUnits += o.LostUnits
	r.LostValue += o.LostValue
	r.DemandValue += o.DemandValue
	r.StockoutDays += o.StockoutDays
	r.OnHandUnits += o.OnHandUnits
	r.OnHandValue += o.OnHandValue
	r.Orders += o.Orders
	r.Cycles += o.Cycles
	r.CyclesOK += o.CyclesOK
}

// FillRate is the share of demand served from stock (NaN without demand).
func (r Result) FillRate() float64 { return r.Sold / r.Demand }

// CycleServiceLevel is the share of review cycles without a lost unit.
func (r Result) CycleServiceLevel() float64 { return float64(r.CyclesOK) / float64(r.Cycles) }

// perSeries turns day sums into a per-day average per series: the average
// stock on hand of all series together.
func (r Result) perSeries(sum float64) float64 {
	if r.Days == 0 {
		return 0
	}
	return sum * float64(r.Series) / float64(r.Days)
}

// AvgOnHandUnits is the average total stock on hand of the series, in units.
func (r Result) AvgOnHandUnits() float64 { return r.perSeries(r.OnHandUnits) }

// AvgOnHandValue is the average total value of the stock on hand.
func (r Result) AvgOnHandValue() float64 { return r.perSeries(r.OnHandValue) }

// Run simulates one series under one policy. The first L+R simulated days
// are not measured: they hold the start-up of the first order, whose
// stock is the policy's first order-up-to level, on hand from day one.
func Run(s Series, p Policy, c Config) (Result, error) {
	if err := c.Validate(); err != nil {
		return Result{}, err
	}
	if len(s.Price) != len(s.Demand) {
		return Result{}, fmt.Errorf("series %s: %d prices for %d days", s.ID, len(s.Price), len(s.Demand))
	}
	n := len(s.Demand)
	if c.WarmupDays >= n {
		return Result{}, fmt.Errorf("series %s: warm-up %d days leaves nothing of %d days", s.ID, c.WarmupDays, n)
	}
	for i := range c.WarmupDays {
		p.Observe(s.Start+forecasting.Day(i), max(s.Demand[i], 0), false)
	}
	L, R := c.LeadTimeDays, c.ReviewDays
	arrivals := make([]float64, n+L+1)
	measureFrom := c.WarmupDays + L + R
	var onHand, onOrder float64
	var res Result
	res.Series = 1
	cycleLost := false
	for i := c.WarmupDays; i < n; i++ {
		day := s.Start + forecasting.Day(i)
		onHand += arrivals[i]
		onOrder -= arrivals[i]
		if k := i - c.WarmupDays; k%R == 0 {
			if i >= measureFrom+R {
				res.Cycles++
				if !cycleLost {
					res.CyclesOK++
				}
			}
			cycleLost = false
			reorder, upTo := p.Levels(day)
			if i == c.WarmupDays {
				// Start with the policy's own level on hand.
				onHand = math.Ceil(max(upTo, 0))
			} else if q := order(reorder, upTo, onHand+onOrder, c.Constraints); q > 0 {
				if i >= measureFrom {
					res.Orders++
				}
				if L == 0 {
					onHand += q
				} else {
					arrivals[i+L] += q
					onOrder += q
				}
			}
		}
		d := max(s.Demand[i], 0)
		sold := min(onHand, d)
		lost := d - sold
		onHand -= sold
		p.Observe(day, sold, onHand <= 0)
		if i < measureFrom {
			continue
		}
		res.Days++
		res.Demand += d
		res.DemandValue += d * s.Price[i]
		res.Sold += sold
		if lost > 0 {
			cycleLost = true
			res.LostUnits += lost
			res.LostValue += lost * s.Price[i]
			res.StockoutDays++
		}
		res.OnHandUnits += onHand
		res.OnHandValue += onHand * s.Price[i]
	}
	return res, nil
}

// order is the quantity a policy with levels (s, S) orders at position pos:
// up to S when pos <= s, after the supplier constraints.
func order(s, upTo, pos float64, cons replenish.Policy) float64 {
	q := replenish.Decide(replenish.ReorderUpTo, pos, s, upTo, 0)
	if !(q > 0) {
		return 0
	}
	if cons.PackSize == 0 {
		cons.PackSize = 1 // whole units
	}
	return replenish.Constrain(q, cons)
}
