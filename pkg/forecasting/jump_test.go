package forecasting

import "testing"

// A second day 100x the first (Online Retail item 84950: 18 units, then
// 1,824) once made the log-scale Holt-Winters member's back-transform
// exp(x + var/2) forecast 6.5 million units a day, and the ensemble 465,000.
// The combination may not forecast more than the largest day seen times the
// largest log-normal correction (e^0.5); a member with a trend may
// extrapolate, but not beyond 3x the largest day.
func TestJumpDoesNotExplode(t *testing.T) {
	var s State
	start := Day(14944)
	s.Observe(start, 18, false)
	s.Observe(start+1, 1824, false)
	limit := 1824 * 1.6488 // e^(1/2)
	f := s.Forecast(Request{StartDay: start + 2, Horizon: 28})
	for h, m := range f.Means {
		if m > limit {
			t.Errorf("day %d: mean %.1f above %.1f", h, m, limit)
		}
	}
	levels := []float64{0.5}
	for i, name := range MemberNames() {
		means := make([]float64, 28)
		qs := make([][]float64, 28)
		for j := range qs {
			qs[j] = make([]float64, len(levels))
		}
		s.MemberForecast(i, start+2, levels, means, qs)
		for h, m := range means {
			if m > 3*1824 {
				t.Errorf("member %s day %d: mean %.1f above 3x the largest day", name, h, m)
			}
		}
	}
}
