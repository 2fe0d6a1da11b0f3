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
	// Class is the series' demand class, for the per-class report
	// (Prepare: from the history before the simulated days).
	Class forecasting.Class
	// SimulatedClass is its class on the simulated days (Prepare): known
	// only afterwards, for the -classes simulated report.
	SimulatedClass forecasting.Class
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
	// ClassBand > 0 holds the stockcast policy's expected fill rate of
	// each demand class within this many (fractional) points of the
	// target (replenish.AllocateFillRateBounded); 0 allocates over the
	// whole portfolio with one lambda.
	ClassBand float64
	// Classes, when set (one per series, in the order simulated), are the
	// groups of ClassBand: the planner's classes, fixed before the
	// simulation (Series.Class from Prepare). Nil: each series' class is
	// its forecast's own, from the sales seen so far (or the compound
	// model's, Intermittent), at each review.
	Classes []forecasting.Class
	// MaxLevelFactor > 0 limits the stockcast policy's level of each
	// series to this multiple of its largest sales of L+R consecutive
	// days in the last 364 days it has seen (replenish.AllocItem.MaxLevel:
	// the allocation serves the target through the other series).
	MaxLevelFactor float64
	// Intermittent is the stockcast policy's lead-time demand model for
	// the series its own Syntetos-Boylan class (from the last HistoryDays
	// of sales it has seen) calls intermittent or lumpy:
	// IntermittentForecast (the default, "" too: the forecast's, as for
	// the other series), IntermittentCompound, IntermittentCompoundIID or
	// IntermittentCompoundWindows (measured, not the default: they
	// under-serve these classes, docs/replenishment.md).
	Intermittent string
	// HistoryDays is that window (0: DefaultHistoryDays).
	HistoryDays int
	// Censored is how the stockcast policy's forecasts learn from a day
	// that ended with an empty shelf: CensoredImpute (the default, "" too)
	// or CensoredDrop (the day is left out, as the forecast service does;
	// the day's class is then the forecast's too).
	Censored string
	// Shortage is how the stockcast policy counts the expected shortage
	// of a level: ShortageBackorder (the default, "" too: the backorder
	// formula with the target corrected by replenish.LostSalesTarget) or
	// ShortageLostSales (replenish.LostSalesShortage, the target as it is).
	Shortage string
	// Jitter jitters the compound model's sizes (replenish.Compound.Jitter).
	Jitter bool
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
	r, err := newRunner(s, c)
	if err != nil {
		return Result{}, err
	}
	for i := range c.WarmupDays {
		p.Observe(s.Start+forecasting.Day(i), max(s.Demand[i], 0), false)
	}
	for i := c.WarmupDays; i < len(s.Demand); i++ {
		day := s.Start + forecasting.Day(i)
		if r.arrive(i) {
			reorder, upTo := p.Levels(day)
			r.review(i, reorder, upTo)
		}
		sales, censored := r.sell(i)
		p.Observe(day, sales, censored)
	}
	return r.res, nil
}

// runner is the stock of one simulated series, advanced a day at a time:
// arrive, then review on a review day, then sell.
type runner struct {
	s           Series
	c           Config
	arrivals    []float64
	measureFrom int
	onHand      float64
	onOrder     float64
	res         Result
	cycleLost   bool
}

func newRunner(s Series, c Config) (*runner, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if len(s.Price) != len(s.Demand) {
		return nil, fmt.Errorf("series %s: %d prices for %d days", s.ID, len(s.Price), len(s.Demand))
	}
	n := len(s.Demand)
	if c.WarmupDays >= n {
		return nil, fmt.Errorf("series %s: warm-up %d days leaves nothing of %d days", s.ID, c.WarmupDays, n)
	}
	return &runner{s: s, c: c, arrivals: make([]float64, n+c.LeadTimeDays+1),
		measureFrom: c.WarmupDays + c.LeadTimeDays + c.ReviewDays, res: Result{Series: 1}}, nil
}

