package store

import (
	"context"
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/services/feature/internal/features"
)

// BenchmarkApply measures one Handle-sized batch: 1000 demand events over
// 100 series, one pipeline, on three paths in the same run: the consumer's
// (with positions, so series.lua keeps its undo log: events/s), the same
// batches without positions (no undo log, the path before it: old_events/s,
// and the ratio undo/old of the time per event), and a batch delivered
// again from its start (every event undone and applied again:
// redelivered_events/s).
func BenchmarkApply(b *testing.B) {
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(b)})
	defer rdb.Close()
	s := NewRedis(rdb, Config{DedupTTL: time.Hour})
	ctx := context.Background()
	markComplete(b, rdb)
	if err := s.LoadScripts(ctx); err != nil {
		b.Fatal(err)
	}
	mk := func(prefix string, n int, pos bool) []features.Change {
		batch := make([]features.Change, 1000)
		for i := range batch {
			c := demand(fmt.Sprintf("%se%d-%d", prefix, n, i), monday+features.Day(n%400), i%24, 1)
			c.SKU = fmt.Sprint(prefix, "sku", i%100)
			if pos {
				c.Pos = &features.Position{Offset: int64(n*1000 + i), Start: int64(n * 1000)}
			}
			batch[i] = c
		}
		return batch
	}
	var undoT, oldT, againT time.Duration
	timed := func(batch []features.Change) time.Duration {
		start := time.Now()
		if _, err := s.Apply(ctx, batch); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	b.ResetTimer()
	for n := range b.N {
		oldT += timed(mk("o", n, false))
		batch := mk("u", n, true)
		undoT += timed(batch)
		againT += timed(batch)
	}
	b.StopTimer()
	events := float64(b.N * 1000)
	b.ReportMetric(events/undoT.Seconds(), "events/s")
	b.ReportMetric(events/oldT.Seconds(), "old_events/s")
	b.ReportMetric(float64(undoT)/float64(oldT), "undo/old")
	b.ReportMetric(events/againT.Seconds(), "redelivered_events/s")
	if info, err := rdb.Info(ctx, "commandstats").Result(); err == nil {
		for _, l := range splitLines(info) {
			if len(l) > 16 && l[:16] == "cmdstat_evalsha:" {
				b.Log(l)
			}
		}
	}
}

// BenchmarkRebuild measures `rebuild -all` against the live path in the
// same run: 200 series x 50 demand events are applied through Apply in
// batches of 1000 (the consumer's path, the baseline), then rebuilt from
// ClickHouse after a FLUSHDB, with 1 and with 8 workers. It reports the
// rates, the ratios to the baseline and the time per series.
func BenchmarkRebuild(b *testing.B) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(b)})
	defer rdb.Close()
	s := NewRedis(rdb, Config{DedupTTL: time.Hour})
	conn, err := chx.Open(ctx, testenv.ClickHouse(b))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if err := chx.Migrate(ctx, conn, orderLinesDDL, inventoryDDL, catalogDDL); err != nil {
		b.Fatal(err)
	}
	const seriesN, perSeries = 200, 50
	var all []features.Change
	var rows []orderLine
	for i := range perSeries {
		for sn := range seriesN {
			c := demand(fmt.Sprintf("e%d-%d", sn, i), monday+features.Day(i), 9+i%12, float64(1+i%5))
			c.SKU = fmt.Sprint("sku", sn)
			all = append(all, c)
			rows = append(rows, orderLine{change: c, isDemand: true})
		}
	}
	insertOrderLines(b, conn, rows)

	var applyTime time.Duration
	rebuildTime := map[int]time.Duration{}
	b.ResetTimer()
	for range b.N {
		if err := rdb.FlushDB(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		markComplete(b, rdb)
		start := time.Now()
		for i := 0; i < len(all); i += 1000 {
			if _, err := s.Apply(ctx, all[i:min(i+1000, len(all))]); err != nil {
				b.Fatal(err)
			}
		}
		applyTime += time.Since(start)
		for _, workers := range []int{1, 8} {
			if err := rdb.FlushDB(ctx).Err(); err != nil {
				b.Fatal(err)
			}
			markComplete(b, rdb)
			start = time.Now()
			st, err := RebuildAll(ctx, conn, s, workers)
			if err != nil || st.Series != seriesN || st.Events != len(all) {
				b.Fatalf("rebuild: %+v, %v", st, err)
			}
			rebuildTime[workers] += time.Since(start)
		}
	}
	events := float64(b.N * len(all))
	b.ReportMetric(events/applyTime.Seconds(), "live_events/s")
	for _, w := range []int{1, 8} {
		b.ReportMetric(events/rebuildTime[w].Seconds(), fmt.Sprintf("rebuild_p%d_events/s", w))
		b.ReportMetric(float64(rebuildTime[w])/float64(applyTime), fmt.Sprintf("rebuild_p%d/live", w))
		b.ReportMetric(rebuildTime[w].Seconds()*1000/float64(b.N*seriesN), fmt.Sprintf("rebuild_p%d_ms/series", w))
	}
}

// BenchmarkRedisCPU measures the Redis CPU per event of the consumer's
// path on a loadgen-like stream: 10,000 young series (a Zipf(1) pick, a
// few events each over 3 days), batches of 200 events with positions (one
// partition). redis_cpu_us/event is redis-server's user+system CPU (INFO
// cpu) over the events applied; compare it with the code before by running
// the same benchmark on its checkout (docs/load.md, session 7).
func BenchmarkRedisCPU(b *testing.B) {
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(b)})
	defer rdb.Close()
	s := NewRedis(rdb, Config{DedupTTL: time.Hour})
	ctx := context.Background()
	markComplete(b, rdb)
	if err := s.LoadScripts(ctx); err != nil {
		b.Fatal(err)
	}
	const series, perBatch, events = 10_000, 200, 30_000
	zipf := rand.NewZipf(rand.New(rand.NewSource(1)), 1.0001, 1, series-1)
	cpu := func() float64 {
		info, err := rdb.Info(ctx, "cpu").Result()
		if err != nil {
			b.Fatal(err)
		}
		var t float64
		for _, l := range splitLines(info) {
			for _, k := range []string{"used_cpu_sys:", "used_cpu_user:"} {
				if strings.HasPrefix(l, k) {
					v, _ := strconv.ParseFloat(strings.TrimPrefix(l, k), 64)
					t += v
				}
			}
		}
		return t
	}
	var redisCPU float64
	var wall time.Duration
	off := int64(0)
	b.ResetTimer()
	for n := range b.N {
		if err := rdb.FlushDB(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		markComplete(b, rdb)
		c0, t0 := cpu(), time.Now()
		for i := 0; i < events; i += perBatch {
			batch := make([]features.Change, perBatch)
			for j := range batch {
				k := int(zipf.Uint64())
				c := demand(fmt.Sprintf("r%d-%d", n, i+j), monday+features.Day((i+j)*3/events), (i+j)%24, float64(1+k%3))
				c.SKU = fmt.Sprint("sku", k)
				c.Pos = &features.Position{Offset: off + int64(j), Start: off}
				batch[j] = c
			}
			if _, err := s.Apply(ctx, batch); err != nil {
				b.Fatal(err)
			}
			off += perBatch
		}
		wall += time.Since(t0)
		redisCPU += cpu() - c0
	}
	b.StopTimer()
	total := float64(b.N * events)
	b.ReportMetric(redisCPU*1e6/total, "redis_cpu_us/event")
	b.ReportMetric(total/wall.Seconds(), "events/s")
}
