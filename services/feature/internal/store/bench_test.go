package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/services/feature/internal/features"
)

// BenchmarkApply measures one Handle-sized batch: 1000 demand events over
// 100 series, one pipeline.
func BenchmarkApply(b *testing.B) {
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(b)})
	defer rdb.Close()
	s := NewRedis(rdb, Config{DedupTTL: time.Hour})
	ctx := context.Background()
	if err := s.LoadScripts(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for n := range b.N {
		batch := make([]features.Change, 1000)
		for i := range batch {
			c := demand(fmt.Sprintf("e%d-%d", n, i), monday+features.Day(n%400), i%24, 1)
			c.SKU = fmt.Sprint("sku", i%100)
			batch[i] = c
		}
		if _, err := s.Apply(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
	b.StopTimer()
	if info, err := rdb.Info(ctx, "commandstats").Result(); err == nil {
		for _, l := range splitLines(info) {
			if len(l) > 16 && l[:16] == "cmdstat_evalsha:" {
				b.Log(l)
			}
		}
	}
}
