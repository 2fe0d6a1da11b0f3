package scoring

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stockcast/stockcast/pkg/backtest"
	"github.com/stockcast/stockcast/pkg/gbt"
	"github.com/stockcast/stockcast/pkg/globalmodel"
	"github.com/stockcast/stockcast/pkg/modelregistry"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
)

// benchTrees and benchDepth are the size of the m5-tiny champion
// (docs/forecasting.md: 117 rounds of depth 8).
const (
	benchTrees = 117
	benchDepth = 8
)

var benchOnce struct {
	sync.Once
	m   *Model
	err error
}

// benchModel trains a global model of the m5-tiny champion's size on 40
// weekly series x 400 days (scaled and shifted copies of the benchmark's
// series), with the default settings otherwise.
func benchModel(b *testing.B, src testSeries) *Model {
	b.Helper()
	benchOnce.Do(func() {
		const n, days = 40, 400
		ds := &backtest.Dataset{Name: "bench", Start: src.start, Days: days}
		for k := range n {
			s := backtest.Series{ID: fmt.Sprintf("I%d|online", k), Item: fmt.Sprintf("I%d", k), Dept: fmt.Sprintf("D%d", k%4),
				Cat: "all", Store: "online", Values: make([]float64, days), Prices: make([]float64, days)}
			for t := range days {
				s.Values[t] = math.Round(src.demand[(t+k)%len(src.demand)] * float64(1+k%5) / 2)
				s.Prices[t] = float64(1 + k%7)
			}
			ds.Series = append(ds.Series, s)
		}
		p := gbt.DefaultParams()
		p.Rounds, p.MaxDepth, p.EarlyStoppingRounds, p.MinChildWeight = benchTrees, benchDepth, 0, 1
		tr, err := globalmodel.Train(globalmodel.NewPanel(ds), days, 28, p, false)
		if err != nil {
			benchOnce.err = err
			return
		}
		a, err := globalmodel.NewArtefact(tr.Model, ds.Name, ds.Day(days).String(), 28, nil, time.Unix(0, 0))
		if err != nil {
			benchOnce.err = err
			return
		}
		benchOnce.m, benchOnce.err = NewModel(a, modelregistry.NewSeries(a.Version, ds), DefaultGlobalWeight)
	})
	if benchOnce.err != nil {
		b.Fatal(benchOnce.err)
	}
	return benchOnce.m
}

