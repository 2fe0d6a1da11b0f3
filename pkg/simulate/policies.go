package simulate

import (
	"math"

	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/replenish"
)

// Spec names a policy family and makes one Policy per series and target.
type Spec struct {
	Name string
	// What the sweep varies (printed in the table's header).
	Knob string
	// Targets swept; the first-class target of calibration is 0.95.
	Targets []float64
	// New makes a per-series policy; NewPortfolio, when set instead, a
	// policy that decides for all n series together.
	New          func(target float64, c Config) Policy
	NewPortfolio func(target float64, c Config, n int) Portfolio
}

// DefaultTargets are the service targets swept for the target-driven policies.
func DefaultTargets() []float64 {
	return []float64{0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995}
}

// baselineTargets reach further up: a cycle service level target achieves a
// lower fill rate than the same fill-rate target, and the curves must cross
// stockcast's achieved fill rate to be compared (on Online Retail classic
// reaches 88% at 0.9999, z = 3.7; the last targets are z = 4.3, 5.2, 6.4
// and 7.9).
func baselineTargets() []float64 {
	return []float64{0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.975, 0.99, 0.995, 0.999, 0.9995, 0.9999,
		1 - 1e-5, 1 - 1e-7, 1 - 1e-10, 1 - 1e-15}
}

// minMaxSafetyDays are the odoo-minmax sweep's safety days, up to 120
// for the same reason.
func minMaxSafetyDays() []float64 {
	return []float64{0, 1, 2, 3, 4, 5, 7, 9, 12, 15, 20, 25, 30, 40, 50, 70, 90, 120}
}

// Specs returns stockcast's policy and the three baselines, all periodic
// review with the configured lead time and review period.
func Specs() []Spec {
	return []Spec{
		{Name: "stockcast", Knob: "portfolio fill-rate target", Targets: DefaultTargets(), NewPortfolio: NewStockcastPortfolio},
		{Name: "classic", Knob: "cycle service level (z)", Targets: baselineTargets(), New: NewClassic},
		{Name: "seasonal-naive", Knob: "cycle service level (z)", Targets: baselineTargets(), New: NewSeasonalNaive},
		{Name: "odoo-minmax", Knob: "safety days", Targets: minMaxSafetyDays(), New: NewMinMax},
	}
}

// UniformSpec is stockcast's forecasts with the same fill-rate target for
// every series (FillRateLevel per series): what the allocation of
// NewStockcastPortfolio is compared with.
func UniformSpec() Spec {
	return Spec{Name: "stockcast-uniform", Knob: "fill-rate target, every series", Targets: DefaultTargets(), New: NewStockcast}
}

// stockcastLevels are the quantile levels the stockcast policy asks the
// forecast for: dense enough for the expected shortage to be an integral.
func stockcastLevels() []float64 {
	var out []float64
	for i := 1; i < 200; i++ {
		out = append(out, float64(i)/200)
	}
	return append(out, 0.9975, 0.999, 0.9995)
}

// Stockcast is stockcast's policy: periodic review (R, S) with S the
// smallest level whose expected shortage per cycle meets the fill-rate
// target (replenish.FillRateLevel, corrected for lost sales by
// replenish.LostSalesTarget), capped by Config.PeakFactor and
// Config.MaxCoverDays, computed from the lead-time demand
// quantiles of a forecasting.State that sees the sales as they come, with
// stockout days flagged as censored.
type Stockcast struct {
	state  forecasting.State
	fill   float64
	lead   int
	review int
	levels []float64
	// cover caps S at this many days of forecast mean demand (0: none).
	cover int
	// peakFactor > 0 caps S at peakFactor times the largest sales of
	// L+R consecutive days in the last year (history holds it).
	peakFactor float64
	history    salesYear
}

// salesYear keeps the last 364 days of a series' sales.
type salesYear struct {
	days [364]float64
	seen int
}

func (h *salesYear) add(sales float64) {
	h.days[h.seen%len(h.days)] = sales
	h.seen++
}

// peak is the largest sum of n consecutive days' sales in the year.
func (h *salesYear) peak(n int) float64 {
	k := min(h.seen, len(h.days))
	var best, sum float64
	for i := range k {
		// Oldest first.
		sum += h.days[(h.seen-k+i)%len(h.days)]
		if i >= n {
			sum -= h.days[(h.seen-k+i-n)%len(h.days)]
		}
		best = max(best, sum)
	}
	return best
}

