package planning

import (
	"context"
	"fmt"
	"math"
	"sort"

	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"

	"github.com/stockcast/stockcast/pkg/replenish"
)

// PortfolioItem is one series of a portfolio allocation: its latest
// forecast, what a unit of its stock is worth (any unit common to the
// portfolio, e.g. the purchase price) and its group for the class band
// (e.g. its demand class; "" for none).
type PortfolioItem struct {
	Series    Scope
	Forecast  *forecastv1.ForecastEvent
	UnitValue float64
	Class     string
}

// Allocated is a series' share of a portfolio fill-rate target.
type Allocated struct {
	Series Scope
	// OrderUpTo is the allocation's level under the item's forecast and
	// FillRate the series' own fill-rate target that gives it back.
	OrderUpTo float64
	FillRate  float64
	// Policy is what was stored for the series.
	Policy replenish.ServicePolicy
	// CycleDemand is the series' expected demand over a review cycle
	// (its weight in the portfolio's fill).
	CycleDemand float64
}

// PortfolioFill is the allocation's expected portfolio fill rate under
// lost sales: the cycle-demand weighted mean of the items' expected fills
// is the backorder one, b, and 1/(2-b) inverts LostSalesTarget (the
// approximation the allocation targets). 1 without demand.
func PortfolioFill(out []Allocated) float64 {
	var served, demand float64
	for _, a := range out {
		served += a.CycleDemand * a.FillRate
		demand += a.CycleDemand
	}
	if !(demand > 0) {
		return 1
	}
	return 1 / (2 - served/demand)
}

// Fill-rate targets stored by Allocate stay inside (0, 1), which
// replenish.ServicePolicy requires: an item allocated no stock (or its
// largest level) gets the nearest target inside.
const (
	minAllocatedFill = 1e-6
	maxAllocatedFill = 1 - 1e-12
)

// Allocate spreads a portfolio fill-rate target (units served over units
// demanded, all items together, under lost sales) over the items at the
// least expected stock value, as the simulator's stockcast policy does
// (replenish.AllocateFillRateBounded on LostSalesTarget(fillRate); with
// band > 0 each class's expected fill is held within band of the target),
// and stores each item's share as its own series policy: its effective
// periodic (R, S) policy with target fill_rate at the expected fill rate of
// its allocated level (replenish.ImpliedFillRate). Under the same forecast
// the service's level is then the allocated one (to FillRateLevel's 1e-6);
// later forecasts move it as any fill-rate target's, until the next
// allocation. The stored policy is a snapshot: a later location or global
// change no longer reaches the series. Every item's effective policy must
// be periodic (the allocation's shortage is the (R, S) one); learned lead
// times are not used. Like Set, it applies from each series' next event.
func (p *Policies) Allocate(ctx context.Context, items []PortfolioItem, fillRate, band float64) ([]Allocated, error) {
	if !(fillRate > 0 && fillRate < 1) || !(band >= 0 && band < fillRate) {
		return nil, fmt.Errorf("%w: fill rate %v, band %v: want 0 <= band < fill rate < 1", ErrInvalidArgument, fillRate, band)
	}
	scopes := make([]Scope, len(items))
	for i, it := range items {
		if it.Series.SKU == "" {
			return nil, fmt.Errorf("%w: item %d is not a series (sku and location)", ErrInvalidArgument, i)
		}
		if err := it.Series.Validate(); err != nil {
			return nil, err
		}
		scopes[i] = it.Series
	}
	eff, err := p.EffectiveAll(ctx, scopes)
	if err != nil {
		return nil, err
	}
	alloc := make([]replenish.AllocItem, len(items))
	groups := make([]string, len(items))
	bands := map[string]replenish.Band{}
	for i, it := range items {
		pol := eff[it.Series].ServicePolicy
		if pol.Kind != replenish.KindPeriodic {
			return nil, fmt.Errorf("%w: series %s|%s: policy kind %q, the allocation needs periodic review (R_S)",
				ErrInvalidArgument, it.Series.SKU, it.Series.Location, pol.Kind)
		}
		f, err := forecastOf(it.Forecast)
		if err != nil {
			return nil, fmt.Errorf("series %s|%s: %w", it.Series.SKU, it.Series.Location, err)
		}
		if alloc[i], err = replenish.PeriodicAllocItem(f, pol, it.UnitValue); err != nil {
			return nil, fmt.Errorf("series %s|%s: %w", it.Series.SKU, it.Series.Location, err)
		}
		groups[i] = it.Class
		if band > 0 && it.Class != "" {
			hi := 1.0
			if fillRate+band < 1 {
				hi = replenish.LostSalesTarget(fillRate + band)
			}
			bands[it.Class] = replenish.Band{Lo: replenish.LostSalesTarget(fillRate - band), Hi: hi}
		}
	}
	a, _, err := replenish.AllocateFillRateBounded(alloc, groups, replenish.LostSalesTarget(fillRate), bands)
	if err != nil {
		return nil, fmt.Errorf("allocate %d series: %w", len(items), err)
	}
	out := make([]Allocated, len(items))
	pols := make([]replenish.ServicePolicy, len(items))
	for i, it := range items {
		pol := eff[it.Series].ServicePolicy
		pol.Target = replenish.TargetFillRate
		pol.FillRate = math.Min(math.Max(replenish.ImpliedFillRate(alloc[i], a.Levels[i]), minAllocatedFill), maxAllocatedFill)
		pols[i] = pol
		cycle := alloc[i].ProtectMean
		if alloc[i].Lead != nil {
			cycle -= alloc[i].LeadMean
		}
		out[i] = Allocated{Series: it.Series, OrderUpTo: a.Levels[i], FillRate: pol.FillRate, Policy: pol, CycleDemand: cycle}
	}
	// One write for the whole portfolio (one policy_log insert in the service).
	if err := p.SetAll(ctx, scopes, pols); err != nil {
		return nil, err
	}
	return out, nil
}

