package consumer

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/internal/loadgen"
	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	"github.com/stockcast/stockcast/services/forecast/internal/scoring"
	"github.com/stockcast/stockcast/services/forecast/internal/store"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// histories serves the series' stored daily histories from memory (the
// feature service's part of a cold start, the same with and without the
// restore: left out of what is measured as far as it can be).
type histories map[string][]scoring.DailyDemand

func (h histories) History(_ context.Context, sku, location string) ([]scoring.DailyDemand, error) {
	return h[topics.SeriesKey(sku, location)], nil
}

// benchSnapshot is series key's snapshot on day d, its closed days from
// values (values[i] is day first+i) and half of d's demand so far.
func benchSnapshot(key, sku, event string, values []float64, first, d forecasting.Day) *featurev1.FeatureSnapshot {
	recent := make([]float64, 56)
	for j := range recent {
		if i := int(d - 55 + forecasting.Day(j) - first); i >= 0 {
			recent[j] = values[i]
		}
	}
	recent[55] /= 2
	at := timestamppb.New(d.Time().Add(13 * time.Hour))
	return &featurev1.FeatureSnapshot{EventId: event, OccurredAt: at, SeriesKey: key, Sku: sku, Location: "online",
		AsOfDay: d.String(), RecentDaily: recent, Applied: true,
		Cause: &demandv1.DemandEvent{EventId: event, OccurredAt: at, SeriesKey: key, Sku: sku, Location: "online", Day: d.String(),
			Change: &demandv1.DemandEvent_Demand{Demand: &demandv1.Demand{Quantity: 1, Kind: demandv1.DemandKind_DEMAND_KIND_ORDER}}}}
}

// processCPU is this process's CPU time so far (user + system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// coldLog is a forecast log holding, for n series (keys, one partition),
// the forecasts of days-logged .. days-1 made by a scorer that then
// "restarts"; hist holds their histories up to then, values their demand.
type coldLog struct {
	conn   driver.Conn
	log    *store.ForecastLog
	chAddr string
	cfg    scoring.Config
	hist   histories
	keys   []string
	values map[string][]float64
	first  forecasting.Day
	days   int
	offset int64 // the next offset of the partition
}

func newColdLog(b *testing.B, n, days, logged int) *coldLog {
	ctx := context.Background()
	chCfg := testenv.ClickHouse(b)
	conn, err := chx.Open(ctx, chCfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	if err := store.Migrate(ctx, conn); err != nil {
		b.Fatal(err)
	}
	c := &coldLog{conn: conn, log: store.NewForecastLog(conn), chAddr: chCfg.Addr, hist: histories{},
		cfg: scoring.Config{Horizon: forecasting.DefaultHorizon, QuantileLevels: forecasting.DefaultQuantileLevels(),
			LeadTimes: forecasting.DefaultLeadTimes(), MaxSeries: 100_000},
		keys: make([]string, n), values: make(map[string][]float64, n), first: forecasting.Day(15000), days: days}
	for s := range n {
		sku := fmt.Sprintf("S%04d", s)
		key := topics.SeriesKey(sku, "online")
		c.keys[s] = key
		v := make([]float64, days+1)
		for d := range v {
			v[d] = float64((d*7+s*3)%11) * float64(1+s%4)
			if d < days-logged {
				c.hist[key] = append(c.hist[key], scoring.DailyDemand{Day: c.first + forecasting.Day(d), Quantity: v[d]})
			}
		}
		c.values[key] = v
	}
	warm := scoring.New(c.cfg, c.hist, time.Now)
	for d := days - logged; d < days; d++ {
		batch := warm.Begin()
		var results []*scoring.Result
		var sources []store.Source
		for _, key := range c.keys {
			sku, _, _ := topics.SplitSeriesKey(key)
			res, err := batch.Score(ctx, benchSnapshot(key, sku, fmt.Sprintf("%s-%d", sku, d), c.values[key], c.first, c.first+forecasting.Day(d)))
			if err != nil {
				b.Fatal(err)
			}
			results, sources = append(results, res), append(sources, store.Source{Partition: 0, Offset: c.offset})
			c.offset++
		}
		if err := c.log.InsertFrom(ctx, results, sources); err != nil {
			b.Fatal(err)
		}
		batch.Commit()
	}
	return c
}

// armCost is one arm's wall time, this process's CPU time and
// clickhouse-server's CPU ticks (1/100 s).
type armCost struct {
	wall, cpu time.Duration
	ticks     int64
}

// alternate runs the two arms b.N times each, alternating which goes first,
// adding up their costs; the log's rows are merged into one part first, so
// that no merge runs while measuring.
func (c *coldLog) alternate(b *testing.B, arm func(second bool)) (first, second armCost) {
	if err := c.conn.Exec(context.Background(), "OPTIMIZE TABLE forecast_log FINAL"); err != nil {
		b.Fatal(err)
	}
	pid, err := loadgen.PIDListening(c.chAddr)
	if err != nil {
		b.Skipf("clickhouse-server's process: %v", err)
	}
	run := func(which bool, into *armCost) {
		before, err := loadgen.ReadProc(pid)
		if err != nil {
			b.Fatal(err)
		}
		start, cpu0 := time.Now(), processCPU()
		arm(which)
		into.wall += time.Since(start)
		into.cpu += processCPU() - cpu0
		after, err := loadgen.ReadProc(pid)
		if err != nil {
			b.Fatal(err)
		}
		into.ticks += after.CPUTicks - before.CPUTicks
	}
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			run(false, &first)
			run(true, &second)
		} else {
			run(true, &second)
			run(false, &first)
		}
	}
	return first, second
}

