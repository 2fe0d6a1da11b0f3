package scoring

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkMillionSeries pushes $STOCKCAST_MEM_SERIES (default 1,000,000)
// series through the real scoring path, the cache bounded as the service's
// (-forecast.max-series = the series, -forecast.latest-series the
// default): series k is M5-tiny series k % 280 with $STOCKCAST_MEM_HISTORY
// days of history (default 365; rebuilt from it on its first event, as the
// service does for a series it has not seen), scored once at 11:00, in
// batches of 1,000 events. Every
// 100,000 series it prints the process's RSS (VmRSS, and the peak VmHWM),
// the live heap after a GC and the GC's count, so that a run cut short
// still says something. With STOCKCAST_MEM_MODEL=1 the series are
// combined with a global model of the m5-tiny champion's size (as
// BenchmarkHeapPerSeries's "global"), each series keeping its global part.
// It runs once whatever b.N; set GOMEMLIMIT as the service would run. Run
// it with
//
//	GOMEMLIMIT=3600MiB go test -run '^$' -bench MillionSeries -benchtime 1x -timeout 0 ./services/forecast/internal/scoring/
func BenchmarkMillionSeries(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("STOCKCAST_MEM_SERIES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("STOCKCAST_MEM_SERIES=%q: want a positive number", v)
		}
	}
	src := m5Source{ds: loadM5Tiny(b), histDays: 365}
	if v := os.Getenv("STOCKCAST_MEM_HISTORY"); v != "" {
		var err error
		if src.histDays, err = strconv.Atoi(v); err != nil || src.histDays < 1 {
			b.Fatalf("STOCKCAST_MEM_HISTORY=%q: want a positive number of days", v)
		}
	}
	var model *Model
	switch v := os.Getenv("STOCKCAST_MEM_MODEL"); v {
	case "", "0":
	case "1":
		model = benchModel(b, testSeries{start: 19000, demand: weekly(2000)})
	default:
		b.Fatalf("STOCKCAST_MEM_MODEL=%q: want 1 (a global model) or 0", v)
	}
	cfg := testConfig(n)
	cfg.LatestSeries = DefaultLatestSeries
	ctx := context.Background()
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	rss0, _ := procStatus("VmRSS")
	fmt.Printf("million: GOMEMLIMIT %d MiB, GOGC %q, %d series, %d days of history, global model %v; before: RSS %d MiB, heap %d MiB\n",
		debug.SetMemoryLimit(-1)>>20, os.Getenv("GOGC"), n, src.histDays, model != nil, rss0>>20, base.HeapAlloc>>20)
	sc := New(cfg, src, fixedClock)
	sc.SetModel(model)
	start := time.Now()
	const batchSize = 1000
	for k0 := 0; k0 < n; k0 += batchSize {
		batch := sc.Begin()
		for k := k0; k < min(k0+batchSize, n); k++ {
			if _, err := batch.Score(ctx, src.snapshot(k, 0, 11, 0.4)); err != nil {
				b.Fatal(err)
			}
		}
		batch.Commit()
		if done := min(k0+batchSize, n); done%100_000 == 0 || done == n {
			rss, _ := procStatus("VmRSS")
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			runtime.GC()
			var live runtime.MemStats
			runtime.ReadMemStats(&live)
			fmt.Printf("million: %d series (%d hot, %d cold) after %s: RSS %d MiB (%.0f B/series), heap in use %d MiB, live heap %d MiB (%.0f B/series), %d GCs, GC CPU %.3f\n",
				done, sc.cache.hotLen(), sc.cache.cold.Len(), time.Since(start).Round(time.Second), rss>>20, float64(rss)/float64(done),
				ms.HeapInuse>>20, live.HeapAlloc>>20, float64(live.HeapAlloc-base.HeapAlloc)/float64(done), live.NumGC, ms.GCCPUFraction)
		}
	}
	if got := sc.Series(); got != n {
		b.Fatalf("%d series in memory, want %d", got, n)
	}
	if model != nil {
		if s, _ := sc.cache.peek(src.key(0)); s.global == nil {
			b.Fatal("series 0 has no global part")
		}
	}
	peak, _ := procStatus("VmHWM")
	rss, _ := procStatus("VmRSS")
	var live runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&live)
	b.ReportMetric(float64(rss)/float64(n), "rss-B/series")
	b.ReportMetric(float64(peak)/float64(n), "peak-rss-B/series")
	b.ReportMetric(float64(live.HeapAlloc-base.HeapAlloc)/float64(n), "heap-B/series")
	fmt.Printf("million: done: %d series in %s, RSS %d MiB, peak RSS %d MiB (4 GiB = 4096 MiB), live heap %d MiB\n",
		n, time.Since(start).Round(time.Second), rss>>20, peak>>20, live.HeapAlloc>>20)
	runtime.KeepAlive(sc)
}

// procStatus returns a field of /proc/self/status in bytes (Linux; an
// error elsewhere).
func procStatus(field string) (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		return kb << 10, err
	}
	return 0, fmt.Errorf("%s not in /proc/self/status", field)
}
