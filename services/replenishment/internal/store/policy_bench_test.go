package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/replenish"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
)

// BenchmarkSaveAllocatedPolicies stores an allocation's 200 series
// policies in the service's durable store (policy_log on clickhouse-server,
// then redis-server) with SaveAll, and reports its time against the same
// policies saved one Save at a time (one ClickHouse insert each), measured
// in the same iteration: x_faster_than_save = Save's time / SaveAll's.
func BenchmarkSaveAllocatedPolicies(b *testing.B) {
	ctx := context.Background()
	conn, err := chx.Open(ctx, testenv.ClickHouse(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	if err := MigratePolicyLog(ctx, conn); err != nil {
		b.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(b)})
	b.Cleanup(func() { _ = rdb.Close() })
	store := NewDurablePolicies(rdb, conn)

	const n = 200
	scopes := make([]planning.Scope, n)
	ps := make([]replenish.ServicePolicy, n)
	for i := range n {
		scopes[i] = planning.Scope{SKU: fmt.Sprintf("SKU%04d", i), Location: "online"}
		ps[i] = replenish.ServicePolicy{Policy: replenish.Policy{LeadTimeDays: 7, ReviewPeriodDays: 7, MOQ: 1, PackSize: 1},
			Kind: replenish.KindPeriodic, Target: replenish.TargetFillRate, FillRate: 0.9 + float64(i)/1e5}
	}
	var one, all time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		for i := range scopes {
			if err := store.Save(ctx, scopes[i], ps[i]); err != nil {
				b.Fatal(err)
			}
		}
		one += time.Since(start)
		start = time.Now()
		if err := store.SaveAll(ctx, scopes, ps); err != nil {
			b.Fatal(err)
		}
		all += time.Since(start)
	}
	b.ReportMetric(float64(one)/float64(all), "x_faster_than_save")
	b.ReportMetric(float64(all.Microseconds())/float64(b.N)/n, "saveall_us/policy")
	b.ReportMetric(float64(one.Microseconds())/float64(b.N)/n, "save_us/policy")
}
