package forecasting

import "math"

// MemberNames returns the names of the ensemble's members, in the order
// MemberForecast indexes them.
func MemberNames() []string {
	n := memberNames()
	return n[:]
}

// MemberForecast is what member i of the ensemble alone forecasts for
// len(means) days from start: daily means, and (if levels is not empty)
// daily quantiles at levels, each quantiles[h] of len(levels), from the
// count distribution with the member's own one-step dispersion. It lets a
// backtest score every member against the combination; the combination is
// State.Forecast.
func (s *State) MemberForecast(i int, start Day, levels []float64, means []float64, quantiles [][]float64) {
	if i < 0 || i >= numMembers {
		panic("forecasting: member index out of range")
	}
	disp := 1.0
	if sc := s.Scores[i]; sc.N >= minScored && s.PredMean > 0 {
		disp = max(sc.MSE/s.PredMean, 1)
	}
	if !s.Live {
		clear(means)
	} else {
		factors := s.Seasonal.factors()
		ahead := max(int(start-s.LastUpdate), 1)
		var preds [numMembers]float64
		for h := range means {
			s.memberMeans(start+Day(h), ahead+h, &factors, &preds)
			means[h] = max(preds[i], 0)
		}
	}
	if len(levels) == 0 {
		return
	}
	for h, m := range means {
		countDist{Mean: m, Dispersion: disp}.Quantiles(levels, quantiles[h])
	}
}

// CountQuantiles writes to out the quantiles at levels (ascending, in
// (0, 1)) of the count distribution with the given mean and
// variance-to-mean ratio: Poisson at a dispersion of 1 or below, negative
// binomial above. It is the distribution State.Forecast uses for one day.
func CountQuantiles(mean, dispersion float64, levels, out []float64) {
	if math.IsNaN(mean) || mean < 0 {
		mean = 0
	}
	countDist{Mean: mean, Dispersion: max(dispersion, 1)}.Quantiles(levels, out)
}

// CountCDF returns P(X <= k) for the count distribution CountQuantiles
// uses (Poisson at a dispersion of 1 or below, negative binomial above),
// and 0 for k < 0.
func CountCDF(mean, dispersion, k float64) float64 {
	if k < 0 {
		return 0
	}
	if math.IsNaN(mean) || mean <= 0 {
		return 1
	}
	return countDist{Mean: mean, Dispersion: max(dispersion, 1)}.cdf(math.Floor(k))
}
