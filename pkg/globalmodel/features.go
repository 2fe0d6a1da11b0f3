package globalmodel

import (
	"math"
	"slices"
	"sync"

	"github.com/stockcast/stockcast/pkg/backtest"
)

// MinLag is the shortest lag of any feature: every feature of a day
// h <= MinLag days after the last known day is known, so one model serves
// the whole 28-day horizon and training rows and forecast rows are built
// by the same code.
const MinLag = 28

// FeatureNames lists the model's features in matrix column order.
func FeatureNames() []string {
	return []string{"lag28", "lag35", "lag42", "lag49", "lag56", "rmean28_7", "rmean28_28", "rmean28_56", "rstd28_28",
		"wday", "month", "mday", "event_name_1", "event_type_1", "snap", "price", "price_rel", "price_change",
		"item", "dept", "cat", "store"}
}

// Panel holds what the features of a data set need, computed once:
// prefix sums of each series for the rolling statistics, category codes,
// the items' mean prices and the first sale of each series.
type Panel struct {
	ds                     *backtest.Dataset
	sum, sum2              [][]float64 // prefix sums: sum[i][t] = y[0] + ... + y[t-1]
	prefix                 [][]float64 // their memory: sum[i] and sum2[i] in one
	first                  []int       // first day with a sale (Days if never)
	item, dept, cat, store []float64
	eventName, eventType   []float64 // per day
	events                 []float64 // their memory, with a calendar
	itemPrice              []float64 // per series: mean known price of its item

	directOnce sync.Once
	directExt  *directPanel // the direct model's features (direct.go)
}

// NewPanel prepares ds. Values after any origin are read by the features
// only through lags of MinLag days or more.
func NewPanel(ds *backtest.Dataset) *Panel {
	p := new(Panel)
	p.Reset(ds)
	return p
}

// Reset makes p the panel of ds, as NewPanel(ds) makes it, reusing p's
// memory where it is large enough (the forecast service makes a
// one-series panel for every prediction of the global model: one Panel
// reused is no allocation).
func (p *Panel) Reset(ds *backtest.Dataset) {
	n := len(ds.Series)
	p.ds = ds
	p.directOnce, p.directExt = sync.Once{}, nil
	p.sum, p.sum2 = resize(p.sum, n), resize(p.sum2, n)
	p.first, p.prefix = resize(p.first, n), resize(p.prefix, n)
	for i, s := range ds.Series {
		// one allocation for both (p's from its last use if large enough)
		ab := p.prefix[i]
		if cap(ab) >= 2*(ds.Days+1) {
			ab = ab[:2*(ds.Days+1)]
			clear(ab)
		} else {
			ab = make([]float64, 2*(ds.Days+1))
		}
		a, b := ab[:ds.Days+1:ds.Days+1], ab[ds.Days+1:]
		p.prefix[i] = ab
		p.first[i] = ds.Days
		for t, y := range s.Values {
			a[t+1], b[t+1] = a[t]+y, b[t]+y*y
			if y > 0 && p.first[i] == ds.Days {
				p.first[i] = t
			}
		}
		p.sum[i], p.sum2[i] = a, b
	}
	p.item = codes(p.item, ds, func(s *backtest.Series) string { return s.Item })
	p.dept = codes(p.dept, ds, func(s *backtest.Series) string { return s.Dept })
	p.cat = codes(p.cat, ds, func(s *backtest.Series) string { return s.Cat })
	p.store = codes(p.store, ds, func(s *backtest.Series) string { return s.Store })
	if ds.Events == nil && ds.Days <= len(noEvents) {
		// no calendar: every day's codes are 0, read from one shared
		// (never written) array instead of allocated per panel
		p.eventName, p.eventType = noEvents[:ds.Days:ds.Days], noEvents[:ds.Days:ds.Days]
	} else {
		p.events = resize(p.events, 2*ds.Days)
		clear(p.events)
		p.eventName, p.eventType = p.events[:ds.Days:ds.Days], p.events[ds.Days:]
	}
	if ds.Events != nil {
		names, types := map[string]float64{}, map[string]float64{}
		for _, e := range ds.Events {
			names[e.Name1], types[e.Type1] = 0, 0
		}
		number(names)
		number(types)
		for t, e := range ds.Events {
			p.eventName[t], p.eventType[t] = names[e.Name1], types[e.Type1]
		}
	}
	p.itemPrice = resize(p.itemPrice, n)
	if n == 1 {
		// one series (the forecast service's live panel): its item's
		// mean price, summed in the same order as below
		sum, count := 0.0, 0.0
		for _, pr := range ds.Series[0].Prices {
			if !math.IsNaN(pr) {
				sum += pr
				count++
			}
		}
		p.itemPrice[0] = sum / count
		return
	}
	sums, counts := map[string]float64{}, map[string]float64{}
	for _, s := range ds.Series {
		for _, pr := range s.Prices {
			if !math.IsNaN(pr) {
				sums[s.Item] += pr
				counts[s.Item]++
			}
		}
	}
	for i, s := range ds.Series {
		p.itemPrice[i] = sums[s.Item] / counts[s.Item]
	}
}

