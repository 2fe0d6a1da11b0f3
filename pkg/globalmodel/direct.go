package globalmodel

import (
	"fmt"
	"math"
	"strconv"
)

// The direct (horizon-bucket) global model. One model per bucket of
// horizon days: the model of the days h = 1..7 after the last known day
// reads lags of 7 days and more, that of h = 8..14 lags of 14 and more,
// and so on; the single-model set-up (FeatureNames, Row) reads lags of 28
// days and more for every horizon day and so ignores the most recent
// four weeks even for tomorrow. The features of a bucket with minimum lag
// L are a function of the values up to day t-L, the calendar and the
// prices (known in advance): RowLag is the one code path that builds
// them, for training rows and for forecast rows alike.

// DefaultBucketLags are the minimum lags of the direct model's buckets:
// bucket b serves the horizon days h (1-based) with
// DefaultBucketLags[b-1] < h <= DefaultBucketLags[b].
func DefaultBucketLags() []int { return []int{7, 14, 21, 28} }

// rolling windows (days) of the lag-L series' means
var directWindows = [...]int{7, 14, 28, 56, 112, 364}

// FeatureNamesLag lists the features of the bucket with minimum lag
// minLag, in matrix column order.
func FeatureNamesLag(minLag int) []string {
	w := weekAligned(minLag)
	names := []string{
		"lag" + strconv.Itoa(minLag), "lag" + strconv.Itoa(minLag+1), "lag" + strconv.Itoa(minLag+2),
		"lagw" + strconv.Itoa(w), "lagw" + strconv.Itoa(w+7), "lagw" + strconv.Itoa(w+14), "lagw" + strconv.Itoa(w+21),
		"wday_mean4",
	}
	for _, win := range directWindows {
		names = append(names, "rmean_"+strconv.Itoa(win))
	}
	names = append(names, "rstd_28", "zero_run", "nonzero_share_28", "item_rmean_28", "store_dept_rmean_28",
		"wday", "month", "mday", "yday", "event_name_1", "event_type_1", "event_name_2", "snap",
		"price", "price_rel", "price_change", "price_momentum_28", "price_max_rel",
		"item", "dept", "cat", "store")
	return names
}

// Feature sets of the direct model (DirectParams.Features): 0 is the
// session-2 set (FeatureNamesLag); 1 adds, after it, features M5 winners
// used (session 6): the standard deviation of the lag series over 7 and
// 112 days, its 3-day mean, the item's and the store x department's means
// over 7 days, and the days to the next and since the last calendar event
// (known in advance, like the events themselves).
const (
	FeaturesBase = 0
	FeaturesM5   = 1
)

// FeatureNamesLagSet lists the features of feature set set for the bucket
// with minimum lag minLag, in matrix column order.
func FeatureNamesLagSet(minLag, set int) []string {
	names := FeatureNamesLag(minLag)
	if set >= FeaturesM5 {
		names = append(names, "rstd_7", "rstd_112", "rmean_3", "item_rmean_7", "store_dept_rmean_7",
			"days_to_event", "days_since_event")
	}
	return names
}

// extraFeatures is the number of features set adds to FeatureNamesLag.
func extraFeatures(set int) int {
	if set >= FeaturesM5 {
		return 7
	}
	return 0
}

// weekAligned is the smallest multiple of 7 at least lag: the lags of the
// same weekday as the forecast day.
func weekAligned(lag int) int { return (lag + 6) / 7 * 7 }

// directPanel adds to Panel what the direct features need beyond it: the
// zero runs, the item and store x department aggregates and the price
// statistics, computed once per data set.
type directPanel struct {
	*Panel
	lastSale        [][]int32   // lastSale[i][t]: last day <= t with a sale (-1: none)
	nonzero         [][]int32   // prefix counts of days with a sale
	itemSum         [][]float64 // prefix sums of the item's values over its series, divided by their number
	storeDeptSum    [][]float64 // same, store x department
	itemOf, groupOf []int
	priceSum        [][]float64 // prefix sums of the known prices (NaN as the last known)
	priceMax        []float64
	eventName2      []float64
	// toEvent[t], sinceEvent[t]: days from t to the next day >= t with a
	// calendar event, and since the last day <= t with one (NaN: none)
	toEvent, sinceEvent []float64
}

