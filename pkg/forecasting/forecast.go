package forecasting

import (
	"math"
	"slices"
)

// DefaultHorizon is the number of forecast days, today included.
const DefaultHorizon = 28

// DefaultQuantileLevels returns the quantile levels used when a Request has none.
func DefaultQuantileLevels() []float64 {
	return []float64{0.005, 0.025, 0.05, 0.1, 0.165, 0.25, 0.5, 0.75, 0.835, 0.9, 0.95, 0.975, 0.99, 0.995}
}

// DefaultLeadTimes returns the lead times (days) used when a Request has none.
func DefaultLeadTimes() []int { return []int{1, 2, 3, 5, 7, 10, 14, 21, 28} }

// Request asks for a forecast starting today.
type Request struct {
	// StartDay is today: the first forecast day, normally LastDay+1.
	StartDay Day
	// Horizon is the number of days, StartDay included (DefaultHorizon if 0).
	Horizon int
	// TodaySoFar is the demand already seen on StartDay.
	TodaySoFar float64
	// IntradayShare is the share of a day's demand usually seen by now, 0..1.
	IntradayShare float64
	// QuantileLevels, ascending in (0, 1) (DefaultQuantileLevels if empty).
	QuantileLevels []float64
	// LeadTimes in days (DefaultLeadTimes if empty).
	LeadTimes []int
	// TodayOnly leaves Quantiles[h] nil for h >= 1 (the means of every day
	// are still computed): for a caller that already has them from a
	// forecast of the same State and StartDay, which an event later in the
	// day does not change (only today's demand so far and the share of the
	// day seen move day 0 and the lead times).
	TodayOnly bool
	// Calibration, if set, remaps the levels of the daily quantiles by
	// each day's mean (calibration.go): the quantile published at
	// QuantileLevels[k] is read at Calibration.Level(mean, k), with the
	// dispersion times Calibration.Factor(mean). The lead times' are read
	// the same way through Calibration.ForLeadTime(days summed), when it
	// has lead-time calibrations.
	Calibration *Calibration
}

// Forecast is the model's answer to a Request.
type Forecast struct {
	StartDay       Day
	QuantileLevels []float64
	// Means and Quantiles have one entry per horizon day. Day 0 includes
	// TodaySoFar.
	Means     []float64
	Quantiles [][]float64
	// LeadTime has one entry per requested lead time.
	LeadTime   []LeadTimeDemand
	Class      Class
	Components Components

	// work is ForecastInto's working memory (the mean path and its sums)
	work []float64
}

// LeadTimeDemand is the distribution of the demand still to come over the
// rest of StartDay plus the next Days days (TodaySoFar is not included:
// it has already left the shelf).
type LeadTimeDemand struct {
	Days      int
	Mean      float64
	Quantiles []float64
}

// Components explain a forecast.
type Components struct {
	// Level is the mean daily demand over the week after StartDay.
	Level float64
	// Trend is the damped-trend member's slope (units per day).
	Trend float64
	// WeekdayFactor is the seasonal member's multiplier for StartDay.
	WeekdayFactor float64
	// Member is the member with the largest weight, with its weight and
	// one-step RMSE and MAE.
	Member       string
	MemberWeight float64
	MemberRMSE   float64
	MemberMAE    float64
	// Sigma is the RMSE of the combination's one-step errors.
	Sigma float64
	// Dispersion is the variance-to-mean ratio of the count distribution;
	// Distribution is "poisson" or "negative_binomial".
	Dispersion   float64
	Distribution string
	Class        Class
	ADI          float64
	CV2          float64
	Weights      []MemberWeight
}

// MemberWeight is one member's share of the combination.
type MemberWeight struct {
	Name   string
	Weight float64
	RMSE   float64
}

// Forecast returns daily means and quantiles for the horizon and lead-time
// demand quantiles. It is a pure function of the State and the Request.
func (s *State) Forecast(req Request) Forecast {
	var f Forecast
	s.ForecastInto(req, &f)
	return f
}