// report gives both arms per batch (wall time, this process's CPU), the
// server's CPU of the second arm less the first's, and the ratios
// second/first of the wall time and of client and server CPU together.
func report(b *testing.B, a, z armCost, aName, zName string) {
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
	b.ReportMetric(per(a.wall), "µs/batch-"+aName)
	b.ReportMetric(per(z.wall), "µs/batch-"+zName)
	b.ReportMetric(float64(z.wall)/float64(a.wall), "wall-"+zName+"/"+aName)
	b.ReportMetric(per(a.cpu), "client-cpu-µs/batch-"+aName)
	b.ReportMetric(per(z.cpu), "client-cpu-µs/batch-"+zName)
	b.ReportMetric(float64(z.ticks-a.ticks)*10_000/float64(b.N), "server-cpu-µs/batch-"+zName+"-"+aName)
	// CPU of client and server together: the cost on a machine that runs both
	total := func(c armCost) float64 { return float64(c.cpu.Microseconds()) + float64(c.ticks)*10_000 }
	b.ReportMetric(total(z)/total(a), "cpu-"+zName+"/"+aName)
}

// BenchmarkColdStart scores one batch of snapshots of series not in memory
// (a restarted service: scoring.PrefetchSeries series, each with ten
// forecasts in forecast_log), with the restore of their previous forecasts
// (Cold, one Previous query, Restore) and without, alternated in each
// iteration on fresh scorers; it reports both per batch (wall time and
// this process's CPU), the server's CPU per query (clickhouse-server's
// ticks in the restore arm minus the other's) and the ratios restore/none
// of the wall time and of client and server CPU together.
func BenchmarkColdStart(b *testing.B) {
	ctx := context.Background()
	c := newColdLog(b, scoring.PrefetchSeries, 120, 10)
	n := len(c.keys)
	snaps := make([]*featurev1.FeatureSnapshot, n)
	recs := make([]*kgo.Record, n)
	for i, key := range c.keys {
		sku, _, _ := topics.SplitSeriesKey(key)
		snaps[i] = benchSnapshot(key, sku, sku+"-next", c.values[key], c.first, c.first+forecasting.Day(c.days))
		recs[i] = &kgo.Record{Partition: 0, Offset: c.offset + int64(i)}
	}
	refs := make([]store.PreviousRef, n)
	for i, key := range c.keys {
		refs[i] = store.PreviousRef{SeriesKey: key, At: store.Source{Partition: 0, Offset: recs[i].Offset}}
	}
	if prev, err := c.log.Previous(ctx, refs); err != nil || len(prev) != n {
		b.Fatalf("%d previous forecasts read back (%v), want %d", len(prev), err, n)
	}
	h := New(nil, c.log, nil, nil)
	none, restored := c.alternate(b, func(withRestore bool) {
		batch := scoring.New(c.cfg, c.hist, time.Now).Begin()
		batch.Prefetch(snaps)
		if withRestore {
			if err := h.restore(ctx, batch, snaps, recs); err != nil {
				b.Fatal(err)
			}
		}
		for _, snap := range snaps {
			if _, err := batch.Score(ctx, snap); err != nil {
				b.Fatal(err)
			}
		}
	})
	report(b, none, restored, "none", "restore")
}

// BenchmarkNewSeries scores one batch of the first events of 2,000 new
// series (a load test's batch) through the handler's restore and the
// scorer, alternated in each iteration on fresh scorers: with the proof
// that they are new (applied, events_applied 1: no forecast_log query, no
// history fetched) and without it (events_applied 0: session 7's one query
// for the batch, which finds nothing, and a history fetch per series, here
// from memory), beside a log of 256 other series with ten forecasts each.
// It reports both per batch, the server's CPU of the query and the ratios
// query/proof.
func BenchmarkNewSeries(b *testing.B) {
	ctx := context.Background()
	c := newColdLog(b, scoring.PrefetchSeries, 120, 10)
	const n = 2000
	proof := make([]*featurev1.FeatureSnapshot, n)
	unknown := make([]*featurev1.FeatureSnapshot, n)
	recs := make([]*kgo.Record, n)
	for i := range n {
		sku := fmt.Sprintf("N%05d", i)
		key := topics.SeriesKey(sku, "online")
		today := c.first + forecasting.Day(c.days)
		proof[i] = benchSnapshot(key, sku, sku+"-first", []float64{float64(1 + i%4)}, today, today)
		proof[i].EventsApplied = 1
		unknown[i] = proto.CloneOf(proof[i])
		unknown[i].EventsApplied = 0
		recs[i] = &kgo.Record{Partition: 0, Offset: c.offset + int64(i)}
	}
	h := New(nil, c.log, nil, nil)
	withProof, withQuery := c.alternate(b, func(query bool) {
		snaps := proof
		if query {
			snaps = unknown
		}
		batch := scoring.New(c.cfg, c.hist, time.Now).Begin()
		batch.Prefetch(snaps)
		if err := h.restore(ctx, batch, snaps, recs); err != nil {
			b.Fatal(err)
		}
		for _, snap := range snaps {
			if _, err := batch.Score(ctx, snap); err != nil {
				b.Fatal(err)
			}
		}
	})
	if got := h.Stats().RestoreQueries; got != int64(b.N) {
		b.Fatalf("%d queries, want %d (one per batch without the proof)", got, b.N)
	}
	report(b, withProof, withQuery, "proof", "query")
}
