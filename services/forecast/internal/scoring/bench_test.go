package scoring

import (
	"context"
	"fmt"
	"testing"

	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
)

// BenchmarkScore is the per-event cost of scoring a warm series: a snapshot
// on the same day (the common case) and one that closes a day, with the
// default 28-day horizon, 14 quantiles and 9 lead times.
func BenchmarkScore(b *testing.B) {
	const days = 2000
	src := testSeries{start: 19000, demand: weekly(days)}
	snaps := make([]*featurev1.FeatureSnapshot, days)
	for i := range snaps {
		snaps[i] = src.snapshot(i, fmt.Sprintf("e%d", i))
	}
	for _, bc := range []struct {
		name    string
		nextDay bool
	}{{"same_day", false}, {"day_closed", true}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			var sc *Scorer
			warm := func() {
				sc = New(testConfig(10), src, fixedClock)
				batch := sc.Begin()
				if _, err := batch.Score(ctx, snaps[100]); err != nil {
					b.Fatal(err)
				}
				batch.Commit()
			}
			warm()
			b.ReportAllocs()
			b.ResetTimer()
			day := 100
			for i := 0; i < b.N; i++ {
				if bc.nextDay {
					if day++; day == days {
						b.StopTimer()
						warm()
						day = 101
						b.StartTimer()
					}
				}
				batch := sc.Begin()
				if _, err := batch.Score(ctx, snaps[day]); err != nil {
					b.Fatal(err)
				}
				batch.Commit()
			}
		})
	}
}
