package forecasting

import "math"

// ModelName and ModelVersion identify the model in published forecasts.
// Bump the version whenever a constant or the update rules change: states
// and forecasts of different versions are not comparable.
const (
	ModelName    = "stat-ensemble"
	ModelVersion = "stat-ensemble-1"
)

const (
	numSES     = 3
	numMembers = numSES + 4 // SES..., TSB, seasonal, damped, moving average

	scoreRate     = 1.0 / 56  // memory of the error scores (about 8 weeks)
	minScored     = 7         // scored days before a member's weight counts
	classRate     = 1.0 / 112 // memory of the demand-class statistics (16 weeks)
	minClassDays  = 28        // uncensored days before a class other than "new"
	minClassSales = 2         // non-zero days before a class other than "new"
)

// memberNames names the members in Explain, index-aligned with memberOf.
func memberNames() [numMembers]string {
	return [numMembers]string{"ses_0.03", "ses_0.1", "ses_0.3", "tsb", "seasonal_weekly", "damped_trend", "moving_average_28"}
}

// Score is the exponentially weighted out-of-sample error of one-step-ahead
// predictions, recorded before the predictor sees the value.
type Score struct {
	MAE float64
	MSE float64
	N   int32
}

func (s *Score) add(err float64) {
	s.N++
	ewAdd(&s.MAE, s.N, scoreRate, math.Abs(err))
	ewAdd(&s.MSE, s.N, scoreRate, err*err)
}

// State is one series' model: a fixed-size value, safe to copy, compare with
// == and serialise (MarshalBinary). The zero value is a series with no
// history.
type State struct {
	// LastDay is the last day given to Observe (censored or not); HasDay
	// tells whether there was one.
	LastDay Day
	HasDay  bool
	// Live turns true on the first day with positive demand; days before
	// it (an item not yet sold) are not part of the series.
	Live      bool
	FirstSale Day
	// LastUpdate is the last uncensored day the members saw.
	LastUpdate Day
	Days       int32 // uncensored days since FirstSale
	Censored   int32 // censored days since FirstSale

	SES       [numSES]SES
	TSB       TSB
	Seasonal  Seasonal
	Damped    Damped
	MovingAvg MovingAverage

	// Scores are the members' one-step errors; Combined is the error of the
	// weighted combination, and PredMean the mean of its predictions: their
	// ratio is the dispersion of the count distribution.
	Scores   [numMembers]Score
	Combined Score
	PredMean float64

	Class ClassStats

	// Recent holds the last windowDays days' demand (slot day % windowDays,
	// RecentKnown marks known days); Week and Month score 7- and 28-day
	// totals for the lead-time spread (window.go).
	Recent      [windowDays]float64
	RecentKnown uint32
	Week        WindowScore
	Month       WindowScore
}

// Observe advances the state by one closed day. Days must come in order;
// a day at or before LastDay is ignored, so replaying a window is harmless.
// A censored day (a stockout: demand unknown) moves only LastDay. Negative
// net demand (returns above orders) counts as zero.
func (s *State) Observe(day Day, y float64, censored bool) {
	if s.HasDay && day <= s.LastDay {
		return
	}
	if s.HasDay {
		s.clearDays(s.LastDay+1, day)
	}
	s.LastDay, s.HasDay = day, true
	if censored || math.IsNaN(y) || math.IsInf(y, 0) {
		s.clearDays(day, day+1)
		if s.Live {
			s.Censored++
		}
		return
	}
	y = max(y, 0)
	if !s.Live {
		if y == 0 {
			return
		}
		s.Live, s.FirstSale = true, day
	}
	if s.Days > 0 {
		s.score(day, y)
	}
	for i := range s.SES {
		s.SES[i].update(sesAlpha(i), y)
	}
	s.TSB.update(y)
	s.Seasonal.update(day, y)
	s.Damped.update(y)
	s.MovingAvg.update(y)
	s.Class.update(y)
	s.Days++
	s.LastUpdate = day
	s.scoreWindows(day, y)
}

// score records every member's and the combination's error on day before
// they see y.
func (s *State) score(day Day, y float64) {
	var preds [numMembers]float64
	factors := s.Seasonal.factors()
	s.memberMeans(day, max(int(day-s.LastUpdate), 1), &factors, &preds)
	w := s.weights()
	combined := 0.0
	for i, p := range preds {
		s.Scores[i].add(y - p)
		combined += w[i] * p
	}
	s.Combined.add(y - combined)
	ewAdd(&s.PredMean, s.Combined.N, scoreRate, combined)
}

// memberMeans writes each member's mean for day, ahead days after
// LastUpdate; factors are the seasonal member's weekday factors. It is the
// one place that lists the members' predictions.
func (s *State) memberMeans(day Day, ahead int, factors *[7]float64, out *[numMembers]float64) {
	for i := range s.SES {
		out[i] = s.SES[i].Level
	}
	out[numSES] = s.TSB.predict()
	out[numSES+1] = s.Seasonal.Level * factors[day.Weekday()]
	out[numSES+2] = s.Damped.predict(ahead)
	out[numSES+3] = s.MovingAvg.predict()
}

// weights are proportional to the inverse of each member's out-of-sample
// MSE; equal until every member has minScored scored days.
func (s *State) weights() [numMembers]float64 {
	var w [numMembers]float64
	total := 0.0
	for i, sc := range s.Scores {
		if sc.N < minScored {
			for j := range w {
				w[j] = 1.0 / numMembers
			}
			return w
		}
		w[i] = 1 / (sc.MSE + 1e-9)
		total += w[i]
	}
	for i := range w {
		w[i] /= total
	}
	return w
}

// meanPath writes the combined mean of len(out) consecutive days from start
// (after LastUpdate). It is memberMeans weighted, with the members that are
// flat over the path evaluated once (Observe calls it every day for the
// window scores, so it is the State's hot loop); the sums run in member
// order, so the result is the same to the bit.
func (s *State) meanPath(start Day, w *[numMembers]float64, out []float64) {
	if !s.Live {
		clear(out)
		return
	}
	factors := s.Seasonal.factors()
	ahead := max(int(start-s.LastUpdate), 1)
	flat := 0.0
	for i := range s.SES {
		flat += w[i] * s.SES[i].Level
	}
	flat += w[numSES] * s.TSB.predict()
	ma := w[numSES+3] * s.MovingAvg.predict()
	wd := start.Weekday()
	for h := range out {
		m := flat + w[numSES+1]*(s.Seasonal.Level*factors[wd])
		m += w[numSES+2] * s.Damped.predict(ahead+h)
		m += ma
		out[h] = max(m, 0)
		wd++
		if wd == 7 {
			wd = 0
		}
	}
}

// dispersion is the ratio of the one-step error variance to the mean: 1 for
// Poisson noise, above 1 when over-dispersed.
func (s *State) dispersion() float64 {
	if s.Combined.N < minScored || s.PredMean <= 0 {
		return 1
	}
	return max(s.Combined.MSE/s.PredMean, 1)
}
