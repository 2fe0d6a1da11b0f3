package backtest

import (
	"math"

	"github.com/stockcast/stockcast/pkg/forecasting"
)

// Levels are the quantile levels every model is asked for: the nine M5
// uncertainty levels (WSPL) plus 0.01, 0.05, 0.95 and 0.99 for the 90% and
// 98% intervals.
var Levels = []float64{0.005, 0.01, 0.025, 0.05, 0.165, 0.25, 0.5, 0.75, 0.835, 0.95, 0.975, 0.99, 0.995}

// LeadTimes are the lead times whose demand coverage is reported: the
// demand summed over the first L days from the origin, for the service's
// default lead times L (its lead time L sums the rest of the day and L
// more days: L+1 whole days from a morning with nothing seen).
var LeadTimes = forecasting.DefaultLeadTimes()

// m5Levels indexes the nine M5 levels in Levels.
var m5Levels = []int{0, 2, 4, 5, 6, 7, 8, 10, 12}

// intervals are the central intervals whose coverage is reported, as
// indexes into Levels: 50% (0.25-0.75), 90% (0.05-0.95), 98% (0.01-0.99).
var intervals = [3][2]int{{5, 7}, {3, 9}, {1, 11}}

// Prediction is one series' forecast from one origin: Means[h], and
// Quantiles[h][k] at Levels[k] (nil when the model has none).
type Prediction struct {
	Means     []float64
	Quantiles [][]float64
	// CDF, if set, is the distribution the quantiles are read from:
	// P(Y <= k) on day h for a count model (the levels' calibration
	// included). The exact PIT coverage is computed from it (ExactPIT).
	CDF func(h int, k float64) float64
	// LeadTimeCDF, if set, is the distribution of the lead-time demand:
	// P(S <= x) for S the sum of the first LeadTimes[k] days. The exact
	// PIT coverage of the lead times is computed from it.
	LeadTimeCDF func(k int, x float64) float64
}

// SeriesScore is one series' scores from one origin.
type SeriesScore struct {
	// Weight is the series' dollar sales over the last 28 training days
	// (not normalised).
	Weight float64
	// Valid is false when the training part has no sale or no change, so
	// that the scales are zero and the series is not scored.
	Valid bool
	RMSSE float64
	MASE  float64
	// SPL is the mean over the nine M5 levels of the scaled pinball loss
	// (NaN without quantiles).
	SPL float64
	// ErrorSum and ActualSum give the bias over series.
	ErrorSum, ActualSum float64
	// Covered counts the horizon days inside each interval; Days is the
	// horizon.
	Covered [3]int
	Days    int
	// PITCovered is the PIT coverage of each interval summed over the
	// horizon days (see PITCoverage).
	PITCovered [3]float64
	// ExactCovered is the PIT coverage from Prediction.CDF (the outcome's
	// PIT interval [F(y-1), F(y)] itself, not read off the quantiles),
	// summed over the horizon days; HasCDF says whether there was one.
	ExactCovered [3]float64
	HasCDF       bool
	// LeadTimeCovered[k] is the PIT coverage of each interval for the sum
	// of the first LeadTimes[k] days, from Prediction.LeadTimeCDF (0 for a
	// lead time longer than the horizon); HasLeadTime says whether there
	// was one.
	LeadTimeCovered [][3]float64
	HasLeadTime     bool
}

// PITCoverage is the share of the outcome's PIT interval that falls
// inside the central interval [a, b] of levels: the non-randomised PIT of
// a discrete forecast (Czado, Gneiting and Held, 2009), read off the
// quantiles at Levels: the outcome y's PIT lies between the highest level
// whose quantile is below y and the lowest level whose quantile is above
// y (0 and 1 when there is none). For a continuous forecast that is the
// indicator of y inside [q_a, q_b]; for a count forecast whose quantiles
// tie (a mostly-zero series: q_0.25 = q_0.75 = 0) an outcome 0 counts
// only for the share of its probability inside the interval, instead of
// always.
func PITCoverage(y float64, q []float64, a, b float64) float64 {
	lo, hi := 0.0, 1.0
	for k, u := range Levels {
		if q[k] < y {
			lo = u
		}
	}
	for k := len(Levels) - 1; k >= 0; k-- {
		if q[k] > y {
			hi = Levels[k]
		}
	}
	if hi <= lo { // crossing quantiles: a point
		if m := (lo + hi) / 2; m >= a && m <= b {
			return 1
		}
		return 0
	}
	return max(0, min(b, hi)-max(a, lo)) / (hi - lo)
}