// ForecastInto writes State.Forecast(req) to f, reusing the memory of f's
// Means, Quantiles (the slice of the days, not the days' quantiles),
// LeadTime and Components.Weights from an earlier forecast if large
// enough: a caller that makes a forecast on every event and keeps only
// the quantiles (always new memory) passes the same f each time.
func (s *State) ForecastInto(req Request, f *Forecast) {
	horizon := req.Horizon
	if horizon <= 0 {
		horizon = DefaultHorizon
	}
	levels := req.QuantileLevels
	if len(levels) == 0 {
		levels = DefaultQuantileLevels()
	}
	if !slices.IsSorted(levels) {
		levels = slices.Sorted(slices.Values(levels))
	}
	leadTimes := req.LeadTimes
	if len(leadTimes) == 0 {
		leadTimes = DefaultLeadTimes()
	}
	maxLead := 0
	for _, l := range leadTimes {
		maxLead = max(maxLead, l)
	}
	share := min(max(req.IntradayShare, 0), 1)
	if math.IsNaN(share) {
		share = 0
	}
	todaySoFar := max(req.TodaySoFar, 0)

	// expected[h] is the demand still to come on StartDay+h.
	w := s.weights()
	days := max(horizon, maxLead+1)
	// one allocation for the working paths and one for all the quantiles
	// (a forecast is made on every event: allocations are a good part of
	// its cost); each quantile slice is capped at its own length
	nq := len(levels)
	work := reuse(f.work, 2*days+nq)
	expected, cum, calLevels := work[:days:days], work[days:2*days:2*days], work[2*days:]
	s.meanPath(req.StartDay, &w, expected)
	expected[0] *= 1 - share

	disp := s.dispersion()
	*f = Forecast{
		StartDay:       req.StartDay,
		QuantileLevels: levels,
		Means:          reuse(f.Means, horizon),
		Quantiles:      reuse(f.Quantiles, horizon),
		LeadTime:       reuse(f.LeadTime, len(leadTimes)),
		Class:          s.Class.Class(),
		Components:     Components{Weights: f.Components.Weights},
		work:           work,
	}
	zeros := s.zeroShare()
	calClass := -1 // the class calLevels hold
	daysWithQuantiles := horizon
	if req.TodayOnly {
		daysWithQuantiles = min(horizon, 1)
	}
	quantiles := make([]float64, (daysWithQuantiles+len(leadTimes))*nq)
	for h := range horizon {
		f.Means[h] = expected[h]
		if h >= daysWithQuantiles {
			continue
		}
		q := quantiles[h*nq : (h+1)*nq : (h+1)*nq]
		d, dayLevels := capForZeros(expected[h], disp, zeros), levels
		if c := req.Calibration; c != nil {
			// the levels depend on the day's class only: made again
			// when it changes
			if k := c.class(expected[h]); k != calClass {
				c.LevelsFor(expected[h], levels, calLevels)
				calClass = k
			}
			d = max(d*c.Factor(expected[h]), 1)
			dayLevels = calLevels
		}
		countDist{Mean: expected[h], Dispersion: d}.Quantiles(dayLevels, q)
		if h == 0 {
			f.Means[0] += todaySoFar
			for i := range q {
				q[i] += todaySoFar
			}
		}
		f.Quantiles[h] = q
	}
	for h, m := range expected {
		cum[h] = m
		if h > 0 {
			cum[h] += cum[h-1]
		}
	}
	week, month := s.Week.levelVariance(7, disp), s.Month.levelVariance(windowDays, disp)
	for i, l := range leadTimes {
		l = max(l, 0)
		k := daysWithQuantiles + i
		lt := LeadTimeDemand{Days: l, Mean: cum[l], Quantiles: quantiles[k*nq : (k+1)*nq : (k+1)*nq]}
		p, ltLevels := leadTimePoint(lt.Mean, disp, zeros, l, week, month), levels
		// the lead time's own calibration (nil: none), by the days summed;
		// calLevels is free again after the daily quantiles
		lc := req.Calibration.ForLeadTime(l + 1)
		if lc != nil {
			lc.LevelsFor(lt.Mean, levels, calLevels)
			ltLevels = calLevels
		}
		p.dist(lc.Factor(lt.Mean)).Quantiles(ltLevels, lt.Quantiles)
		f.LeadTime[i] = lt
	}
	f.Components = s.components(req.StartDay, &w, expected, disp, f.Components.Weights)
}

