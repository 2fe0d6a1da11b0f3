package forecasting

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// Calibration remaps quantile levels so that the probability integral
// transform (PIT) of out-of-sample outcomes is uniform: the quantile
// published at a nominal level u is the count distribution's quantile at
// the level Level(mean, u) instead of u. It is learned from forecasts of
// days before the ones it is applied to (FitCalibration), per class of
// the day's forecast mean: the count distributions of slow days (a mean
// below one unit) miss in other ways than those of busy ones.
//
// The PIT of a count outcome y is the interval [F(y-1), F(y)] (the
// non-randomised PIT of Czado, Gneiting and Held 2009); the level used for
// a nominal u is the v at which the mean share of the points' PIT
// intervals below v is u. A central interval of the published quantiles
// then has, on the points it was fitted on, the nominal PIT coverage.
type Calibration struct {
	// Nominal are the nominal levels the calibration was fitted at,
	// ascending in (0, 1).
	Nominal []float64 `json:"nominal"`
	// Bounds are the upper bounds of the mean classes, ascending: class k
	// holds the days with Bounds[k-1] <= mean < Bounds[k].
	Bounds []float64 `json:"bounds"`
	// Levels[k][j] is the level used for Nominal[j] in class k
	// (len(Bounds)+1 classes), ascending in j.
	Levels [][]float64 `json:"levels"`
	// Factors[k] multiplies the dispersion of class k's days.
	Factors []float64 `json:"factors"`
	// Points is the number of points each class was fitted on (a class
	// with fewer than the fit's minimum takes the levels of all points).
	Points []int `json:"points"`
	// LeadTimes, if set, calibrate the lead-time demand distributions:
	// one calibration per number of days summed, ascending in Days
	// (FitLeadTimeCalibrations); ForLeadTime picks one. Empty: the lead
	// times are published at their own levels.
	LeadTimes []LeadTimeCalibration `json:"lead_times,omitempty"`
}

// LeadTimeCalibration is the calibration of the distributions of the
// demand summed over Days days (State.LeadTimePIT): its classes are
// classes of the sum's mean (the daily bounds times Days: classes of the
// mean daily rate), and it has no lead times of its own.
type LeadTimeCalibration struct {
	Days        int          `json:"days"`
	Calibration *Calibration `json:"calibration"`
}

// ForLeadTime returns the calibration of sums of days days: the lead-time
// calibration with the most days at most days (the first one below them
// all); nil for a nil Calibration or one without lead times. A lead time
// L of State.Forecast sums L+1 days (the rest of the first day and L
// more).
func (c *Calibration) ForLeadTime(days int) *Calibration {
	if c == nil || len(c.LeadTimes) == 0 {
		return nil
	}
	k := sort.Search(len(c.LeadTimes), func(i int) bool { return c.LeadTimes[i].Days > days })
	return c.LeadTimes[max(k-1, 0)].Calibration
}

// FitLeadTimeCalibrations fits, for each days[k] (ascending), the
// calibration of sums of days[k] days from points[k] (State.LeadTimePIT),
// as FitCalibration does, with the classes of bounds (daily means) times
// days[k].
func FitLeadTimeCalibrations(points [][]PITPoint, days []int, nominal, bounds []float64, minPoints int) []LeadTimeCalibration {
	out := make([]LeadTimeCalibration, len(days))
	for k, d := range days {
		scaled := make([]float64, len(bounds))
		for i, b := range bounds {
			scaled[i] = b * float64(d)
		}
		out[k] = LeadTimeCalibration{Days: d, Calibration: FitCalibration(points[k], nominal, scaled, minPoints)}
	}
	return out
}

// DefaultCalibrationBounds are the mean classes of FitCalibration: below
// half a unit a day, half to two, two to eight, eight and more.
func DefaultCalibrationBounds() []float64 { return []float64{0.5, 2, 8} }

// CalibrationLevels is the nominal grid calibrations are fitted at: the
// service's default levels and the backtest's (0.01 is one of the
// backtest's 98% interval; the others are common).
func CalibrationLevels() []float64 {
	return []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.165, 0.25, 0.5, 0.75, 0.835, 0.9, 0.95, 0.975, 0.99, 0.995}
}

// MinCalibrationPoints is the fewest points a class is fitted on alone.
const MinCalibrationPoints = 200

// PITPoint is one out-of-sample outcome Y of a day under its forecast:
// the day's mean, the dispersion and the zero share its count
// distribution was built from (before capForZeros).
type PITPoint struct {
	Mean, Dispersion, ZeroShare, Y float64
}

// interval is the point's PIT interval [F(y-1), F(y)] with the
// dispersion multiplied by factor.
func (p PITPoint) interval(factor float64) (lo, hi float64) {
	d := p.dist(factor)
	y := math.Floor(p.Y)
	if y >= 1 {
		lo = d.cdf(y - 1)
	}
	return lo, d.cdf(y)
}

