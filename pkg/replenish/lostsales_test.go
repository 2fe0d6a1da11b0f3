package replenish

import (
	"math"
	"testing"
)

// uniform is demand uniform on [0, top] as a quantile grid (flat ends of
// width 1e-9).
func uniform(top float64) Quantiles {
	return Quantiles{Levels: []float64{1e-9, 1 - 1e-9}, Values: []float64{0, top}}
}

// TestLostSalesShortageByHand: D(L+R) uniform on [0, 20], D(L) on [0, 10]
// (means 10 and 5: k = 5/5 = 1). For e in [10, 20] B(e) = (20-e)²/40, so at
// s = 12 the answer x = B(e) with e - B(e) = 12: u = 20 - e solves
// u² + 40u - 320 = 0, x = u²/40 = 1.1672, against the backorder formula's
// B(12) = 1.6. At s = 4, e is below 10, where B(e) = (20-e)²/40 -
// (10-e)²/20 = (200 - e²)/40. Without a lead time it is the backorder
// formula's.
func TestLostSalesShortageByHand(t *testing.T) {
	p, l := uniform(20), uniform(10)
	u := (-40 + math.Sqrt(40*40+4*320)) / 2
	want := u * u / 40
	if got := LostSalesShortage(p, 10, &l, 5, 12); math.Abs(got-want) > 1e-6 {
		t.Errorf("s = 12: %v, want %v", got, want)
	}
	if b := p.ExpectedShortage(12) - l.ExpectedShortage(12); math.Abs(b-1.6) > 1e-6 {
		t.Errorf("backorder B(12) = %v, want 1.6", b)
	}
	// Below 10: B(e) = (20-e)²/40 - (10-e)²/20 = (200 - e²)/40; e - (200
	// - e²)/40 = 4 is e² + 40e - 360 = 0.
	e := (-40 + math.Sqrt(1600+4*360)) / 2
	if got, want := LostSalesShortage(p, 10, &l, 5, 4), (200-e*e)/40; math.Abs(got-want) > 1e-6 {
		t.Errorf("s = 4: %v, want %v", got, want)
	}
	if got, want := LostSalesShortage(p, 10, nil, 0, 12), p.ExpectedShortage(12); got != want {
		t.Errorf("no lead time: %v, want B(12) = %v", got, want)
	}
}

// TestAllocateLostSales: one item, lost sales: the allocation's level
// meets the lost-sales fill target by LostSalesShortage, at a lower level
// than the backorder formula needs for the same target; two items: the
// expected shortage it reports is the sum of LostSalesShortage at its
// levels.
func TestAllocateLostSales(t *testing.T) {
	p, l := uniform(200), uniform(100)
	item := AllocItem{Protect: p, ProtectMean: 100, Lead: &l, LeadMean: 50, UnitValue: 1}
	lost := item
	lost.LostSales = true
	for _, fill := range []float64{0.9, 0.95} {
		a, err := AllocateFillRate([]AllocItem{lost}, fill)
		if err != nil {
			t.Fatal(err)
		}
		b, err := AllocateFillRate([]AllocItem{item}, fill)
		if err != nil {
			t.Fatal(err)
		}
		s := a.Levels[0]
		got := LostSalesShortage(p, 100, &l, 50, s)
		if math.Abs(got-a.ExpectedShortage) > 1e-6 || got > (1-fill)*50+1e-9 {
			t.Errorf("fill %v: level %v loses %v (allocation says %v), allowed %v", fill, s, got, a.ExpectedShortage, (1-fill)*50)
		}
		if !(s < b.Levels[0]) {
			t.Errorf("fill %v: lost-sales level %v not below the backorder level %v", fill, s, b.Levels[0])
		}
	}
	dear := lost
	dear.UnitValue = 5
	a, err := AllocateFillRate([]AllocItem{lost, dear}, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	sum := LostSalesShortage(p, 100, &l, 50, a.Levels[0]) + LostSalesShortage(p, 100, &l, 50, a.Levels[1])
	if math.Abs(sum-a.ExpectedShortage) > 1e-6 || !(a.Levels[0] > a.Levels[1]) {
		t.Errorf("levels %v: shortage %v, allocation says %v (the cheap item should hold more)", a.Levels, sum, a.ExpectedShortage)
	}
}
