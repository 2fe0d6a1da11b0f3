package replenish

import (
	"fmt"
	"math"
)

// This file is owned by the replenishment service (services/replenishment):
// levels under a learned, uncertain supplier lead time.

// LeadTimeStats are lead times in days learned from receipts.
type LeadTimeStats struct {
	N        int
	Mean     float64
	Variance float64 // sample variance; 0 with fewer than 2 samples
}

// mixtureSD is how many standard deviations of lead time the mixture spans.
const mixtureSD = 4

// LeadTimeWeights discretises a lead time of mean m and standard deviation
// sd (days) onto whole days: day d gets the normal probability of
// [d-0.5, d+0.5), days below 0 go to day 0, and the tails beyond 4 sd are
// dropped (the weights are renormalised). sd = 0 puts everything on round(m).
func LeadTimeWeights(m, sd float64) []DayWeight {
	m = math.Max(m, 0)
	if !(sd > 0) {
		return []DayWeight{{Days: int(math.Round(m)), Weight: 1}}
	}
	lo := int(math.Max(0, math.Floor(m-mixtureSD*sd)))
	hi := int(math.Ceil(m + mixtureSD*sd))
	cdf := func(x float64) float64 { return 0.5 * math.Erfc(-(x-m)/(sd*math.Sqrt2)) }
	var w []DayWeight
	var total float64
	for d := lo; d <= hi; d++ {
		a := float64(d) - 0.5
		if d == 0 {
			a = math.Inf(-1)
		}
		p := cdf(float64(d)+0.5) - cdf(a)
		if p > 0 {
			w = append(w, DayWeight{Days: d, Weight: p})
			total += p
		}
	}
	for i := range w {
		w[i].Weight /= total
	}
	return w
}

// DayWeight is the probability of a whole-day lead time.
type DayWeight struct {
	Days   int
	Weight float64
}

// MixtureLevels are ComputeLevels' levels when the supplier lead time is
// uncertain: lead-time demand is the mixture, over the whole-day lead times
// d of LeadTimeWeights(mean, sd), of the forecast's demand over d + review
// days (each span's quantiles interpolated between listed spans as
// ComputeLevels does). The reorder point is the mixture's quantile at the
// service level (bisection on the mixture CDF, each component's CDF the
// piecewise linear inverse of its quantile grid); the expected lead-time
// demand is the weighted mean; the order-up-to level adds the cover days
// after round(mean) + review days. Spans beyond the forecast's longest are
// ErrLeadTimeNotCovered.
func MixtureLevels(f Forecast, p Policy, lt LeadTimeStats) (Levels, error) {
	if w := LeadTimeWeights(lt.Mean, math.Sqrt(math.Max(lt.Variance, 0))); len(w) == 1 {
		// A certain lead time: exactly ComputeLevels with it.
		q := p
		q.LeadTimeDays = w[0].Days
		return ComputeLevels(f, q)
	}
	return mixtureLevels(f, p, LeadTimeWeights(lt.Mean, math.Sqrt(math.Max(lt.Variance, 0))), int(math.Round(math.Max(lt.Mean, 0))))
}

// mixtureLevels works on given weights, in their order (so the sums, and
// the levels, are the same on every run); lead is the lead time of the
// order-up-to level's cover.
func mixtureLevels(f Forecast, p Policy, weights []DayWeight, lead int) (Levels, error) {
	if err := checkShape(f); err != nil {
		return Levels{}, err
	}
	type component struct {
		w         float64
		quantiles []float64
	}
	comps := make([]component, 0, len(weights))
	var mean float64
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, dw := range weights {
		span := dw.Days + p.ReviewPeriodDays
		qs := make([]float64, len(f.QuantileLevels))
		var m float64
		for j, level := range f.QuantileLevels {
			q, mj, err := spanDemand(f, span, level)
			if err != nil {
				return Levels{}, err
			}
			qs[j], m = q, mj
		}
		comps = append(comps, component{w: dw.Weight, quantiles: qs})
		mean += dw.Weight * m
		lo, hi = math.Min(lo, qs[0]), math.Max(hi, qs[len(qs)-1])
	}
	if len(f.QuantileLevels) == 0 || p.ServiceLevel < f.QuantileLevels[0] || p.ServiceLevel > f.QuantileLevels[len(f.QuantileLevels)-1] {
		return Levels{}, fmt.Errorf("%w: %v, forecast lists %v", ErrServiceLevelNotCovered, p.ServiceLevel, f.QuantileLevels)
	}
	cdf := func(x float64) float64 {
		var sum float64
		for _, c := range comps {
			sum += c.w * gridCDF(f.QuantileLevels, c.quantiles, x)
		}
		return sum
	}
	// Smallest x with cdf(x) >= service level.
	a, b := lo, hi
	for range 100 {
		mid := (a + b) / 2
		if cdf(mid) >= p.ServiceLevel {
			b = mid
		} else {
			a = mid
		}
	}
	// Bisection lands within rounding of a grid quantile when the level is
	// one of the grid's: take the quantile itself.
	rop := b
	for _, c := range comps {
		for _, q := range c.quantiles {
			if math.Abs(q-b) <= 1e-9*math.Max(1, math.Abs(q)) {
				rop = q
			}
		}
	}
	cover := coverDemand(f.DailyMeans, lead+p.ReviewPeriodDays+1, p.OrderCoverDays)
	return Levels{ReorderPoint: rop, ExpectedLeadTimeDemand: mean, SafetyStock: rop - mean, OrderUpTo: rop + cover}, nil
}

// spanDemand is leadTimeDemand, with spans shorter than the forecast's
// shortest interpolated from no demand at 0 days (a lead time of 0 or 1
// day in the mixture must not leave the decision undecided).
func spanDemand(f Forecast, span int, level float64) (quantile, mean float64, err error) {
	entries := sortedBySpan(f.LeadTimeDemand)
	if len(entries) == 0 || span >= entries[0].Days {
		return leadTimeDemand(f, span, level)
	}
	if span <= 0 {
		return 0, 0, nil
	}
	q, m, err := leadTimeDemand(f, entries[0].Days, level)
	if err != nil {
		return 0, 0, err
	}
	w := float64(span) / float64(entries[0].Days)
	return q * w, m * w, nil
}

// gridCDF inverts a quantile grid: 0 below the first quantile, the first
// level at it, linear between quantiles (the highest level where quantiles
// tie), 1 above the last.
func gridCDF(levels, quantiles []float64, x float64) float64 {
	n := len(quantiles)
	switch {
	case x < quantiles[0]:
		return 0
	case x >= quantiles[n-1]:
		if x > quantiles[n-1] {
			return 1
		}
		return levels[n-1]
	}
	// quantiles[i] <= x < quantiles[i+1] for the last such i.
	i := 0
	for i+1 < n && quantiles[i+1] <= x {
		i++
	}
	return levels[i] + (levels[i+1]-levels[i])*(x-quantiles[i])/(quantiles[i+1]-quantiles[i])
}