// AllocateLocation is Allocate over every series of a location ("" for
// all) that has a latest forecast and a unit value in values (a buyer's
// price list; the service keeps no prices): each series' latest forecast,
// its class the forecast's demand class. It returns the allocation and the
// series left out for want of a value. The policies apply from each
// series' next event (Reevaluate decides one at once).
func (p *Planner) AllocateLocation(ctx context.Context, location string, values map[Scope]float64, fillRate, band float64) ([]Allocated, []Scope, error) {
	var items []PortfolioItem
	var missing []Scope
	seen := map[Scope]bool{}
	var cursor uint64
	for {
		page, next, err := p.state.ScanSeries(ctx, location, cursor, ReevaluateBatch)
		if err != nil {
			return nil, nil, err
		}
		for _, s := range page {
			if seen[s] {
				continue
			}
			seen[s] = true
			v, ok := values[s]
			if !ok {
				missing = append(missing, s)
				continue
			}
			raw, err := p.state.LastForecast(ctx, s)
			if err != nil {
				return nil, nil, err
			}
			if raw == nil {
				continue
			}
			fe, err := DecodeLatest(raw)
			if err != nil {
				return nil, nil, fmt.Errorf("decode latest forecast of %s|%s: %w", s.SKU, s.Location, err)
			}
			items = append(items, PortfolioItem{Series: s, Forecast: fe, UnitValue: v, Class: fe.GetDemandClass()})
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	if len(items) == 0 {
		return nil, missing, fmt.Errorf("%w: no series at location %q with a forecast and a value", ErrInvalidArgument, location)
	}
	// Scan order is Redis's: sort, so that the same state allocates the same way.
	sort.Slice(items, func(i, j int) bool {
		a, b := items[i].Series, items[j].Series
		return a.Location < b.Location || (a.Location == b.Location && a.SKU < b.SKU)
	})
	out, err := p.policies.Allocate(ctx, items, fillRate, band)
	return out, missing, err
}
