package forecasting

import "math"

// countDist is the distribution of a day's (or a period's) demand: mean and
// variance = Dispersion * mean. Dispersion <= 1 is Poisson; above 1 it is
// the negative binomial with that constant variance-to-mean ratio (NB1:
// p = 1/Dispersion, size r = mean/(Dispersion-1)). NB1 sums of independent
// days with the same dispersion are NB1 again (same p, sizes add), which
// makes lead-time demand exact (leadtime.go).
type countDist struct {
	Mean       float64
	Dispersion float64
}

const (
	poissonBelow = 1 + 1e-6 // dispersion treated as Poisson
	// exactBelowSD bounds the exact walk (about 15 sd steps per
	// distribution): beyond it a unit is far below the spread, and a
	// gamma approximation keeps a forecast within its time budget.
	exactBelowSD = 250
	tailSDs      = 12 // mass further below the mean than this is ignored

	minZeroShare = 0.005 // capForZeros
)

func (c countDist) poisson() bool { return c.Dispersion < poissonBelow }

func (c countDist) sd() float64 { return math.Sqrt(c.Mean * max(c.Dispersion, 1)) }

// logPMF returns log P(X = k).
func (c countDist) logPMF(k float64) float64 {
	if k == 0 {
		// the walks of small means start here: the general formulas'
		// log-gamma terms cancel exactly (lgamma(r) - lgamma(r), lgamma(1)
		// = 0), so the same value without computing them
		if c.poisson() {
			return -c.Mean
		}
		return c.Mean / (c.Dispersion - 1) * math.Log(1/c.Dispersion)
	}
	if c.poisson() {
		return k*math.Log(c.Mean) - c.Mean - lgamma(k+1)
	}
	r := c.Mean / (c.Dispersion - 1)
	p := 1 / c.Dispersion
	return lgamma(k+r) - lgamma(r) - lgamma(k+1) + r*math.Log(p) + k*math.Log1p(-p)
}

// ratio returns P(X = k+1) / P(X = k).
func (c countDist) ratio(k float64) float64 {
	if c.poisson() {
		return c.Mean / (k + 1)
	}
	r := c.Mean / (c.Dispersion - 1)
	return (k + r) / (k + 1) * (1 - 1/c.Dispersion)
}

// Quantiles writes, for each level (ascending, in (0,1)), the smallest count
// k with P(X <= k) >= level.
func (c countDist) Quantiles(levels, out []float64) {
	if c.Mean <= 0 || math.IsNaN(c.Mean) {
		clear(out)
		return
	}
	sd := c.sd()
	if sd > exactBelowSD {
		c.approxQuantiles(levels, out)
		return
	}
	// Walk the pmf upward from far below the mean, accumulating the CDF;
	// starting there instead of at 0 keeps large means from underflowing.
	k := max(0, math.Floor(c.Mean-tailSDs*sd))
	p := math.Exp(c.logPMF(k))
	cdf := p
	limit := c.Mean + 60*sd + 100
	// the steps of ratio, with its loop-invariant parts computed once (the
	// same operations in the same order: the same values)
	poisson := c.poisson()
	r := c.Mean / (c.Dispersion - 1)
	succ := 1 - 1/c.Dispersion
	for i, q := range levels {
		for cdf < q && k < limit {
			if poisson {
				p *= c.Mean / (k + 1)
			} else {
				p *= (k + r) / (k + 1) * succ
			}
			k++
			cdf += p
		}
		out[i] = k
	}
}

// approxQuantiles approximates the quantiles of a distribution with a large
// spread: the mass at zero is exact, and the positive part is the gamma
// distribution of its mean and variance (Wilson-Hilferty), which keeps the
// right skew of the count. Off by at most a few percent of a standard
// deviation (countdist_test.go).
func (c countDist) approxQuantiles(levels, out []float64) {
	variance := c.Mean * max(c.Dispersion, 1)
	zero := math.Exp(c.logPMF(0))
	mean := c.Mean / (1 - zero)                              // E[X | X > 0]
	variance = (variance+c.Mean*c.Mean)/(1-zero) - mean*mean // Var[X | X > 0]
	shape, scale := mean*mean/variance, variance/mean
	for i, q := range levels {
		if q <= zero {
			out[i] = 0
			continue
		}
		z := normalQuantile((q - zero) / (1 - zero))
		g := math.Pow(max(1-1/(9*shape)+z*math.Sqrt(1/(9*shape)), 0), 3)
		out[i] = max(1, math.Ceil(shape*scale*g-0.5))
	}
}

