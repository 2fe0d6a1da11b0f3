package consumer

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
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
	chCfg := testenv.ClickHouse(b)
	chAddr := chCfg.Addr
	conn, err := chx.Open(ctx, chCfg)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if err := store.Migrate(ctx, conn); err != nil {
		b.Fatal(err)
	}
	log := store.NewForecastLog(conn)
	cfg := scoring.Config{Horizon: forecasting.DefaultHorizon, QuantileLevels: forecasting.DefaultQuantileLevels(),
		LeadTimes: forecasting.DefaultLeadTimes(), MaxSeries: 100_000}
	const n, days, logged = scoring.PrefetchSeries, 120, 10
	first := forecasting.Day(15000)
	hist := histories{}
	values := make(map[string][]float64, n)
	keys := make([]string, n)
	for s := range n {
		sku := fmt.Sprintf("S%04d", s)
		key := topics.SeriesKey(sku, "online")
		keys[s] = key
		v := make([]float64, days+1)
		for d := range v {
			v[d] = float64((d*7+s*3)%11) * float64(1+s%4)
			if d < days-logged {
				hist[key] = append(hist[key], scoring.DailyDemand{Day: first + forecasting.Day(d), Quantity: v[d]})
			}
		}
		values[key] = v
	}
	// the forecasts of the last ten days, logged with their offsets (one
	// partition), by a scorer that then "restarts"
	var offset int64
	warm := scoring.New(cfg, hist, time.Now)
	for d := days - logged; d < days; d++ {
		batch := warm.Begin()
		var results []*scoring.Result
		var sources []store.Source
		for _, key := range keys {
			sku, _, _ := topics.SplitSeriesKey(key)
			res, err := batch.Score(ctx, benchSnapshot(key, sku, fmt.Sprintf("%s-%d", sku, d), values[key], first, first+forecasting.Day(d)))
			if err != nil {
				b.Fatal(err)
			}
			results, sources = append(results, res), append(sources, store.Source{Partition: 0, Offset: offset})
			offset++
		}
		if err := log.InsertFrom(ctx, results, sources); err != nil {
			b.Fatal(err)
		}
		batch.Commit()
	}
	snaps := make([]*featurev1.FeatureSnapshot, n)
	recs := make([]*kgo.Record, n)
	for i, key := range keys {
		sku, _, _ := topics.SplitSeriesKey(key)
		snaps[i] = benchSnapshot(key, sku, sku+"-next", values[key], first, first+days)
		recs[i] = &kgo.Record{Partition: 0, Offset: offset + int64(i)}
	}
	refs := make([]store.PreviousRef, n)
	for i, key := range keys {
		refs[i] = store.PreviousRef{SeriesKey: key, At: store.Source{Partition: 0, Offset: recs[i].Offset}}
	}
	if prev, err := log.Previous(ctx, refs); err != nil || len(prev) != n {
		b.Fatalf("%d previous forecasts read back (%v), want %d", len(prev), err, n)
	}
	// one part, so that no merge runs while measuring
	if err := conn.Exec(ctx, "OPTIMIZE TABLE forecast_log FINAL"); err != nil {
		b.Fatal(err)
	}
	pid, err := loadgen.PIDListening(chAddr)
	if err != nil {
		b.Skipf("clickhouse-server's process: %v", err)
	}
	// cost is one arm's wall time, this process's CPU time and the
	// server's CPU ticks (1/100 s)
	type cost struct {
		wall, cpu time.Duration
		ticks     int64
	}
	var none, restored cost
	score := func(withRestore bool, into *cost) {
		before, err := loadgen.ReadProc(pid)
		if err != nil {
			b.Fatal(err)
		}
		start, cpu0 := time.Now(), processCPU()
		batch := scoring.New(cfg, hist, time.Now).Begin()
		batch.Prefetch(snaps)
		if withRestore {
			if err := restore(ctx, log, batch, snaps, recs); err != nil {
				b.Fatal(err)
			}
		}
		for _, snap := range snaps {
			if _, err := batch.Score(ctx, snap); err != nil {
				b.Fatal(err)
			}
		}
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
			score(false, &none)
			score(true, &restored)
		} else {
			score(true, &restored)
			score(false, &none)
		}
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
	b.ReportMetric(per(none.wall), "µs/batch-none")
	b.ReportMetric(per(restored.wall), "µs/batch-restore")
	b.ReportMetric(float64(restored.wall)/float64(none.wall), "wall-restore/none")
	b.ReportMetric(per(none.cpu), "client-cpu-µs/batch-none")
	b.ReportMetric(per(restored.cpu), "client-cpu-µs/batch-restore")
	b.ReportMetric(float64(restored.ticks-none.ticks)*10_000/float64(b.N), "server-cpu-µs/query")
	// CPU of client and server together: the restore's cost on a machine
	// that runs both
	total := func(c cost) float64 { return float64(c.cpu.Microseconds()) + float64(c.ticks)*10_000 }
	b.ReportMetric(total(restored)/total(none), "cpu-restore/none")
}
