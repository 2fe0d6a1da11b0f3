package forecasting

import (
	"math/rand/v2"
	"testing"
)

// benchState is a series with a year of weekly-seasonal Poisson-like demand.
func benchState(b *testing.B) (State, Day) {
	b.Helper()
	var s State
	rng := rand.New(rand.NewPCG(1, 2))
	day := Day(15000)
	for i := range 365 {
		s.Observe(day+Day(i), float64(rng.IntN(9)), false)
	}
	return s, day + 365
}

func BenchmarkObserve(b *testing.B) {
	s, day := benchState(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Observe(day+Day(i), float64(i%7), false)
	}
}

func BenchmarkForecast(b *testing.B) {
	s, day := benchState(b)
	req := Request{StartDay: day, TodaySoFar: 2, IntradayShare: 0.4}
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Forecast(req)
	}
}

// BenchmarkForecastLumpy is a high-volume lumpy series: a third of the days
// sell up to 3,000 units.
func BenchmarkForecastLumpy(b *testing.B) {
	var s State
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 365 {
		y := 0.0
		if rng.IntN(3) == 0 {
			y = float64(rng.IntN(3000))
		}
		s.Observe(Day(15000+i), y, false)
	}
	req := Request{StartDay: 15365}
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Forecast(req)
	}
}
