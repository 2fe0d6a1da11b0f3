// Package scoring turns feature snapshots into forecasts: it keeps each
// series' forecasting.State in a bounded in-memory cache, advances it with
// the snapshot's closed days (rebuilding it from the feature service's
// history when the cache cannot), forecasts, and explains why the forecast
// changed.
package scoring

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/topics"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
)

// ErrInvalidSnapshot marks a snapshot that cannot be forecast however often
// it is retried (it belongs in the DLQ).
var ErrInvalidSnapshot = errors.New("invalid feature snapshot")

// DailyDemand is one closed day of a series' stored history.
type DailyDemand struct {
	Day      forecasting.Day
	Quantity float64
	Stockout bool
}

// HistorySource returns a series' stored daily history, oldest first (the
// feature service).
type HistorySource interface {
	History(ctx context.Context, sku, location string) ([]DailyDemand, error)
}

// Result is one published forecast and its explanation.
type Result struct {
	Event      *forecastv1.ForecastEvent
	Components []Component
}

// Component is one named factor behind a forecast.
type Component struct {
	Name   string
	Value  float64
	Detail string
}

// Scorer forecasts series from snapshots. Safe for concurrent use; a series
// must be scored by one goroutine at a time (Kafka gives each series one
// partition, and a partition one handler).
type Scorer struct {
	cfg     Config
	history HistorySource
	now     func() time.Time

	mu    sync.Mutex
	cache *lru
	// latest holds the latest forecasts of the most recently scored
	// series whole (the others' are in forecast_log)
	latest *latestLRU
	stats  Stats

	// model is the global model combined with the ensemble; nil: the
	// ensemble alone.
	model atomic.Pointer[Model]
	// days holds the names of the horizon's days from the latest start
	// day named (every series' events of a day share them)
	days atomic.Pointer[dayNameSet]
}

// SetModel makes m the global model of every forecast from now on (nil:
// the ensemble alone). A batch scores with the model it first sees.
func (s *Scorer) SetModel(m *Model) { s.model.Store(m) }

// Model returns the global model in use, nil if none.
func (s *Scorer) Model() *Model { return s.model.Load() }

// Stats counts the cache's work, for metrics and tests.
type Stats struct {
	Rebuilds    int64 // states rebuilt from the feature service's history
	Incremental int64 // states advanced from the snapshot alone
	// GlobalForecasts counts the global model's forecasts of a series'
	// day: one per series per day and model, not one per event.
	GlobalForecasts int64
}

// New returns a Scorer; now is the clock for issued_at.
func New(cfg Config, history HistorySource, now func() time.Time) *Scorer {
	return &Scorer{cfg: cfg, history: history, now: now, cache: newLRU(cfg.MaxSeries), latest: newLatestLRU(cfg.latestSeries())}
}

// Stats returns the counters so far.
func (s *Scorer) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Series returns the number of series in memory.
func (s *Scorer) Series() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cache.len()
}

// Latest returns the latest forecast of a series if it is held in memory
// whole (one of the Config.LatestSeries most recently scored series); else
// it is in forecast_log.
func (s *Scorer) Latest(seriesKey string) (*Result, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.cache.peek(seriesKey)
	if !ok {
		return nil, false
	}
	res := s.latest.of(seriesKey, e)
	return res, res != nil
}

// LatestKept returns the number of latest forecasts held whole.
func (s *Scorer) LatestKept() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latest.len()
}

// Batch scores snapshots against a private copy of the series it touches;
// Commit makes the new states visible. A batch that fails later (store or
// broker down) is dropped and retried from the same states, so a retry
// gives the same forecasts and reasons.
type Batch struct {
	s       *Scorer
	model   *Model
	touched map[string]*series
	order   []string
	// results holds the latest forecast made from each series state of
	// the batch
	results map[*series]*Result
	stats   Stats
	// ahead holds the snapshots to score (Prefetch), pos the next one;
	// prefetched the histories fetched for them, until used
	ahead      []*featurev1.FeatureSnapshot
	pos        int
	prefetched map[string][]DailyDemand
	// restored holds what the scorer would hold of series not in memory
	// (Restore)
	restored map[string]*restored
}

// Begin starts a batch.
func (s *Scorer) Begin() *Batch {
	return &Batch{s: s, model: s.model.Load(), touched: make(map[string]*series), results: make(map[*series]*Result)}
}

