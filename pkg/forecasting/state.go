package forecasting

import (
	"math"
	"slices"
)

// ModelName and ModelVersion identify the model in published forecasts.
// Bump the version whenever a constant or the update rules change: states
// and forecasts of different versions are not comparable.
const (
	ModelName    = "stat-ensemble"
	ModelVersion = "stat-ensemble-2"
)

const (
	numSES     = 3
	numHW      = 2
	numMembers = numSES + 4 + 5 + numHW // SES..., TSB, seasonal, damped, moving average, Croston, SBA, ADIDA, seasonal naive, HW on log1p, HW...

	// member indexes after the SES members
	mTSB      = numSES
	mSeasonal = numSES + 1
	mDamped   = numSES + 2
	mMovAvg   = numSES + 3
	mCroston  = numSES + 4
	mSBA      = numSES + 5
	mADIDA    = numSES + 6
	mSNaive   = numSES + 7
	mHWLog    = numSES + 8
	mHW       = numSES + 9 // numHW members

	// leadK is the lead of the out-of-sample errors that weight the
	// members: the forecast each member made leadK days before a day,
	// scored on that day. One-step errors reward the fast, flat members,
	// which are poor a week or more ahead; a lead of 7 beat 14, 21 and 28
	// on both data sets (docs/forecasting.md).
	leadK = 7

	scoreRate     = 1.0 / 56  // memory of the error scores (about 8 weeks)
	minScored     = 7         // scored days before a member's weight counts
	classRate     = 1.0 / 112 // memory of the demand-class statistics (16 weeks)
	minClassDays  = 28        // uncensored days before a class other than "new"
	minClassSales = 2         // non-zero days before a class other than "new"
)

// memberNames names the members in Explain, index-aligned with memberOf.
func memberNames() [numMembers]string {
	return [numMembers]string{"ses_0.03", "ses_0.1", "ses_0.3", "tsb", "seasonal_weekly", "damped_trend", "moving_average_28",
		"croston", "sba", "adida_7", "seasonal_naive", "holt_winters_log", "holt_winters_0.05", "holt_winters_0.2"}
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
	Croston   Croston // Croston and SBA
	ADIDA     ADIDA
	SNaive    SeasonalNaive
	HWLog     HoltWinters
	HW        [numHW]HoltWinters

	// Lead scores each member's forecast made leadK days before the day
	// it is for (LeadRing[m][d % leadK], LeadKnown marks the slots that
	// hold one); the weights come from them. CombinedLead scores the
	// combination the same way (LeadComb holds its forecasts).
	Lead         [numMembers]Score
	LeadRing     [numMembers][leadK]float64
	LeadComb     [leadK]float64
	LeadKnown    uint32
	CombinedLead Score

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
	s.Croston.update(y)
	s.ADIDA.update(y)
	s.SNaive.update(day, y)
	s.HWLog.update(hwLogAlpha, day, y, true)
	for i := range s.HW {
		s.HW[i].update(hwAlpha(i), day, y, false)
	}
	s.Class.update(y)
	s.Days++
	s.LastUpdate = day
	w := s.weights()
	s.scoreWindows(day, y, &w)
	s.predictLead(day, &w)
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
	if o := slot(day, leadK); s.LeadKnown&(1<<o) != 0 {
		for i := range s.Lead {
			s.Lead[i].add(y - s.LeadRing[i][o])
		}
		s.CombinedLead.add(y - s.LeadComb[o])
	}
}

// predictLead records every member's and the combination's forecast of
// day+leadK, made now, for scoring on that day.
func (s *State) predictLead(day Day, w *[numMembers]float64) {
	var preds [numMembers]float64
	factors := s.Seasonal.factors()
	target := day + leadK
	s.memberMeans(target, leadK, &factors, &preds)
	o := slot(target, leadK)
	comb := 0.0
	for i, p := range preds {
		p = max(p, 0)
		s.LeadRing[i][o] = p
		comb += w[i] * p
	}
	s.LeadComb[o] = comb
	s.LeadKnown |= 1 << o
}

