package scoring

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/stockcast/stockcast/pkg/backtest"
	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/gbt"
	"github.com/stockcast/stockcast/pkg/globalmodel"
	"github.com/stockcast/stockcast/pkg/modelregistry"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
)

// HistoryDays is how many closed days of a series the global model's
// features read: lags up to 56 days, and 56-day means of the lag-28
// series, of the first forecast day reach back to start-84.
const HistoryDays = globalmodel.MinLag + 56

// DefaultGlobalWeight is the global model's weight in the combination:
// equal weights, the fixed rule `stockcast backtest` and `stockcast train`
// validate (globalmodel.Combined, docs/forecasting.md).
const DefaultGlobalWeight = 0.5

// maxFactors is how many moved features a reason names.
const maxFactors = 3

// Model is a global model loaded from a `stockcast train` artefact, with
// what it needs to build a live series' features as training did.
type Model struct {
	Version string
	Weight  float64
	gbt     *gbt.Model
	// gbt's trees laid out for prediction: those that split on none of
	// the price's and category's features (volatileFeature), with the
	// base score, and the others
	stable, volatile forest
	series           *modelregistry.Series // nil: category codes unknown (missing)
	names            []string
	link             string
	// columns the service fills itself
	item, dept, cat, store, priceRel int
	// explanation texts and the events' model_version, made once
	eventVersion             string
	compNames                []string
	weightDetail, biasDetail string
	// the ensemble's quantile calibration shipped with the model (nil:
	// the ensemble's own levels)
	calibration *forecasting.Calibration
}

