package simulate

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/replenish"
)

// fixed orders up to the same level every review and records what it sees.
type fixed struct {
	upTo     float64
	days     []forecasting.Day
	sales    []float64
	censored []bool
}

func (p *fixed) Observe(day forecasting.Day, sales float64, censored bool) {
	p.days = append(p.days, day)
	p.sales = append(p.sales, sales)
	p.censored = append(p.censored, censored)
}

func (p *fixed) Levels(forecasting.Day) (float64, float64) { return math.Inf(1), p.upTo }

func constant(v float64, n int) Series {
	s := Series{ID: "c", Start: 15000, Demand: make([]float64, n), Price: make([]float64, n)}
	for i := range s.Demand {
		s.Demand[i], s.Price[i] = v, 2
	}
	return s
}

// TestRunByHand: demand 2 a day, S = 5, L = 1, R = 2, one warm-up day.
// Day by day (on hand after demand): 1: start with 5 -> 3; 2: 1; 3: review,
// position 1, order 4 for day 4, sell 1, lose 1 -> 0; 4: +4 -> 2; 5: order 3
// -> 0; 6: +3 -> 1; 7: order 4, lose 1 -> 0; 8: 2; 9: order 3 -> 0; 10: 1;
// 11: order 4, lose 1 -> 0; 12: 2. Measured from day 1+L+R = 4.
func TestRunByHand(t *testing.T) {
	p := &fixed{upTo: 5}
	got, err := Run(constant(2, 13), p, Config{LeadTimeDays: 1, ReviewDays: 2, WarmupDays: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := Result{
		Series: 1, Days: 9, Demand: 18, Sold: 16, LostUnits: 2, LostValue: 4, DemandValue: 36,
		StockoutDays: 2, OnHandUnits: 8, OnHandValue: 16, Orders: 4,
		// Cycles [5,7) ok, [7,9) lost on day 7, [9,11) ok.
		Cycles: 3, CyclesOK: 2,
	}
	if got != want {
		t.Errorf("Run =\n%+v, want\n%+v", got, want)
	}
	if f := got.FillRate(); f != 16.0/18 {
		t.Errorf("fill rate %v, want 16/18", f)
	}
	if v := got.AvgOnHandUnits(); v != 8.0/9 {
		t.Errorf("avg on hand %v, want 8/9", v)
	}
	// The policy sees the warm-up day and then sales, never demand.
	wantSales := []float64{2, 2, 2, 1, 2, 2, 2, 1, 2, 2, 2, 1, 2}
	wantCensored := []bool{false, false, false, true, false, true, false, true, false, true, false, true, false}
	for i := range wantSales {
		if p.days[i] != 15000+forecasting.Day(i) || p.sales[i] != wantSales[i] || p.censored[i] != wantCensored[i] {
			t.Errorf("observation %d: day %d sales %v censored %v; want day %d sales %v censored %v",
				i, p.days[i], p.sales[i], p.censored[i], 15000+i, wantSales[i], wantCensored[i])
		}
	}
}

// TestRunNoLeadTime: with L = 0 an order is on the shelf the day it is
// placed: S = 6 with R = 3 and demand 2 never runs out and ends each cycle
// at 0.
func TestRunNoLeadTime(t *testing.T) {
	got, err := Run(constant(2, 10), &fixed{upTo: 6}, Config{ReviewDays: 3})
	if err != nil {
		t.Fatal(err)
	}
	// Measured days 3..9: on hand 4, 2, 0, 4, 2, 0, 4.
	if got.LostUnits != 0 || got.Days != 7 || got.OnHandUnits != 16 || got.Orders != 3 {
		t.Errorf("Run = %+v; want no loss, 7 days, 16 unit-days, 3 orders", got)
	}
}

// TestRunPackSize: orders are whole packs: S = 5 and a pack of 4 with
// demand 2, L = 0, R = 2: position 1 at each review -> one pack, 5 on hand.
func TestRunPackSize(t *testing.T) {
	c := Config{ReviewDays: 2, Constraints: replenish.Policy{PackSize: 4}}
	got, err := Run(constant(2, 8), &fixed{upTo: 5}, c)
	if err != nil {
		t.Fatal(err)
	}
	// Day 0: 5 -> 3; 1: 1; 2: +4 -> 3; 3: 1; ... measured days 2..7.
	if got.LostUnits != 0 || got.OnHandUnits != 3*3+1*3 || got.Orders != 3 {
		t.Errorf("Run = %+v; want no loss, 12 unit-days, 3 orders", got)
	}
}

func TestRunRejects(t *testing.T) {
	s := constant(1, 5)
	if _, err := Run(s, &fixed{}, Config{ReviewDays: 0}); err == nil {
		t.Error("review period 0 accepted")
	}
	if _, err := Run(s, &fixed{}, Config{ReviewDays: 1, WarmupDays: 5}); err == nil {
		t.Error("warm-up covering the series accepted")
	}
	s.Price = s.Price[:2]
	if _, err := Run(s, &fixed{}, Config{ReviewDays: 1}); err == nil {
		t.Error("short price series accepted")
	}
}

func poissonSeries(seed uint64, mean float64, n int) Series {
	r := rand.New(rand.NewPCG(seed, 1))
	s := constant(0, n)
	l := math.Exp(-mean)
	for i := range s.Demand {
		k, p := 0.0, r.Float64()
		for p > l {
			k++
			p *= r.Float64()
		}
		s.Demand[i] = k
	}
	return s
}

// TestStockcastCalibrated: on Poisson demand (mean 3 a day) the stockcast
// policy, learning from sales only, achieves its fill-rate target within 2
// points, and a higher target costs more stock.
func TestStockcastCalibrated(t *testing.T) {
	c := Config{LeadTimeDays: 7, ReviewDays: 7, WarmupDays: 200}
	var prev Result
	for _, target := range []float64{0.9, 0.95, 0.99} {
		var total Result
		for seed := range uint64(4) {
			r, err := Run(poissonSeries(seed, 3, 900), NewStockcast(target, c), c)
			if err != nil {
				t.Fatal(err)
			}
			total.Add(r)
		}
		t.Logf("target %v: fill rate %.4f, %.1f units on hand", target, total.FillRate(), total.AvgOnHandUnits())
		if f := total.FillRate(); math.Abs(f-target) > 0.02 {
			t.Errorf("target %v: achieved fill rate %.4f", target, f)
		}
		if total.AvgOnHandUnits() <= prev.AvgOnHandUnits() {
			t.Errorf("target %v: %.1f units on hand, not above %.1f", target, total.AvgOnHandUnits(), prev.AvgOnHandUnits())
		}
		prev = total
	}
}

// TestClassicConstantDemand: without variation the classic level is the
// mean demand over L+R days whatever the target: 2 a day, L+R = 5 -> 10,
// which covers every day exactly.
func TestClassicConstantDemand(t *testing.T) {
	c := Config{LeadTimeDays: 2, ReviewDays: 3, WarmupDays: 100}
	p := NewClassic(0.99, c)
	r, err := Run(constant(2, 200), p, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, s := p.Levels(0); s != 10 {
		t.Errorf("classic S = %v, want 10", s)
	}
	if r.LostUnits != 0 {
		t.Errorf("lost %v units on constant demand", r.LostUnits)
	}
}

// TestMinMaxLevels: 13 weeks of 2 a day, L = 7, R = 7, 3 safety days:
// min = 2*(7+3) = 20, max = 20 + 2*7 = 34.
func TestMinMaxLevels(t *testing.T) {
	p := NewMinMax(3, Config{LeadTimeDays: 7, ReviewDays: 7})
	for d := range forecasting.Day(100) {
		p.Observe(d, 2, false)
	}
	p.Observe(100, 0, true) // censored: left out of the average
	if lo, hi := p.Levels(101); lo != 20 || hi != 34 {
		t.Errorf("min/max = %v/%v, want 20/34", lo, hi)
	}
}

// TestSeasonalNaiveLevels: a weekly pattern 0,1,..,6 repeated exactly: the
// naive forecast over 14 days is twice the week (42) and its errors are 0.
func TestSeasonalNaiveLevels(t *testing.T) {
	p := NewSeasonalNaive(0.99, Config{LeadTimeDays: 7, ReviewDays: 7})
	for d := range forecasting.Day(70) {
		p.Observe(d, float64(d.Weekday()), false)
	}
	if _, s := p.Levels(70); s != 42 {
		t.Errorf("S = %v, want 42", s)
	}
}

func TestValueAtFill(t *testing.T) {
	pt := func(sold, value float64) Point {
		// 10 days of one series: value per day = value.
		return Point{Policy: "p", Total: Result{Series: 1, Days: 10, Demand: 100, Sold: sold, OnHandValue: 10 * value}}
	}
	curve := Curve([]Point{pt(96, 300), pt(90, 100), pt(94, 200)}, "p")
	tests := []struct {
		fill, want float64
	}{
		{0.92, 150}, {0.95, 250}, {0.94, 200}, {0.90, 100}, {0.96, 300},
	}
	for _, tt := range tests {
		if got := ValueAtFill(curve, tt.fill); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("ValueAtFill(%v) = %v, want %v", tt.fill, got, tt.want)
		}
	}
	for _, fill := range []float64{0.8, 0.97} {
		if got := ValueAtFill(curve, fill); !math.IsNaN(got) {
			t.Errorf("ValueAtFill(%v) = %v outside the curve, want NaN", fill, got)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		demand []float64
		want   forecasting.Class
	}{
		{[]float64{5, 5, 6, 5}, forecasting.ClassSmooth},
		{[]float64{1, 9, 1, 9}, forecasting.ClassErratic},
		{[]float64{0, 5, 0, 5, 0, 6}, forecasting.ClassIntermittent},
		{[]float64{0, 1, 0, 9, 0, 1}, forecasting.ClassLumpy},
		{[]float64{0, 0, 3}, forecasting.ClassNew},
	}
	for _, tt := range tests {
		if got := Classify(tt.demand, 0, len(tt.demand)); got != tt.want {
			t.Errorf("Classify(%v) = %s, want %s", tt.demand, got, tt.want)
		}
	}
}

// TestStockcastCoverCap: with a cap of 3 days of supply on Poisson demand
// of 3 a day, S is at most about 9, far below the uncapped level.
func TestStockcastCoverCap(t *testing.T) {
	c := Config{LeadTimeDays: 7, ReviewDays: 7}
	s := poissonSeries(7, 3, 300)
	capped := Config{LeadTimeDays: 7, ReviewDays: 7, MaxCoverDays: 3}
	a, b := NewStockcast(0.95, c), NewStockcast(0.95, capped)
	for i, y := range s.Demand {
		a.Observe(s.Start+forecasting.Day(i), y, false)
		b.Observe(s.Start+forecasting.Day(i), y, false)
	}
	next := s.Start + forecasting.Day(len(s.Demand))
	_, free := a.Levels(next)
	_, limited := b.Levels(next)
	if !(limited <= 3*3.6 && limited >= 3*2.4 && free > 40) {
		t.Errorf("S = %v capped, %v free; want about 9 and above 40", limited, free)
	}
}

// TestStockcastPeak: the largest sums of 2 and 3 consecutive days of
// 1 5 2 0 7 1 are 8 (7+1) and 9 (2+0+7); a day more than 364 days ago no
// longer counts.
func TestStockcastPeak(t *testing.T) {
	p := NewStockcast(0.95, Config{LeadTimeDays: 1, ReviewDays: 1}).(*Stockcast)
	for i, y := range []float64{1, 5, 2, 0, 7, 1} {
		p.Observe(forecasting.Day(i), y, false)
	}
	if got2, got3 := p.peak(2), p.peak(3); got2 != 8 || got3 != 9 {
		t.Errorf("peak(2), peak(3) = %v, %v; want 8, 9", got2, got3)
	}
	q := NewStockcast(0.95, Config{LeadTimeDays: 1, ReviewDays: 1}).(*Stockcast)
	q.Observe(0, 100, false)
	for d := forecasting.Day(1); d <= 364; d++ {
		q.Observe(d, 1, false)
	}
	if got := q.peak(1); got != 1 {
		t.Errorf("peak(1) = %v after the 100 left the year, want 1", got)
	}
}

// TestStockcastPeakCap: with a peak factor of 1, S is at most the largest
// L+R-day sales seen (here 14 days of exactly 3: 42).
func TestStockcastPeakCap(t *testing.T) {
	c := Config{LeadTimeDays: 7, ReviewDays: 7, PeakFactor: 1}
	p := NewStockcast(0.95, c)
	for d := range forecasting.Day(200) {
		p.Observe(d, 3, false)
	}
	if _, s := p.Levels(200); !(s <= 42 && s > 40) {
		t.Errorf("S = %v, want at most 42 and above 40", s)
	}
}

// recorder is a portfolio of fixed policies: it orders each series up to
// its own level and records what it is shown.
type recorder struct {
	fixed  []*fixed
	values [][]float64
	days   []forecasting.Day
	seen   []int // days of series 0 observed when asked
}

func (p *recorder) Observe(i int, day forecasting.Day, sales float64, censored bool) {
	p.fixed[i].Observe(day, sales, censored)
}

func (p *recorder) Levels(day forecasting.Day, value []float64) []float64 {
	p.days = append(p.days, day)
	p.seen = append(p.seen, len(p.fixed[0].days))
	p.values = append(p.values, append([]float64(nil), value...))
	out := make([]float64, len(p.fixed))
	for i, f := range p.fixed {
		out[i] = f.upTo
	}
	return out
}

// TestRunPortfolioLikeRun: two series in lockstep give what Run gives
// each alone (TestRunByHand's numbers for the first), the portfolio sees
// sales and stockout flags only, as a Policy does, is asked for levels on
// the review days only, before their demand, and is shown the prices of
// those days.
func TestRunPortfolioLikeRun(t *testing.T) {
	a := constant(2, 13)
	b := poissonSeries(3, 2, 13)
	for i := range b.Price {
		b.Price[i] = float64(i)
	}
	c := Config{LeadTimeDays: 1, ReviewDays: 2, WarmupDays: 1}
	p := &recorder{fixed: []*fixed{{upTo: 5}, {upTo: 4}}}
	got, err := RunPortfolio([]Series{a, b}, p, c)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range []Series{a, b} {
		alone := &fixed{upTo: p.fixed[i].upTo}
		want, err := Run(s, alone, c)
		if err != nil {
			t.Fatal(err)
		}
		if got[i] != want {
			t.Errorf("series %d: %+v, alone %+v", i, got[i], want)
		}
		for d := range alone.sales {
			if p.fixed[i].sales[d] != alone.sales[d] || p.fixed[i].censored[d] != alone.censored[d] {
				t.Errorf("series %d day %d: portfolio saw %v/%v, alone %v/%v", i, d,
					p.fixed[i].sales[d], p.fixed[i].censored[d], alone.sales[d], alone.censored[d])
			}
		}
	}
	// Reviews on days 1, 3, ..., 11 (warm-up is day 0), each asked before
	// that day's sales were observed.
	if len(p.days) != 6 {
		t.Fatalf("asked for levels on %v, want 6 review days", p.days)
	}
	for k, d := range p.days {
		if want := a.Start + forecasting.Day(1+2*k); d != want {
			t.Errorf("review %d on day %d, want %d", k, d, want)
		}
		if p.seen[k] != 1+2*k {
			t.Errorf("review on day %d had seen %d days, want the %d before it", d, p.seen[k], 1+2*k)
		}
		if p.values[k][1] != float64(1+2*k) {
			t.Errorf("review %d shown price %v, want %v", k, p.values[k][1], 1+2*k)
		}
	}
	if _, err := RunPortfolio([]Series{a, constant(2, 12)}, p, c); err == nil {
		t.Error("series of different lengths accepted")
	}
}

// TestStockcastPortfolio: eight Poisson series, means 0.5 to 12 a day and
// unit values 1 to 40, L = R = 7, one lambda (no class band). The
// allocation, learning from sales only (censored days imputed), achieves
// the portfolio target within 1.5 points; at a 95% target it serves more than stockcast-uniform
// at 90% (which over-delivers) with less stock value; the dear slow series
// gets less service than the cheap fast one.
func TestStockcastPortfolio(t *testing.T) {
	means := []float64{0.5, 1, 2, 3, 5, 8, 10, 12}
	values := []float64{40, 1, 20, 2, 10, 3, 5, 1}
	var series []Series
	for i, m := range means {
		s := poissonSeries(uint64(10+i), m, 800)
		for d := range s.Price {
			s.Price[d] = values[i]
		}
		series = append(series, s)
	}
	c := Config{LeadTimeDays: 7, ReviewDays: 7, WarmupDays: 200}
	portfolio := map[float64]Result{}
	uniform := map[float64]Result{}
	for _, target := range []float64{0.9, 0.95} {
		rs, err := RunPortfolio(series, NewStockcastPortfolio(target, c, len(series)), c)
		if err != nil {
			t.Fatal(err)
		}
		var total, u Result
		for i, s := range series {
			total.Add(rs[i])
			r, err := Run(s, NewStockcast(target, c), c)
			if err != nil {
				t.Fatal(err)
			}
			u.Add(r)
		}
		portfolio[target], uniform[target] = total, u
		t.Logf("target %v: portfolio fill %.4f value %.0f; uniform fill %.4f value %.0f; dear slow %.3f, cheap fast %.3f",
			target, total.FillRate(), total.AvgOnHandValue(), u.FillRate(), u.AvgOnHandValue(),
			rs[0].FillRate(), rs[7].FillRate())
		// Within 1.5 points (0.9: 91.45%, 0.95: 95.78% at 1e831a4).
		// The forecast itself over-delivers on Poisson demand
		// (dispersion 1.22 learnt from Poisson(4) days):
		// stockcast-uniform, same forecasts, reaches 92.6% for 90%.
		if math.Abs(total.FillRate()-target) > 0.015 {
			t.Errorf("target %v: portfolio fill %.4f", target, total.FillRate())
		}
		if !(rs[0].FillRate() < rs[7].FillRate()) {
			t.Errorf("target %v: dear slow series served %.3f, cheap fast %.3f", target, rs[0].FillRate(), rs[7].FillRate())
		}
	}
	p, u := portfolio[0.95], uniform[0.9]
	if !(p.FillRate() > u.FillRate() && p.AvgOnHandValue() < u.AvgOnHandValue()) {
		t.Errorf("portfolio at 0.95: %.4f at %.0f; uniform at 0.9: %.4f at %.0f", p.FillRate(), p.AvgOnHandValue(), u.FillRate(), u.AvgOnHandValue())
	}
}

// TestStockcastPortfolioMaxLevel: with a max-level factor of 1 a series
// that sold exactly 3 a day is never ordered above its largest 14-day
// sales (42), however high the target.
func TestStockcastPortfolioMaxLevel(t *testing.T) {
	c := Config{LeadTimeDays: 7, ReviewDays: 7, MaxLevelFactor: 1}
	p := NewStockcastPortfolio(0.995, c, 1)
	for d := range forecasting.Day(200) {
		p.Observe(0, d, 3, false)
	}
	if s := p.Levels(200, []float64{1})[0]; !(s <= 42 && s >= 40) {
		t.Errorf("S = %v, want at most 42 and at least 40", s)
	}
	free := NewStockcastPortfolio(0.995, Config{LeadTimeDays: 7, ReviewDays: 7}, 1)
	for d := range forecasting.Day(200) {
		free.Observe(0, d, 3, false)
	}
	if s := free.Levels(200, []float64{1})[0]; !(s > 42) {
		t.Errorf("S = %v without the limit, want above 42 at a 99.5%% target", s)
	}
}

// TestSalesYearPeak: the largest sums of 2 and 3 consecutive days of
// 1 5 2 0 7 1 are 8 and 9.
func TestSalesYearPeak(t *testing.T) {
	var h salesYear
	for _, y := range []float64{1, 5, 2, 0, 7, 1} {
		h.add(y)
	}
	if a, b := h.peak(2), h.peak(3); a != 8 || b != 9 {
		t.Errorf("peak(2), peak(3) = %v, %v; want 8, 9", a, b)
	}
}
