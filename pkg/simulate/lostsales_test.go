package simulate

import (
	"math"
	"testing"

	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/replenish"
)

// poissonPMF returns P(D = k) for k = 0..n-1, D Poisson with mean m.
func poissonPMF(m float64, n int) []float64 {
	p := make([]float64, n)
	p[0] = math.Exp(-m)
	for k := 1; k < n; k++ {
		p[k] = p[k-1] * m / float64(k)
	}
	return p
}

// lostSalesFill is the exact long-run fill rate of the simulator's (R, S)
// policy with L = R under lost sales, for weekly (R-day) demand with
// probabilities pmf: at a review the previous order has just arrived and
// nothing is on order, so the order lifts the position from on hand I to
// S and arrives at the next review; the cycle loses (D - I)+ and the next
// review finds I' = S - min(D, I). The stationary distribution of I, by
// iterating the chain from I = S, weighs E[(D - I)+].
func lostSalesFill(pmf []float64, s int) float64 {
	var mean float64
	for k, p := range pmf {
		mean += float64(k) * p
	}
	pi := make([]float64, s+1)
	pi[s] = 1
	for range 10000 {
		next := make([]float64, s+1)
		for i, w := range pi {
			if w == 0 {
				continue
			}
			for k, p := range pmf {
				next[s-min(k, i)] += w * p
			}
		}
		var diff float64
		for i := range pi {
			diff += math.Abs(next[i] - pi[i])
		}
		pi = next
		if diff < 1e-15 {
			break
		}
	}
	var lost float64
	for i, w := range pi {
		for k, p := range pmf {
			if k > i {
				lost += w * p * float64(k-i)
			}
		}
	}
	return 1 - lost/mean
}

// backorderFill is 1 - B(S)/E[D(R)] with B(S) = E[(D(L+R) - S)+] -
// E[(D(L) - S)+] from exact Poisson probabilities (daily mean lambda): the
// fill rate the (R, S) formula of replenish.FillRateLevel expects.
func backorderFill(lambda float64, lead, review, s int) float64 {
	excess := func(m float64) float64 {
		var sum float64
		for k, p := range poissonPMF(m, int(m*6)+80) {
			if k > s {
				sum += float64(k-s) * p
			}
		}
		return sum
	}
	b := excess(lambda*float64(lead+review)) - excess(lambda*float64(lead))
	return 1 - b/(lambda*float64(review))
}

// TestLostSalesExactChain: the simulator's fill rate of a fixed (R, S)
// policy on Poisson demand (3 a day, L = R = 7, S = 40 and 46) is the exact
// one of the lost-sales chain (lostSalesFill), within 0.5 points over 4,000
// weeks; and under lost sales the policy serves more than the backorder
// formula it is chosen by expects at the same S.
func TestLostSalesExactChain(t *testing.T) {
	c := Config{LeadTimeDays: 7, ReviewDays: 7, WarmupDays: 1}
	for _, s := range []int{40, 46} {
		want := lostSalesFill(poissonPMF(21, 120), s)
		got, err := Run(poissonSeries(uint64(40+s), 3, 28001), &fixed{upTo: float64(s)}, c)
		if err != nil {
			t.Fatal(err)
		}
		bo := backorderFill(3, 7, 7, s)
		t.Logf("S = %d: simulated fill %.4f, exact lost-sales fill %.4f, backorder formula %.4f", s, got.FillRate(), want, bo)
		if math.Abs(got.FillRate()-want) > 0.005 {
			t.Errorf("S = %d: simulated fill %.4f, exact %.4f", s, got.FillRate(), want)
		}
		if !(want > bo) {
			t.Errorf("S = %d: lost-sales fill %.4f not above the backorder formula's %.4f", s, want, bo)
		}
	}
}

// TestFillRateLevelLostSalesOverServes: with the true distribution
// (Poisson, 3 a day, L = R = 7: no forecast), the level FillRateLevel
// picks for LostSalesTarget(target), rounded up to whole units as the
// simulator orders, serves more than the target under lost sales: the
// backorder formula with the (1-f)/f correction over-delivers by itself.
// The exact fills are logged (docs/replenishment.md).
func TestFillRateLevelLostSalesOverServes(t *testing.T) {
	levels := stockcastLevels()
	protect := make([]float64, len(levels))
	lead := make([]float64, len(levels))
	forecasting.CountQuantiles(42, 1, levels, protect)
	forecasting.CountQuantiles(21, 1, levels, lead)
	for _, target := range []float64{0.9, 0.95} {
		s, err := replenish.FillRateLevel(replenish.Quantiles{Levels: levels, Values: protect}, 42,
			&replenish.Quantiles{Levels: levels, Values: lead}, 21, replenish.LostSalesTarget(target))
		if err != nil {
			t.Fatal(err)
		}
		level := int(math.Ceil(s))
		exact := lostSalesFill(poissonPMF(21, 120), level)
		t.Logf("target %v: backorder target %.4f, S = %.2f -> %d, backorder fill there %.4f, exact lost-sales fill %.4f",
			target, replenish.LostSalesTarget(target), s, level, backorderFill(3, 7, 7, level), exact)
		if !(exact > target) {
			t.Errorf("target %v: exact lost-sales fill %.4f at S = %d", target, exact, level)
		}
	}
}