// dist is the point's count distribution with the dispersion (after
// capForZeros, as State.Forecast builds it) multiplied by factor.
func (p PITPoint) dist(factor float64) countDist {
	return countDist{Mean: p.Mean, Dispersion: max(capForZeros(p.Mean, p.Dispersion, p.ZeroShare)*factor, 1)}
}

// maxDispersionFactor bounds the widening of a class's distributions.
const maxDispersionFactor = 20

// FitCalibration fits the calibration at nominal (ascending, in (0, 1))
// for the classes of bounds from the points (those with a mean of 0 or
// below carry no spread and are ignored). In each class a dispersion
// factor (at least 1: a count distribution whose tails are too short
// cannot be mended by levels, a level beyond its 1-1e-9 quantile being
// out of reach) and the PIT levels at that dispersion (fitClass). A class with fewer than minPoints points takes the factor
// and the levels fitted on all points; with fewer than minPoints points
// in all, the factor is 1 and every level nominal. Deterministic: the
// result depends only on the multiset of points.
func FitCalibration(points []PITPoint, nominal, bounds []float64, minPoints int) *Calibration {
	c := &Calibration{Nominal: slices.Clone(nominal), Bounds: slices.Clone(bounds)}
	classes := make([][]PITPoint, len(bounds)+1)
	var all []PITPoint
	for _, p := range points {
		if !(p.Mean > 0) || math.IsNaN(p.Y) || math.IsNaN(p.Dispersion) {
			continue
		}
		all = append(all, p)
		k := c.class(p.Mean)
		classes[k] = append(classes[k], p)
	}
	pooledFactor, pooled := 1.0, slices.Clone(nominal)
	if len(all) >= minPoints {
		pooledFactor, pooled = fitClass(all, nominal)
	}
	for _, pts := range classes {
		c.Points = append(c.Points, len(pts))
		if len(pts) >= minPoints {
			f, lv := fitClass(pts, nominal)
			c.Factors, c.Levels = append(c.Factors, f), append(c.Levels, lv)
		} else {
			c.Factors, c.Levels = append(c.Factors, pooledFactor), append(c.Levels, slices.Clone(pooled))
		}
	}
	return c
}

// dispersionFactors are the factors fitClass tries.
var dispersionFactors = []float64{1, 1.25, 1.5, 2, 3, 4, 6, 9, 13, 20}

// fitClass returns a class's dispersion factor and levels: of the
// factors of dispersionFactors, each with its PIT levels, the one whose
// quantiles have the lowest pinball loss over the points and the nominal
// levels (a proper scoring rule: it rewards sharpness as well as the
// coverage the levels already give).
func fitClass(points []PITPoint, nominal []float64) (float64, []float64) {
	lo, hi := make([]float64, len(points)), make([]float64, len(points))
	q := make([]float64, len(nominal))
	best, bestLoss, bestLevels := 1.0, math.Inf(1), []float64(nil)
	for _, f := range dispersionFactors {
		for j, p := range points {
			lo[j], hi[j] = p.interval(f)
		}
		lv := fitLevels(lo, hi, nominal)
		loss := 0.0
		for _, p := range points {
			p.dist(f).Quantiles(lv, q)
			for k, u := range nominal {
				if p.Y < q[k] {
					loss += (1 - u) * (q[k] - p.Y)
				} else {
					loss += u * (p.Y - q[k])
				}
			}
		}
		if loss < bestLoss {
			best, bestLoss, bestLevels = f, loss, lv
		}
	}
	return best, bestLevels
}

// fitLevels returns, for each nominal u, the level v at which the mean
// share of the points' PIT intervals below v is u (bisection; the share
// is continuous and non-decreasing in v), kept ascending and inside
// [1e-9, 1-1e-9].
func fitLevels(lo, hi []float64, nominal []float64) []float64 {
	share := func(v float64) float64 {
		sum := 0.0
		for j, h := range hi {
			switch {
			case v >= h:
				sum++
			case v > lo[j]:
				sum += (v - lo[j]) / (h - lo[j])
			}
		}
		return sum / float64(len(hi))
	}
	out := make([]float64, len(nominal))
	prev := 0.0
	for k, u := range nominal {
		a, b := 0.0, 1.0
		for range 60 {
			if m := (a + b) / 2; share(m) < u {
				a = m
			} else {
				b = m
			}
		}
		v := min(max(b, prev, 1e-9), 1-1e-9)
		out[k], prev = v, v
	}
	return out
}

// class returns the class of a day's mean.
func (c *Calibration) class(mean float64) int {
	return sort.Search(len(c.Bounds), func(i int) bool { return mean < c.Bounds[i] })
}

