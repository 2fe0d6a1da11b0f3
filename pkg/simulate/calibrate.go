package simulate

import (
	"sort"

	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/replenish"
)

// Recalibration of a series' lead-time demand distributions from its own
// track record (conformal-style, rolling, no peeking): each forecast of
// the demand over the L+R days an order protects is kept until those days
// have closed; then the probability integral transform (PIT) of the
// sales over them, F(sales), is recorded. A calibrated forecast has
// uniform PITs; when they are not, the distribution G of the last
// calWindows PITs (mixed with calPrior windows' worth of the uniform, so
// that a short record changes little) maps a level u to the level
// G^-1(u) of the forecast that the record says is exceeded with
// probability 1-u. Only sales are seen: a window with a stockout gives a
// lower bound (its PIT is at least F(sales)), counted as uniform above it.
//
// calWindows and calPrior were set before any run, not tuned: a year of
// weekly reviews, and ten windows of prior.
const (
	calWindows = 52
	calPrior   = 10
)

// pit is one closed window's PIT: F(sales^-)..F(sales), or at least lo
// when the window had a stockout.
type pit struct {
	lo, hi   float64
	censored bool
}

// window under way: a forecast and the sales of its days so far.
type openWindow struct {
	start    forecasting.Day
	q        replenish.Quantiles
	sum      float64
	days     int
	censored bool
}

// calibration is one series' record.
type calibration struct {
	span int
	open []openWindow
	pits [calWindows]pit
	n    int // PITs recorded (all of them, the ring keeps calWindows)
}

// track starts a window of span days on start with the forecast q (its
// values are copied).
func (c *calibration) track(start forecasting.Day, q replenish.Quantiles) {
	c.open = append(c.open, openWindow{start: start, q: replenish.Quantiles{Levels: q.Levels, Values: append([]float64(nil), q.Values...)}})
}

// observe adds a closed day's sales to the windows that cover it and
// records the PIT of those it closes.
func (c *calibration) observe(day forecasting.Day, sales float64, censored bool) {
	kept := c.open[:0]
	for _, w := range c.open {
		if day >= w.start {
			w.sum += sales
			w.days++
			w.censored = w.censored || censored
		}
		if w.days < c.span {
			kept = append(kept, w)
			continue
		}
		lo, hi := pitOf(w.q, w.sum)
		c.pits[c.n%calWindows] = pit{lo: lo, hi: hi, censored: w.censored}
		c.n++
	}
	c.open = kept
}

// pitOf returns inf{u: Q(u) >= y} and sup{u: Q(u) <= y} for the quantile
// function Q, linear between the listed levels and flat beyond them.
func pitOf(q replenish.Quantiles, y float64) (lo, hi float64) {
	l, v := q.Levels, q.Values
	n := len(v)
	j := sort.SearchFloat64s(v, y) // first value >= y
	switch {
	case j == 0:
		lo = 0
	case j == n:
		lo = 1
	default:
		lo = l[j-1] + (y-v[j-1])/(v[j]-v[j-1])*(l[j]-l[j-1])
	}
	k := sort.Search(n, func(i int) bool { return v[i] > y }) - 1 // last value <= y
	switch {
	case k < 0:
		hi = 0
	case k == n-1:
		hi = 1
	default:
		hi = l[k] + (y-v[k])/(v[k+1]-v[k])*(l[k+1]-l[k])
	}
	return lo, max(hi, lo)
}

// cdf is G at x: the recorded PITs, each uniform over its interval (a
// censored one over [lo, 1]), mixed with calPrior uniforms.
func (c *calibration) cdf(x float64) float64 {
	m := min(c.n, calWindows)
	sum := calPrior * x
	for _, p := range c.pits[:m] {
		hi := p.hi
		if p.censored {
			hi = 1
		}
		switch {
		case x >= hi:
			sum++
		case x > p.lo:
			sum += (x - p.lo) / (hi - p.lo)
		}
	}
	return sum / float64(calPrior+m)
}

// levels returns G^-1(u) for each of the ascending levels: where to read
// the forecast's quantile function. Without a record it is the identity.
func (c *calibration) levels(us []float64) []float64 {
	out := make([]float64, len(us))
	m := min(c.n, calWindows)
	if m == 0 {
		copy(out, us)
		return out
	}
	// G is piecewise linear between its breakpoints.
	xs := []float64{0, 1}
	for _, p := range c.pits[:m] {
		xs = append(xs, p.lo)
		if !p.censored {
			xs = append(xs, p.hi)
		}
	}
	sort.Float64s(xs)
	gs := make([]float64, len(xs))
	for i, x := range xs {
		gs[i] = c.cdf(x)
	}
	for i, u := range us {
		k := sort.Search(len(gs), func(k int) bool { return gs[k] >= u })
		switch {
		case k == 0:
			out[i] = xs[0]
		case k == len(gs):
			out[i] = 1
		case gs[k] == gs[k-1]:
			out[i] = xs[k]
		default:
			out[i] = xs[k-1] + (u-gs[k-1])/(gs[k]-gs[k-1])*(xs[k]-xs[k-1])
		}
	}
	return out
}

// recalibrated reads q at the levels G^-1(u) of its own levels u,
// clamped to the listed range (the tail beyond stays flat).
func recalibrated(q replenish.Quantiles, at []float64) replenish.Quantiles {
	out := replenish.Quantiles{Levels: q.Levels, Values: make([]float64, len(q.Values))}
	lo, hi := q.Levels[0], q.Levels[len(q.Levels)-1]
	for i, u := range at {
		v, err := q.QuantileAt(min(max(u, lo), hi))
		if err != nil {
			v = q.Values[i]
		}
		out.Values[i] = v
	}
	// Keep the values ascending against rounding.
	for i := 1; i < len(out.Values); i++ {
		out.Values[i] = max(out.Values[i], out.Values[i-1])
	}
	return out
}
