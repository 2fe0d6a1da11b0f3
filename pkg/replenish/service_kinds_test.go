package replenish

import (
	"math"
	"testing"
	"time"
)

func TestServicePolicyReviewDays(t *testing.T) {
	weekly := ServicePolicy{Policy: Policy{ReviewPeriodDays: 7}, Kind: KindPeriodic}
	weekly.ReviewWeekdays, _ = WeekdaysOf(time.Tuesday, time.Friday)
	every3 := ServicePolicy{Policy: Policy{ReviewPeriodDays: 3}, Kind: KindPeriodic, ReviewAnchor: "2011-03-01"}
	continuous := ServicePolicy{Policy: Policy{ReviewPeriodDays: 7}, ReviewAnchor: "2011-03-01"}
	day := func(s string) time.Time {
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			t.Fatal(err)
		}
		return d.Add(23 * time.Hour) // late in the UTC day
	}
	tests := []struct {
		pol  ServicePolicy
		day  string
		want bool
	}{
		{weekly, "2011-03-01", true},  // Tuesday
		{weekly, "2011-03-02", false}, // Wednesday
		{weekly, "2011-03-04", true},  // Friday
		{every3, "2011-03-01", true},  // the anchor
		{every3, "2011-03-04", true},
		{every3, "2011-03-05", false},
		{every3, "2011-02-26", true}, // before the anchor too
		{every3, "2011-02-27", false},
		{continuous, "2011-03-01", false},
	}
	for _, tt := range tests {
		if got := tt.pol.IsReviewDay(day(tt.day)); got != tt.want {
			t.Errorf("%v on %s: %v, want %v", tt.pol.Kind, tt.day, got, tt.want)
		}
	}
	if w, ok := WeekdaysOf(time.Weekday(7)); ok || w != 0 {
		t.Errorf("WeekdaysOf(7) = %v, %v; want rejected", w, ok)
	}
	if got := weekly.ReviewWeekdays.Days(); len(got) != 2 || got[0] != time.Tuesday || got[1] != time.Friday {
		t.Errorf("Days() = %v", got)
	}
}

func TestContinuousFillRateLevel(t *testing.T) {
	// Demand uniform on [0, 100] (quantile function linear from level 0 to 1,
	// listed at 0.001 and 0.999 with the tails flat): E[(D - s)+] = (100 - s)^2 / 200
	// inside. With Q = 50 and a 98% fill rate: (100 - s)^2 / 200 = 1, s = 100 - sqrt(200).
	q := Quantiles{Levels: []float64{0.001, 0.999}, Values: []float64{0.1, 99.9}}
	s, err := ContinuousFillRateLevel(q, 50, 0.98)
	if err != nil {
		t.Fatal(err)
	}
	// The flat tail above 0.999 adds 0.001 * (99.9 - s), and the segment is
	// 0.998 wide over 99.8 units: solve 0.998 * (99.9 - s)^2 / (2 * 99.8) + 0.001 * (99.9 - s) = 1.
	a, b, c := 0.998/(2*99.8), 0.001, -1.0
	x := (-b + math.Sqrt(b*b-4*a*c)) / (2 * a)
	if want := 99.9 - x; math.Abs(s-want) > 1e-6 {
		t.Fatalf("s = %v, want %v", s, want)
	}
	if _, err := ContinuousFillRateLevel(q, 50, 1); err == nil {
		t.Fatal("fill rate 1 accepted")
	}
}
