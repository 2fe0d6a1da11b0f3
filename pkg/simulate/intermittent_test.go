package simulate

import (
	"math"
	"testing"

	"github.com/stockcast/stockcast/pkg/forecasting"
)

// TestSalesWindowCompound: the estimates from a window, by hand. Days
// (sales, censored), oldest first: 2, 0, 0, 3, 0(censored: left out), 1,
// 0, 0, 4, 0, then 0 0 1 repeated to fill 28 counted days.
func TestSalesWindowCompound(t *testing.T) {
	w := newSalesWindow(100)
	type day struct {
		y float64
		c bool
	}
	days := []day{{2, false}, {0, false}, {0, false}, {3, false}, {0, true}, {1, false}, {0, false}, {0, false}, {4, false}, {0, false}}
	for len(days) < 29 {
		days = append(days, day{0, false}, day{0, false}, day{1, false})
	}
	days = days[:29] // 28 counted
	var sizes []float64
	var n00, n01, n10, n11 int
	prev := -1
	for _, d := range days {
		w.add(d.y, d.c)
		if d.c && d.y <= 0 {
			prev = -1
			continue
		}
		on := 0
		if d.y > 0 {
			on = 1
			sizes = append(sizes, d.y)
		}
		if prev >= 0 {
			switch [2]int{prev, on} {
			case [2]int{0, 0}:
				n00++
			case [2]int{0, 1}:
				n01++
			case [2]int{1, 0}:
				n10++
			default:
				n11++
			}
		}
		prev = on
	}
	// By hand: 28 counted days, sizes 2 3 1 4 and six 1s (the pattern
	// from day 11 on); no two demand days in a row.
	if len(sizes) != 10 || n11 != 0 {
		t.Fatalf("test set-up: %d sizes, n11 = %d", len(sizes), n11)
	}
	p := 10.0 / 28
	c, class := w.compound(IntermittentCompound, false)
	if want := (float64(n01) + p) / float64(n00+n01+1); math.Abs(c.P01-want) > 1e-12 {
		t.Errorf("P01 %v, want %v", c.P01, want)
	}
	if want := p / float64(n10+1); math.Abs(c.P11-want) > 1e-12 {
		t.Errorf("P11 %v, want %v", c.P11, want)
	}
	if len(c.Sizes) != 10 || c.Last || c.Occurred != nil { // the last day (28th) has no demand
		t.Errorf("sizes %v last %v occurred %v", c.Sizes, c.Last, c.Occurred)
	}
	// ADI 2.8; sizes mean 1.7, mean square (4+9+1+16+6)/10 = 3.6: CV2 =
	// (3.6 - 2.89)/2.89 = 0.246: intermittent.
	if class != forecasting.ClassIntermittent {
		t.Errorf("class %s, want intermittent", class)
	}
	iid, _ := w.compound(IntermittentCompoundIID, false)
	if iid.P01 != p || iid.P11 != p {
		t.Errorf("iid: %v %v, want %v", iid.P01, iid.P11, p)
	}
	win, _ := w.compound(IntermittentCompoundWindows, false)
	if len(win.Occurred) != 28 || win.Occurred[0] != true || win.Occurred[1] != false {
		t.Errorf("occurred %v", win.Occurred)
	}
	// Too little history: new.
	short := newSalesWindow(100)
	for range 27 {
		short.add(1, false)
	}
	if _, class := short.compound(IntermittentCompound, false); class != forecasting.ClassNew {
		t.Errorf("27 days: class %s, want new", class)
	}
}

// TestMeanAbove: from the quantiles of Poisson(4) at the policy's levels
// (closed form), E[D | D >= s] is Poisson(4)'s (closed form) within the
// discretisation of the levels (1%); sales beyond every quantile are
// returned as they are.
func TestMeanAbove(t *testing.T) {
	pmf := func(k int) float64 {
		lg, _ := math.Lgamma(float64(k) + 1)
		return math.Exp(float64(k)*math.Log(4) - 4 - lg)
	}
	levels := stockcastLevels()
	q := make([]float64, len(levels))
	for i, l := range levels {
		cum := 0.0
		for k := 0; ; k++ {
			cum += pmf(k)
			if cum >= l {
				q[i] = float64(k)
				break
			}
		}
	}
	for _, sales := range []float64{0, 1, 4, 7} {
		var mass, sum float64
		for k := int(sales); k < 60; k++ {
			mass += pmf(k)
			sum += float64(k) * pmf(k)
		}
		want := sum / mass
		if got := meanAbove(levels, q, sales); math.Abs(got-want) > 0.01*want {
			t.Errorf("sales %v: %v, want %v within 1%%", sales, got, want)
		}
	}
	if got := meanAbove(levels, q, 50); got != 50 {
		t.Errorf("sales 50: %v, want 50", got)
	}
}