func newDirectPanel(p *Panel) *directPanel {
	ds := p.ds
	n := len(ds.Series)
	d := &directPanel{Panel: p, lastSale: make([][]int32, n), nonzero: make([][]int32, n),
		itemOf: make([]int, n), groupOf: make([]int, n), priceSum: make([][]float64, n), priceMax: make([]float64, n)}
	items, groups := map[string]int{}, map[string]int{}
	var itemN, groupN []float64
	for i, s := range ds.Series {
		ls, nz := make([]int32, ds.Days), make([]int32, ds.Days+1)
		last := int32(-1)
		for t, y := range s.Values {
			if y > 0 {
				last = int32(t)
				nz[t+1] = nz[t] + 1
			} else {
				nz[t+1] = nz[t]
			}
			ls[t] = last
		}
		d.lastSale[i], d.nonzero[i] = ls, nz
		k, ok := items[s.Item]
		if !ok {
			k = len(items)
			items[s.Item] = k
			itemN = append(itemN, 0)
		}
		d.itemOf[i] = k
		itemN[k]++
		g, ok := groups[s.Store+"|"+s.Dept]
		if !ok {
			g = len(groups)
			groups[s.Store+"|"+s.Dept] = g
			groupN = append(groupN, 0)
		}
		d.groupOf[i] = g
		groupN[g]++
		ps := make([]float64, ds.Days+1)
		lastPrice := math.NaN()
		for t, pr := range s.Prices {
			if !math.IsNaN(pr) {
				lastPrice = pr
				d.priceMax[i] = max(d.priceMax[i], pr)
			}
			v := lastPrice
			if math.IsNaN(v) {
				v = 0
			}
			ps[t+1] = ps[t] + v
		}
		d.priceSum[i] = ps
	}
	agg := func(of []int, count []float64) [][]float64 {
		out := make([][]float64, len(count))
		for k := range out {
			out[k] = make([]float64, ds.Days+1)
		}
		for i := range ds.Series {
			a, src := out[of[i]], p.sum[i]
			for t := range a {
				a[t] += src[t] / count[of[i]]
			}
		}
		return out
	}
	d.itemSum, d.storeDeptSum = agg(d.itemOf, itemN), agg(d.groupOf, groupN)
	d.eventName2 = make([]float64, ds.Days)
	if ds.Events != nil {
		names := map[string]float64{}
		for _, e := range ds.Events {
			names[e.Name1], names[e.Name2] = 0, 0
		}
		number(names)
		for t, e := range ds.Events {
			d.eventName2[t] = names[e.Name2]
		}
	}
	d.toEvent, d.sinceEvent = make([]float64, ds.Days), make([]float64, ds.Days)
	last := -1
	for t := range ds.Days {
		if ds.Events != nil && ds.Events[t].Name1 != "" {
			last = t
		}
		d.sinceEvent[t] = math.NaN()
		if last >= 0 {
			d.sinceEvent[t] = float64(t - last)
		}
	}
	next := -1
	for t := ds.Days - 1; t >= 0; t-- {
		if ds.Events != nil && ds.Events[t].Name1 != "" {
			next = t
		}
		d.toEvent[t] = math.NaN()
		if next >= 0 {
			d.toEvent[t] = float64(next - t)
		}
	}
	return d
}

// RowLagSet writes the features of feature set set (FeatureNamesLagSet)
// of series i on day t for the bucket with minimum lag minLag to out. Like
// RowLag it reads the values only up to day t-minLag.
func (d *directPanel) RowLagSet(i, t, minLag, set int, out []float64) {
	base := len(out) - extraFeatures(set)
	d.RowLag(i, t, minLag, out[:base])
	if set < FeaturesM5 {
		return
	}
	nan := math.NaN()
	end := t - minLag + 1
	c := base
	for _, win := range [2]int{7, 112} {
		out[c] = nan
		if end-win >= 0 {
			m := (d.sum[i][end] - d.sum[i][end-win]) / float64(win)
			v := (d.sum2[i][end]-d.sum2[i][end-win])/float64(win) - m*m
			out[c] = math.Sqrt(max(v, 0) * float64(win) / float64(win-1))
		}
		c++
	}
	out[c], out[c+1], out[c+2] = nan, nan, nan
	if end-3 >= 0 {
		out[c] = (d.sum[i][end] - d.sum[i][end-3]) / 3
	}
	if end-7 >= 0 {
		a, g := d.itemSum[d.itemOf[i]], d.storeDeptSum[d.groupOf[i]]
		out[c+1] = (a[end] - a[end-7]) / 7
		out[c+2] = (g[end] - g[end-7]) / 7
	}
	c += 3
	out[c], out[c+1] = d.toEvent[t], d.sinceEvent[t]
	c += 2
	if c != len(out) {
		panic(fmt.Sprintf("globalmodel: RowLagSet wrote %d features into %d", c, len(out)))
	}
}