// BenchmarkScore is the per-event cost of scoring a warm series, snapshot
// in, forecast event out (no Kafka, no ClickHouse): a snapshot on the same
// day (the common case for a selling series) and one that closes a day,
// with the default 28-day horizon, 14 quantiles and 9 lead times; with the
// per-series ensemble alone (the baseline) and combined with a global
// model of the m5-tiny champion's size. The global model's forecast of a
// series depends only on closed days, so it is computed on the first
// event of a day and reused by the day's other events: same_day/global
// measures the reuse, day_closed/global a closed day (one new day
// predicted, the others carried over), price_changed/global the full
// 28-day computation by the trees that read the price (the others' margins
// carried over), model_swapped the full computation by every tree (a new
// model, a cold series, 28 days without events): the baseline the ratios
// printed at the end compare with. same_day_unkept is same_day for a
// series whose latest forecast is not kept whole (beyond
// Config.LatestSeries): every day's quantiles are computed again, and the
// global part's explanation is made again from its numbers.
func BenchmarkScore(b *testing.B) {
	const days = 2000
	src := testSeries{start: 19000, demand: weekly(days)}
	snaps := make([]*featurev1.FeatureSnapshot, days)
	for i := range snaps {
		snaps[i] = src.snapshot(i, fmt.Sprintf("e%d", i))
	}
	var priced [2]*featurev1.FeatureSnapshot // day 100 at two prices
	for k := range priced {
		priced[k] = src.snapshot(100, fmt.Sprintf("p%d", k))
		priced[k].Price = float64(3 + k)
	}
	cpu := map[string]float64{} // µs per event by case
	for _, bc := range []struct {
		name      string
		nextDay   bool
		newPrice  bool // every event changes the price: the volatile trees predict 28 days
		swapModel bool // every event under another model version: every tree predicts 28 days
		unkept    bool // the latest forecast is not kept whole
	}{{"same_day", false, false, false, false}, {"same_day_unkept", false, false, false, true}, {"day_closed", true, false, false, false},
		{"price_changed", false, true, false, false}, {"model_swapped", false, false, true, false}} {
		for _, withModel := range []bool{false, true} {
			if bc.swapModel && !withModel {
				continue
			}
			name := bc.name + "/ensemble"
			if withModel {
				name = bc.name + "/global"
			}
			b.Run(name, func(b *testing.B) {
				var model, other *Model
				if withModel {
					model = benchModel(b, src)
					o := *model
					o.Version += "-other" // the same trees under another version
					other = &o
				}
				ctx := context.Background()
				var sc *Scorer
				warm := func() {
					sc = New(testConfig(10), src, fixedClock)
					sc.SetModel(model)
					batch := sc.Begin()
					if _, err := batch.Score(ctx, snaps[100]); err != nil {
						b.Fatal(err)
					}
					batch.Commit()
				}
				warm()
				// one OS thread, so its CPU time is the events' (GC work on
				// other threads is not counted; allocations are reported)
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				cpu0, cpuOK := threadCPU()
				var paused time.Duration
				b.ReportAllocs()
				b.ResetTimer()
				day := 100
				for i := 0; i < b.N; i++ {
					if bc.nextDay {
						if day++; day == days {
							b.StopTimer()
							p0, _ := threadCPU()
							warm()
							p1, _ := threadCPU()
							paused += p1 - p0
							day = 101
							b.StartTimer()
						}
					}
					snap := snaps[day]
					if bc.newPrice {
						snap = priced[i%2]
					}
					if bc.swapModel {
						if i%2 == 0 {
							sc.SetModel(other)
						} else {
							sc.SetModel(model)
						}
					}
					if bc.unkept {
						sc.mu.Lock()
						sc.latest.remove(snap.GetSeriesKey())
						sc.mu.Unlock()
					}
					batch := sc.Begin()
					if _, err := batch.Score(ctx, snap); err != nil {
						b.Fatal(err)
					}
					batch.Commit()
				}
				b.StopTimer()
				if cpu1, ok := threadCPU(); ok && cpuOK {
					us := float64((cpu1 - cpu0 - paused).Nanoseconds()) / 1e3 / float64(b.N)
					b.ReportMetric(us, "cpu-µs/event")
					cpu[name] = us
				}
			})
		}
	}
	// the ratios of this run: each case with the global model against the
	// plain recompute (model_swapped: all 28 days by every tree, as every
	// global forecast cost before the carry-overs) and against the
	// ensemble alone on the same case
	if full := cpu["model_swapped/global"]; full > 0 {
		m := benchModel(b, src)
		fmt.Printf("benchmark model: %d trees, %d of them split on the price's or the category's features\n",
			len(m.gbt.Trees), len(m.volatile.roots))
		for _, c := range []string{"same_day", "same_day_unkept", "day_closed", "price_changed"} {
			if g, e := cpu[c+"/global"], cpu[c+"/ensemble"]; g > 0 && e > 0 {
				fmt.Printf("ratio %s/global: %.3f of model_swapped/global (%.1f µs), %.3f of %s/ensemble\n", c, g/full, full, g/e, c)
			}
		}
	}
	for _, m := range []string{"ensemble", "global"} {
		if u, k := cpu["same_day_unkept/"+m], cpu["same_day/"+m]; u > 0 && k > 0 {
			fmt.Printf("ratio same_day_unkept/%s: %.3f of same_day/%s (the latest forecast kept whole)\n", m, u/k, m)
		}
	}
}

// BenchmarkPredictRows compares the two ways to predict a day's 28 rows
// with the benchmark model, interleaved in one loop so that both see the
// same load: 28 calls of gbt.Model.Predict (the baseline) and
// predictRows; it reports each one's thread CPU per 28 rows and the
// ratio.
func BenchmarkPredictRows(b *testing.B) {
	src := testSeries{start: 19000, demand: weekly(2000)}
	m := benchModel(b, src)
	ds := trainingSet(src, 600)
	panel := globalmodel.NewPanel(ds)
	cols := len(m.names)
	rows := make([]float64, 28*cols)
	for h := range 28 {
		panel.Row(0, 500+h, rows[h*cols:(h+1)*cols])
	}
	out := make([]float64, 28)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var base, batched time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c0, _ := threadCPU()
		for h := range 28 {
			out[h] = m.gbt.Predict(rows[h*cols : (h+1)*cols])
		}
		c1, _ := threadCPU()
		m.predictRows(rows, cols, out)
		c2, _ := threadCPU()
		base, batched = base+c1-c0, batched+c2-c1
	}
	b.ReportMetric(float64(base.Nanoseconds())/1e3/float64(b.N), "predict-cpu-µs")
	b.ReportMetric(float64(batched.Nanoseconds())/1e3/float64(b.N), "rows-cpu-µs")
	b.ReportMetric(float64(batched)/float64(base), "ratio")
}
