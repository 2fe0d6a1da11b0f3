package planning_test

import (
	"context"
	"io"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/replenish"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
	"github.com/stockcast/stockcast/services/replenishment/internal/store"
)

// scaledForecast is seriesEvent's forecast (7 days: 69/81/85/92 at
// 0.5/0.9/0.95/0.99, mean 70; 14 days: 139/156/162/172, mean 140) with
// every demand multiplied by k, its cause a snapshot of on hand at asOf (a
// Tuesday).
func scaledForecast(sku string, k, onHand float64) *forecastv1.ForecastEvent {
	ev := seriesEvent(sku, "alloc", snapshot(onHand), asOf)
	for _, d := range ev.Daily {
		d.Mean *= k
	}
	for _, l := range ev.LeadTimeDemand {
		l.Mean *= k
		for j := range l.Quantiles {
			l.Quantiles[j] *= k
		}
	}
	return ev
}

// TestAllocate: three series under a location's weekly (R, S) policy (L =
// R = 7), a 95% portfolio fill-rate target. The levels are checked against
// a brute force over every triple of whole-unit levels: they meet the
// target's expected shortage, and no other triple with at most their
// expected shortage (sum of B(S)) holds less expected stock value (sum of
// value * H(S)); the stored policies against each level's expected
// fill rate 1 - B(S) / E[D(R)], and the service's own decisions on
// redis-server: a Tuesday review of each series at position 0 orders up to
// its allocated level.
func TestAllocate(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	policies, err := planning.NewPolicies(store.NewPolicies(rdb), builtIn)
	if err != nil {
		t.Fatal(err)
	}
	weekly := replenish.ServicePolicy{Policy: builtIn, Kind: replenish.KindPeriodic, ReviewWeekdays: 1 << time.Tuesday}
	weekly.ReviewPeriodDays = 7
	if err := policies.Set(ctx, planning.Scope{Location: "online"}, weekly); err != nil {
		t.Fatal(err)
	}
	// A cheap and a dear series with the same demand, and one selling
	// twice as much at a middle value.
	skus, scale, value := []string{"CHEAP", "DEAR", "BIG"}, []float64{1, 1, 2}, []float64{1, 20, 5}
	var items []planning.PortfolioItem
	for i, sku := range skus {
		items = append(items, planning.PortfolioItem{Series: planning.Scope{SKU: sku, Location: "online"},
			Forecast: scaledForecast(sku, scale[i], 0), UnitValue: value[i]})
	}
	got, err := policies.Allocate(ctx, items, 0.95, 0)
	if err != nil {
		t.Fatal(err)
	}

	best := checkAllocation(t, got, scale, value)
	for i := range got {
		eff, err := policies.Effective(ctx, items[i].Series)
		if err != nil {
			t.Fatal(err)
		}
		want := weekly
		want.Target, want.FillRate = replenish.TargetFillRate, got[i].FillRate
		if eff.Source != planning.SourceSeries || eff.ServicePolicy != want {
			t.Errorf("%s: stored %+v from %s, want %+v", skus[i], eff.ServicePolicy, eff.Source, want)
		}
	}
	// Each series its own class, band 0.02: every fill rate within
	// [LostSalesTarget(0.93), LostSalesTarget(0.97)] (the cheap one, at
	// 99.07% with one lambda, comes down; the dear one, at 91.64%, up).
	classed := append([]planning.PortfolioItem(nil), items...)
	for i := range classed {
		classed[i].Class = skus[i]
	}
	banded, err := policies.Allocate(ctx, classed, 0.95, 0.02)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := replenish.LostSalesTarget(0.93), replenish.LostSalesTarget(0.97)
	for i, g := range banded {
		if !(g.FillRate >= lo && g.FillRate <= hi) {
			t.Errorf("%s in its own class: fill %.4f, want in [%.4f, %.4f]", skus[i], g.FillRate, lo, hi)
		}
	}
	if _, err := policies.Allocate(ctx, items, 0.95, 0); err != nil { // back to one lambda
		t.Fatal(err)
	}
	if !(got[0].FillRate > got[1].FillRate) {
		t.Errorf("the cheap series is served %.4f, the dear one %.4f", got[0].FillRate, got[1].FillRate)
	}

	planner := planning.NewPlanner(policies, store.NewState(rdb, time.Hour), slog.New(slog.NewTextHandler(io.Discard, nil)))
	for i, it := range items {
		res, err := planner.Plan(ctx, events(t, it.Forecast))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Proposals) != 1 {
			t.Fatalf("%s: %d proposals, want 1", skus[i], len(res.Proposals))
		}
		p := res.Proposals[0]
		if p.GetReason() != replenishmentv1.ProposalReason_PROPOSAL_REASON_PERIODIC_REVIEW ||
			math.Abs(p.GetOrderUpTo()-float64(best[i])) > 1e-6 {
			t.Errorf("%s: %v up to %v, want a periodic review up to %d", skus[i], p.GetReason(), p.GetOrderUpTo(), best[i])
		}
	}
}

