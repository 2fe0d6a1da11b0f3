package replenish

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Compound is the demand of an intermittent series as a compound process:
// on each day demand occurs or not, following a two-state Markov chain
// (Willemain, Smart and Schwarz 2004: demand days cluster), and a day with
// demand draws its size from the series' own past non-zero sizes, each
// equally likely, optionally jittered as Willemain's bootstrap does. Where
// the bootstrap samples paths, LeadTime convolves the same process exactly
// (up to a grid of at most CompoundBins values), so its quantiles carry no
// sampling noise.
type Compound struct {
	// P01 is P(demand today | none yesterday), P11 P(demand today |
	// demand yesterday); iid occurrence with probability p is P01 = P11 = p.
	P01, P11 float64
	// Last is whether the day before the first day of the lead time had
	// demand (the chain's starting state).
	Last bool
	// Occurred, when set, replaces the chain: the number of demand days
	// among d days is distributed as in the d-day windows (overlapping,
	// all of them) of this record of days with and without demand, oldest
	// first; it needs at least as many days as the longest lead time.
	// It keeps what the chain misses: weeks busier than others.
	Occurred []bool
	// Sizes are the observed non-zero daily demands, each equally likely.
	Sizes []float64
	// Jitter replaces each size x by round(x + Z*sqrt(x)), Z standard
	// normal, x itself when that is below 1 (Willemain's jitter, centred:
	// new sizes near the observed ones, and tails beyond the largest).
	Jitter bool
}

// CompoundBins bounds the grid of Compound.LeadTime: totals are multiples
// of a width chosen so that the largest possible total of the longest
// lead time has at most this many steps (width 1, exact, when it fits).
const CompoundBins = 512

// ErrNoSizes is returned by Compound.LeadTime when demand can occur but no
// size was observed.
var ErrNoSizes = errors.New("compound demand: no sizes")

// LeadTime returns, for each entry of days (numbers of days >= 0), the mean
// and the quantiles at levels (ascending in (0, 1)) of the total demand of
// that many days, starting after the day described by Last. A quantile is
// the smallest total whose cumulative probability reaches the level.
func (c Compound) LeadTime(days []int, levels []float64) (means []float64, quantiles [][]float64, err error) {
	n := 0
	for _, d := range days {
		n = max(n, d)
	}
	p01, p11 := clamp01(c.P01), clamp01(c.P11)
	if (p01 > 0 || p11 > 0) && len(c.Sizes) == 0 {
		return nil, nil, ErrNoSizes
	}
	// count[d][k]: probability of k demand days among the first d days.
	var count [][]float64
	if c.Occurred != nil {
		if len(c.Occurred) < n {
			return nil, nil, fmt.Errorf("compound demand: %d days of occurrences for a lead time of %d", len(c.Occurred), n)
		}
		count = windowCounts(c.Occurred, days, n)
		for _, row := range count {
			if len(row) < 2 {
				continue
			}
			for _, v := range row[1:] {
				if v > 0 && len(c.Sizes) == 0 {
					return nil, nil, ErrNoSizes
				}
			}
		}
	} else {
		count = occurrenceCounts(p01, p11, c.Last, n)
	}

	// Grid: totals are multiples of w.
	top := 0.0
	for _, x := range c.Sizes {
		hi := x
		if c.Jitter {
			hi = x + 4*math.Sqrt(x)
		}
		top = max(top, hi)
	}
	w := 1.0
	if tot := top * float64(n); tot > CompoundBins {
		w = math.Ceil(tot / CompoundBins)
	}
	size := c.sizeDist(w)

	// powers[k] is the distribution of the sum of k sizes, on the grid,
	// for the k any requested span can reach with some probability.
	kmax := 0
	for _, d := range days {
		for k := d; k > kmax; k-- {
			if count[d][k] > 0 {
				kmax = k
				break
			}
		}
	}
	powers := make([][]float64, kmax+1)
	powers[0] = []float64{1}
	for k := 1; k <= kmax; k++ {
		powers[k] = convolve(powers[k-1], size)
	}

	means = make([]float64, len(days))
	quantiles = make([][]float64, len(days))
	for i, d := range days {
		total := []float64{1}
		if d > 0 {
			total = make([]float64, len(powers[kmax]))
			for k := 0; k <= min(d, kmax); k++ {
				pk := count[d][k]
				if pk == 0 {
					continue
				}
				for j, v := range powers[k] {
					total[j] += pk * v
				}
			}
		}
		var mean float64
		for j, v := range total {
			mean += float64(j) * w * v
		}
		means[i] = mean
		quantiles[i] = gridQuantiles(total, w, levels)
	}
	return means, quantiles, nil
}

func clamp01(p float64) float64 {
	if !(p > 0) {
		return 0
	}
	return min(p, 1)
}