// reuse returns s with length n and every entry zero, in s's memory if
// large enough.
func reuse[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// zeroShare is the recent share of days without demand (0, meaning
// unknown, before the series has a demand class).
func (s *State) zeroShare() float64 {
	if s.Class.Class() == ClassNew {
		return 0
	}
	return 1 - s.Class.Occurrence
}

// leadTimeDist is the distribution of the demand over days days with the
// given total mean. Given the level, the days are independent counts with a
// common dispersion, whose sum is exactly a count of the same dispersion
// (Poisson sums are Poisson; NB1 sums with a common p are NB1 with the sizes
// added): the convolution in closed form. The level's own error, relative
// variance levelVar, is common to all days and adds
// mean² * levelVar * (days-1)/days (the one-step dispersion already holds
// one day's share); the result is the negative binomial with that mean and
// variance (exact for Poisson noise and a gamma-distributed level). Daily
// quantiles are never added: quantiles of a sum are not sums of quantiles.
func leadTimeDist(mean, dispersion float64, days int, levelVar float64) countDist {
	n := float64(max(days, 1))
	return countDist{Mean: mean, Dispersion: dispersion + levelVar*mean*(n-1)/n}
}

// leadTimePoint is the distribution of the demand over the rest of the
// first day and the next l days, total mean mean (leadTimeDist), with the
// share of zeros of l+1 days (the daily one to the power of the days) that
// capForZeros holds it to: p.dist(1) is what State.Forecast publishes
// without a calibration, p.dist(factor) with one.
func leadTimePoint(mean, disp, zeros float64, l int, week, month float64) PITPoint {
	ld := leadTimeDist(mean, disp, l+1, levelVarianceAt(l, week, month))
	return PITPoint{Mean: ld.Mean, Dispersion: ld.Dispersion, ZeroShare: math.Pow(zeros, float64(l+1))}
}

// levelVarianceAt interpolates the relative level variance for a lead time
// between the 7- and the 28-day estimates (a level that wanders has larger
// errors further out), flat outside.
func levelVarianceAt(days int, week, month float64) float64 {
	switch {
	case days <= 7:
		return week
	case days >= windowDays:
		return month
	default:
		return week + (month-week)*float64(days-7)/float64(windowDays-7)
	}
}

// components explains a forecast; weights is reused for its Weights if
// large enough.
func (s *State) components(start Day, w *[numMembers]float64, expected []float64, disp float64, weights []MemberWeight) Components {
	names := memberNames()
	c := Components{
		Trend:         s.Damped.Trend,
		WeekdayFactor: s.Seasonal.factor(start.Weekday()),
		Sigma:         math.Sqrt(s.Combined.MSE),
		Dispersion:    disp,
		Distribution:  "poisson",
		Class:         s.Class.Class(),
		ADI:           s.Class.ADI(),
		CV2:           s.Class.CV2(),
		Weights:       reuse(weights, numMembers),
	}
	if disp >= poissonBelow {
		c.Distribution = "negative_binomial"
	}
	week := 0.0
	for h := 1; h <= 7 && h < len(expected); h++ {
		week += expected[h]
	}
	c.Level = week / float64(min(7, max(len(expected)-1, 1)))
	best := 0
	for i := range names {
		c.Weights[i] = MemberWeight{Name: names[i], Weight: w[i], RMSE: math.Sqrt(s.Scores[i].MSE)}
		if w[i] > w[best] {
			best = i
		}
	}
	c.Member, c.MemberWeight = names[best], w[best]
	c.MemberRMSE, c.MemberMAE = math.Sqrt(s.Scores[best].MSE), s.Scores[best].MAE
	return c
}