// resize returns s with length n, its backing array reused if large
// enough (the entries are the old ones: the caller writes every one).
func resize[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n)
}

// noEvents holds the event codes (0) of a panel without a calendar of up
// to its length in days (the forecast service's live panels: 112 days).
// Read only.
var noEvents [512]float64

// number gives the keys of m the codes 0, 1, ... in sorted order.
func number(m map[string]float64) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		m[k] = float64(i)
	}
}

// codes returns the code of each series' key in the sorted keys, in dst
// if large enough.
func codes(dst []float64, ds *backtest.Dataset, key func(*backtest.Series) string) []float64 {
	out := resize(dst, len(ds.Series))
	if len(ds.Series) == 1 {
		out[0] = 0 // the only key is the first
		return out
	}
	m := map[string]float64{}
	for i := range ds.Series {
		m[key(&ds.Series[i])] = 0
	}
	number(m)
	for i := range ds.Series {
		out[i] = m[key(&ds.Series[i])]
	}
	return out
}

// Row writes the features of series i on day t to out (len(FeatureNames)).
// It reads the series' values only up to day t-MinLag.
func (p *Panel) Row(i, t int, out []float64) {
	s := &p.ds.Series[i]
	nan := math.NaN()
	for k, lag := range [5]int{28, 35, 42, 49, 56} {
		out[k] = nan
		if t-lag >= 0 {
			out[k] = s.Values[t-lag]
		}
	}
	// rolling statistics of the lag-28 series: days t-28-w+1 .. t-28
	end := t - MinLag + 1
	for k, w := range [3]int{7, 28, 56} {
		out[5+k] = nan
		if end-w >= 0 {
			out[5+k] = (p.sum[i][end] - p.sum[i][end-w]) / float64(w)
		}
	}
	out[8] = nan
	if end-28 >= 0 {
		m := (p.sum[i][end] - p.sum[i][end-28]) / 28
		v := (p.sum2[i][end]-p.sum2[i][end-28])/28 - m*m
		out[8] = math.Sqrt(max(v, 0) * 28 / 27)
	}
	day := p.ds.Day(t)
	tm := day.Time()
	out[9] = float64(day.Weekday())
	out[10] = float64(tm.Month())
	out[11] = float64(tm.Day())
	out[12], out[13] = p.eventName[t], p.eventType[t]
	out[14] = 0
	if s.Snap != nil && s.Snap[t] {
		out[14] = 1
	}
	price := s.Prices[t]
	out[15] = price
	out[16] = price / p.itemPrice[i]
	out[17] = nan
	if t >= 7 {
		out[17] = price/s.Prices[t-7] - 1
	}
	out[18], out[19], out[20], out[21] = p.item[i], p.dept[i], p.cat[i], p.store[i]
}
