package replenish

import (
	"errors"
	"math"
	"testing"
	"time"
)

// mixForecast: levels 0.5/0.9/0.95/0.99; 3 days [29 37 40 45] mean 30,
// 7 days [69 81 85 92] mean 70; daily mean 10.
func mixForecast() Forecast {
	f := Forecast{
		StartDay:       time.Date(2011, 3, 1, 0, 0, 0, 0, time.UTC),
		QuantileLevels: []float64{0.5, 0.9, 0.95, 0.99},
		LeadTimeDemand: []LeadTimeDemand{
			{Days: 3, Mean: 30, Quantiles: []float64{29, 37, 40, 45}},
			{Days: 7, Mean: 70, Quantiles: []float64{69, 81, 85, 92}},
		},
	}
	for range 28 {
		f.DailyMeans = append(f.DailyMeans, 10)
	}
	return f
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestMixtureLevelsTwoLeadTimes(t *testing.T) {
	f := mixForecast()
	half := []DayWeight{{3, 0.5}, {7, 0.5}}
	tests := []struct {
		level float64
		rop   float64
	}{
		// 0.5 F3(x) + 0.5 F7(x) = 0.95: F3 = 1 past 45, so F7(x) = 0.9: x = 81.
		{0.95, 81},
		// = 0.5: reached just past 45 (F3(45) = 0.99 gives 0.495), F7 = 0 below 69.
		{0.5, 45},
		// = 0.75: F3 = 1 past 45 and F7 = 0 below 69, 0.5 at 69: the CDF jumps from 0.5 to 0.75 at 69.
		{0.75, 69},
	}
	for _, tt := range tests {
		lv, err := mixtureLevels(f, Policy{ServiceLevel: tt.level, OrderCoverDays: 14}, half, 5)
		if err != nil {
			t.Fatal(err)
		}
		// Mean 0.5*30 + 0.5*70 = 50; cover: 14 days after day 5 at 10 a day.
		if !near(lv.ReorderPoint, tt.rop) || lv.ExpectedLeadTimeDemand != 50 || !near(lv.SafetyStock, tt.rop-50) || !near(lv.OrderUpTo, tt.rop+140) {
			t.Errorf("level %v: %+v, want rop %v mean 50 order-up-to %v", tt.level, lv, tt.rop, tt.rop+140)
		}
	}
}

func TestMixtureLevelsCertainLeadTimeIsComputeLevels(t *testing.T) {
	f := mixForecast()
	for _, lead := range []int{3, 5, 7} { // 5: interpolated between the spans
		p := Policy{ServiceLevel: 0.95, LeadTimeDays: lead, OrderCoverDays: 14}
		want, err := ComputeLevels(f, p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := MixtureLevels(f, p, LeadTimeStats{N: 5, Mean: float64(lead)})
		if err != nil {
			t.Fatal(err)
		}
		if !near(got.ReorderPoint, want.ReorderPoint) || !near(got.ExpectedLeadTimeDemand, want.ExpectedLeadTimeDemand) || !near(got.OrderUpTo, want.OrderUpTo) {
			t.Errorf("lead %d: %+v, want %+v", lead, got, want)
		}
	}
}

func TestLeadTimeWeights(t *testing.T) {
	w := LeadTimeWeights(5, 1)
	var total, mean float64
	for _, dw := range w {
		total += dw.Weight
		mean += dw.Weight * float64(dw.Days)
	}
	if w[0].Days != 1 || w[len(w)-1].Days != 9 || !near(total, 1) || !near(mean, 5) {
		t.Fatalf("weights %v: days %d..%d total %v mean %v; want 1..9, 1, 5", w, w[0].Days, w[len(w)-1].Days, total, mean)
	}
	// P(4.5 <= X < 5.5) for N(5, 1) = erf(0.5/sqrt2), renormalised by the
	// mass of [0.5, 9.5).
	mass := math.Erf(4.5 / math.Sqrt2)
	if !near(w[4].Weight, math.Erf(0.5/math.Sqrt2)/mass) {
		t.Fatalf("weight of 5 days %v, want %v", w[4].Weight, math.Erf(0.5/math.Sqrt2)/mass)
	}
	// Short lead times below the shortest span (3 days) are interpolated
	// from nothing at 0 days: 0 and 2 days weigh 0.5 each; 2 days are 2/3 of
	// the 3-day quantiles [19.33 24.67 26.67 30], mean 20; at 0.95 the
	// mixture 0.5*1 + 0.5*F2(x) = 0.95 needs F2 = 0.9: x = 24.67.
	lv, err := mixtureLevels(mixForecast(), Policy{ServiceLevel: 0.95}, []DayWeight{{0, 0.5}, {2, 0.5}}, 1)
	if err != nil || !near(lv.ReorderPoint, 37.0*2/3) || !near(lv.ExpectedLeadTimeDemand, 10) {
		t.Fatalf("short lead times: %+v %v, want rop %v mean 10", lv, err, 37.0*2/3)
	}
	if _, err := MixtureLevels(mixForecast(), Policy{ServiceLevel: 0.95}, LeadTimeStats{Mean: 6, Variance: 4}); !errors.Is(err, ErrLeadTimeNotCovered) {
		t.Fatalf("lead times up to 14 days on a forecast to 7: %v, want ErrLeadTimeNotCovered", err)
	}
}