// Level returns the level to read the count distribution of a day with
// the given mean at, for the nominal level u: the fitted level at a
// nominal level of the grid, linear between them (and toward 0 and 1
// outside the grid). A nil Calibration returns u.
func (c *Calibration) Level(mean, u float64) float64 {
	if c == nil || len(c.Nominal) == 0 {
		return u
	}
	lv := c.Levels[c.class(mean)]
	n := c.Nominal
	j := sort.SearchFloat64s(n, u) // first n[j] >= u
	switch {
	case j < len(n) && n[j] == u:
		return lv[j]
	case j == 0:
		return lv[0] * u / n[0]
	case j == len(n):
		last := len(n) - 1
		return lv[last] + (1-lv[last])*(u-n[last])/(1-n[last])
	default:
		t := (u - n[j-1]) / (n[j] - n[j-1])
		return lv[j-1] + t*(lv[j]-lv[j-1])
	}
}

// LevelsFor writes the levels of a day with the given mean for the nominal
// levels (ascending) to out.
func (c *Calibration) LevelsFor(mean float64, nominal, out []float64) {
	for i, u := range nominal {
		out[i] = c.Level(mean, u)
	}
}

// Validate checks the shape of a calibration read from an artefact.
func (c *Calibration) Validate() error {
	if c == nil {
		return nil
	}
	if len(c.Nominal) == 0 || !slices.IsSorted(c.Nominal) || c.Nominal[0] <= 0 || c.Nominal[len(c.Nominal)-1] >= 1 {
		return fmt.Errorf("calibration: nominal levels %v: want ascending in (0, 1)", c.Nominal)
	}
	if !slices.IsSorted(c.Bounds) {
		return fmt.Errorf("calibration: bounds %v: want ascending", c.Bounds)
	}
	if len(c.Levels) != len(c.Bounds)+1 {
		return fmt.Errorf("calibration: %d classes of levels for %d bounds", len(c.Levels), len(c.Bounds))
	}
	if len(c.Factors) != len(c.Levels) {
		return fmt.Errorf("calibration: %d dispersion factors for %d classes", len(c.Factors), len(c.Levels))
	}
	for k, f := range c.Factors {
		if !(f >= 1 && f <= maxDispersionFactor) {
			return fmt.Errorf("calibration: class %d dispersion factor %v: want 1..%d", k, f, maxDispersionFactor)
		}
	}
	for k, lv := range c.Levels {
		if len(lv) != len(c.Nominal) || !slices.IsSorted(lv) || lv[0] <= 0 || lv[len(lv)-1] >= 1 {
			return fmt.Errorf("calibration: class %d levels %v: want %d ascending in (0, 1)", k, lv, len(c.Nominal))
		}
	}
	for k, lt := range c.LeadTimes {
		if lt.Days < 1 || (k > 0 && lt.Days <= c.LeadTimes[k-1].Days) {
			return fmt.Errorf("calibration: lead time %d of %d days: want ascending days from 1", k, lt.Days)
		}
		if lt.Calibration == nil || len(lt.Calibration.LeadTimes) > 0 {
			return fmt.Errorf("calibration: lead time of %d days: want a calibration without lead times", lt.Days)
		}
		if err := lt.Calibration.Validate(); err != nil {
			return fmt.Errorf("lead time of %d days: %w", lt.Days, err)
		}
	}
	return nil
}

// Factor returns the dispersion factor of a day with the given mean (1
// for a nil Calibration).
func (c *Calibration) Factor(mean float64) float64 {
	if c == nil || len(c.Factors) == 0 {
		return 1
	}
	return c.Factors[c.class(mean)]
}

// PIT returns the PIT points of the outcomes ys of the days from start
// under the State's daily count distributions (the forecast's from start,
// with nothing of start seen yet): what FitCalibration learns from.
// Days with a mean of 0 are left out (no spread to calibrate).
func (s *State) PIT(start Day, ys []float64) []PITPoint {
	w := s.weights()
	expected := make([]float64, len(ys))
	s.meanPath(start, &w, expected)
	disp, zeros := s.dispersion(), s.zeroShare()
	out := make([]PITPoint, 0, len(ys))
	for h, y := range ys {
		if m := expected[h]; m > 0 {
			out = append(out, PITPoint{Mean: m, Dispersion: disp, ZeroShare: zeros, Y: y})
		}
	}
	return out
}

