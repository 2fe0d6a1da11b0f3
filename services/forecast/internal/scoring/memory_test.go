package scoring

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/pkg/backtest"
	"github.com/stockcast/stockcast/pkg/forecasting"
	catalogv1 "github.com/stockcast/stockcast/proto/stockcast/catalog/v1"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
)

// m5Source serves the histories of many series made from the M5 tiny
// subset's 280 real series: series k ("<item>#<k>|<store>") is M5 series
// k % 280 up to (not including) its day end(k), the last histDays days of
// it, so that the copies of one M5 series end on different days.
type m5Source struct {
	ds       *backtest.Dataset
	histDays int
}

var m5Once struct {
	sync.Once
	ds  *backtest.Dataset
	err error
}

func loadM5Tiny(tb testing.TB) *backtest.Dataset {
	tb.Helper()
	m5Once.Do(func() {
		path, err := backtest.FindFile("data/m5-tiny/tiny_m5_long.csv.gz")
		if err != nil {
			m5Once.err = err
			return
		}
		m5Once.ds, m5Once.err = backtest.LoadM5(path)
	})
	if m5Once.err != nil {
		tb.Fatalf("M5 data (shipped in data/m5-tiny): %v", m5Once.err)
	}
	return m5Once.ds
}

func (s m5Source) key(k int) string {
	m := s.ds.Series[k%len(s.ds.Series)]
	return m.Item + "#" + strconv.Itoa(k) + "|" + m.Store
}

// end is the day index of series k's as-of day: the last days of the data,
// one week earlier per copy (up to a year).
func (s m5Source) end(k int) int {
	return s.ds.Days - 1 - 7*((k/len(s.ds.Series))%52)
}

func (s m5Source) index(sku string) int {
	k, _ := strconv.Atoi(sku[strings.IndexByte(sku, '#')+1:])
	return k
}

func (s m5Source) History(_ context.Context, sku, _ string) ([]DailyDemand, error) {
	k := s.index(sku)
	values := s.ds.Series[k%len(s.ds.Series)].Values
	end := s.end(k)
	out := make([]DailyDemand, 0, s.histDays)
	for t := max(end-s.histDays, 0); t < end; t++ {
		out = append(out, DailyDemand{Day: s.ds.Day(t), Quantity: values[t]})
	}
	return out, nil
}

// snapshot is series k's snapshot of its day end(k)+dayOffset at hour,
// with the share soFar of that day's demand seen.
func (s m5Source) snapshot(k, dayOffset, hour int, soFar float64) *featurev1.FeatureSnapshot {
	values := s.ds.Series[k%len(s.ds.Series)].Values
	t := s.end(k) + dayOffset
	recent := make([]float64, 56)
	for j := range recent {
		if i := t - 55 + j; i >= 0 {
			recent[j] = values[i]
		}
	}
	recent[55] = values[t] * soFar
	key := s.key(k)
	sku, location, _ := strings.Cut(key, "|")
	asOf := s.ds.Day(t)
	id := fmt.Sprintf("%s-%d-%d", key, dayOffset, hour)
	return &featurev1.FeatureSnapshot{
		EventId: id, OccurredAt: timestamppb.New(asOf.Time().Add(time.Duration(hour) * time.Hour)),
		SeriesKey: key, Sku: sku, Location: location, AsOfDay: asOf.String(), RecentDaily: recent, Applied: true,
		Cause: &demandv1.DemandEvent{EventId: id, SeriesKey: key, Day: asOf.String(),
			Change: &demandv1.DemandEvent_Demand{Demand: &demandv1.Demand{Quantity: 1}}},
	}
}

// memSeries is the number of series BenchmarkHeapPerSeries holds.
const memSeries = 10_000