// Commit stores the batch's series states and latest forecasts.
func (b *Batch) Commit() {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	for _, key := range b.order {
		e := b.touched[key]
		b.s.cache.put(e, b.s.latest.remove)
		b.s.latest.put(key, e, b.results[e])
	}
	b.s.stats.Rebuilds += b.stats.Rebuilds
	b.s.stats.Incremental += b.stats.Incremental
	b.s.stats.GlobalForecasts += b.stats.GlobalForecasts
}

// load returns the batch's copy of a series, nil if neither the batch nor
// the cache has it.
func (b *Batch) load(key string) *series {
	if e, ok := b.touched[key]; ok {
		return e
	}
	b.s.mu.Lock()
	cached, ok := b.s.cache.get(key)
	b.s.mu.Unlock()
	if !ok {
		return nil
	}
	// Shared, not copied: a cached series is never changed, only replaced
	// (Commit puts the batch's new one), and Score only reads it.
	return cached
}

// latestOf returns the latest forecast made from cur if it is held whole
// (made earlier in the batch, or kept by the scorer), nil otherwise.
func (b *Batch) latestOf(cur *series) *Result {
	if cur == nil {
		return nil
	}
	if res, ok := b.results[cur]; ok {
		return res
	}
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	return b.s.latest.of(cur.key, cur)
}

func (b *Batch) store(e *series, res *Result) {
	b.results[e] = res
	if _, ok := b.touched[e.key]; !ok {
		b.order = append(b.order, e.key)
	}
	b.touched[e.key] = e
}

// snapshotView is a validated snapshot.
type snapshotView struct {
	snap     *featurev1.FeatureSnapshot
	asOf     forecasting.Day
	first    forecasting.Day // day of recent_daily[0]
	stockout map[int]bool
}

func validate(snap *featurev1.FeatureSnapshot) (snapshotView, error) {
	v := snapshotView{snap: snap}
	if snap.GetEventId() == "" {
		return v, fmt.Errorf("%w: no event_id", ErrInvalidSnapshot)
	}
	if snap.GetSeriesKey() == "" {
		return v, fmt.Errorf("%w: no series_key", ErrInvalidSnapshot)
	}
	asOf, err := forecasting.ParseDay(snap.GetAsOfDay())
	if err != nil {
		return v, fmt.Errorf("%w: as_of_day: %v", ErrInvalidSnapshot, err)
	}
	v.asOf = asOf
	v.first = asOf - forecasting.Day(len(snap.GetRecentDaily())) + 1
	if len(snap.GetStockoutDays()) > 0 { // else nil: no day censored
		v.stockout = make(map[int]bool, len(snap.GetStockoutDays()))
	}
	for _, i := range snap.GetStockoutDays() {
		if i < 0 || int(i) >= len(snap.GetRecentDaily()) {
			return v, fmt.Errorf("%w: stockout day index %d outside recent_daily", ErrInvalidSnapshot, i)
		}
		v.stockout[int(i)] = true
	}
	return v, nil
}

// ForecastID is the deterministic id of the forecast of a series caused by
// eventID and made by the models modelVersion names (the event's
// model_version: the ensemble's version, and the global model's after a
// "+"): a redelivery scored by the same models repeats the id, one scored
// after a model swap gets another id (and its own forecast_log row), so
// two records with one id always hold the same forecast.
func ForecastID(seriesKey, eventID, modelVersion string) string {
	sum := sha256.Sum256([]byte(seriesKey + "|" + eventID + "|" + modelVersion))
	return hex.EncodeToString(sum[:16])
}