// arrive receives the orders due on day i and reports whether day i is a
// review day (every R days from the first simulated day); on one, the
// cycle that ends is counted.
func (r *runner) arrive(i int) bool {
	r.onHand += r.arrivals[i]
	r.onOrder -= r.arrivals[i]
	if (i-r.c.WarmupDays)%r.c.ReviewDays != 0 {
		return false
	}
	if i >= r.measureFrom+r.c.ReviewDays {
		r.res.Cycles++
		if !r.cycleLost {
			r.res.CyclesOK++
		}
	}
	r.cycleLost = false
	return true
}

// review orders at the start of day i with levels (s, S): up to S when the
// position is at or below s. On the first simulated day the stock starts
// at the policy's own level, on hand.
func (r *runner) review(i int, reorder, upTo float64) {
	if i == r.c.WarmupDays {
		r.onHand = math.Ceil(max(upTo, 0))
		return
	}
	q := order(reorder, upTo, r.onHand+r.onOrder, r.c.Constraints)
	if !(q > 0) {
		return
	}
	if i >= r.measureFrom {
		r.res.Orders++
	}
	if r.c.LeadTimeDays == 0 {
		r.onHand += q
	} else {
		r.arrivals[i+r.c.LeadTimeDays] += q
		r.onOrder += q
	}
}

// sell serves day i's demand from stock (the rest is lost), measures the
// day and returns what the policy may see: the sales, and whether the
// shelf ended the day empty.
func (r *runner) sell(i int) (sales float64, censored bool) {
	d := max(r.s.Demand[i], 0)
	sold := min(r.onHand, d)
	lost := d - sold
	r.onHand -= sold
	if i >= r.measureFrom {
		res := &r.res
		res.Days++
		res.Demand += d
		res.DemandValue += d * r.s.Price[i]
		res.Sold += sold
		if lost > 0 {
			r.cycleLost = true
			res.LostUnits += lost
			res.LostValue += lost * r.s.Price[i]
			res.StockoutDays++
		}
		res.OnHandUnits += r.onHand
		res.OnHandValue += r.onHand * r.s.Price[i]
	}
	return sold, r.onHand <= 0
}

// Portfolio decides the order-up-to levels of all the series of a
// simulation together (a multi-item policy). It sees what a Policy sees,
// for every series, and the unit values on the review day (a shop knows
// its prices).
type Portfolio interface {
	// Observe gives the sales of series i on a closed day.
	Observe(i int, day forecasting.Day, sales float64, censored bool)
	// Levels returns every series' order-up-to level for orders placed
	// at the start of day; value[i] is series i's unit value that day.
	Levels(day forecasting.Day, value []float64) []float64
}

// RunPortfolio simulates all series together under a portfolio policy,
// day by day in lockstep: on a review day the policy names every level
// before any of the day's demand. The series must share start and length
// (Prepare makes them so). Each series is measured as by Run.
func RunPortfolio(series []Series, p Portfolio, c Config) ([]Result, error) {
	runners := make([]*runner, len(series))
	for k, s := range series {
		if s.Start != series[0].Start || len(s.Demand) != len(series[0].Demand) {
			return nil, fmt.Errorf("series %s: start %s and %d days, unlike %s", s.ID, s.Start, len(s.Demand), series[0].ID)
		}
		r, err := newRunner(s, c)
		if err != nil {
			return nil, err
		}
		runners[k] = r
	}
	if len(series) == 0 {
		return nil, nil
	}
	start, n := series[0].Start, len(series[0].Demand)
	for i := range c.WarmupDays {
		for k, s := range series {
			p.Observe(k, start+forecasting.Day(i), max(s.Demand[i], 0), false)
		}
	}
	value := make([]float64, len(series))
	for i := c.WarmupDays; i < n; i++ {
		day := start + forecasting.Day(i)
		review := false
		for _, r := range runners {
			review = r.arrive(i)
		}
		if review {
			for k, s := range series {
				value[k] = s.Price[i]
			}
			levels := p.Levels(day, value)
			for k, r := range runners {
				r.review(i, math.Inf(1), levels[k])
			}
		}
		for k, r := range runners {
			sales, censored := r.sell(i)
			p.Observe(k, day, sales, censored)
		}
	}
	out := make([]Result, len(runners))
	for k, r := range runners {
		out[k] = r.res
	}
	return out, nil
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
