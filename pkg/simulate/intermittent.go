package simulate

import (
	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/replenish"
)

// Lead-time demand models of the stockcast policy for intermittent and
// lumpy series (Config.Intermittent).
const (
	// IntermittentForecast uses the forecast's lead-time quantiles for
	// every series.
	IntermittentForecast = "forecast"
	// IntermittentCompound uses replenish.Compound built from the series'
	// own recent sales (Markov occurrence, empirical sizes) for the series
	// whose class, computed on the same sales, is intermittent or lumpy.
	IntermittentCompound = "compound"
	// IntermittentCompoundIID is the same with independent occurrence
	// (one probability, no Markov chain).
	IntermittentCompoundIID = "compound-iid"
	// IntermittentCompoundWindows takes the number of demand days in
	// the lead time from the series' own windows of as many days
	// (replenish.Compound.Occurred).
	IntermittentCompoundWindows = "compound-windows"
)

// DefaultHistoryDays is how many of its last days a series' compound
// demand is estimated from.
const DefaultHistoryDays = 182

// salesWindow keeps the last days of a series' sales and censored flags:
// what the stockcast policy estimates a compound demand from.
type salesWindow struct {
	sales    []float64
	censored []bool
	next     int
	seen     int
}

func newSalesWindow(n int) salesWindow {
	return salesWindow{sales: make([]float64, n), censored: make([]bool, n)}
}

func (h *salesWindow) add(sales float64, censored bool) {
	h.sales[h.next], h.censored[h.next] = sales, censored
	h.next = (h.next + 1) % len(h.sales)
	h.seen++
}

// compound estimates the demand process from the window, oldest day first:
// occurrence from the uncensored days (a day that ended with an empty shelf
// says demand >= sales; with sales > 0 it counts as a demand day of that
// size, a lower bound, with no sales it is left out: the shelf may have
// been empty all day), transitions from pairs of consecutive days both
// counted, sizes the non-zero sales. The class is Syntetos-Boylan's on the
// same days; ClassNew with fewer than 3 sizes or 28 days. markov false
// estimates one occurrence probability.
func (h *salesWindow) compound(model string, jitter bool) (replenish.Compound, forecasting.Class) {
	k := min(h.seen, len(h.sales))
	var days, n00, n01, n10, n11 int
	var sum, sq float64
	sizes := make([]float64, 0, k)
	var occurred []bool
	prev := -1 // state of the previous counted day, -1: none
	last := false
	for i := range k {
		j := (h.next - k + i + len(h.sales)) % len(h.sales)
		y, c := h.sales[j], h.censored[j]
		if c && y <= 0 {
			prev = -1
			continue
		}
		days++
		if model == IntermittentCompoundWindows {
			occurred = append(occurred, y > 0)
		}
		on := 0
		if y > 0 {
			on = 1
			sizes = append(sizes, y)
			sum += y
			sq += y * y
		}
		switch {
		case prev == 0 && on == 0:
			n00++
		case prev == 0:
			n01++
		case prev == 1 && on == 0:
			n10++
		case prev == 1:
			n11++
		}
		prev = on
		if i == k-1 {
			last = on == 1
		}
	}
	if days < 28 || len(sizes) < 3 {
		return replenish.Compound{}, forecasting.ClassNew
	}
	p := float64(len(sizes)) / float64(days)
	c := replenish.Compound{P01: p, P11: p, Last: last, Sizes: sizes, Jitter: jitter}
	switch model {
	case IntermittentCompoundWindows:
		c.Occurred = occurred
	case IntermittentCompound:
		// One pseudo-observation at p on each row keeps a row without
		// transitions at the unconditional probability.
		c.P01 = (float64(n01) + p) / float64(n00+n01+1)
		c.P11 = (float64(n11) + p) / float64(n10+n11+1)
	}
	n := float64(len(sizes))
	mean := sum / n
	adi := 1 / p
	cv2 := max(sq/n-mean*mean, 0) / (mean * mean)
	class := forecasting.ClassSmooth
	switch intermittent, variable := adi >= 1.32, cv2 >= 0.49; {
	case intermittent && variable:
		class = forecasting.ClassLumpy
	case intermittent:
		class = forecasting.ClassIntermittent
	case variable:
		class = forecasting.ClassErratic
	}
	return c, class
}

// compoundItem replaces an item's lead-time demand with the compound
// demand's: L+R days protected, L days before the order arrives.
func compoundItem(c replenish.Compound, lead, review int, levels []float64) (replenish.AllocItem, error) {
	spans := []int{lead + review}
	if lead > 0 {
		spans = append(spans, lead)
	}
	means, qs, err := c.LeadTime(spans, levels)
	if err != nil {
		return replenish.AllocItem{}, err
	}
	it := replenish.AllocItem{Protect: replenish.Quantiles{Levels: levels, Values: qs[0]}, ProtectMean: means[0]}
	if lead > 0 {
		it.Lead = &replenish.Quantiles{Levels: levels, Values: qs[1]}
		it.LeadMean = means[1]
	}
	return it, nil
}

// How the stockcast policy's forecasts learn from censored days
// (Config.Censored).
const (
	// CensoredImpute observes E[demand | demand >= sales] under the
	// forecast of that day, made before the day is observed.
	CensoredImpute = "impute"
	// CensoredDrop leaves the day out (forecasting.State's censored flag).
	CensoredDrop = "drop"
)

// imputeCensored is the demand to learn from a day that ended with an empty
// shelf after sales: the mean of the forecast's distribution of that day
// above sales, E[D | D >= sales], from its quantiles at levels (each level's
// value standing for the band of probability around it). Leaving such days
// out biases a forecast low where it matters: the days a shelf runs empty
// are the days of high demand, most of all for lumpy series.
func imputeCensored(s *forecasting.State, day forecasting.Day, sales float64, levels []float64) float64 {
	f := s.Forecast(forecasting.Request{StartDay: day, Horizon: 1, QuantileLevels: levels, LeadTimes: []int{0}})
	return meanAbove(levels, f.Quantiles[0], sales)
}

// meanAbove is E[D | D >= sales] for the distribution with quantiles q at
// levels, each value standing for the band of probability from the middle
// of the levels below to that of the levels above it; sales when no value
// reaches it.
func meanAbove(levels, q []float64, sales float64) float64 {
	var mass, sum float64
	for k, v := range q {
		lo, hi := 0.0, 1.0
		if k > 0 {
			lo = (levels[k-1] + levels[k]) / 2
		}
		if k < len(levels)-1 {
			hi = (levels[k] + levels[k+1]) / 2
		}
		if v >= sales {
			mass += hi - lo
			sum += (hi - lo) * v
		}
	}
	if mass <= 0 {
		return sales
	}
	return max(sum/mass, sales)
}