// Scales returns the two M5 denominators of a training part: the mean
// squared and the mean absolute one-step change from the first non-zero
// value on. ok is false when there are fewer than two values from the
// first sale or when both are zero.
func Scales(train []float64) (squared, absolute float64, ok bool) {
	first := 0
	for first < len(train) && train[first] == 0 {
		first++
	}
	n := len(train) - first - 1
	if n < 1 {
		return 0, 0, false
	}
	for t := first + 1; t < len(train); t++ {
		d := train[t] - train[t-1]
		squared += d * d
		absolute += math.Abs(d)
	}
	squared /= float64(n)
	absolute /= float64(n)
	return squared, absolute, squared > 0 && absolute > 0
}

// Pinball is the quantile loss of forecast q at level u for outcome y.
func Pinball(y, q, u float64) float64 {
	if y >= q {
		return u * (y - q)
	}
	return (1 - u) * (q - y)
}

// ScoreSeries scores p against the actual values test after the training
// part train; prices are the training part's prices (NaN = unknown) for
// the weight.
func ScoreSeries(train, trainPrices, test []float64, p Prediction) SeriesScore {
	var sc SeriesScore
	for t := max(len(train)-28, 0); t < len(train); t++ {
		if pr := trainPrices[t]; !math.IsNaN(pr) {
			sc.Weight += train[t] * pr
		}
	}
	sq, ab, ok := Scales(train)
	sc.Valid = ok
	sc.Days = len(test)
	var mse, mae float64
	for h, y := range test {
		e := p.Means[h] - y
		mse += e * e
		mae += math.Abs(e)
		sc.ErrorSum += e
		sc.ActualSum += y
	}
	mse /= float64(len(test))
	mae /= float64(len(test))
	sc.SPL = math.NaN()
	if !ok {
		sc.RMSSE, sc.MASE = math.NaN(), math.NaN()
		return sc
	}
	sc.RMSSE = math.Sqrt(mse / sq)
	sc.MASE = mae / ab
	if p.LeadTimeCDF != nil {
		sc.HasLeadTime = true
		sc.LeadTimeCovered = make([][3]float64, len(LeadTimes))
		for k, l := range LeadTimes {
			if l > len(test) {
				continue
			}
			y := 0.0
			for _, v := range test[:l] {
				y += v
			}
			lo, hi := p.LeadTimeCDF(k, y-1), p.LeadTimeCDF(k, y)
			for i, iv := range intervals {
				sc.LeadTimeCovered[k][i] = intervalShare(lo, hi, Levels[iv[0]], Levels[iv[1]])
			}
		}
	}
	if p.Quantiles == nil {
		return sc
	}
	spl := 0.0
	for _, k := range m5Levels {
		loss := 0.0
		for h, y := range test {
			loss += Pinball(y, p.Quantiles[h][k], Levels[k])
		}
		spl += loss / float64(len(test)) / ab
	}
	sc.SPL = spl / float64(len(m5Levels))
	for h, y := range test {
		for i, iv := range intervals {
			if y >= p.Quantiles[h][iv[0]] && y <= p.Quantiles[h][iv[1]] {
				sc.Covered[i]++
			}
			sc.PITCovered[i] += PITCoverage(y, p.Quantiles[h], Levels[iv[0]], Levels[iv[1]])
		}
	}
	if p.CDF != nil {
		sc.HasCDF = true
		for h, y := range test {
			lo, hi := p.CDF(h, y-1), p.CDF(h, y)
			for i, iv := range intervals {
				sc.ExactCovered[i] += intervalShare(lo, hi, Levels[iv[0]], Levels[iv[1]])
			}
		}
	}
	return sc
}

// intervalShare is the share of the PIT interval [lo, hi] inside [a, b]
// (for lo = hi, 1 if it lies inside).
func intervalShare(lo, hi, a, b float64) float64 {
	if hi <= lo {
		if lo >= a && lo <= b {
			return 1
		}
		return 0
	}
	return max(0, min(b, hi)-max(a, lo)) / (hi - lo)
}

