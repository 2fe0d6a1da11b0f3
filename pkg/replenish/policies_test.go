package replenish

import (
	"errors"
	"math"
	"testing"
)

// uniformish: quantile 10 at 0.25, 20 at 0.5, 30 at 0.75, flat beyond.
var uniformish = Quantiles{Levels: []float64{0.25, 0.5, 0.75}, Values: []float64{10, 20, 30}}

func TestExpectedShortage(t *testing.T) {
	tests := []struct {
		name string
		q    Quantiles
		s    float64
		want float64
	}{
		// 0.25*10 + 0.25*15 + 0.25*25 + 0.25*30 = 20: the mean.
		{"at zero it is the mean", uniformish, 0, 20},
		// Flat top 0.25*5 plus the triangle over 20..30 above 25: 0.25*0.5*5/2.
		{"inside a segment", uniformish, 25, 1.5625},
		// 0.25*(30-20) + the triangle 0.25*10/2.
		{"at a listed value", uniformish, 20, 3.75},
		{"at the top", uniformish, 30, 0},
		{"above the top", uniformish, 40, 0},
		{"empty", Quantiles{}, 1, 0},
		{"misaligned", Quantiles{Levels: []float64{0.5}, Values: []float64{1, 2}}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.q.ExpectedShortage(tt.s); math.Abs(got-tt.want) > 1e-12 {
				t.Errorf("ExpectedShortage(%v) = %v, want %v", tt.s, got, tt.want)
			}
		})
	}
}

