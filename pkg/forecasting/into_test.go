package forecasting

import (
	"reflect"
	"testing"
)

// TestForecastIntoReusedEqualsFresh: ForecastInto on a Forecast that held
// other forecasts (longer, shorter, today only, more lead times) writes
// the fresh Forecast's values, and never shares a day's quantiles with
// the forecast before.
func TestForecastIntoReusedEqualsFresh(t *testing.T) {
	var s, other State
	observeAll(&s, 100, poissonSeries(7, 120, 3))
	observeAll(&other, 100, poissonSeries(9, 60, 11))
	reqs := []Request{
		{StartDay: 220, Horizon: 28, TodaySoFar: 1, IntradayShare: 0.4},
		{StartDay: 220, Horizon: 7, LeadTimes: []int{1, 2}},
		{StartDay: 220, Horizon: 28, TodayOnly: true, IntradayShare: 0.9},
		{StartDay: 221, Horizon: 40, LeadTimes: []int{1, 3, 7, 14, 28, 35}, QuantileLevels: []float64{0.1, 0.5, 0.9}},
		{StartDay: 220, Horizon: 28},
	}
	var reused Forecast
	for i, req := range reqs {
		for _, st := range []*State{&s, &other} {
			var before [][]float64
			before = append(before, reused.Quantiles...)
			st.ForecastInto(req, &reused)
			want := st.Forecast(req)
			got := reused
			got.work, want.work = nil, nil
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("request %d: reused forecast differs from a fresh one:\n%+v\nwant\n%+v", i, got, want)
			}
			for _, q := range before {
				for _, g := range reused.Quantiles {
					if len(q) > 0 && len(g) > 0 && &q[0] == &g[0] {
						t.Fatalf("request %d: a day's quantiles share the memory of the forecast before", i)
					}
				}
			}
		}
	}
}
