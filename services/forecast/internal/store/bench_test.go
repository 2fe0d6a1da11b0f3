package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/testenv"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	"github.com/stockcast/stockcast/services/forecast/internal/scoring"
)

// fullResult is a forecast of the production shape: the default horizon,
// quantile levels and lead times.
func fullResult(id string, asOf time.Time) *scoring.Result {
	levels := forecasting.DefaultQuantileLevels()
	ev := &forecastv1.ForecastEvent{
		ForecastId: id, EventId: "ev-" + id, SeriesKey: "sku" + id + "|online", Sku: "sku" + id, Location: "online",
		AsOf: timestamppb.New(asOf), IssuedAt: timestamppb.New(asOf.Add(time.Second)),
		StartDay: asOf.Format(time.DateOnly), QuantileLevels: levels,
		Model: "m", ModelVersion: "m-1", DemandClass: "smooth",
		Reason: &forecastv1.ForecastReason{Code: forecastv1.ReasonCode_REASON_CODE_DAY_CLOSED, Detail: "level", Change: 0.25},
		Cause:  &demandv1.DemandEvent{EventId: "ev-" + id, Change: &demandv1.DemandEvent_Demand{Demand: &demandv1.Demand{Quantity: 3}}},
	}
	for d := range forecasting.DefaultHorizon {
		q := make([]float64, len(levels))
		for j := range q {
			q[j] = float64(d) + levels[j]
		}
		ev.Daily = append(ev.Daily, &forecastv1.DailyForecast{Day: asOf.AddDate(0, 0, d).Format(time.DateOnly), Mean: float64(d) + 0.5, Quantiles: q})
	}
	for _, lt := range forecasting.DefaultLeadTimes() {
		q := make([]float64, len(levels))
		for j := range q {
			q[j] = float64(lt) * levels[j]
		}
		ev.LeadTimeDemand = append(ev.LeadTimeDemand, &forecastv1.LeadTimeDemand{LeadTimeDays: int32(lt), Mean: float64(lt), Quantiles: q})
	}
	return &scoring.Result{Event: ev, Components: []scoring.Component{{Name: "level", Value: 1, Detail: "d"}, {Name: "trend", Value: 0.1}}}
}

// BenchmarkInsert measures one handler-sized insert into a real ClickHouse:
// 1,000 forecasts of the production shape.
func BenchmarkInsert(b *testing.B) {
	ctx := context.Background()
	conn, err := chx.Open(ctx, testenv.ClickHouse(b))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if err := chx.Migrate(ctx, conn, ForecastLogTable); err != nil {
		b.Fatal(err)
	}
	log := NewForecastLog(conn)
	day := time.Date(2011, 3, 4, 10, 30, 0, 0, time.UTC)
	results := make([]*scoring.Result, 1000)
	for i := range results {
		results[i] = fullResult(fmt.Sprint(i), day)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := log.Insert(ctx, results); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(results))/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkInsertConcurrent is what the consumer does with one poll: six
// partition handlers insert 170 forecasts each at the same time.
func BenchmarkInsertConcurrent(b *testing.B) {
	ctx := context.Background()
	conn, err := chx.Open(ctx, testenv.ClickHouse(b))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if err := chx.Migrate(ctx, conn, ForecastLogTable); err != nil {
		b.Fatal(err)
	}
	log := NewForecastLog(conn)
	day := time.Date(2011, 3, 4, 10, 30, 0, 0, time.UTC)
	const partitions, perPartition = 6, 170
	batches := make([][]*scoring.Result, partitions)
	for p := range batches {
		for i := range perPartition {
			batches[p] = append(batches[p], fullResult(fmt.Sprint(p, "-", i), day))
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		var wg sync.WaitGroup
		for _, batch := range batches {
			wg.Go(func() {
				if err := log.Insert(ctx, batch); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	}
	b.ReportMetric(float64(b.N*partitions*perPartition)/b.Elapsed().Seconds(), "rows/s")
}