// Score forecasts the series of one snapshot. Errors wrapping
// ErrInvalidSnapshot are permanent; others (the feature service is down)
// are worth retrying.
func (b *Batch) Score(ctx context.Context, snap *featurev1.FeatureSnapshot) (*Result, error) {
	b.advance(snap)
	v, err := validate(snap)
	if err != nil {
		return nil, err
	}
	sku, location, isSeries := topics.SplitSeriesKey(snap.GetSeriesKey())
	if !isSeries {
		// An item-attributes event: no series to forecast, but the cause
		// is passed on so downstream sees every event in order.
		return b.itemResult(v), nil
	}
	cur := b.load(snap.GetSeriesKey())
	closedEnd := v.asOf - 1
	next := &series{key: snap.GetSeriesKey(), synced: closedEnd, syncedOK: true}
	cacheIt := true
	observedThrough := closedEnd // days after this come from the window
	var prevGlobal *globalPart
	var back *restored // not in memory, but its latest forecast read back
	if cur == nil {
		back = b.restored[snap.GetSeriesKey()]
	}
	switch {
	case cur != nil && cur.syncedOK && cur.synced >= v.first-1 && cur.synced <= closedEnd:
		// The cache is contiguous with the snapshot's window: advance it.
		next.state, next.win, next.global = cur.state, cur.win, cur.global
		prevGlobal = cur.global
		observedThrough = cur.synced
		b.stats.Incremental++
	case back != nil && back.lastStart-1 >= v.first-1 && back.lastStart-1 <= closedEnd:
		// What the cache would have held, rebuilt, then advanced (restore.go).
		if err := b.rebuild(ctx, sku, location, back.lastStart-1, next); err != nil {
			return nil, err
		}
		observedThrough = back.lastStart - 1
		b.stats.Rebuilds++
	default:
		// No state, or a gap between it and the window, or a state ahead of
		// this snapshot (a replay of older events): replay the history.
		if err := b.rebuild(ctx, sku, location, closedEnd, next); err != nil {
			return nil, err
		}
		if cur != nil {
			prevGlobal = cur.global
		}
		b.stats.Rebuilds++
		cacheIt = cur == nil || !cur.syncedOK || cur.synced <= closedEnd
		if back != nil {
			cacheIt = back.lastStart-1 <= closedEnd
		}
	}
	before := next.state
	recent := snap.GetRecentDaily()
	for i, y := range recent {
		if d := v.first + forecasting.Day(i); d > observedThrough && d <= closedEnd {
			next.state.Observe(d, y, v.stockout[i])
			next.win.observe(d, y, v.stockout[i])
		}
	}
	var prev *prevForecast
	if cur != nil && cur.prev.ok {
		prev = &cur.prev
	} else if back != nil {
		prev = &back.prev
	}
	next.global = nil
	if m := b.model; m != nil {
		price := snap.GetPrice()
		if !(price > 0) {
			price = math.NaN()
		}
		dept, cat := m.category(sku, snap.GetDepartment(), snap.GetCategory())
		if prevGlobal.fresh(m, v.asOf, price, dept, cat) {
			next.global = prevGlobal
		} else {
			scratch := scratchPool.Get().(*predictScratch)
			next.global = m.predict(&next.win, sku, location, dept, cat, price, v.asOf, b.s.cfg.Horizon, prevGlobal, scratch)
			scratchPool.Put(scratch)
			b.stats.GlobalForecasts++
		}
	}
	// An event later in the same day, with nothing else new (no closed
	// day, the same global part), moves only today and the lead times:
	// the other days' quantiles are the previous forecast's.
	// (when the previous forecast is held whole; else they are computed
	// again, to the same values)
	var same, kept *Result
	if cur != nil && prev != nil && (next.global == prevGlobal && next.global != nil || cur.lastStart == v.asOf) {
		kept = b.latestOf(cur)
	}
	if kept != nil && cur.lastStart == v.asOf && next.global == prevGlobal && next.state == cur.state &&
		len(kept.Event.GetDaily()) == b.s.cfg.Horizon {
		same = kept
	}
	var global globalView
	if g := next.global; g != nil {
		switch {
		case g.msg != nil: // computed for this forecast
			global = globalView{g.msg, g.comps}
		case g == prevGlobal && kept != nil:
			// the latest forecast, kept whole, has the same part
			global = globalView{kept.Event.GetGlobal(), kept.Components[len(kept.Components)-(3+len(b.model.names)):]}
		default:
			global.msg, global.comps, _ = b.model.explain(g, false)
		}
	}
	res, summary := b.forecast(v, sku, location, &next.state, &before, prev, same, next.global, global, next.global != prevGlobal)
	next.prev, next.lastStart = summary, v.asOf
	if g := next.global; g != nil && g != prevGlobal {
		// the forecast holds the explanation; the series keeps the
		// numbers (this part is the batch's own: no other holds it)
		g.compact()
	}
	if cacheIt {
		b.store(next, res)
	}
	return res, nil
}