// RowLag writes the features of series i on day t for the bucket with
// minimum lag minLag to out (len(FeatureNamesLag(minLag))). It reads the
// series' values (and the aggregates') only up to day t-minLag.
func (d *directPanel) RowLag(i, t, minLag int, out []float64) {
	s := &d.ds.Series[i]
	nan := math.NaN()
	val := func(k int) float64 {
		if k < 0 {
			return nan
		}
		return s.Values[k]
	}
	c := 0
	for _, lag := range [3]int{minLag, minLag + 1, minLag + 2} {
		out[c] = val(t - lag)
		c++
	}
	w := weekAligned(minLag)
	wsum, wn := 0.0, 0
	for k := range 4 {
		v := val(t - w - 7*k)
		out[c] = v
		c++
		if !math.IsNaN(v) {
			wsum += v
			wn++
		}
	}
	out[c] = nan
	if wn > 0 {
		out[c] = wsum / float64(wn)
	}
	c++
	end := t - minLag + 1 // prefix index just after day t-minLag
	for _, win := range directWindows {
		out[c] = nan
		if end-win >= 0 {
			out[c] = (d.sum[i][end] - d.sum[i][end-win]) / float64(win)
		} else if end > 0 {
			out[c] = d.sum[i][end] / float64(end) // shorter history: its mean
		}
		c++
	}
	out[c] = nan
	if end-28 >= 0 {
		m := (d.sum[i][end] - d.sum[i][end-28]) / 28
		v := (d.sum2[i][end]-d.sum2[i][end-28])/28 - m*m
		out[c] = math.Sqrt(max(v, 0) * 28 / 27)
	}
	c++
	out[c], out[c+1] = nan, nan
	if end > 0 {
		if ls := d.lastSale[i][end-1]; ls >= 0 {
			out[c] = float64(end - 1 - int(ls))
		}
		if end-28 >= 0 {
			out[c+1] = float64(d.nonzero[i][end]-d.nonzero[i][end-28]) / 28
		}
	}
	c += 2
	out[c], out[c+1] = nan, nan
	if end-28 >= 0 {
		a, g := d.itemSum[d.itemOf[i]], d.storeDeptSum[d.groupOf[i]]
		out[c] = (a[end] - a[end-28]) / 28
		out[c+1] = (g[end] - g[end-28]) / 28
	}
	c += 2
	day := d.ds.Day(t)
	tm := day.Time()
	out[c], out[c+1], out[c+2], out[c+3] = float64(day.Weekday()), float64(tm.Month()), float64(tm.Day()), float64(tm.YearDay())
	c += 4
	out[c], out[c+1], out[c+2] = d.eventName[t], d.eventType[t], d.eventName2[t]
	c += 3
	out[c] = 0
	if s.Snap != nil && s.Snap[t] {
		out[c] = 1
	}
	c++
	price := s.Prices[t]
	out[c] = price
	out[c+1] = price / d.itemPrice[i]
	out[c+2] = nan
	if t >= 7 {
		out[c+2] = price/s.Prices[t-7] - 1
	}
	out[c+3] = nan
	if t >= 28 {
		if m := (d.priceSum[i][t] - d.priceSum[i][t-28]) / 28; m > 0 {
			out[c+3] = price / m
		}
	}
	out[c+4] = nan
	if d.priceMax[i] > 0 {
		out[c+4] = price / d.priceMax[i]
	}
	c += 5
	out[c], out[c+1], out[c+2], out[c+3] = d.item[i], d.dept[i], d.cat[i], d.store[i]
	c += 4
	if c != len(out) {
		panic(fmt.Sprintf("globalmodel: RowLag wrote %d features into %d", c, len(out)))
	}
}
