package replenish

import (
	"errors"
	"math"
	"testing"
	"time"
)

var day0 = time.Date(2011, 3, 1, 0, 0, 0, 0, time.UTC)

// testForecast: levels 0.5/0.9/0.95/0.99; lead-time demand for 3, 7 and 14
// days; daily means 5 on day 0, 10 on days 1..20, 14 on days 21..27.
func testForecast() Forecast {
	daily := make([]float64, 28)
	daily[0] = 5
	for i := 1; i < 28; i++ {
		daily[i] = 10
		if i >= 21 {
			daily[i] = 14
		}
	}
	return Forecast{
		StartDay:       day0,
		QuantileLevels: []float64{0.5, 0.9, 0.95, 0.99},
		DailyMeans:     daily,
		// Listed out of order on purpose: the order of the entries must not matter.
		LeadTimeDemand: []LeadTimeDemand{
			{Days: 7, Mean: 70, Quantiles: []float64{69, 81, 85, 92}},
			{Days: 3, Mean: 30, Quantiles: []float64{29, 37, 40, 45}},
			{Days: 14, Mean: 140, Quantiles: []float64{139, 156, 162, 172}},
		},
	}
}

func TestComputeLevels(t *testing.T) {
	tests := []struct {
		name    string
		policy  Policy
		want    Levels
		wantErr error
	}{
		{
			// ROP = q95(7) = 85; cover = days 8..21 = 13*10 + 14 = 144.
			name:   "listed span and level",
			policy: Policy{ServiceLevel: 0.95, LeadTimeDays: 7, OrderCoverDays: 14},
			want:   Levels{ReorderPoint: 85, ExpectedLeadTimeDemand: 70, SafetyStock: 15, OrderUpTo: 229},
		},
		{
			name:   "review period adds to the lead time",
			policy: Policy{ServiceLevel: 0.95, LeadTimeDays: 5, ReviewPeriodDays: 2, OrderCoverDays: 14},
			want:   Levels{ReorderPoint: 85, ExpectedLeadTimeDemand: 70, SafetyStock: 15, OrderUpTo: 229},
		},
		{
			// span 10 between 7 and 14: w = 3/7; q = 85 + 77*3/7 = 118; mean = 70 + 70*3/7 = 100.
			// cover 0: order-up-to = reorder point.
			name:   "span interpolated",
			policy: Policy{ServiceLevel: 0.95, LeadTimeDays: 10},
			want:   Levels{ReorderPoint: 118, ExpectedLeadTimeDemand: 100, SafetyStock: 18, OrderUpTo: 118},
		},
		{
			// level 0.925 between 0.9 and 0.95: (81 + 85) / 2 = 83.
			name:   "level interpolated",
			policy: Policy{ServiceLevel: 0.925, LeadTimeDays: 7},
			want:   Levels{ReorderPoint: 83, ExpectedLeadTimeDemand: 70, SafetyStock: 13, OrderUpTo: 83},
		},
		{
			// span 5 between 3 and 7 (w = 1/2), level 0.925: q(3) = 38.5, q(7) = 83 -> 60.75;
			// mean 50; cover 2 days = days 6, 7 = 20.
			name:   "span and level interpolated",
			policy: Policy{ServiceLevel: 0.925, LeadTimeDays: 5, OrderCoverDays: 2},
			want:   Levels{ReorderPoint: 60.75, ExpectedLeadTimeDemand: 50, SafetyStock: 10.75, OrderUpTo: 80.75},
		},
		{
			// cover days 15..34: 6*10 + 7*14, then 7 days past the horizon at the
			// last week's average 14: 60 + 98 + 98 = 256; 162 + 256 = 418.
			name:   "cover past the horizon",
			policy: Policy{ServiceLevel: 0.95, LeadTimeDays: 14, OrderCoverDays: 20},
			want:   Levels{ReorderPoint: 162, ExpectedLeadTimeDemand: 140, SafetyStock: 22, OrderUpTo: 418},
		},
		{
			name:    "span above the largest listed",
			policy:  Policy{ServiceLevel: 0.95, LeadTimeDays: 10, ReviewPeriodDays: 5},
			wantErr: ErrLeadTimeNotCovered,
		},
		{
			name:    "span below the smallest listed",
			policy:  Policy{ServiceLevel: 0.95, LeadTimeDays: 2},
			wantErr: ErrLeadTimeNotCovered,
		},
		{
			name:    "level above the largest listed",
			policy:  Policy{ServiceLevel: 0.995, LeadTimeDays: 7},
			wantErr: ErrServiceLevelNotCovered,
		},
		{
			name:    "level below the smallest listed",
			policy:  Policy{ServiceLevel: 0.4, LeadTimeDays: 7},
			wantErr: ErrServiceLevelNotCovered,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ComputeLevels(testForecast(), tt.policy)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assertClose(t, "reorder point", got.ReorderPoint, tt.want.ReorderPoint)
			assertClose(t, "expected lead-time demand", got.ExpectedLeadTimeDemand, tt.want.ExpectedLeadTimeDemand)
			assertClose(t, "safety stock", got.SafetyStock, tt.want.SafetyStock)
			assertClose(t, "order-up-to", got.OrderUpTo, tt.want.OrderUpTo)
		})
	}
}