// NewStockcast returns the stockcast policy for a fill-rate target.
func NewStockcast(target float64, c Config) Policy {
	return &Stockcast{fill: target, lead: c.LeadTimeDays, review: c.ReviewDays, levels: stockcastLevels(),
		cover: c.MaxCoverDays, peakFactor: c.PeakFactor}
}

// Observe implements Policy.
func (p *Stockcast) Observe(day forecasting.Day, sales float64, censored bool) {
	p.state.Observe(day, sales, censored)
	p.history.add(sales)
}

// peak is the largest sum of n consecutive days' sales in the history.
func (p *Stockcast) peak(n int) float64 { return p.history.peak(n) }

// Levels implements Policy.
func (p *Stockcast) Levels(day forecasting.Day) (float64, float64) {
	// A lead-time entry of Days = d covers day and the d days after it.
	protect := p.lead + p.review - 1
	spans := []int{protect}
	if p.lead > 0 {
		spans = append(spans, p.lead-1)
	}
	f := p.state.Forecast(forecasting.Request{StartDay: day, Horizon: 1, QuantileLevels: p.levels, LeadTimes: spans})
	pq := replenish.Quantiles{Levels: f.QuantileLevels, Values: f.LeadTime[0].Quantiles}
	var lead *replenish.Quantiles
	var leadMean float64
	if p.lead > 0 {
		lead = &replenish.Quantiles{Levels: f.QuantileLevels, Values: f.LeadTime[1].Quantiles}
		leadMean = f.LeadTime[1].Mean
	}

	s, err := replenish.FillRateLevel(pq, f.LeadTime[0].Mean, lead, leadMean, replenish.LostSalesTarget(p.fill))
	if err != nil {
		return math.Inf(1), 0
	}
	if p.cover > 0 {
		s = min(s, f.LeadTime[0].Mean/float64(protect+1)*float64(p.cover))
	}
	if p.peakFactor > 0 {
		s = min(s, p.peakFactor*p.peak(protect+1))
	}
	return math.Inf(1), s
}

// StockcastPortfolio is stockcast's policy: periodic review (R, S) with
// the levels of all series chosen together at each review by
// replenish.AllocateFillRate, from the lead-time demand quantiles of a
// forecasting.State per series (updated with each day's sales, stockout
// days flagged as censored) and each series' unit value: the least stock
// value whose expected portfolio fill rate (lost-sales corrected by
// replenish.LostSalesTarget) meets the target.
type StockcastPortfolio struct {
	states []forecasting.State
	fill   float64
	lead   int
	review int
	levels []float64
	items  []replenish.AllocItem
	// band > 0 keeps each demand class (classes[i] when set, else the
	// forecast's own, from the sales seen) within band of the target, ex
	// ante.
	band    float64
	class   []string
	classes []forecasting.Class
	// maxFactor > 0 limits each series' level to maxFactor times its
	// largest sales of L+R consecutive days in the last year (years).
	maxFactor float64
	years     []salesYear
	// model is Config.Intermittent; windows hold each series' recent
	// sales for the compound models.
	model   string
	jitter  bool
	windows []salesWindow
	// impute feeds a censored day to the forecast as E[demand | demand >=
	// sales] under its own forecast of that day, rather than leaving the
	// day out (Config.Censored).
	impute bool
	// lostSales counts shortages by replenish.LostSalesShortage
	// (Config.Shortage).
	lostSales bool
}

// How the stockcast portfolio policy counts a level's expected shortage
// (Config.Shortage).
const (
	// ShortageBackorder is the backorder formula B(S), the target
	// corrected by replenish.LostSalesTarget.
	ShortageBackorder = "backorder"
	// ShortageLostSales is replenish.LostSalesShortage: the units lost
	// during the lead time stay on the shelf, at their mean.
	ShortageLostSales = "lost-sales"
)

// NewStockcastPortfolio returns the stockcast policy for n series and a
// portfolio fill-rate target.
func NewStockcastPortfolio(target float64, c Config, n int) Portfolio {
	p := &StockcastPortfolio{states: make([]forecasting.State, n), fill: target, lead: c.LeadTimeDays,
		review: c.ReviewDays, levels: stockcastLevels(), items: make([]replenish.AllocItem, n),
		band: c.ClassBand, class: make([]string, n)}
	if len(c.Classes) == n {
		p.classes = c.Classes
	}
	if c.MaxLevelFactor > 0 {
		p.maxFactor, p.years = c.MaxLevelFactor, make([]salesYear, n)
	}
	p.model, p.jitter, p.impute = c.Intermittent, c.Jitter, c.Censored != CensoredDrop
	p.lostSales = c.Shortage == ShortageLostSales
	if p.model == "" {
		p.model = IntermittentForecast
	}
	if p.model != IntermittentForecast {
		days := c.HistoryDays
		if days <= 0 {
			days = DefaultHistoryDays
		}
		p.windows = make([]salesWindow, n)
		for i := range p.windows {
			p.windows[i] = newSalesWindow(days)
		}
	}
	return p
}