// BenchmarkHeapPerSeries measures the Go heap the scorer holds per series:
// memSeries series made from the real M5 tiny series (each with up to two
// year of history), each scored three times as a selling series is (an
// event at 11:00, one at 17:00 of the same day, one the next day at
// 11:00), then the heap in use after a GC, against the heap before. It
// runs once whatever b.N, for three caches: every series kept as it is
// and one latest forecast kept whole (the cache before cold series: the
// baseline of the ratios), the default (the DefaultLatestSeries most
// recently scored series as they are, their latest forecasts whole, the
// others cold), and one (every series but the last scored cold: the
// per-series floor); with the ensemble alone and with a global model of
// the m5-tiny champion's size. Run it with
//
//	go test -run '^$' -bench HeapPerSeries -benchtime 1x ./services/forecast/internal/scoring/
func BenchmarkHeapPerSeries(b *testing.B) {
	src := m5Source{ds: loadM5Tiny(b), histDays: 365}
	fmt.Printf("a series' state: %d bytes (the allocation's size class: 4096 up to 4096 bytes, 4864 above)\n", unsafe.Sizeof(series{}))
	for _, withModel := range []bool{false, true} {
		name := "ensemble"
		var model *Model
		if withModel {
			name = "global"
			model = benchModel(b, testSeries{start: 19000, demand: weekly(2000)})
		}
		var base float64
		for _, c := range []struct {
			name    string
			latest  int
			decoded bool
		}{{"decoded", 1, true}, {fmt.Sprintf("latest=%d", DefaultLatestSeries), DefaultLatestSeries, false}, {"latest=1", 1, false}} {
			b.Run(name+"/"+c.name, func(b *testing.B) {
				cfg := testConfig(memSeries)
				cfg.LatestSeries = c.latest
				perSeries, sc := heapPerSeries(b, src, cfg, model, c.decoded)
				b.ReportMetric(perSeries, "heap-B/series")
				if c.decoded {
					base = perSeries
				}
				packed, n := 0, 0
				for el := sc.cache.cold.Front(); el != nil; el = el.Next() {
					packed += len(el.Value.(*coldSeries).packed)
					n++
				}
				mean := 0.0
				if n > 0 {
					mean = float64(packed) / float64(n)
				}
				fmt.Printf("heap %s %s: %.0f bytes per series of %d (%d hot, %d latest kept whole, %d cold: %.0f bytes compact on average), %.3f of decoded\n",
					name, c.name, perSeries, sc.Series(), sc.cache.hotLen(), sc.LatestKept(), n, mean, perSeries/base)
			})
		}
	}
}