// rebuild replays a series' stored history up to and including through
// into e's state and window; days missing from the history had no demand.
func (b *Batch) rebuild(ctx context.Context, sku, location string, through forecasting.Day, e *series) error {
	st := &e.state
	hist, err := b.historyOf(ctx, e.key, sku, location)
	if err != nil {
		return fmt.Errorf("load history of %s: %w", topics.SeriesKey(sku, location), err)
	}
	sort.SliceStable(hist, func(i, j int) bool { return hist[i].Day < hist[j].Day })
	next := forecasting.Day(0)
	for i, h := range hist {
		if h.Day > through {
			break
		}
		if i > 0 {
			for d := next; d < h.Day; d++ {
				st.Observe(d, 0, false)
				e.win.observe(d, 0, false)
			}
		}
		st.Observe(h.Day, h.Quantity, h.Stockout)
		e.win.observe(h.Day, h.Quantity, h.Stockout)
		next = h.Day + 1
	}
	if st.HasDay {
		for d := st.LastDay + 1; d <= through; d++ {
			st.Observe(d, 0, false)
			e.win.observe(d, 0, false)
		}
	}
	return nil
}

// forecast makes the series' forecast; same, if not nil, is a forecast of
// the same state, start day and global part, whose quantiles of the days
// after today are taken as they are.
func (b *Batch) forecast(v snapshotView, sku, location string, state, before *forecasting.State, prev *prevForecast, same *Result,
	global *globalPart, explained globalView, globalMoved bool) (*Result, prevForecast) {
	snap := v.snap
	cfg := b.s.cfg
	recent := snap.GetRecentDaily()
	todaySoFar := 0.0
	if len(recent) > 0 {
		todaySoFar = recent[len(recent)-1]
	}
	share := intradayShare(snap, v.asOf)
	// f's memory is reused from forecast to forecast: the event keeps
	// only its quantiles, which are new memory each time
	f := forecastPool.Get().(*forecasting.Forecast)
	defer forecastPool.Put(f)
	state.ForecastInto(forecasting.Request{
		StartDay:       v.asOf,
		Horizon:        cfg.Horizon,
		TodaySoFar:     todaySoFar,
		IntradayShare:  share,
		QuantileLevels: cfg.QuantileLevels,
		LeadTimes:      cfg.LeadTimes,
		TodayOnly:      same != nil,
		Calibration:    b.model.quantileCalibration(),
	}, f)
	model, version := forecasting.ModelName, forecasting.ModelVersion
	if global != nil {
		combine(f, global.means, b.model.Weight, todaySoFar, share)
		model, version = modelNameGBT, b.model.eventVersion
		if global.version != b.model.Version { // (a part is the batch model's)
			version = forecasting.ModelVersion + "+" + global.version
		}
	}
	if same != nil {
		// combined already, when there is a global part: combine left the
		// missing quantiles alone
		for h := 1; h < len(f.Quantiles); h++ {
			f.Quantiles[h] = same.Event.GetDaily()[h].GetQuantiles()
		}
	}
	ev := &forecastv1.ForecastEvent{
		ForecastId:     ForecastID(snap.GetSeriesKey(), snap.GetEventId(), version),
		EventId:        snap.GetEventId(),
		SeriesKey:      snap.GetSeriesKey(),
		Sku:            sku,
		Location:       location,
		AsOf:           snap.GetOccurredAt(),
		IssuedAt:       timestamppb.New(b.s.now()),
		StartDay:       v.asOf.String(),
		QuantileLevels: f.QuantileLevels,
		Model:          model,
		ModelVersion:   version,
		DemandClass:    string(f.Class),
		Cause:          snap.GetCause(),
	}
	if global != nil {
		ev.Global = explained.msg
	}
	// one allocation each for the days, their names and the lead times
	// (used by pointer only, as protobuf messages must be)
	daily := make([]forecastv1.DailyForecast, len(f.Means))
	ev.Daily = make([]*forecastv1.DailyForecast, len(f.Means))
	names := b.s.dayNames(v.asOf, len(f.Means))
	for h, m := range f.Means {
		d := &daily[h]
		d.Day, d.Mean, d.Quantiles = names[h], m, f.Quantiles[h]
		ev.Daily[h] = d
	}
	lts := make([]forecastv1.LeadTimeDemand, len(f.LeadTime))
	ev.LeadTimeDemand = make([]*forecastv1.LeadTimeDemand, len(f.LeadTime))
	for i, lt := range f.LeadTime {
		l := &lts[i]
		l.LeadTimeDays, l.Mean, l.Quantiles = int32(lt.Days), lt.Mean, lt.Quantiles
		ev.LeadTimeDemand[i] = l
	}
	ev.Reason = reason(reasonInput{
		snap: snap, asOf: v.asOf, forecast: f, prev: prev, before: before, after: state,
		todaySoFar: todaySoFar, share: share, global: global, globalMoved: globalMoved,
	})
	comps := components(f, share, len(explained.comps))
	if global != nil {
		comps = append(comps, explained.comps...)
	}
	return &Result{Event: ev, Components: comps}, summarise(ev, comps)
}