// memberMeans writes each member's mean for day, ahead days after
// LastUpdate; factors are the seasonal member's weekday factors. It is the
// one place that lists the members' predictions.
func (s *State) memberMeans(day Day, ahead int, factors *[7]float64, out *[numMembers]float64) {
	for i := range s.SES {
		out[i] = s.SES[i].Level
	}
	out[mTSB] = s.TSB.predict()
	out[mSeasonal] = s.Seasonal.Level * factors[day.Weekday()]
	out[mDamped] = s.Damped.predict(ahead)
	out[mMovAvg] = s.MovingAvg.predict()
	out[mCroston] = s.Croston.predict(false)
	out[mSBA] = s.Croston.predict(true)
	out[mADIDA] = s.ADIDA.predict()
	out[mSNaive] = s.SNaive.predict(day)
	out[mHWLog] = s.HWLog.predict(day, ahead, true)
	for i := range s.HW {
		out[mHW+i] = s.HW[i].predict(day, ahead, false)
	}
}

// weights combine the members by their out-of-sample errors at a lead of
// leadK days (one-step errors until those are scored, equal weights before
// any): weights proportional to MSE^-weightPower over the weightTop best
// members, zero for the others. A high power is close to selecting the
// best member per series (the per-series fit of the grids of SES alphas
// and Holt-Winters alphas is this choice), without flipping abruptly
// between members whose errors are close.
func (s *State) weights() [numMembers]float64 {
	var w [numMembers]float64
	var mse [numMembers]float64
	lead := true
	for i := range s.Lead {
		if s.Lead[i].N < minScored {
			lead = false
			break
		}
		mse[i] = s.Lead[i].MSE
	}
	if !lead {
		for i, sc := range s.Scores {
			if sc.N < minScored {
				for j := range w {
					w[j] = 1.0 / numMembers
				}
				return w
			}
			mse[i] = sc.MSE
		}
	}
	// the weightTop smallest errors
	cut := math.Inf(1)
	if weightTop < numMembers {
		sorted := mse
		slices.Sort(sorted[:])
		cut = sorted[weightTop-1]
	}
	best := slices.Min(mse[:])
	total := 0.0
	for i, e := range mse {
		if e > cut {
			continue
		}
		// relative to the best, so that the power cannot overflow
		r := (best + 1e-9) / (e + 1e-9)
		r *= r
		w[i] = r * r // ^weightPower
		total += w[i]
	}
	for i := range w {
		w[i] /= total
	}
	return w
}

// weightPower and weightTop shape the combination (weights), chosen on
// m5-tiny and online-retail together and on the replenishment simulation's
// calibration (docs/forecasting.md: the best three members alone forecast
// a little better, but their quick switching overshoots fill-rate targets
// in pkg/simulate's TestStockcastCalibrated).
const (
	weightPower = 4 // weights() squares twice
	weightTop   = numMembers
)

// flatMembers predict the same mean for every future day.
var flatMembers = [...]int{0, 1, 2, mTSB, mMovAvg, mCroston, mSBA, mADIDA}

// meanPath writes the combined mean of len(out) consecutive days from start
// (after LastUpdate): memberMeans weighted, with the members that are flat
// over the path evaluated once (Observe calls it every day for the window
// scores, so it is the State's hot loop).
func (s *State) meanPath(start Day, w *[numMembers]float64, out []float64) {
	if !s.Live {
		clear(out)
		return
	}
	factors := s.Seasonal.factors()
	ahead := max(int(start-s.LastUpdate), 1)
	var preds [numMembers]float64
	s.memberMeans(start, ahead, &factors, &preds)
	flat := 0.0
	for _, i := range flatMembers {
		flat += w[i] * preds[i]
	}
	wd := start.Weekday()
	for h := range out {
		m := flat
		if w[mSeasonal] != 0 {
			m += w[mSeasonal] * (s.Seasonal.Level * factors[wd])
		}
		if w[mDamped] != 0 {
			m += w[mDamped] * s.Damped.predict(ahead+h)
		}
		if w[mSNaive] != 0 {
			m += w[mSNaive] * s.SNaive.predictWeekday(wd)
		}
		if w[mHWLog] != 0 {
			m += w[mHWLog] * s.HWLog.predictWeekday(wd, ahead+h, true)
		}
		for i := range s.HW {
			if w[mHW+i] != 0 {
				m += w[mHW+i] * s.HW[i].predictWeekday(wd, ahead+h, false)
			}
		}
		out[h] = max(m, 0)
		if wd++; wd == 7 {
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