// checkAllocation checks allocated levels of scaledForecast series (demand
// times scale, unit values value) against a brute force over every triple
// of whole-unit levels: they meet the 95% target's expected shortage, and
// no other triple with at most their expected shortage (sum of B(S)) holds
// less expected stock value (sum of value * H(S)); each stored fill rate is
// its level's 1 - B(S) / E[D(R)]. It returns the levels.
func checkAllocation(t *testing.T, got []planning.Allocated, scale, value []float64) []int {
	t.Helper()
	levels := []float64{0.5, 0.9, 0.95, 0.99}
	q := func(k float64, vs ...float64) replenish.Quantiles {
		for j := range vs {
			vs[j] *= k
		}
		return replenish.Quantiles{Levels: levels, Values: vs}
	}
	// B(S) and H(S) of each series at every whole level up to its largest
	// quantile; cycle demand E[D(R)] = 70 k.
	type curve struct{ b, h []float64 }
	curves := make([]curve, len(scale))
	var demand float64
	for i, k := range scale {
		q7, q14 := q(k, 69, 81, 85, 92), q(k, 139, 156, 162, 172)
		m7, m14 := 70*k, 140*k
		demand += m14 - m7
		for s := 0.0; s <= 172*k; s++ {
			e14, e7 := q14.ExpectedShortage(s), q7.ExpectedShortage(s)
			curves[i].b = append(curves[i].b, max(e14-e7, 0))
			curves[i].h = append(curves[i].h, max(((s-m14+e14)+(s-m7+e7))/2, 0))
		}
	}
	c0, c1, c2 := curves[0], curves[1], curves[2]
	brute := func(budget float64) ([]int, float64) {
		best, bestCost := []int{-1, -1, -1}, math.Inf(1)
		for a := range c0.b {
			for b := range c1.b {
				short := c0.b[a] + c1.b[b]
				if short > budget {
					continue
				}
				cost := value[0]*c0.h[a] + value[1]*c1.h[b]
				for c := range c2.b {
					if short+c2.b[c] <= budget && cost+value[2]*c2.h[c] < bestCost {
						best, bestCost = []int{a, b, c}, cost+value[2]*c2.h[c]
					}
				}
			}
		}
		return best, bestCost
	}
	if len(got) != 3 {
		t.Fatalf("%d allocated series, want 3", len(got))
	}
	allowed := (1 - replenish.LostSalesTarget(0.95)) * demand
	var short float64
	for i, g := range got {
		short += curves[i].b[int(g.OrderUpTo)]
	}
	if short > allowed {
		t.Errorf("expected shortage %.6f, the target allows %.6f", short, allowed)
	}
	best, cost := brute(short * (1 + 1e-12))
	exact, exactCost := brute(allowed)
	t.Logf("levels %v, stock value %.4f; the least at the target's shortage: %v, %.4f", best, cost, exact, exactCost)
	for i, g := range got {
		s := best[i]
		fill := 1 - curves[i].b[s]/(70*scale[i])
		if g.OrderUpTo != float64(s) || math.Abs(g.FillRate-fill) > 1e-12 {
			t.Errorf("%s: level %v fill %.6f, want %d and %.6f", g.Series.SKU, g.OrderUpTo, g.FillRate, s, fill)
		}
	}
	return best
}