// forecastPool holds the forecasts' working memory (ForecastInto).
var forecastPool = sync.Pool{New: func() any { return new(forecasting.Forecast) }}

// globalView is a global part's explanation in a forecast: its message
// and components.
type globalView struct {
	msg   *forecastv1.GlobalForecast
	comps []Component
}

// summarise returns what the next forecast's reason reads of res (as
// reason reads it: the daily means summed in day order, the last "level"
// component).
func summarise(ev *forecastv1.ForecastEvent, comps []Component) prevForecast {
	p := prevForecast{ok: true, globalVersion: ev.GetGlobal().GetVersion()}
	for _, d := range ev.GetDaily() {
		p.total += d.GetMean()
	}
	for _, c := range comps {
		if c.Name == "level" {
			p.level, p.hasLevel = c.Value, true
		}
	}
	return p
}

func (b *Batch) itemResult(v snapshotView) *Result {
	snap := v.snap
	return &Result{Event: &forecastv1.ForecastEvent{
		ForecastId:   ForecastID(snap.GetSeriesKey(), snap.GetEventId(), forecasting.ModelVersion),
		EventId:      snap.GetEventId(),
		SeriesKey:    snap.GetSeriesKey(),
		Sku:          snap.GetSku(),
		AsOf:         snap.GetOccurredAt(),
		IssuedAt:     timestamppb.New(b.s.now()),
		StartDay:     v.asOf.String(),
		Model:        forecasting.ModelName,
		ModelVersion: forecasting.ModelVersion,
		Reason: &forecastv1.ForecastReason{
			Code:   forecastv1.ReasonCode_REASON_CODE_UNCHANGED,
			Detail: "item attributes changed: no series forecast",
		},
		Cause: snap.GetCause(),
	}}
}

// dayNames returns the names ("YYYY-MM-DD") of n days from start: slices
// of one string (one allocation for the text).
func dayNames(start forecasting.Day, n int) []string {
	buf := make([]byte, 0, 10*n)
	ends := make([]int, n)
	for h := range n {
		buf = (start + forecasting.Day(h)).AppendString(buf)
		ends[h] = len(buf)
	}
	text := string(buf)
	names := make([]string, n)
	begin := 0
	for h, end := range ends {
		names[h], begin = text[begin:end], end
	}
	return names
}

// dayNameSet is the names of n days from start.
type dayNameSet struct {
	start forecasting.Day
	names []string
}

// dayNames returns dayNames(start, n), made once for the latest start day
// (the names are strings: shared by the events, never written); the day
// after it takes its names but the first and names one more day.
func (s *Scorer) dayNames(start forecasting.Day, n int) []string {
	d := s.days.Load()
	if d != nil && d.start == start && len(d.names) == n {
		return d.names
	}
	var names []string
	if d != nil && d.start == start-1 && len(d.names) == n && n > 0 {
		names = make([]string, n)
		copy(names, d.names[1:])
		names[n-1] = (start + forecasting.Day(n-1)).String()
	} else {
		names = dayNames(start, n)
	}
	s.days.Store(&dayNameSet{start: start, names: names})
	return names
}

// intradayShare is the share of the as-of day's demand usually seen by the
// cause's time, from the series' intraday profile (uniform without one).
func intradayShare(snap *featurev1.FeatureSnapshot, asOf forecasting.Day) float64 {
	at := snap.GetOccurredAt()
	if at == nil {
		return 0
	}
	t := at.AsTime().UTC()
	switch day := forecasting.DayOf(t); {
	case day < asOf:
		return 0 // a late event: the time of day on as_of_day is unknown
	case day > asOf:
		return 1
	}
	hour := t.Hour()
	frac := float64(t.Minute()*60+t.Second()) / 3600
	cum := snap.GetIntradayCumulative()
	if len(cum) != 24 || cum[23] <= 0 {
		return (float64(hour) + frac) / 24
	}
	prev := 0.0
	if hour > 0 {
		prev = cum[hour-1]
	}
	return min(max(prev+frac*(cum[hour]-prev), 0), 1)
}

