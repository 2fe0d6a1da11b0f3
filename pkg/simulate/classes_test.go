package simulate

import (
	"testing"

	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/replenish"
)

// TestPrepareClasses: a series' Class is the planner's, from its last 364
// days before the simulation (from its first sale if later); its
// SimulatedClass that of the simulated days. 400 warm-up + 100 simulated
// days:
//   - a: 100 a day on days 0-35, then 1 every other day (days 36, 38, ...):
//     intermittent over days 36-399 (ADI 2, sizes all 1); over the whole
//     warm-up it would be lumpy (ADI 400/218, CV^2 4.5); simulated days 3
//     a day: smooth.
//   - b: first sale on day 300, then 2 a day: smooth from its first sale
//     (ADI 1); counting days 36-299 as no demand it would be intermittent
//     (ADI 3.64); simulated days 1, 9, 1, 9, ...: erratic (CV^2 0.64).
func TestPrepareClasses(t *testing.T) {
	a, b := constant(0, 500), constant(0, 500)
	b.ID = "b"
	for i := range 400 {
		switch {
		case i < 36:
			a.Demand[i] = 100
		case i%2 == 0:
			a.Demand[i] = 1
		}
		if i >= 300 {
			b.Demand[i] = 2
		}
	}
	for i := 400; i < 500; i++ {
		a.Demand[i] = 3
		b.Demand[i] = float64(1 + 8*(i%2))
	}
	got, warmup, err := Prepare([]Series{a, b}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if warmup != 400 || len(got) != 2 {
		t.Fatalf("warm-up %d, %d series; want 400, 2", warmup, len(got))
	}
	want := []struct{ class, simulated forecasting.Class }{
		{forecasting.ClassIntermittent, forecasting.ClassSmooth},
		{forecasting.ClassSmooth, forecasting.ClassErratic},
	}
	for i, w := range want {
		if got[i].Class != w.class || got[i].SimulatedClass != w.simulated {
			t.Errorf("series %s: class %s, simulated %s; want %s, %s", got[i].ID, got[i].Class, got[i].SimulatedClass, w.class, w.simulated)
		}
	}
	// The window's edges: without them the classes differ.
	if c := Classify(a.Demand, 0, 400); c != forecasting.ClassLumpy {
		t.Errorf("a over the whole warm-up: %s, want lumpy", c)
	}
	if c := Classify(b.Demand, 36, 400); c != forecasting.ClassIntermittent {
		t.Errorf("b over the last 364 days: %s, want intermittent", c)
	}
}

// TestStockcastPortfolioPlannerClasses: two Poisson(20) series, unit values
// 1 and 50, that the forecast puts in one class. Given as two classes
// (Config.Classes), the class band (0.02 around 0.8) holds each one's
// expected fill (backorder formula, B(S) over E[D(R)]) within
// [LostSalesTarget(0.78), LostSalesTarget(0.82)]; with the forecast's
// class the value allocation serves the cheap one above the band and the
// dear one below it.
func TestStockcastPortfolioPlannerClasses(t *testing.T) {
	series := []Series{poissonSeries(31, 20, 300), poissonSeries(32, 20, 300)}
	value := []float64{1, 50}
	lo, hi := replenish.LostSalesTarget(0.78), replenish.LostSalesTarget(0.82)
	fills := func(classes []forecasting.Class) ([]float64, []string) {
		c := Config{LeadTimeDays: 7, ReviewDays: 7, ClassBand: 0.02, Classes: classes}
		p := NewStockcastPortfolio(0.8, c, len(series)).(*StockcastPortfolio)
		for d := range 300 {
			for i, s := range series {
				p.Observe(i, s.Start+forecasting.Day(d), s.Demand[d], false)
			}
		}
		levels := p.Levels(series[0].Start+300, value)
		out := make([]float64, len(levels))
		for i, it := range p.items {
			short := it.Protect.ExpectedShortage(levels[i]) - it.Lead.ExpectedShortage(levels[i])
			out[i] = 1 - short/(it.ProtectMean-it.LeadMean)
		}
		return out, append([]string(nil), p.class...)
	}
	own, groups := fills(nil)
	if groups[0] != groups[1] {
		t.Fatalf("the forecast's classes %v differ: the test needs one", groups)
	}
	if !(own[0] > hi && own[1] < lo) {
		t.Fatalf("one class %s: expected fills %.4f (value 1), %.4f (value 50); want above %.4f and below %.4f", groups[0], own[0], own[1], hi, lo)
	}
	planned, groups := fills([]forecasting.Class{forecasting.ClassSmooth, forecasting.ClassLumpy})
	if groups[0] != "smooth" || groups[1] != "lumpy" {
		t.Errorf("groups %v, want the given classes", groups)
	}
	for i, f := range planned {
		if !(f >= lo && f <= hi) {
			t.Errorf("series %d (value %v) in its own class: expected fill %.4f, want in [%.4f, %.4f]", i, value[i], f, lo, hi)
		}
	}
}