func heapPerSeries(b *testing.B, src m5Source, cfg Config, model *Model, decoded bool) (float64, *Scorer) {
	b.Helper()
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	sc := New(cfg, src, fixedClock)
	sc.cache.keepDecoded = decoded
	sc.SetModel(model)
	for _, ev := range []struct {
		dayOffset, hour int
		soFar           float64
	}{{-1, 11, 0.4}, {-1, 17, 0.8}, {0, 11, 0.4}} {
		for k := range memSeries {
			batch := sc.Begin()
			if _, err := batch.Score(ctx, src.snapshot(k, ev.dayOffset, ev.hour, ev.soFar)); err != nil {
				b.Fatal(err)
			}
			batch.Commit()
		}
	}
	if n := sc.Series(); n != memSeries {
		b.Fatalf("%d series in memory, want %d", n, memSeries)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(sc)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / memSeries, sc
}

// TestM5SeriesScored: the memory benchmark's series are real, distinct
// and scored: every copy of an M5 series has its own key and history end,
// and a scorer holds them all.
func TestM5SeriesScored(t *testing.T) {
	src := m5Source{ds: loadM5Tiny(t), histDays: 100}
	n := 2 * len(src.ds.Series)
	sc := New(testConfig(n), src, fixedClock)
	ends := map[int]bool{}
	for k := range n {
		ends[src.end(k)] = true
		score(t, sc, src.snapshot(k, -1, 11, 0.4))
	}
	if sc.Series() != n || len(ends) != 2 {
		t.Fatalf("%d series, %d history ends; want %d and 2", sc.Series(), len(ends), n)
	}
	if got := src.index(strings.SplitN(src.key(n-1), "|", 2)[0]); got != n-1 {
		t.Fatalf("key %q parses to series %d", src.key(n-1), got)
	}
}

// TestLatestSummaryEqualsWhole: a scorer that keeps one latest forecast
// whole (the others as a summary: reasons read the summary, same-day
// events compute the days after today again) publishes byte for byte the
// forecasts and components of one that keeps every series' whole, over an
// interleaved stream of real series: first forecasts, same-day events (one
// a price change), closed days, a global model loaded and swapped
// (MODEL_CHANGED reads the previous version), and a rebuild after a gap.
// Both paths of the same-day reuse are taken, and of a global part's
// reuse (its explanation the kept forecast's, or made again from the
// part's numbers: a cached part keeps only those); Latest answers for the
// kept series only.
func TestLatestSummaryEqualsWhole(t *testing.T) {
	src := m5Source{ds: loadM5Tiny(t), histDays: 400}
	m, _ := testModel(t, testSeries{start: 19000, demand: weekly(400)})
	other := *m
	other.Version += "-other"
	const n = 12
	whole, one := testConfig(n), testConfig(n)
	whole.LatestSeries, one.LatestSeries = n, 1
	scorers := []*Scorer{New(whole, src, fixedClock), New(one, src, fixedClock)}
	codes := map[forecastv1.ReasonCode]int{}
	reused, sharedGlobal, rebuiltGlobal := [2]int{}, [2]int{}, [2]int{}
	var prev [2]map[string]*Result
	for i := range prev {
		prev[i] = map[string]*Result{}
	}
	type step struct {
		dayOffset, hour int
		soFar           float64
		model           *Model
		price           bool
	}
	steps := []step{{-30, 11, 0.4, nil, false}, {-30, 15, 0.5, nil, false}, {-30, 17, 3, nil, true}, {-29, 10, 0.3, nil, false},
		{-29, 12, 0.5, m, false}, {-29, 16, 0.7, m, false}, {-28, 11, 0.4, m, false}, {-28, 13, 0.6, &other, false},
		{-28, 18, 0.9, &other, false}, {-10, 11, 0.4, &other, false}, {-10, 12, 0.5, &other, false}}
	for si, st := range steps {
		for k := range n {
			snap := src.snapshot(k, st.dayOffset, st.hour, st.soFar)
			if st.price {
				snap.Cause.Change = &demandv1.DemandEvent_Price{Price: &catalogv1.PriceChange{Price: 2.5, Currency: "USD"}}
			}
			var got [2]*Result
			for i, sc := range scorers {
				sc.SetModel(st.model)
				got[i] = score(t, sc, snap)
				if p := prev[i][snap.GetSeriesKey()]; p != nil && len(p.Event.GetDaily()) > 5 &&
					&p.Event.GetDaily()[5].GetQuantiles()[0] == &got[i].Event.GetDaily()[5].GetQuantiles()[0] {
					reused[i]++
				}
				// a global part reused: its message is the kept
				// forecast's, or made again from the part's numbers
				if p := prev[i][snap.GetSeriesKey()]; p != nil && p.Event.GetGlobal() != nil && got[i].Event.GetGlobal() != nil &&
					p.Event.GetGlobal().GetVersion() == got[i].Event.GetGlobal().GetVersion() && p.Event.GetStartDay() == got[i].Event.GetStartDay() {
					if p.Event.GetGlobal() == got[i].Event.GetGlobal() {
						sharedGlobal[i]++
					} else {
						rebuiltGlobal[i]++
					}
				}
				prev[i][snap.GetSeriesKey()] = got[i]
				// the summary kept is what the reason read of the whole
				// forecast before
				sc.mu.Lock()
				cached, _ := sc.cache.peek(snap.GetSeriesKey())
				sc.mu.Unlock()
				if want := wholeSummary(got[i]); cached.prev != want {
					t.Fatalf("step %d series %d: summary %+v, want %+v", si, k, cached.prev, want)
				}
			}
			enc := proto.MarshalOptions{Deterministic: true}
			a, err := enc.Marshal(got[0].Event)
			if err != nil {
				t.Fatal(err)
			}
			b, err := enc.Marshal(got[1].Event)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Fatalf("step %d series %d: the forecasts differ:\n%v\n%v", si, k, got[0].Event.GetReason(), got[1].Event.GetReason())
			}
			if !reflect.DeepEqual(got[0].Components, got[1].Components) {
				t.Fatalf("step %d series %d: the components differ", si, k)
			}
			codes[got[0].Event.GetReason().GetCode()]++
		}
	}
	for _, c := range []forecastv1.ReasonCode{forecastv1.ReasonCode_REASON_CODE_DAY_CLOSED,
		forecastv1.ReasonCode_REASON_CODE_MODEL_CHANGED, forecastv1.ReasonCode_REASON_CODE_PRICE_CHANGED} {
		if codes[c] == 0 {
			t.Errorf("no %v forecast (reasons %v): the stream does not exercise the summary", c, codes)
		}
	}
	if codes[forecastv1.ReasonCode_REASON_CODE_UNCHANGED]+codes[forecastv1.ReasonCode_REASON_CODE_DEMAND_SHIFT] == 0 {
		t.Errorf("no same-day reason (reasons %v)", codes)
	}
	// whole: every same-day event without a new global part reuses; one:
	// only the series scored last, which is never the next one scored
	if reused[0] == 0 || reused[1] != 0 {
		t.Errorf("same-day reuse: %d events keeping every series, %d keeping one; want some and none", reused[0], reused[1])
	}
	if sharedGlobal[0] == 0 || rebuiltGlobal[0] != 0 || sharedGlobal[1] != 0 || rebuiltGlobal[1] == 0 {
		t.Errorf("global parts reused: shared %v, made again %v (every series kept, one kept); want shared only, made again only",
			sharedGlobal, rebuiltGlobal)
	}
	for k := range n {
		key := src.key(k)
		if _, ok := scorers[0].Latest(key); !ok {
			t.Errorf("%s: no latest forecast with every series kept", key)
		}
		if _, ok := scorers[1].Latest(key); ok != (k == n-1) {
			t.Errorf("%s: latest forecast kept %v keeping one (the last scored)", key, ok)
		}
	}
	if kept := scorers[1].LatestKept(); kept != 1 {
		t.Errorf("%d latest forecasts kept whole, want 1", kept)
	}
}