// Observe implements Portfolio.
func (p *StockcastPortfolio) Observe(i int, day forecasting.Day, sales float64, censored bool) {
	if censored && p.impute && sales > 0 {
		sales, censored = imputeCensored(&p.states[i], day, sales, p.levels), false
	}
	p.states[i].Observe(day, sales, censored)
	if p.years != nil {
		p.years[i].add(sales)
	}
	if p.windows != nil {
		p.windows[i].add(sales, censored)
	}
}

// Levels implements Portfolio.
func (p *StockcastPortfolio) Levels(day forecasting.Day, value []float64) []float64 {
	// The backorder formula's targets are corrected for lost sales; the
	// lost-sales shortage takes them as they are.
	target := replenish.LostSalesTarget
	if p.lostSales {
		target = func(f float64) float64 { return f }
	}
	var bands map[string]replenish.Band
	if p.band > 0 {
		bands = map[string]replenish.Band{}
		hi := 1.0
		if p.fill+p.band < 1 {
			hi = target(p.fill + p.band)
		}
		for _, c := range []forecasting.Class{forecasting.ClassSmooth, forecasting.ClassErratic,
			forecasting.ClassIntermittent, forecasting.ClassLumpy} {
			bands[string(c)] = replenish.Band{Lo: target(p.fill - p.band), Hi: hi}
		}
	}
	for i := range p.states {
		var class forecasting.Class
		p.items[i], class = leadTimeItem(&p.states[i], day, p.lead, p.review, p.levels)
		if p.windows != nil {
			// The class and, for intermittent and lumpy series, the
			// lead-time demand from the series' own recent sales.
			c, own := p.windows[i].compound(p.model, p.jitter)
			if own != forecasting.ClassNew {
				class = own
			}
			if own == forecasting.ClassIntermittent || own == forecasting.ClassLumpy {
				if it, err := compoundItem(c, p.lead, p.review, p.levels); err == nil {
					p.items[i] = it
				}
			}
		}
		if p.classes != nil {
			class = p.classes[i]
		}
		p.items[i].UnitValue = value[i]
		p.items[i].LostSales = p.lostSales
		if p.years != nil {
			// At least one unit: a series without sales this year may sell.
			p.items[i].MaxLevel = max(p.maxFactor*p.years[i].peak(p.lead+p.review), 1)
		}
		p.class[i] = string(class)
	}
	a, _, err := replenish.AllocateFillRateBounded(p.items, p.class, target(p.fill), bands)
	if err != nil {
		return make([]float64, len(p.states))
	}
	return a.Levels
}

// leadTimeItem is a series' demand over the L+R days an order placed on
// day protects and over the L days before it arrives, from its forecast.
func leadTimeItem(s *forecasting.State, day forecasting.Day, lead, review int, levels []float64) (replenish.AllocItem, forecasting.Class) {
	// A lead-time entry of Days = d covers day and the d days after it.
	spans := []int{lead + review - 1}
	if lead > 0 {
		spans = append(spans, lead-1)
	}
	f := s.Forecast(forecasting.Request{StartDay: day, Horizon: 1, QuantileLevels: levels, LeadTimes: spans})
	it := replenish.AllocItem{
		Protect:     replenish.Quantiles{Levels: f.QuantileLevels, Values: f.LeadTime[0].Quantiles},
		ProtectMean: f.LeadTime[0].Mean,
	}
	if lead > 0 {
		it.Lead = &replenish.Quantiles{Levels: f.QuantileLevels, Values: f.LeadTime[1].Quantiles}
		it.LeadMean = f.LeadTime[1].Mean
	}
	return it, f.Class
}

// window keeps the last n uncensored daily sales: what a spreadsheet
// baseline computes its average and spread from. Censored days (a shelf
// found empty) are left out so that a stockout does not look like no demand.
type window struct {
	vals []float64
	next int
	full bool
}

func newWindow(n int) window { return window{vals: make([]float64, n)} }

