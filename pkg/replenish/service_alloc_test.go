package replenish

import (
	"math"
	"testing"
	"time"
)

// TestPeriodicAllocItem: with L = R = 7 the item is the forecast's 14-day
// (L+R) and 7-day (L) demand. At S = 162 the 14-day shortage is 0.04 *
// (167 - 162) on [0.95, 0.99] + 0.01 * (172 - 162) above = 0.3, the 7-day
// one 0 (its largest quantile is 92): fill 1 - 0.3/70. That fill rate set
// as the policy's target gives S = 162 back (FillRateLevel, ServiceLevels).
func TestPeriodicAllocItem(t *testing.T) {
	f := Forecast{StartDay: time.Date(2011, 3, 1, 0, 0, 0, 0, time.UTC), QuantileLevels: []float64{0.5, 0.9, 0.95, 0.99},
		DailyMeans: make([]float64, 28),
		LeadTimeDemand: []LeadTimeDemand{
			{Days: 7, Mean: 70, Quantiles: []float64{69, 81, 85, 92}},
			{Days: 14, Mean: 140, Quantiles: []float64{139, 156, 162, 172}},
		}}
	for i := range f.DailyMeans {
		f.DailyMeans[i] = 10
	}
	p := ServicePolicy{Policy: Policy{ServiceLevel: 0.95, LeadTimeDays: 7, ReviewPeriodDays: 7, OrderCoverDays: 14},
		Kind: KindPeriodic, ReviewAnchor: "2011-03-01"}
	it, err := PeriodicAllocItem(f, p, 3)
	if err != nil {
		t.Fatal(err)
	}
	if it.ProtectMean != 140 || it.LeadMean != 70 || it.Lead == nil || it.Protect.Max() != 172 || it.Lead.Max() != 92 || it.UnitValue != 3 {
		t.Fatalf("item %+v", it)
	}
	want := 1 - 0.3/70
	if got := ImpliedFillRate(it, 162); math.Abs(got-want) > 1e-12 {
		t.Errorf("ImpliedFillRate(162) = %.12f, want %.12f", got, want)
	}
	p.Target, p.FillRate = TargetFillRate, want
	d, err := ServiceLevels(f, p, LeadTimeStats{})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(d.OrderUpTo-162) > 1e-6 {
		t.Errorf("S at fill %.6f = %v, want 162", want, d.OrderUpTo)
	}
	if got := ImpliedFillRate(AllocItem{Protect: it.Protect}, 0); got != 1 {
		t.Errorf("an item without demand: %v, want 1", got)
	}
	if _, err := PeriodicAllocItem(f, ServicePolicy{Policy: Policy{LeadTimeDays: 7, ReviewPeriodDays: 21}}, 1); err == nil {
		t.Error("a 28-day span the forecast does not list was accepted")
	}
}