// wholeSummary reads a forecast as reason read the previous forecast when
// the scorer kept it whole.
func wholeSummary(r *Result) prevForecast {
	p := prevForecast{ok: true}
	for _, d := range r.Event.GetDaily() {
		p.total += d.GetMean()
	}
	p.globalVersion = r.Event.GetGlobal().GetVersion()
	for _, c := range r.Components {
		if c.Name == "level" {
			p.level, p.hasLevel = c.Value, true
		}
	}
	return p
}

// TestWindowCensoredBits: the window's censored bits are the days observed
// censored last in each slot, over several turns of the ring.
func TestWindowCensoredBits(t *testing.T) {
	var w window
	var want [HistoryDays]bool
	for d := forecasting.Day(19000); d < 19000+3*HistoryDays+5; d++ {
		c := d%3 == 0 || d%7 == 2
		w.observe(d, float64(d%11), c)
		want[int(d)%HistoryDays] = c
		for i := range HistoryDays {
			if w.isCensored(i) != want[i] {
				t.Fatalf("after day %d: slot %d censored %v, want %v", d, i, w.isCensored(i), want[i])
			}
		}
	}
}

// BenchmarkBatchInFlight measures the Go heap one batch holds while the
// consumer handles it (services/forecast/internal/consumer): inFlight
// snapshots of distinct series scored in one Batch with a global model of
// the m5-tiny champion's size (the first event of each series' day: all
// days computed), each result kept with its encoded forecasts.v1 value as
// the handler keeps them until the insert and the produce, against the
// heap after the batch is committed and the results dropped (what stays:
// the series, all but the last one cold: -forecast.latest-series=1, so
// that no result outlives the batch as a latest forecast kept whole). The
// forecast_log insert's column buffers and the fetched records come on top
// (docs/load.md "Session 7"). Run it with
//
//	go test -run '^$' -bench BatchInFlight -benchtime 1x ./services/forecast/internal/scoring/
func BenchmarkBatchInFlight(b *testing.B) {
	src := m5Source{ds: loadM5Tiny(b), histDays: 365}
	model := benchModel(b, testSeries{start: 19000, demand: weekly(2000)})
	for _, inFlight := range []int{2_000, 10_000} {
		b.Run(strconv.Itoa(inFlight), func(b *testing.B) {
			ctx := context.Background()
			cfg := testConfig(2 * inFlight)
			cfg.LatestSeries = 1
			sc := New(cfg, src, fixedClock)
			sc.SetModel(model)
			snaps := make([]*featurev1.FeatureSnapshot, inFlight)
			for k := range snaps {
				snaps[k] = src.snapshot(k, 0, 11, 0.4)
			}
			var before, during, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			batch := sc.Begin()
			batch.Prefetch(snaps)
			results := make([]*Result, 0, inFlight)
			values := make([][]byte, 0, inFlight)
			for _, snap := range snaps {
				res, err := batch.Score(ctx, snap)
				if err != nil {
					b.Fatal(err)
				}
				value, err := proto.Marshal(res.Event)
				if err != nil {
					b.Fatal(err)
				}
				results, values = append(results, res), append(values, value)
			}
			runtime.GC()
			runtime.ReadMemStats(&during)
			encoded := 0
			for _, v := range values {
				encoded += len(v)
			}
			batch.Commit()
			runtime.KeepAlive(results)
			runtime.KeepAlive(values)
			results, values = nil, nil
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(sc)
			if n := sc.Series(); n != inFlight {
				b.Fatalf("%d series in memory, want %d", n, inFlight)
			}
			held := float64(int64(during.HeapAlloc)-int64(before.HeapAlloc)) / float64(inFlight)
			stays := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(inFlight)
			b.ReportMetric(held-stays, "inflight-B/record")
			b.ReportMetric(stays, "heap-B/series")
			fmt.Printf("batch of %d: %.0f bytes per record while in flight (%.0f of it the encoded forecasts.v1 value), %.0f per series after the commit\n",
				inFlight, held-stays, float64(encoded)/float64(inFlight), stays)
		})
	}
}