// TestAllocateRejects: a series whose policy is not periodic, a target
// outside (0, 1), a location instead of a series.
func TestAllocateRejects(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	policies, err := planning.NewPolicies(store.NewPolicies(rdb), builtIn)
	if err != nil {
		t.Fatal(err)
	}
	item := planning.PortfolioItem{Series: planning.Scope{SKU: "A", Location: "online"}, Forecast: scaledForecast("A", 1, 0), UnitValue: 1}
	for _, tt := range []struct {
		items []planning.PortfolioItem
		fill  float64
		want  string
	}{
		{[]planning.PortfolioItem{item}, 0.95, "needs periodic review"},
		{[]planning.PortfolioItem{item}, 1, "want 0 <= band < fill rate < 1"},
		{[]planning.PortfolioItem{{Series: planning.Scope{Location: "online"}, Forecast: item.Forecast}}, 0.95, "is not a series"},
	} {
		if _, err := policies.Allocate(ctx, tt.items, tt.fill, 0); err == nil || !contains(err.Error(), tt.want) {
			t.Errorf("Allocate: %v, want an error containing %q", err, tt.want)
		}
	}
}

// TestAllocateLocation: the job's path on redis-server. The planner has
// seen a Tuesday snapshot of 1,000 units for four series under the weekly
// (R, S) policy (no order: 1,000 is above every level); AllocateLocation
// allocates the three with a unit value from their latest forecasts
// (TestAllocate's levels, in the scan's sorted order) and reports the
// fourth; a week later each series at position 0 orders up to its
// allocated level.
func TestAllocateLocation(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	policies, err := planning.NewPolicies(store.NewPolicies(rdb), builtIn)
	if err != nil {
		t.Fatal(err)
	}
	weekly := replenish.ServicePolicy{Policy: builtIn, Kind: replenish.KindPeriodic, ReviewWeekdays: 1 << time.Tuesday}
	weekly.ReviewPeriodDays = 7
	if err := policies.Set(ctx, planning.Scope{Location: "online"}, weekly); err != nil {
		t.Fatal(err)
	}
	planner := planning.NewPlanner(policies, store.NewState(rdb, time.Hour), slog.New(slog.NewTextHandler(io.Discard, nil)))
	skus, scale := []string{"BIG", "CHEAP", "DEAR", "NOPRICE"}, []float64{2, 1, 1, 1}
	values := map[planning.Scope]float64{}
	for i, sku := range skus {
		res, err := planner.Plan(ctx, events(t, scaledForecast(sku, scale[i], 1000)))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Proposals) != 0 {
			t.Fatalf("%s: %d proposals at 1,000 units", sku, len(res.Proposals))
		}
		if sku != "NOPRICE" {
			values[planning.Scope{SKU: sku, Location: "online"}] = []float64{5, 1, 20}[i]
		}
	}
	got, missing, err := planner.AllocateLocation(ctx, "online", values, 0.95, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) != 1 || missing[0] != (planning.Scope{SKU: "NOPRICE", Location: "online"}) {
		t.Errorf("left out %v, want NOPRICE|online", missing)
	}
	for i, g := range got {
		if g.Series.SKU != skus[i] {
			t.Fatalf("allocated %v, want %v in this order", got, skus[:3])
		}
	}
	best := checkAllocation(t, got, scale[:3], []float64{5, 1, 20})
	for i, g := range got {
		ev := seriesEvent(g.Series.SKU, "next", snapshot(0), asOf.AddDate(0, 0, 7))
		for _, l := range ev.LeadTimeDemand {
			for j := range l.Quantiles {
				l.Quantiles[j] *= scale[i]
			}
			l.Mean *= scale[i]
		}
		res, err := planner.Plan(ctx, events(t, ev))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Proposals) != 1 || math.Abs(res.Proposals[0].GetOrderUpTo()-float64(best[i])) > 1e-6 {
			t.Errorf("%s: proposals %v, want one up to %d", g.Series.SKU, res.Proposals, best[i])
		}
	}
	if _, _, err := planner.AllocateLocation(ctx, "store-9", values, 0.95, 0); err == nil || !contains(err.Error(), "no series at location") {
		t.Errorf("a location without series: %v", err)
	}
}