func TestComputeLevelsMalformed(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Forecast)
	}{
		{"quantiles shorter than levels", func(f *Forecast) { f.LeadTimeDemand[0].Quantiles = []float64{1, 2} }},
		{"levels not ascending", func(f *Forecast) { f.QuantileLevels = []float64{0.5, 0.95, 0.9, 0.99} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := testForecast()
			tt.mutate(&f)
			_, err := ComputeLevels(f, Policy{ServiceLevel: 0.95, LeadTimeDays: 7})
			if !errors.Is(err, ErrMalformedForecast) {
				t.Fatalf("err = %v, want ErrMalformedForecast", err)
			}
		})
	}
}

func TestOrderQuantity(t *testing.T) {
	tests := []struct {
		name      string
		orderUpTo float64
		position  float64
		policy    Policy
		want      Quantities
	}{
		{"no constraints", 229, 100, Policy{}, Quantities{Unconstrained: 129, Constrained: 129}},
		{"rounded up to the pack", 229, 100, Policy{PackSize: 12}, Quantities{Unconstrained: 129, Constrained: 132}},
		{"exact multiple of the pack stays", 220, 100, Policy{PackSize: 12}, Quantities{Unconstrained: 120, Constrained: 120}},
		{"float noise does not cost a pack", 100.30000000000001, 0.3, Policy{PackSize: 5}, Quantities{Unconstrained: 100.00000000000001, Constrained: 100}},
		{"raised to the moq", 229, 100, Policy{PackSize: 12, MOQ: 200}, Quantities{Unconstrained: 129, Constrained: 200}},
		{"capped at the maximum", 229, 100, Policy{PackSize: 12, MaxOrder: 120}, Quantities{Unconstrained: 129, Constrained: 120}},
		{"maximum wins over the moq", 229, 100, Policy{MOQ: 200, MaxOrder: 150}, Quantities{Unconstrained: 129, Constrained: 150}},
		{"backorders raise the need", 50, -20, Policy{}, Quantities{Unconstrained: 70, Constrained: 70}},
		{"at the order-up-to level: nothing, moq ignored", 229, 229, Policy{MOQ: 50}, Quantities{}},
		{"above the order-up-to level: nothing", 229, 300, Policy{MOQ: 50, PackSize: 10}, Quantities{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := OrderQuantity(tt.orderUpTo, tt.position, tt.policy)
			assertClose(t, "unconstrained", got.Unconstrained, tt.want.Unconstrained)
			assertClose(t, "constrained", got.Constrained, tt.want.Constrained)
		})
	}
}

