package simulate

import (
	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/replenish"
)

// The spread of a series' lead-time demand from its own record (the
// stockcast policy's -spread record): the forecast gives the mean demand
// over the L+R days an order protects (and over the L days before it
// arrives); the variance-to-mean ratio of those totals is measured on the
// series' own past windows, sum over windows of (sales - forecast mean)²
// over the sum of the forecast means, mixed with calPrior windows at the
// portfolio's pooled ratio; the distribution is the count distribution
// (forecasting.CountQuantiles) with that mean and ratio. The record holds
// the last calWindows windows of each span, started in the warm-up on the
// review calendar. A window with a stockout only bounds its demand from
// below: it counts when its sales reached the forecast mean (a lower
// bound of its squared error) and is left out otherwise.

// spanWindow is a window under way or closed.
type spanWindow struct {
	start    forecasting.Day
	days     int
	mean     float64
	sum      float64
	censored bool
}

// spanRecord is the record of one span of one series.
type spanRecord struct {
	span   int
	open   []spanWindow
	closed [calWindows]spanWindow
	n      int
}

func (r *spanRecord) track(start forecasting.Day, mean float64) {
	if r.span > 0 {
		r.open = append(r.open, spanWindow{start: start, mean: mean})
	}
}

func (r *spanRecord) observe(day forecasting.Day, sales float64, censored bool) {
	kept := r.open[:0]
	for _, w := range r.open {
		if day >= w.start {
			w.sum += sales
			w.days++
			w.censored = w.censored || censored
		}
		if w.days < r.span {
			kept = append(kept, w)
			continue
		}
		r.closed[r.n%calWindows] = w
		r.n++
	}
	r.open = kept
}

// sums returns the sums of squared errors and of means over the usable
// closed windows.
func (r *spanRecord) sums() (sq, mean float64) {
	for _, w := range r.closed[:min(r.n, calWindows)] {
		if w.censored && w.sum < w.mean {
			continue
		}
		sq += (w.sum - w.mean) * (w.sum - w.mean)
		mean += w.mean
	}
	return sq, mean
}

// dispersion is the series' ratio for a window of mean m, mixed with
// calPrior windows at the pooled ratio prior.
func (r *spanRecord) dispersion(m, prior float64) float64 {
	sq, sum := r.sums()
	den := sum + calPrior*m
	if !(den > 0) {
		return 1
	}
	return max((sq+calPrior*prior*m)/den, 1)
}

// pooled is the ratio over the records of all series, 1 without any.
func pooled(recs []spanRecord) float64 {
	var sq, sum float64
	for i := range recs {
		a, b := recs[i].sums()
		sq += a
		sum += b
	}
	if !(sum > 0) {
		return 1
	}
	return max(sq/sum, 1)
}

// recordQuantiles is the count distribution with mean m and the record's
// ratio at levels.
func recordQuantiles(r *spanRecord, m, prior float64, levels []float64) replenish.Quantiles {
	q := replenish.Quantiles{Levels: levels, Values: make([]float64, len(levels))}
	forecasting.CountQuantiles(m, r.dispersion(m, prior), levels, q.Values)
	return q
}