// memberNames and weightNames are the members' names and their weights'
// component names, made once (index-aligned with Components.Weights).
var memberNames, weightNames = func() ([]string, []string) {
	names := forecasting.MemberNames()
	out := make([]string, len(names))
	for i, name := range names {
		out[i] = "weight_" + name
	}
	return names, out
}()

func weightName(i int, member string) string {
	if i < len(weightNames) && memberNames[i] == member {
		return weightNames[i]
	}
	return "weight_" + member
}

// memberDetail is the "member" component's detail (as
// fmt.Sprintf("%s has the largest weight (one-step RMSE %.3f, MAE %.3f)")).
func memberDetail(member string, rmse, mae float64) string {
	b := append(append(make([]byte, 0, 80), member...), " has the largest weight (one-step RMSE "...)
	b = appendFixedFast(b, rmse, 3)
	b = appendFixedFast(append(b, ", MAE "...), mae, 3)
	return string(append(b, ')'))
}

// modelNameGBT is the model of a forecast combined with the global model.
const modelNameGBT = forecasting.ModelName + "+gbt"

// weekdayDetails are the weekday_factor component's details, by weekday.
var weekdayDetails = func() (out [7]string) {
	for d := range out {
		out[d] = "weekly-seasonal multiplier of " + time.Weekday(d).String()
	}
	return out
}()

// classDetail is the adi component's detail.
func classDetail(c forecasting.Class) string {
	switch c {
	case forecasting.ClassNew:
		return "average days between demands (class new)"
	case forecasting.ClassSmooth:
		return "average days between demands (class smooth)"
	case forecasting.ClassErratic:
		return "average days between demands (class erratic)"
	case forecasting.ClassIntermittent:
		return "average days between demands (class intermittent)"
	case forecasting.ClassLumpy:
		return "average days between demands (class lumpy)"
	}
	return "average days between demands (class " + string(c) + ")"
}

// components returns the ensemble's components of f, with room for extra
// more (the global model's).
func components(f *forecasting.Forecast, share float64, extra int) []Component {
	c := f.Components
	out := make([]Component, 0, 10+len(c.Weights)+extra)
	out = append(out, []Component{
		{Name: "level", Value: c.Level, Detail: "mean daily demand over the next 7 days"},
		{Name: "trend", Value: c.Trend, Detail: "damped-trend member's slope, units per day"},
		{Name: "weekday_factor", Value: c.WeekdayFactor, Detail: weekdayDetails[f.StartDay.Time().Weekday()]},
		{Name: "member", Value: c.MemberWeight, Detail: memberDetail(c.Member, c.MemberRMSE, c.MemberMAE)},
		{Name: "member_rmse", Value: c.MemberRMSE, Detail: c.Member},
		{Name: "sigma", Value: c.Sigma, Detail: "RMSE of the combination's one-step errors"},
		{Name: "dispersion", Value: c.Dispersion, Detail: c.Distribution},
		{Name: "adi", Value: c.ADI, Detail: classDetail(c.Class)},
		{Name: "cv2", Value: c.CV2, Detail: "squared coefficient of variation of non-zero demand"},
		{Name: "intraday_share", Value: share, Detail: "share of today's demand usually seen by now"},
	}...)
	// the weights' details into one string (one allocation), each a slice
	buf := make([]byte, 0, 24*len(c.Weights))
	var endsBuf [16]int
	ends := endsBuf[:0]
	if len(c.Weights) > len(endsBuf) {
		ends = make([]int, len(c.Weights))
	}
	ends = ends[:len(c.Weights)]
	for i, w := range c.Weights {
		buf = appendFixedFast(append(buf, "one-step RMSE "...), w.RMSE, 3) // as %.3f
		ends[i] = len(buf)
	}
	details := string(buf)
	begin := 0
	for i, w := range c.Weights {
		out = append(out, Component{Name: weightName(i, w.Name), Value: w.Weight, Detail: details[begin:ends[i]]})
		begin = ends[i]
	}
	return out
}