func TestProjectedStockout(t *testing.T) {
	tests := []struct {
		name   string
		onHand float64
		want   time.Time
		wantOK bool
	}{
		{"empty shelf is out today", 0, day0, true},
		{"backordered shelf is out today", -3, day0, true},
		{"runs out on day 0", 5, day0, true},
		{"cumulative 5, 15, 25 reaches 25 on day 2", 25, day0.AddDate(0, 0, 2), true},
		{"just more than day 2 lasts into day 3", 25.5, day0.AddDate(0, 0, 3), true},
		{"whole horizon demand 303 runs out on day 27", 303, day0.AddDate(0, 0, 27), true},
		{"lasts beyond the horizon", 303.5, time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ProjectedStockout(testForecast(), tt.onHand)
			if ok != tt.wantOK || !got.Equal(tt.want) {
				t.Fatalf("got %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestNewPlan(t *testing.T) {
	policy := Policy{ServiceLevel: 0.95, LeadTimeDays: 7, OrderCoverDays: 14, PackSize: 10, MOQ: 50}
	pos := Position{OnHand: 40, OnOrder: 20, Backorders: 5}
	got, err := NewPlan(testForecast(), policy, pos, day0)
	if err != nil {
		t.Fatal(err)
	}
	// position 55; need 229 - 55 = 174 -> 180 in packs of 10; on hand 40 runs out
	// on day 4 (5, 15, 25, 35, 45); arrival day0 + 7.
	want := Plan{
		Levels:               Levels{ReorderPoint: 85, ExpectedLeadTimeDemand: 70, SafetyStock: 15, OrderUpTo: 229},
		Position:             pos,
		InventoryPosition:    55,
		Quantities:           Quantities{Unconstrained: 174, Constrained: 180},
		ProjectedStockoutDay: time.Date(2011, 3, 5, 0, 0, 0, 0, time.UTC),
		ExpectedArrivalDay:   time.Date(2011, 3, 8, 0, 0, 0, 0, time.UTC),
	}
	if got != want {
		t.Fatalf("plan\n got %+v\nwant %+v", got, want)
	}

	if _, err := NewPlan(testForecast(), Policy{ServiceLevel: 0.95, LeadTimeDays: 30}, pos, day0); !errors.Is(err, ErrLeadTimeNotCovered) {
		t.Fatalf("lead time 30: err = %v, want ErrLeadTimeNotCovered", err)
	}
}

func TestPolicyValidate(t *testing.T) {
	valid := Policy{ServiceLevel: 0.95, LeadTimeDays: 7, ReviewPeriodDays: 0, MOQ: 1, PackSize: 1, MaxOrder: 0, OrderCoverDays: 14}
	tests := []struct {
		name    string
		mutate  func(*Policy)
		wantErr bool
	}{
		{"defaults are valid", func(*Policy) {}, false},
		{"zero constraints are valid", func(p *Policy) { p.MOQ, p.PackSize, p.LeadTimeDays = 0, 0, 0 }, false},
		{"bounds are valid", func(p *Policy) { p.LeadTimeDays, p.ReviewPeriodDays, p.OrderCoverDays = 365, 365, 365 }, false},
		{"service level 0", func(p *Policy) { p.ServiceLevel = 0 }, true},
		{"service level 1", func(p *Policy) { p.ServiceLevel = 1 }, true},
		{"service level NaN", func(p *Policy) { p.ServiceLevel = math.NaN() }, true},
		{"negative lead time", func(p *Policy) { p.LeadTimeDays = -1 }, true},
		{"lead time over a year", func(p *Policy) { p.LeadTimeDays = 366 }, true},
		{"review over a year", func(p *Policy) { p.ReviewPeriodDays = 366 }, true},
		{"negative review", func(p *Policy) { p.ReviewPeriodDays = -1 }, true},
		{"negative cover", func(p *Policy) { p.OrderCoverDays = -1 }, true},
		{"negative moq", func(p *Policy) { p.MOQ = -1 }, true},
		{"negative pack", func(p *Policy) { p.PackSize = -0.5 }, true},
		{"NaN pack", func(p *Policy) { p.PackSize = math.NaN() }, true},
		{"negative max", func(p *Policy) { p.MaxOrder = -10 }, true},
		{"infinite max", func(p *Policy) { p.MaxOrder = math.Inf(1) }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := valid
			tt.mutate(&p)
			if err := p.Validate(); (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func assertClose(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9*max(1, math.Abs(want)) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}
