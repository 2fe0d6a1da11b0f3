package globalmodel

import (
	"math"
	"slices"

	"github.com/stockcast/stockcast/pkg/backtest"
	"github.com/stockcast/stockcast/pkg/forecasting"
)

// Quantile calibration on the validation window (conformal in spirit: the
// spread is learned from out-of-sample forecasts of days before the
// origin, never from the test days).
//
// 1. Each series' dispersion (variance-to-mean ratio of its errors) is its
//    validation errors' ratio shrunk toward the pooled ratio of all series
//    (28 days are too few for a per-series variance on their own).
// 2. The count distributions (negative binomial at that dispersion) are
//    then recalibrated level by level: for a nominal level u of an upper
//    quantile (u > 0.5) the level used is the u-quantile of F(y-1) over the
//    validation points, so that a share u of them falls at or below the
//    quantile; for a lower quantile the u-quantile of F(y), so that a share
//    u falls strictly below it (counts are discrete: both rules are the
//    definition of a quantile, P(Y < q) <= u <= P(Y <= q)); the median takes
//    the average of the two. An interval [q_lo, q_hi] then covers on the
//    validation window the nominal share u_hi - u_lo.

// shrinkUnits is the weight (in units of mean demand) of the pooled
// dispersion in a series' estimate.
const shrinkUnits = 28

// winsorSDs and winsorDispersion bound a validation error in the robust
// dispersion (fitCalibrationSets).
const (
	winsorSDs        = 3
	winsorDispersion = 3
)

// calibration holds what fitCalibration learned.
type calibration struct {
	dispersion []float64 // per series
	levels     []float64 // used level per backtest.Levels
	// byClass, if set, replaces levels: forecasting.Calibration's
	// dispersion factor and levels per class of the day's mean.
	byClass *forecasting.Calibration
}

// fitClassCalibration is fitCalibration's per-series dispersion followed by
// forecasting.FitCalibration on the validation points (the procedure the
// ensemble's calibration uses: a dispersion factor and PIT levels per
// class of the day's mean).
func fitClassCalibration(ds *backtest.Dataset, sets []validSet, horizon int, robust bool) *calibration {
	c := fitCalibrationSets(ds, sets, horizon, true, robust)
	var points []forecasting.PITPoint
	for _, vs := range sets {
		for i, s := range ds.Series {
			for h := range horizon {
				points = append(points, forecasting.PITPoint{Mean: vs.means[i][h], Dispersion: c.dispersion[i], Y: s.Values[vs.origin+h]})
			}
		}
	}
	c.byClass = forecasting.FitCalibration(points, forecasting.CalibrationLevels(), forecasting.DefaultCalibrationBounds(), forecasting.MinCalibrationPoints)
	return c
}

// fitCalibration learns the calibration from the validation forecasts
// means[i][h] of days validOrigin+h.
//
// With pit the levels are instead those at which the validation points'
// PIT is uniform: the level used for a nominal u is the v at which the
// mean share of the points' PIT intervals [F(y-1), F(y)] below v is u
// (the non-randomised PIT of backtest.PITCoverage), so that an interval's
// PIT coverage, not its inclusive coverage, is nominal on the window.
func fitCalibration(ds *backtest.Dataset, validOrigin, horizon int, means [][]float64, pit bool) *calibration {
	return fitCalibrationSets(ds, []validSet{{validOrigin, means}}, horizon, pit, false)
}

// validSet is the out-of-sample forecast means[i][h] of the days
// origin+h (a validation window).
type validSet struct {
	origin int
	means  [][]float64
}