// TestImputeCensoredLearnsMore: a portfolio policy facing Poisson(3)
// demand that it keeps running out of (target 0.8) learns a higher mean
// when it imputes censored days than when it leaves them out, and the
// imputed one is closer to the true mean of 3 a day.
func TestImputeCensoredLearnsMore(t *testing.T) {
	s := poissonSeries(3, 3, 700)
	mean := map[string]float64{}
	for _, mode := range []string{CensoredImpute, CensoredDrop} {
		c := Config{LeadTimeDays: 7, ReviewDays: 7, WarmupDays: 200, Censored: mode}
		p := NewStockcastPortfolio(0.8, c, 1).(*StockcastPortfolio)
		if _, err := RunPortfolio([]Series{s}, p, c); err != nil {
			t.Fatal(err)
		}
		f := p.states[0].Forecast(forecasting.Request{StartDay: s.Start + forecasting.Day(len(s.Demand)), Horizon: 7, LeadTimes: []int{6}})
		mean[mode] = f.LeadTime[0].Mean / 7
	}
	t.Logf("mean daily demand learnt: impute %.3f, drop %.3f (true 3)", mean[CensoredImpute], mean[CensoredDrop])
	if !(mean[CensoredImpute] > mean[CensoredDrop] && math.Abs(mean[CensoredImpute]-3) < math.Abs(mean[CensoredDrop]-3)) {
		t.Errorf("impute %.3f, drop %.3f, true 3", mean[CensoredImpute], mean[CensoredDrop])
	}
}

// recording wraps a portfolio policy and keeps the levels it names.
type recording struct {
	Portfolio
	days   []forecasting.Day
	levels [][]float64
	cens   int
}

func (r *recording) Observe(i int, day forecasting.Day, sales float64, censored bool) {
	if censored && sales > 0 {
		r.cens++
	}
	r.Portfolio.Observe(i, day, sales, censored)
}

func (r *recording) Levels(day forecasting.Day, value []float64) []float64 {
	l := r.Portfolio.Levels(day, value)
	r.days = append(r.days, day)
	r.levels = append(r.levels, append([]float64(nil), l...))
	return l
}

// TestStockcastPortfolioNoPeeking: two runs whose demand is the same
// before day 403 and different from it on (twice the demand plus one) name
// the same levels on every review up to day 403 included, censored days imputed included (the
// target of 0.8 runs out often), and different ones later.
func TestStockcastPortfolioNoPeeking(t *testing.T) {
	const cut = 403 // a review day (200 + 29*7): its levels see days before it only
	base := []Series{poissonSeries(21, 2, 700), poissonSeries(22, 0.3, 700)}
	changed := make([]Series, len(base))
	for k, s := range base {
		c := s
		c.Demand = append([]float64(nil), s.Demand...)
		for i := cut; i < len(c.Demand); i++ {
			c.Demand[i] = 2*c.Demand[i] + 1
		}
		changed[k] = c
	}
	c := Config{LeadTimeDays: 7, ReviewDays: 7, WarmupDays: 200, ClassBand: 0.02}
	var runs []*recording
	for _, series := range [][]Series{base, changed} {
		r := &recording{Portfolio: NewStockcastPortfolio(0.8, c, len(series))}
		if _, err := RunPortfolio(series, r, c); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
	}
	a, b := runs[0], runs[1]
	if a.cens == 0 {
		t.Fatal("no censored day with sales: the imputation is not exercised")
	}
	differ := false
	for j, day := range a.days {
		same := a.levels[j][0] == b.levels[j][0] && a.levels[j][1] == b.levels[j][1]
		if int(day-base[0].Start) <= cut && !same {
			t.Errorf("day %d (before the change on %d): levels %v and %v", day-base[0].Start, cut, a.levels[j], b.levels[j])
		}
		differ = differ || !same
	}
	if !differ {
		t.Error("the levels never differ after the demand does")
	}
}