func (w *window) add(y float64) {
	w.vals[w.next] = y
	w.next++
	if w.next == len(w.vals) {
		w.next, w.full = 0, true
	}
}

func (w *window) len() int {
	if w.full {
		return len(w.vals)
	}
	return w.next
}

// meanSD returns the mean and sample standard deviation.
func (w *window) meanSD() (float64, float64) {
	n := w.len()
	if n == 0 {
		return 0, 0
	}
	var sum, sq float64
	for _, v := range w.vals[:n] {
		sum += v
	}
	mean := sum / float64(n)
	for _, v := range w.vals[:n] {
		sq += (v - mean) * (v - mean)
	}
	if n < 2 {
		return mean, 0
	}
	return mean, math.Sqrt(sq / float64(n-1))
}

// baselineWindow is the history the baselines estimate from: 13 weeks.
const baselineWindow = 91

// Classic is the textbook policy: (R, S) with
// S = mean*(L+R) + z*sigma*sqrt(L+R), mean and sigma of the daily sales of
// the last 13 weeks, z the normal quantile at the target cycle service level.
type Classic struct {
	w       window
	target  float64
	protect int
}

// NewClassic returns the classic z*sigma*sqrt(L) policy.
func NewClassic(target float64, c Config) Policy {
	return &Classic{w: newWindow(baselineWindow), target: target, protect: c.LeadTimeDays + c.ReviewDays}
}

// Observe implements Policy.
func (p *Classic) Observe(_ forecasting.Day, sales float64, censored bool) {
	if !censored {
		p.w.add(sales)
	}
}

// Levels implements Policy.
func (p *Classic) Levels(forecasting.Day) (float64, float64) {
	mean, sd := p.w.meanSD()
	return math.Inf(1), max(replenish.ClassicLevel(mean, sd, p.protect, p.target), 0)
}

// MinMax is an Odoo-style reordering rule: min = average daily sales *
// (lead time + safety days), max = min + average daily sales * review
// period; at a review, when the position is at or below min, order up to
// max. The average is over the last 13 weeks.
type MinMax struct {
	w            window
	safetyDays   float64
	lead, review int
}

// NewMinMax returns the min/max rule with target safety days.
func NewMinMax(safetyDays float64, c Config) Policy {
	return &MinMax{w: newWindow(baselineWindow), safetyDays: safetyDays, lead: c.LeadTimeDays, review: c.ReviewDays}
}

// Observe implements Policy.
func (p *MinMax) Observe(_ forecasting.Day, sales float64, censored bool) {
	if !censored {
		p.w.add(sales)
	}
}

// Levels implements Policy.
func (p *MinMax) Levels(forecasting.Day) (float64, float64) {
	ads, _ := p.w.meanSD()
	lo := ads * (float64(p.lead) + p.safetyDays)
	return lo, lo + ads*float64(p.review)
}

// SeasonalNaive forecasts each day as the sales of the same weekday a week
// earlier; S is that forecast summed over L+R days plus z times the RMSE of
// its daily errors (last 13 weeks) times sqrt(L+R).
type SeasonalNaive struct {
	last    [7]float64 // last uncensored sales per weekday
	seen    [7]bool
	errs    window
	target  float64
	protect int
}

// NewSeasonalNaive returns the seasonal-naive reorder point policy.
func NewSeasonalNaive(target float64, c Config) Policy {
	return &SeasonalNaive{errs: newWindow(baselineWindow), target: target, protect: c.LeadTimeDays + c.ReviewDays}
}

// Observe implements Policy.
func (p *SeasonalNaive) Observe(day forecasting.Day, sales float64, censored bool) {
	if censored {
		return
	}
	wd := day.Weekday()
	if p.seen[wd] {
		p.errs.add(sales - p.last[wd])
	}
	p.last[wd], p.seen[wd] = sales, true
}

// Levels implements Policy.
func (p *SeasonalNaive) Levels(day forecasting.Day) (float64, float64) {
	var sum float64
	for i := range p.protect {
		sum += p.last[(day + forecasting.Day(i)).Weekday()]
	}
	n := p.errs.len()
	var sq float64
	for _, e := range p.errs.vals[:n] {
		sq += e * e
	}
	rmse := 0.0
	if n > 0 {
		rmse = math.Sqrt(sq / float64(n))
	}
	return math.Inf(1), max(sum+replenish.NormalQuantile(p.target)*rmse*math.Sqrt(float64(p.protect)), 0)
}
