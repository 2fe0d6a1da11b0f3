package forecasting

// Lead-time spread. A one-step error mixes count noise with the error of the
// level estimate; over a lead time the noise adds up day by day but a level
// error repeats on every day, so the variance of a K-day total grows like
// K² in the level part. The State therefore scores its own K-day totals
// (K = 7 and 28), each forecast at an origin day and scored K days later,
// and estimates from them the relative variance of the level, which
// Forecast adds to the lead-time distribution.

const (
	windowDays = 28       // longest scored window; Recent holds this many days
	windowRate = 1.0 / 91 // memory of the window scores (13 weeks)
)

// WindowScore scores the forecasts of K-day totals.
type WindowScore struct {
	// Forecasts[o % K] is the total forecast at origin day o for days
	// o+1..o+K; Known marks the slots holding one.
	Forecasts [windowDays]float64
	Known     uint32
	MSE       float64 // of actual total - forecast total
	FMean     float64 // mean forecast total
	N         int32
}

// levelVariance estimates the relative variance of the level (variance of
// the level error / mean²) from K-day totals, given the daily dispersion.
// With a level error v and daily noise disp*mu, a K-day total has error
// variance K*disp*mu + K²*v, of which the one-step dispersion already holds
// K*v.
func (w *WindowScore) levelVariance(k int, disp float64) float64 {
	if w.N < minScored || w.FMean <= 0 {
		return 0
	}
	excess := w.MSE - disp*w.FMean
	kk := float64(k)
	return max(excess, 0) * kk / ((kk - 1) * w.FMean * w.FMean)
}

// clearDays forgets the days after s.LastDay up to and excluding day: they
// were skipped or censored, so no window through them can be scored and no
// forecast was made at them.
func (s *State) clearDays(from, to Day) {
	if to-from > windowDays {
		from = to - windowDays
	}
	for d := from; d < to; d++ {
		s.RecentKnown &^= 1 << slot(d, windowDays)
		s.Week.Known &^= 1 << slot(d, 7)
		s.Month.Known &^= 1 << slot(d, windowDays)
		s.LeadKnown &^= 1 << slot(d, leadK) // no lead forecast was made at d
	}
}

func slot(d Day, k int) uint32 { return uint32((int64(d)%int64(k) + int64(k)) % int64(k)) }

// scoreWindows records y for day and scores the K-day totals that end on it,
// then forecasts the totals that start after it. Call after the members saw
// day; wts are the combination weights.
func (s *State) scoreWindows(day Day, y float64, wts *[numMembers]float64) {
	s.Recent[slot(day, windowDays)] = y
	s.RecentKnown |= 1 << slot(day, windowDays)
	var path [windowDays]float64
	s.meanPath(day+1, wts, path[:])
	for _, win := range []struct {
		k     int
		score *WindowScore
	}{{7, &s.Week}, {windowDays, &s.Month}} {
		k, sc := win.k, win.score
		o := slot(day, k)
		// Slot o was last written at day-k: its forecast covers day-k+1..day.
		if sc.Known&(1<<o) != 0 {
			actual, complete := 0.0, true
			for d := day - Day(k) + 1; d <= day; d++ {
				if s.RecentKnown&(1<<slot(d, windowDays)) == 0 {
					complete = false
					break
				}
				actual += s.Recent[slot(d, windowDays)]
			}
			if complete {
				sc.N++
				e := actual - sc.Forecasts[o]
				ewAdd(&sc.MSE, sc.N, windowRate, e*e)
				ewAdd(&sc.FMean, sc.N, windowRate, sc.Forecasts[o])
			}
		}
		total := 0.0
		for _, m := range path[:k] {
			total += m
		}
		sc.Forecasts[o] = total
		sc.Known |= 1 << o
	}
}