// InverseLevel is the nominal level whose level is v for a day with the
// given mean: the inverse of Level (piecewise linear through (0, 0), the
// grid and (1, 1); on a flat stretch its lowest point). With it, the
// distribution whose quantiles are published has the CDF
// InverseLevel(mean, F(k)), F the count distribution's. A nil Calibration
// returns v.
func (c *Calibration) InverseLevel(mean, v float64) float64 {
	if c == nil || len(c.Nominal) == 0 {
		return v
	}
	lv, n := c.Levels[c.class(mean)], c.Nominal
	x0, y0 := 0.0, 0.0 // previous (level, nominal) knot
	for j := range n {
		if v <= lv[j] {
			if lv[j] == x0 {
				return y0
			}
			return y0 + (n[j]-y0)*(v-x0)/(lv[j]-x0)
		}
		x0, y0 = lv[j], n[j]
	}
	if x0 >= 1 {
		return 1
	}
	return min(y0+(1-y0)*(v-x0)/(1-x0), 1)
}

// PublishedCDF returns the CDF of the distributions whose quantiles
// State.Forecast publishes for the days from start (nothing of start seen
// yet) with the calibration cal (nil: none): P(Y <= k) on day h, the
// count distribution's CDF at the day's dispersion mapped through
// InverseLevel. A day with a mean of 0 has all its mass at 0.
func (s *State) PublishedCDF(start Day, horizon int, cal *Calibration) func(h int, k float64) float64 {
	w := s.weights()
	expected := make([]float64, horizon)
	s.meanPath(start, &w, expected)
	disp, zeros := s.dispersion(), s.zeroShare()
	return func(h int, k float64) float64 {
		m := expected[h]
		switch {
		case k < 0:
			return 0
		case !(m > 0):
			return 1
		}
		p := PITPoint{Mean: m, Dispersion: disp, ZeroShare: zeros}
		return cal.InverseLevel(m, p.dist(cal.Factor(m)).cdf(math.Floor(k)))
	}
}

// CalibratedCDF is PublishedCDF's mapping for a count distribution given
// by its mean and dispersion (CountCDF) read at cal's levels and
// dispersion factor, as a model that calls CountQuantiles with them
// publishes it.
func CalibratedCDF(mean, dispersion float64, cal *Calibration, k float64) float64 {
	if k < 0 {
		return 0
	}
	if !(mean > 0) {
		return 1
	}
	return cal.InverseLevel(mean, CountCDF(mean, dispersion*cal.Factor(mean), k))
}

// LeadTimePIT returns the PIT points of the sums of the first days[k]
// outcomes ys from start under the State's lead-time demand distributions
// (those State.Forecast publishes for the lead time days[k]-1 from start,
// with nothing of start seen yet): what FitLeadTimeCalibrations learns
// from, one point per days[k]. A point whose days are not in ys (or
// fewer than 1) has a NaN Y, one with a mean of 0 a mean of 0: both are
// left out of a fit.
func (s *State) LeadTimePIT(start Day, ys []float64, days []int) []PITPoint {
	out := s.leadTimePoints(start, days)
	for k, d := range days {
		out[k].Y = math.NaN()
		if d >= 1 && d <= len(ys) {
			y := 0.0
			for _, v := range ys[:d] {
				y += v
			}
			out[k].Y = y
		}
	}
	return out
}

// leadTimePoints are the lead-time distributions of sums of days[k] days
// from start (nothing of start seen), as State.Forecast builds them.
func (s *State) leadTimePoints(start Day, days []int) []PITPoint {
	n := 1
	for _, d := range days {
		n = max(n, d)
	}
	w := s.weights()
	expected := make([]float64, n)
	s.meanPath(start, &w, expected)
	// the running sum in State.Forecast's order: the same means
	for h := 1; h < n; h++ {
		expected[h] += expected[h-1]
	}
	disp, zeros := s.dispersion(), s.zeroShare()
	week, month := s.Week.levelVariance(7, disp), s.Month.levelVariance(windowDays, disp)
	out := make([]PITPoint, len(days))
	for k, d := range days {
		l := max(d, 1) - 1
		out[k] = leadTimePoint(expected[l], disp, zeros, l, week, month)
	}
	return out
}

// LeadTimeCDF returns the CDF of the distributions whose quantiles
// State.Forecast publishes for the sums of days[k] days from start
// (the lead time days[k]-1, nothing of start seen yet) with the
// calibration cal (nil: none; its ForLeadTime(days[k]) is used):
// P(sum <= x) for the k-th, the count distribution's CDF mapped through
// InverseLevel as PublishedCDF does for single days.
func (s *State) LeadTimeCDF(start Day, days []int, cal *Calibration) func(k int, x float64) float64 {
	points := s.leadTimePoints(start, days)
	return func(k int, x float64) float64 {
		p := points[k]
		switch {
		case x < 0:
			return 0
		case !(p.Mean > 0):
			return 1
		}
		lc := cal.ForLeadTime(max(days[k], 1))
		return lc.InverseLevel(p.Mean, p.dist(lc.Factor(p.Mean)).cdf(math.Floor(x)))
	}
}