func TestFillRateLevel(t *testing.T) {
	lead := Quantiles{Levels: []float64{0.25, 0.5, 0.75}, Values: []float64{0, 5, 10}}
	tests := []struct {
		name     string
		lead     *Quantiles
		leadMean float64
		fill     float64
		want     float64
		wantErr  error
	}{
		// No lead time: E[(D-S)+] = 2 with S = 30-x, 0.25x + x²/80 = 2:
		// x = -10 + sqrt(260).
		{name: "no lead time", fill: 0.9, want: 30 - (-10 + math.Sqrt(260))},
		// Cycle demand 20-5 = 15, allowed 1.5; at S > 10 the lead-time
		// shortage is 0: 0.25x + x²/80 = 1.5, x = -10 + sqrt(220).
		{name: "lead-time shortage subtracted", lead: &lead, leadMean: 5, fill: 0.9, want: 30 - (-10 + math.Sqrt(220))},
		// Allowed 0.25*20 = 5 > E[(D-20)+] = 3.75, so S < 20 where, with
		// y = 20-S, E = 3.75 + 0.5y + y²/80 = 5: y = -20 + sqrt(500).
		{name: "low target", fill: 0.75, want: 20 - (-20 + math.Sqrt(500))},
		{name: "target 1 rejected", fill: 1, wantErr: ErrFillRateNotCovered},
		{name: "target 0 rejected", fill: 0, wantErr: ErrFillRateNotCovered},
		// Cycle demand 0: nothing to protect.
		{name: "no cycle demand", lead: &lead, leadMean: 20, fill: 0.9, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FillRateLevel(uniformish, 20, tt.lead, tt.leadMean, tt.fill)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if math.Abs(got-tt.want) > 1e-5 {
				t.Errorf("S = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFillRateLevelRisesWithTarget(t *testing.T) {
	prev := -1.0
	for _, fill := range []float64{0.5, 0.8, 0.9, 0.95, 0.99} {
		s, err := FillRateLevel(uniformish, 20, nil, 0, fill)
		if err != nil {
			t.Fatal(err)
		}
		if !(s > prev) {
			t.Errorf("fill %v: S = %v, not above %v", fill, s, prev)
		}
		prev = s
	}
}

func TestClassicLevel(t *testing.T) {
	tests := []struct {
		name                string
		mean, sigma         float64
		days                int
		level, want, within float64
	}{
		{"median: no safety stock", 10, 3, 9, 0.5, 90, 1e-9},
		// z(0.975) = 1.959964; 1.959964 * 3 * sqrt(9) = 17.6397.
		{"97.5%", 10, 3, 9, 0.975, 107.6397, 1e-4},
		// z(0.95) = 1.644854; 1.644854 * 2 * 2 = 6.5794.
		{"95%, 4 days", 5, 2, 4, 0.95, 26.5794, 1e-4},
		{"below the median: negative safety stock", 10, 3, 9, 0.025, 72.3603, 1e-4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClassicLevel(tt.mean, tt.sigma, tt.days, tt.level); math.Abs(got-tt.want) > tt.within {
				t.Errorf("ClassicLevel = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEOQAndNewsvendor(t *testing.T) {
	tests := []struct {
		name      string
		got, want float64
	}{
		{"eoq", EOQ(1000, 50, 2.5), 200},
		{"eoq no ordering cost", EOQ(1000, 0, 2.5), 0},
		{"eoq no demand", EOQ(0, 50, 2.5), 0},
		{"newsvendor 9:1", NewsvendorLevel(9, 1), 0.9},
		{"newsvendor even", NewsvendorLevel(2, 2), 0.5},
		{"newsvendor free overage", NewsvendorLevel(2, 0), 0},
	}
	for _, tt := range tests {
		if math.Abs(tt.got-tt.want) > 1e-12 {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name            string
		kind            Kind
		pos, s, upTo, q float64
		want            float64
	}{
		{"(R,S) below S", PeriodicUpTo, 30, 0, 100, 0, 70},
		{"(R,S) above S", PeriodicUpTo, 120, 0, 100, 0, 0},
		{"(s,Q) above s", ReorderQuantity, 51, 50, 0, 40, 0},
		{"(s,Q) at s: one Q", ReorderQuantity, 50, 50, 0, 40, 40},
		// 50-5 = 45 below s: two Q lift the position to 85 > 50.
		{"(s,Q) far below s: several Q", ReorderQuantity, 5, 50, 0, 40, 80},
		{"(s,Q) without Q", ReorderQuantity, 5, 50, 0, 0, 0},
		{"(s,S) above s", ReorderUpTo, 60, 50, 100, 0, 0},
		{"(s,S) below s", ReorderUpTo, 20, 50, 100, 0, 80},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decide(tt.kind, tt.pos, tt.s, tt.upTo, tt.q); got != tt.want {
				t.Errorf("Decide = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestConstrain(t *testing.T) {
	tests := []struct {
		name string
		q    float64
		p    Policy
		want float64
	}{
		{"pack rounds up", 13, Policy{PackSize: 6}, 18},
		{"moq lifts", 3, Policy{MOQ: 10}, 10},
		{"max caps", 300, Policy{MaxOrder: 120, PackSize: 12}, 120},
		{"nothing stays nothing", 0, Policy{MOQ: 10}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Constrain(tt.q, tt.p); got != tt.want {
				t.Errorf("Constrain = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestQuantileAt(t *testing.T) {
	got, err := uniformish.QuantileAt(0.625)
	if err != nil || got != 25 {
		t.Errorf("QuantileAt(0.625) = %v, %v; want 25", got, err)
	}
	if _, err := uniformish.QuantileAt(0.9); !errors.Is(err, ErrServiceLevelNotCovered) {
		t.Errorf("QuantileAt(0.9) err = %v, want ErrServiceLevelNotCovered", err)
	}
}

func TestLostSalesTarget(t *testing.T) {
	tests := []struct{ in, want float64 }{
		// 1-b = 0.1/0.9 = 0.1111.
		{0.9, 1 - 0.1/0.9},
		// 1-b = 0.05/0.95.
		{0.95, 1 - 0.05/0.95},
		{0.5, 0},
		{1, 1},
	}
	for _, tt := range tests {
		if got := LostSalesTarget(tt.in); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("LostSalesTarget(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