// LoadModel reads an artefact and its series codes (an artefact without
// them scores with the category codes missing). weight is the model's
// share of the combined means, in (0, 1].
func LoadModel(path string, weight float64) (*Model, error) {
	if !(weight > 0 && weight <= 1) {
		return nil, fmt.Errorf("global model weight %v: want (0, 1]", weight)
	}
	a, err := globalmodel.LoadArtefact(path)
	if err != nil {
		return nil, err
	}
	s, err := modelregistry.LoadSeries(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if s != nil && s.Version != a.Version {
		return nil, fmt.Errorf("series codes of %s are for %s", a.Version, s.Version)
	}
	return NewModel(a, s, weight)
}

// NewModel wraps an artefact already in memory.
func NewModel(a *globalmodel.Artefact, s *modelregistry.Series, weight float64) (*Model, error) {
	m := &Model{Version: a.Version, Weight: weight, gbt: a.Model, series: s,
		names: globalmodel.FeatureNames(), link: "log", calibration: a.Calibration}
	if a.Model.Params.Objective == "squared" {
		m.link = "identity"
	}
	for _, name := range m.names {
		m.compNames = append(m.compNames, "contribution_"+name)
	}
	m.stable, m.volatile = splitForest(a.Model, func(f int32) bool {
		return int(f) < len(m.names) && volatileFeature(m.names[f])
	})
	m.eventVersion = forecasting.ModelVersion + "+" + m.Version
	m.weightDetail = "share of the global model " + m.Version + " in the daily means"
	m.biasDetail = "global model's output with no feature known (" + m.link + " scale)"
	for _, c := range []struct {
		name string
		to   *int
	}{{"item", &m.item}, {"dept", &m.dept}, {"cat", &m.cat}, {"store", &m.store}, {"price_rel", &m.priceRel}} {
		if *c.to = slices.Index(m.names, c.name); *c.to < 0 {
			return nil, fmt.Errorf("global model features have no %s", c.name)
		}
	}
	return m, nil
}

// window holds a series' last HistoryDays closed days, by day modulo
// HistoryDays; days never observed are 0 (before the series' first sale,
// as in training). The censored days are bits (a series' state is kept
// for every series in memory: 68 bytes less keep it in a smaller size
// class).
type window struct {
	values   [HistoryDays]float64
	censored [(HistoryDays + 63) / 64]uint64
}

func (w *window) observe(d forecasting.Day, y float64, censored bool) {
	i := int((int64(d)%HistoryDays + HistoryDays) % HistoryDays)
	w.values[i] = y
	bit := uint64(1) << (i % 64)
	if censored {
		w.censored[i/64] |= bit
	} else {
		w.censored[i/64] &^= bit
	}
}

// isCensored tells whether the day in slot i was censored.
func (w *window) isCensored(i int) bool { return w.censored[i/64]&(1<<(i%64)) != 0 }

// globalPart is a series' global forecast for one start day and model. It
// depends only on closed days (every feature lags 28 days or more), the
// price and the item's category, so it is computed once when a day closes
// (or the model, the price or the category changes) and reused by every
// event of the day.
type globalPart struct {
	version         string
	start           forecasting.Day
	price           float64
	dept, cat       string
	means           []float64
	contrib, values []float64
	// margins of the stable and the volatile trees per day (means = link
	// of their sum), the stable trees' part of row 0's attributions
	stable, volatile []float64
	stableBias       float64
	stableContrib    []float64
	// bias is row 0's attribution bias; change is contrib minus the
	// previous part's (nil without a previous part of the same model)
	bias   float64
	change []float64
	// msg, comps and factors (moved since the previous part of the same
	// model) explain the part in the forecast that computed it; a cached
	// series keeps the numbers above only (compact) and its next events
	// of the day take them from the latest forecast kept whole, or make
	// them again from the numbers (explain)
	msg     *forecastv1.GlobalForecast
	comps   []Component
	factors []*forecastv1.Attribution
}

// compact drops what explain makes again from the part's numbers: the
// cached copy of a series' part is a fifth of the whole.
func (g *globalPart) compact() { g.msg, g.comps, g.factors = nil, nil, nil }

// startOr returns the part's start day, or def without a part.
func (g *globalPart) startOr(def forecasting.Day) forecasting.Day {
	if g == nil {
		return def
	}
	return g.start
}

func samePrice(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }

func (g *globalPart) fresh(m *Model, start forecasting.Day, price float64, dept, cat string) bool {
	return g != nil && g.version == m.Version && g.start == start && samePrice(g.price, price) &&
		g.dept == dept && g.cat == cat
}

// predictScratch is predict's reusable memory: the one-series data set of
// the features, its panel and the feature rows, none of which a
// globalPart keeps.
// The scorer's goroutines take one from scratchPool for each prediction.
type predictScratch struct {
	rows     []float64
	values   []float64 // the series' values and prices, HistoryDays+days each
	censored []bool
	series   [1]backtest.Series
	ds       backtest.Dataset
	panel    globalmodel.Panel
}

var scratchPool = sync.Pool{New: func() any { return new(predictScratch) }}

// predict computes the global part of a series whose closed days through
// start-1 are in w. horizon days are forecast, at most MinLag.
func (m *Model) predict(w *window, sku, location, dept, cat string, price float64, start forecasting.Day, horizon int, prev *globalPart, scratch *predictScratch) *globalPart {
	days := min(horizon, globalmodel.MinLag)
	n := HistoryDays + days
	if cap(scratch.values) < 2*n {
		scratch.values = make([]float64, 2*n)
		scratch.censored = make([]bool, HistoryDays)
	}
	s := &scratch.series[0]
	*s = backtest.Series{ID: sku + "|" + location, Item: sku, Dept: dept, Cat: cat, Store: location,
		Values: scratch.values[:n:n], Prices: scratch.values[n : 2*n : 2*n]}
	censored := scratch.censored[:HistoryDays]
	for t := range HistoryDays {
		i := int((int64(start-HistoryDays+forecasting.Day(t))%HistoryDays + HistoryDays) % HistoryDays)
		s.Values[t], censored[t] = w.values[i], w.isCensored(i)
	}
	clear(s.Values[HistoryDays:]) // never read: the features lag MinLag days
	modelregistry.ImputeCensored(s.Values[:HistoryDays], censored)
	for t := range s.Prices {
		s.Prices[t] = price // the current price, known for the horizon
	}
	scratch.ds = backtest.Dataset{Name: "live", Start: start - HistoryDays, Days: n, Series: scratch.series[:]}
	panel := &scratch.panel
	panel.Reset(&scratch.ds)
	cols := len(m.names)
	// the part's numbers in one allocation (each slice capped at its own
	// length): means, stable and volatile margins per day; row 0's feature
	// values, the stable trees' attributions, all trees', their change
	sameModel := prev != nil && prev.version == m.Version
	size := 3*days + 3*cols
	if sameModel {
		size += cols
	}
	nums := make([]float64, size)
	cut := func(k int) []float64 {
		out := nums[:k:k]
		nums = nums[k:]
		return out
	}
	g := &globalPart{version: m.Version, start: start, price: price, dept: dept, cat: cat,
		means: cut(days), stable: cut(days), volatile: cut(days)}
	g.values, g.stableContrib, g.contrib = cut(cols), cut(cols), cut(cols)
	if sameModel {
		g.change = cut(cols)
	}
	// The row of a calendar day reads only days at least MinLag before
	// it, so its prediction does not depend on the forecast's start: the
	// days the previous part (same model, k days earlier) already
	// predicted are carried over, and only the k days new at the end of the
	// horizon are predicted (one, when one day closed). The trees that do
	// not split on the price or the category (m.stable) do not move when
	// those change: their margins are carried over too, and only the
	// other trees (m.volatile) see the new price on every day.
	fromStable, fromVolatile := 0, 0
	if k := int(start - prev.startOr(start)); sameModel && k >= 0 && k < days && len(prev.means) == days {
		fromStable = days - k
		copy(g.stable, prev.stable[k:])
		if samePrice(prev.price, price) && prev.dept == dept && prev.cat == cat {
			fromVolatile = fromStable
			copy(g.volatile, prev.volatile[k:])
		}
	}
	from := min(fromStable, fromVolatile)
	// rows of the days from.. (row 0, for the attributions, first when
	// from > 0)
	first := 0
	if from > 0 {
		first = 1
	}
	size = (first + days - from) * cols
	if cap(scratch.rows) < size {
		scratch.rows = make([]float64, size)
	}
	rows := scratch.rows[:size]
	row := func(h int) []float64 {
		r := first + h - from
		if h == 0 {
			r = 0
		}
		return rows[r*cols : (r+1)*cols]
	}
	// the codes are the same in every row: looked up once
	var codes [numCodes]float64
	m.codes(codes[:], sku, location, dept, cat, price)
	if from > 0 {
		panel.Row(0, HistoryDays, row(0))
		m.setCodes(row(0), &codes)
	}
	for h := from; h < days; h++ {
		panel.Row(0, HistoryDays+h, row(h))
		m.setCodes(row(h), &codes)
	}
	copy(g.values, rows[:cols]) // the rows are scratch
	// the new days' margins, and row 0's path attributions in the same
	// pass over the trees: the stable trees' move only when the start
	// does
	stableRows := rows[(first+fromStable-from)*cols:]
	if fromStable == days {
		m.stable.margins(stableRows, cols, g.stable[fromStable:])
		g.stableBias = prev.stableBias
		copy(g.stableContrib, prev.stableContrib)
	} else {
		g.stableBias = m.stable.marginsContrib(stableRows, cols, g.stable[fromStable:], g.values, g.stableContrib)
	}
	contrib := g.contrib
	copy(contrib, g.stableContrib)
	g.bias = g.stableBias + m.volatile.marginsContrib(rows[first*cols:], cols, g.volatile[from:], g.values, contrib)
	for h := range days {
		g.means[h] = g.stable[h] + g.volatile[h]
		if m.link == "log" {
			g.means[h] = math.Exp(g.means[h])
		}
	}
	if g.change != nil {
		for k := range g.change {
			g.change[k] = contrib[k] - prev.contrib[k]
		}
	}
	g.msg, g.comps, g.factors = m.explain(g, true)
	return g
}

// explain makes the global forecast message, the components and (if
// factors) the moved attributions of g, a part of model m (the same
// version) from g's numbers.
func (m *Model) explain(g *globalPart, factors bool) (*forecastv1.GlobalForecast, []Component, []*forecastv1.Attribution) {
	msg := &forecastv1.GlobalForecast{Version: m.Version, Weight: m.Weight, Means: g.means, Link: m.link, Bias: g.bias}
	same := g.change != nil
	attrs := make([]forecastv1.Attribution, len(m.names)) // one allocation; used by pointer only
	msg.Attributions = make([]*forecastv1.Attribution, len(m.names))
	for k, name := range m.names {
		a := &attrs[k]
		a.Feature, a.Value, a.Contribution = name, g.values[k], g.contrib[k]
		if same {
			a.Change = g.change[k]
		}
		msg.Attributions[k] = a
	}
	var moved []*forecastv1.Attribution
	if same && factors {
		moved = movedMost(msg.Attributions)
	}
	comps := make([]Component, 0, 3+len(m.names))
	// the details written one after the other into one string, each
	// component's a slice of it (one allocation instead of one each, and
	// no copy: a strings.Builder's text is its buffer): global_mean's,
	// then the contributions'
	// (about the text's length: the forecast kept whole holds the buffer)
	var sb strings.Builder
	if same {
		sb.Grow(32 + len(m.names)*60)
	} else {
		sb.Grow(32 + len(m.names)*16)
	}
	var num [64]byte
	sb.WriteString("global model's mean of ")
	sb.Write(g.start.AppendString(num[:0]))
	meanEnd := sb.Len()
	var endsBuf [32]int
	ends := endsBuf[:0]
	if len(m.names) > len(endsBuf) {
		ends = make([]int, len(m.names))
	}
	ends = ends[:len(m.names)]
	for k := range m.names {
		sb.WriteString("value ")
		sb.Write(appendShortest(num[:0], g.values[k]))
		if same {
			sb.WriteString(", ")
			if d := g.change[k]; d >= 0 {
				sb.WriteByte('+')
			}
			sb.Write(appendFixedFast(num[:0], g.change[k], 4))
			sb.WriteString(" since the previous forecast")
		}
		ends[k] = sb.Len()
	}
	details := sb.String()
	comps = append(comps,
		Component{Name: "global_weight", Value: m.Weight, Detail: m.weightDetail},
		Component{Name: "global_mean", Value: g.means[0], Detail: details[:meanEnd]},
		Component{Name: "global_bias", Value: g.bias, Detail: m.biasDetail})
	begin := meanEnd
	for k := range m.names {
		comps = append(comps, Component{Name: m.compNames[k], Value: g.contrib[k], Detail: details[begin:ends[k]]})
		begin = ends[k]
	}
	return msg, comps, moved
}

// movedMost returns the (at most maxFactors) attributions whose
// contributions changed most, largest first, the earlier of equal ones
// first, leaving out those that did not change: the first maxFactors of
// a stable sort by decreasing |change| (movedMostSorted, the way it was
// made before, which a NaN change still takes), picked in one pass
// without sorting a copy (TestMovedMostAsSorted).
func movedMost(attrs []*forecastv1.Attribution) []*forecastv1.Attribution {
	var top [maxFactors]*forecastv1.Attribution
	n := 0
	for _, a := range attrs {
		x := math.Abs(a.Change)
		if math.IsNaN(x) {
			return movedMostSorted(attrs)
		}
		// insert after the entries at least as large (stable)
		p := n
		for p > 0 && x > math.Abs(top[p-1].Change) {
			p--
		}
		if p == maxFactors {
			continue
		}
		if n < maxFactors {
			n++
		}
		copy(top[p+1:n], top[p:n-1])
		top[p] = a
	}
	var moved []*forecastv1.Attribution
	for _, a := range top[:n] {
		if a.Change != 0 {
			moved = append(moved, a)
		}
	}
	return moved
}

// movedMostSorted is movedMost by a stable sort of a copy.
func movedMostSorted(attrs []*forecastv1.Attribution) []*forecastv1.Attribution {
	sorted := slices.Clone(attrs)
	slices.SortStableFunc(sorted, func(a, b *forecastv1.Attribution) int {
		switch x, y := math.Abs(a.Change), math.Abs(b.Change); {
		case x > y:
			return -1
		case x < y:
			return 1
		}
		return 0
	})
	var moved []*forecastv1.Attribution
	for _, a := range sorted[:min(maxFactors, len(sorted))] {
		if a.Change != 0 {
			moved = append(moved, a)
		}
	}
	return moved
}

// appendShortest appends v as strconv.AppendFloat(b, v, 'g', -1, 64)
// does; integers below 1e6 in magnitude (most feature values: counts,
// calendar fields, codes), which that format writes as their digits, go
// through strconv.AppendInt, several times faster (TestFormatsAsFmt).
func appendShortest(b []byte, v float64) []byte {
	if v == math.Trunc(v) && math.Abs(v) < 1e6 && (v != 0 || !math.Signbit(v)) {
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// volatileFeature tells whether an event can change a feature without a
// day closing: the price's (the snapshot's current price) and the
// category's.
func volatileFeature(name string) bool {
	switch name {
	case "price", "price_rel", "price_change", "dept", "cat":
		return true
	}
	return false
}

// predictRows writes the model's prediction of each row (len(out) rows of
// cols features) to out, as gbt.Model.Predict does, from the compact
// forests: the stable trees' margin plus the volatile trees' (Predict adds
// the trees in their order: the sums differ in rounding only;
// TestForestPredictsAsGBT). The service's predict uses the same sums.
func (m *Model) predictRows(rows []float64, cols int, out []float64) {
	tmp := make([]float64, len(out))
	m.stable.margins(rows, cols, out)
	m.volatile.margins(rows, cols, tmp)
	for r := range out {
		out[r] += tmp[r]
	}
	if m.link == "log" {
		for r := range out {
			out[r] = math.Exp(out[r])
		}
	}
}

// numCodes is the number of features codes fills.
const numCodes = 5

// codes writes the features training numbered from the data set's names
// (modelregistry.Series) and price_rel, the price against the item's mean
// price in training, to out: item, dept, cat, store, price_rel.
func (m *Model) codes(out []float64, sku, location, dept, cat string, price float64) {
	nan := math.NaN()
	out[0], out[1], out[2], out[3], out[4] = nan, nan, nan, nan, nan
	if m.series == nil {
		return
	}
	out[0] = modelregistry.Code(m.series.Items, sku)
	out[1] = modelregistry.Code(m.series.Depts, dept)
	out[2] = modelregistry.Code(m.series.Cats, cat)
	out[3] = modelregistry.Code(m.series.Stores, location)
	if p, ok := m.series.ItemPrice[sku]; ok && p > 0 {
		out[4] = price / p
	}
}

// setCodes writes codes' features to their columns of row.
func (m *Model) setCodes(row []float64, c *[numCodes]float64) {
	row[m.item], row[m.dept], row[m.cat], row[m.store], row[m.priceRel] = c[0], c[1], c[2], c[3], c[4]
}

// category returns the department and category a series' features use:
// the snapshot's, else the training data's for the item, else "all" (as
// training names an item without attributes).
func (m *Model) category(sku, dept, cat string) (string, string) {
	if dept == "" && m.series != nil {
		dept = m.series.ItemDept[sku]
	}
	if cat == "" && m.series != nil {
		cat = m.series.ItemCat[sku]
	}
	if dept == "" {
		dept = "all"
	}
	if cat == "" {
		cat = "all"
	}
	return dept, cat
}

// combine mixes the global means into the ensemble's forecast f in place:
// on the days g covers, the mean still to come is
// (1 - weight) * ensemble + weight * global (today: the global day's mean
// times the share of the day still to come), and the ensemble's daily and
// lead-time quantiles are scaled by the ratio of the combined to the
// ensemble's mean still to come, keeping the ensemble's shape of
// uncertainty (where the ensemble expects nothing, negative-binomial
// quantiles at its dispersion). Days after g's are the ensemble's.
func combine(f *forecasting.Forecast, g []float64, weight, todaySoFar, share float64) {
	days := min(len(g), len(f.Means))
	if days == 0 {
		return
	}
	disp := f.Components.Dispersion
	var deltaBuf [globalmodel.MinLag]float64
	delta := deltaBuf[:0] // combined minus ensemble, still to come
	if days > len(deltaBuf) {
		delta = make([]float64, days)
	}
	delta = delta[:days]
	for h := range days {
		base := 0.0
		if h == 0 {
			base = todaySoFar
		}
		ens := f.Means[h] - base
		glob := g[h]
		if h == 0 {
			glob *= 1 - share
		}
		comb := (1-weight)*ens + weight*glob
		delta[h] = comb - ens
		f.Means[h] = base + comb
		q := f.Quantiles[h]
		switch {
		case q == nil:
			// not computed (Request.TodayOnly): the caller has them
		case ens > 0:
			r := comb / ens
			for k := range q {
				q[k] = base + (q[k]-base)*r
			}
		default:
			forecasting.CountQuantiles(comb, disp, f.QuantileLevels, q)
			for k := range q {
				q[k] += base
			}
		}
	}
	for i := range f.LeadTime {
		lt := &f.LeadTime[i]
		add := 0.0
		for h := 0; h < days && h <= lt.Days; h++ {
			add += delta[h]
		}
		comb := lt.Mean + add
		if lt.Mean > 0 {
			r := comb / lt.Mean
			for k := range lt.Quantiles {
				lt.Quantiles[k] *= r
			}
		} else {
			forecasting.CountQuantiles(comb, disp, f.QuantileLevels, lt.Quantiles)
		}
		lt.Mean = comb
	}
}