// fitCalibrationSets is fitCalibration on the points of several
// validation windows.
//
// With robust each validation error is first capped at winsorSDs
// standard deviations of a count of dispersion winsorDispersion (at a
// mean of at least 0.5): one bulk order then no longer widens the
// middle of a series' distribution for all its days (the tails are left
// to the calibration's dispersion factor, fitClassCalibration).
func fitCalibrationSets(ds *backtest.Dataset, sets []validSet, horizon int, pit, robust bool) *calibration {
	c := &calibration{dispersion: make([]float64, len(ds.Series)), levels: slices.Clone(backtest.Levels)}
	sq, mu := make([]float64, len(ds.Series)), make([]float64, len(ds.Series))
	var sqAll, muAll float64
	for i, s := range ds.Series {
		for _, vs := range sets {
			for h := range horizon {
				e := s.Values[vs.origin+h] - vs.means[i][h]
				if robust {
					c := winsorSDs * math.Sqrt(winsorDispersion*max(vs.means[i][h], 0.5))
					e = max(min(e, c), -c)
				}
				sq[i] += e * e
				mu[i] += vs.means[i][h]
			}
		}
		sqAll += sq[i]
		muAll += mu[i]
	}
	pooled := 1.0
	if muAll > 0 {
		pooled = max(sqAll/muAll, 1)
	}
	var lower, upper []float64 // F(y) and F(y-1) of the validation points
	for i, s := range ds.Series {
		c.dispersion[i] = max((sq[i]+shrinkUnits*pooled)/(mu[i]+shrinkUnits), 1)
		for _, vs := range sets {
			for h := range horizon {
				m := vs.means[i][h]
				if m <= 0 {
					continue // a zero forecast has no spread to calibrate
				}
				y := s.Values[vs.origin+h]
				lower = append(lower, forecasting.CountCDF(m, c.dispersion[i], y))
				upper = append(upper, forecasting.CountCDF(m, c.dispersion[i], y-1))
			}
		}
	}
	if len(lower) < 100 {
		return c // too few points: nominal levels
	}
	if pit {
		// lower[j] = F(y), upper[j] = F(y-1) of point j (not yet sorted)
		share := func(v float64) float64 {
			sum := 0.0
			for j, hi := range lower {
				lo := upper[j]
				switch {
				case v >= hi:
					sum++
				case v > lo:
					sum += (v - lo) / (hi - lo)
				}
			}
			return sum / float64(len(lower))
		}
		prev := 0.0
		for k, u := range backtest.Levels {
			a, b := 0.0, 1.0
			for range 40 {
				if m := (a + b) / 2; share(m) < u {
					a = m
				} else {
					b = m
				}
			}
			v := min(max(b, prev, 1e-4), 1-1e-4)
			c.levels[k], prev = v, v
		}
		return c
	}
	slices.Sort(lower)
	slices.Sort(upper)
	at := func(sorted []float64, u float64) float64 {
		k := min(max(int(math.Ceil(u*float64(len(sorted))))-1, 0), len(sorted)-1)
		return sorted[k]
	}
	const eps = 1e-9
	prev := 0.0
	for k, u := range backtest.Levels {
		var v float64
		switch {
		case u < 0.5:
			v = at(lower, u) + eps
		case u > 0.5:
			v = at(upper, u) + eps
		default:
			v = (at(lower, u)+at(upper, u))/2 + eps
		}
		v = min(max(v, prev, 1e-4), 1-1e-4)
		c.levels[k], prev = v, v
	}
	return c
}

// predictions turns the means of every series from origin into
// predictions with the calibrated quantiles.
func (c *calibration) predictions(ds *backtest.Dataset, origin int, means [][]float64) []backtest.Prediction {
	out := make([]backtest.Prediction, len(ds.Series))
	cal := c.byClass
	if cal == nil { // one level map for all days: a calibration of one class
		cal = &forecasting.Calibration{Nominal: backtest.Levels, Levels: [][]float64{c.levels}, Factors: []float64{1}}
	}
	for i := range ds.Series {
		p := backtest.Prediction{Means: means[i], Quantiles: make([][]float64, len(means[i]))}
		m, disp := means[i], c.dispersion[i]
		p.CDF = func(h int, k float64) float64 { return forecasting.CalibratedCDF(m[h], disp, cal, k) }
		for h, m := range means[i] {
			p.Quantiles[h] = make([]float64, len(c.levels))
			if c.byClass != nil {
				levels := make([]float64, len(backtest.Levels))
				c.byClass.LevelsFor(m, backtest.Levels, levels)
				forecasting.CountQuantiles(m, c.dispersion[i]*c.byClass.Factor(m), levels, p.Quantiles[h])
				continue
			}
			forecasting.CountQuantiles(m, c.dispersion[i], c.levels, p.Quantiles[h])
		}
		out[i] = p
	}
	return out
}