func lgamma(x float64) float64 {
	v, _ := math.Lgamma(x)
	return v
}

// normalQuantile is the standard normal inverse CDF (Acklam's rational
// approximation, relative error below 1.2e-9).
func normalQuantile(p float64) float64 {
	const (
		a1, a2, a3, a4, a5, a6 = -3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00
		b1, b2, b3, b4, b5     = -5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01
		c1, c2, c3, c4, c5, c6 = -7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00
		d1, d2, d3, d4         = 7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00
		low                    = 0.02425
	)
	switch {
	case p <= 0:
		return math.Inf(-1)
	case p >= 1:
		return math.Inf(1)
	case p < low:
		q := math.Sqrt(-2 * math.Log(p))
		return (((((c1*q+c2)*q+c3)*q+c4)*q+c5)*q + c6) / ((((d1*q+d2)*q+d3)*q+d4)*q + 1)
	case p > 1-low:
		q := math.Sqrt(-2 * math.Log(1-p))
		return -(((((c1*q+c2)*q+c3)*q+c4)*q+c5)*q + c6) / ((((d1*q+d2)*q+d3)*q+d4)*q + 1)
	default:
		q := p - 0.5
		r := q * q
		return (((((a1*r+a2)*r+a3)*r+a4)*r+a5)*r + a6) * q / (((((b1*r+b2)*r+b3)*r+b4)*r+b5)*r + 1)
	}
}

// cdf returns P(X <= k) for an integer k >= 0, summing the pmf upward from
// far below the mean (as Quantiles walks it).
func (c countDist) cdf(k float64) float64 {
	sd := c.sd()
	if k >= c.Mean+60*sd+100 {
		return 1
	}
	lo := max(0, math.Floor(c.Mean-tailSDs*sd))
	if k < lo {
		return 0
	}
	p := math.Exp(c.logPMF(lo))
	sum := p
	for j := lo; j < k; j++ {
		p *= c.ratio(j)
		sum += p
	}
	return min(sum, 1)
}

// capForZeros returns the dispersion to use for a count with mean mu whose
// share of zero periods is zeroShare: disp, lowered when the negative
// binomial at disp would put more than zeroShare on zero. A variance
// estimated from past errors can be large next to a mean that has fallen
// (a big order after weeks without demand); the NB1 of that mean and
// variance puts almost all its mass at zero and its 95% quantile (even of
// a 7-day total) at 0 although the item sells on more than 5% of days.
// Matching the observed frequency of zeros keeps the spread where it is.
// A share below minZeroShare (the lowest quantile level in use; a lead
// time's share, the daily one to the power of its days, is often far
// below) counts as minZeroShare: zeros that rare move no quantile, and
// the spread of a large total must stay the errors'.
func capForZeros(mu, disp, zeroShare float64) float64 {
	if disp < poissonBelow || mu <= 0 || !(zeroShare > 0 && zeroShare < 1) {
		return disp
	}
	target := math.Log(max(zeroShare, minZeroShare))
	logP0 := func(d float64) float64 { return -mu * math.Log(d) / (d - 1) }
	if logP0(disp) <= target {
		return disp // no more zeros than seen
	}
	if -mu >= target {
		return 1 // even Poisson has more zeros than seen: the least spread
	}
	lo, hi := 1.0, disp // logP0(lo+) = -mu < target < logP0(hi)
	for range 50 {
		mid := math.Sqrt(lo * hi)
		if mid <= poissonBelow {
			mid = (lo + hi) / 2
		}
		if logP0(mid) > target {
			hi = mid
		} else {
			lo = mid
		}
		if hi/lo < 1+1e-6 {
			break
		}
	}
	return lo
}