// Summary aggregates the scores of all series from one or more origins.
type Summary struct {
	// WRMSSE and WSPL are the dollar-weighted sums over the series of one
	// origin (weights normalised per origin), averaged over origins; the
	// means are plain means over series and origins.
	WRMSSE, MeanRMSSE, MeanMASE float64
	WSPL                        float64 // NaN without quantiles
	// Bias is the total error over the total demand.
	Bias float64
	// Coverage of the 50%, 90% and 98% intervals (NaN without quantiles):
	// inclusive (y in [q_lo, q_hi]) and PIT (PITCoverage).
	Coverage, PIT [3]float64
	// ExactPIT is the PIT coverage from the models' distributions
	// (Prediction.CDF; NaN when a prediction has none): the PIT coverage
	// without the rounding of reading it off the quantiles, which for a
	// count forecast widens an outcome's PIT interval to the nearest
	// levels and so overstates the coverage of central intervals.
	ExactPIT [3]float64
	// LeadTimePIT[k] is the exact PIT coverage of the lead-time demand of
	// LeadTimes[k] days (Prediction.LeadTimeCDF) over the series and
	// origins; NaN when a prediction has none or the horizon is shorter.
	LeadTimePIT [][3]float64
	// Series is the number of scored series per origin, Skipped the
	// number not scored (zero scale).
	Series, Skipped int
}

// Summarise aggregates scores[origin][series].
func Summarise(scores [][]SeriesScore) Summary {
	var s Summary
	var nSeries, days float64
	var errSum, actSum float64
	var covered, pit, exact [3]float64
	hasQ, hasCDF, hasLead := true, true, true
	lead, leadN := make([][3]float64, len(LeadTimes)), make([]float64, len(LeadTimes))
	for _, origin := range scores {
		var wTotal, wr, ws float64
		for _, sc := range origin {
			if !sc.Valid {
				s.Skipped++
				continue
			}
			s.Series++
			wTotal += sc.Weight
			wr += sc.Weight * sc.RMSSE
			ws += sc.Weight * sc.SPL
			s.MeanRMSSE += sc.RMSSE
			s.MeanMASE += sc.MASE
			nSeries++
			errSum += sc.ErrorSum
			actSum += sc.ActualSum
			if math.IsNaN(sc.SPL) {
				hasQ = false
			}
			hasCDF = hasCDF && sc.HasCDF
			hasLead = hasLead && sc.HasLeadTime
			for k, l := range LeadTimes {
				if sc.HasLeadTime && l <= sc.Days {
					leadN[k]++
					for i := range lead[k] {
						lead[k][i] += sc.LeadTimeCovered[k][i]
					}
				}
			}
			for i := range covered {
				covered[i] += float64(sc.Covered[i])
				pit[i] += sc.PITCovered[i]
				exact[i] += sc.ExactCovered[i]
			}
			days += float64(sc.Days)
		}
		if wTotal > 0 {
			s.WRMSSE += wr / wTotal
			s.WSPL += ws / wTotal
		}
	}
	nOrigins := float64(max(len(scores), 1))
	s.Series /= max(len(scores), 1)
	s.Skipped /= max(len(scores), 1)
	s.WRMSSE /= nOrigins
	s.WSPL /= nOrigins
	s.MeanRMSSE /= max(nSeries, 1)
	s.MeanMASE /= max(nSeries, 1)
	s.Bias = errSum / actSum
	for i := range covered {
		s.Coverage[i] = covered[i] / max(days, 1)
		s.PIT[i] = pit[i] / max(days, 1)
		s.ExactPIT[i] = exact[i] / max(days, 1)
	}
	if !hasQ {
		s.WSPL = math.NaN()
		s.Coverage = [3]float64{math.NaN(), math.NaN(), math.NaN()}
		s.PIT = s.Coverage
	}
	if !hasQ || !hasCDF {
		s.ExactPIT = [3]float64{math.NaN(), math.NaN(), math.NaN()}
	}
	s.LeadTimePIT = make([][3]float64, len(LeadTimes))
	for k := range lead {
		for i := range lead[k] {
			s.LeadTimePIT[k][i] = math.NaN()
			if hasLead && nSeries > 0 && leadN[k] > 0 {
				s.LeadTimePIT[k][i] = lead[k][i] / leadN[k]
			}
		}
	}
	return s
}