// occurrenceCounts returns count[d][k] = P(k demand days among d days) for
// d = 0..n, for the Markov chain starting after a day with (last) or
// without demand.
func occurrenceCounts(p01, p11 float64, last bool, n int) [][]float64 {
	count := make([][]float64, n+1)
	count[0] = []float64{1}
	// by state of the last day: off[k], on[k].
	off, on := make([]float64, n+1), make([]float64, n+1)
	if last {
		on[0] = 1
	} else {
		off[0] = 1
	}
	nextOff, nextOn := make([]float64, n+1), make([]float64, n+1)
	for d := 1; d <= n; d++ {
		clear(nextOff)
		clear(nextOn)
		for k := 0; k < d; k++ {
			nextOff[k] += off[k]*(1-p01) + on[k]*(1-p11)
			nextOn[k+1] += off[k]*p01 + on[k]*p11
		}
		off, nextOff = nextOff, off
		on, nextOn = nextOn, on
		row := make([]float64, d+1)
		for k := range row {
			row[k] = off[k] + on[k]
		}
		count[d] = row
	}
	return count
}

// windowCounts returns count[d][k] = the share of the d-day windows of occ
// with k demand days, for each d of days (nil rows for the others).
func windowCounts(occ []bool, days []int, n int) [][]float64 {
	count := make([][]float64, n+1)
	count[0] = []float64{1}
	for _, d := range days {
		if d <= 0 || count[d] != nil {
			continue
		}
		row := make([]float64, d+1)
		k := 0
		for i, o := range occ {
			if o {
				k++
			}
			if i >= d && occ[i-d] {
				k--
			}
			if i >= d-1 {
				row[k]++
			}
		}
		windows := float64(len(occ) - d + 1)
		for j := range row {
			row[j] /= windows
		}
		count[d] = row
	}
	return count
}

// sizeDist is the distribution of one day's size on the grid of width w:
// mass at j means a size of j*w. A size between two grid points is split
// between them so that the mean is kept.
func (c Compound) sizeDist(w float64) []float64 {
	var out []float64
	add := func(x, p float64) {
		j := int(math.Floor(x / w))
		frac := x/w - float64(j)
		if need := j + 2; len(out) < need {
			out = append(out, make([]float64, need-len(out))...)
		}
		out[j] += p * (1 - frac)
		out[j+1] += p * frac
	}
	each := 1 / float64(len(c.Sizes))
	for _, x := range c.Sizes {
		sd := math.Sqrt(x)
		if !c.Jitter || sd < 1e-9 {
			add(x, each)
			continue
		}
		// round(x + Z sd) = v for v - 1/2 <= x + Z sd < v + 1/2; v < 1
		// falls back to x.
		cdf := func(v float64) float64 { return 0.5 * math.Erfc(-(v-x)/(sd*math.Sqrt2)) }
		lo := max(1, math.Round(x-4*sd))
		hi := math.Round(x + 4*sd)
		below := cdf(0.5)
		add(x, each*below)
		// The mass beyond 4 sd on either side is left at x too.
		left := cdf(lo-0.5) - below
		right := 1 - cdf(hi+0.5)
		add(x, each*(max(left, 0)+right))
		if w == 1 {
			for v := lo; v <= hi; v++ {
				add(v, each*(cdf(v+0.5)-cdf(v-0.5)))
			}
			continue
		}
		// Coarse grid: integrate the kernel per grid step, at the
		// conditional mean of the step approximated by its midpoint.
		for a := lo - 0.5; a < hi+0.5; a += w {
			b := min(a+w, hi+0.5)
			add((a+b)/2, each*(cdf(b)-cdf(a)))
		}
	}
	// Trim trailing zeros.
	for len(out) > 1 && out[len(out)-1] == 0 {
		out = out[:len(out)-1]
	}
	return out
}

// convolve returns the distribution of the sum of two independent grid
// variables.
func convolve(a, b []float64) []float64 {
	out := make([]float64, len(a)+len(b)-1)
	for j, pb := range b {
		if pb == 0 {
			continue
		}
		for i, pa := range a {
			out[i+j] += pa * pb
		}
	}
	return out
}

// gridQuantiles returns the smallest grid value whose cumulative
// probability reaches each level (a tolerance of 1e-12 absorbs rounding).
func gridQuantiles(p []float64, w float64, levels []float64) []float64 {
	out := make([]float64, len(levels))
	if !slices.IsSorted(levels) {
		levels = slices.Sorted(slices.Values(levels))
	}
	j := 0
	cum := p[0]
	for i, l := range levels {
		for cum < l-1e-12 && j < len(p)-1 {
			j++
			cum += p[j]
		}
		out[i] = float64(j) * w
	}
	return out
}
