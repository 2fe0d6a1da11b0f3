package features

// Features are the values of a snapshot computed from a State as of a day.
type Features struct {
	AsOf Day
	// RecentDaily is the net demand of the RecentDays days ending at AsOf,
	// oldest first.
	RecentDaily           []float64
	Sum7, Sum28, Sum91    float64
	Mean7, Mean28, Mean91 float64
	EWMA                  float64
	// DOWProfile is the mean demand per weekday, Monday first.
	DOWProfile [7]float64
	// IntradayCumulative[h] is the share of placed demand seen by the end of
	// UTC hour h.
	IntradayCumulative [24]float64
	DaysSinceLastSale  int
	LastZeroRun        int
	CurrentZeroRun     int
	HistoryDays        int
	// StockoutDays are indexes into RecentDaily of days out of stock.
	StockoutDays []int
}

// Compute derives the features of s as of day asOf. It reads only s, so the
// same state always gives the same features.
//
// Conventions (all days inclusive):
//   - history starts at the first sale, or at the ring start if that is later;
//   - closed days are the history days before asOf (asOf itself is still open);
//   - mean_N divides sum_N by the history days inside the window (at most N),
//     so a series that started selling yesterday is not averaged over zeros;
//   - a zero-demand day is a day with net demand <= 0.
func Compute(s *State, asOf Day) Features {
	f := Features{AsOf: asOf, DaysSinceLastSale: -1, RecentDaily: make([]float64, RecentDays)}
	r := &s.Ring

	for i := range RecentDays {
		d := asOf - Day(RecentDays-1-i)
		f.RecentDaily[i] = r.DemandOn(d)
		if r.StockoutOn(d) {
			f.StockoutDays = append(f.StockoutDays, i)
		}
	}
	f.Sum7, f.Mean7 = window(s, asOf, 7)
	f.Sum28, f.Mean28 = window(s, asOf, 28)
	f.Sum91, f.Mean91 = window(s, asOf, 91)
	f.IntradayCumulative = intradayCumulative(s.Hourly)
	f.DaysSinceLastSale = daysSinceLastSale(s, asOf)

	if !s.HasSale || s.FirstSale > asOf {
		return f
	}
	f.HistoryDays = int(asOf-s.FirstSale) + 1
	from := s.FirstSale
	if s.HasDays && r.Start() > from {
		from = r.Start()
	}

	var dowSum [7]float64
	var dowDays [7]int
	for d := from; d <= asOf; d++ {
		w := d.WeekdayIndex()
		dowSum[w] += r.DemandOn(d)
		dowDays[w]++
	}
	for w := range dowSum {
		if dowDays[w] > 0 {
			f.DOWProfile[w] = dowSum[w] / float64(dowDays[w])
		}
	}

	run := 0
	for d := from; d < asOf; d++ {
		q := r.DemandOn(d)
		if d == from {
			f.EWMA = q
		} else {
			f.EWMA = EWMAAlpha*q + (1-EWMAAlpha)*f.EWMA
		}
		if q <= 0 {
			run++
			continue
		}
		if run > 0 {
			f.LastZeroRun = run
		}
		run = 0
	}
	f.CurrentZeroRun = run
	return f
}

// window returns the sum of the n days ending at asOf and their mean over the
// history days among them.
func window(s *State, asOf Day, n int) (sum, mean float64) {
	for d := asOf - Day(n-1); d <= asOf; d++ {
		sum += s.Ring.DemandOn(d)
	}
	if !s.HasSale || s.FirstSale > asOf {
		return sum, 0
	}
	days := min(n, int(asOf-s.FirstSale)+1)
	return sum, sum / float64(days)
}

func intradayCumulative(hourly [24]float64) [24]float64 {
	var out [24]float64
	var total float64
	for _, q := range hourly {
		total += q
	}
	if total <= 0 {
		return out
	}
	var cum float64
	for h, q := range hourly {
		cum += q
		out[h] = cum / total
	}
	out[23] = 1 // exact, whatever the rounding of the running sum
	return out
}

// daysSinceLastSale looks for the last day with positive net demand in the
// ring; a sale older than the ring is known only from LastSale.
func daysSinceLastSale(s *State, asOf Day) int {
	if !s.HasSale {
		return -1
	}
	r := &s.Ring
	for d := asOf; s.HasDays && d >= r.Start(); d-- {
		if r.DemandOn(d) > 0 {
			return int(asOf - d)
		}
	}
	if !s.HasDays || s.LastSale < r.Start() {
		return int(asOf - s.LastSale)
	}
	return -1
}
