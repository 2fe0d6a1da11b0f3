package store

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
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

// processCPU is this process's CPU time so far (user + system): the
// client's encoding, without the server's work.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// insertVersions are the two encodings of the log, measured side by side
// in one run: the previous version's arrays (the baseline) and the
// encoded columns the service writes now.
var insertVersions = []struct {
	name   string
	insert func(ctx context.Context, conn driver.Conn, log *ForecastLog, rows []*scoring.Result) error
}{
	{"arrays_v1", func(ctx context.Context, conn driver.Conn, _ *ForecastLog, rows []*scoring.Result) error {
		return insertV1(ctx, conn, rows)
	}},
	{"encoded_v2", func(ctx context.Context, _ driver.Conn, log *ForecastLog, rows []*scoring.Result) error {
		return log.Insert(ctx, rows)
	}},
}

// BenchmarkInsert measures one handler-sized insert into a real ClickHouse:
// 1,000 forecasts of the production shape, in each encoding.
func BenchmarkInsert(b *testing.B) {
	ctx := context.Background()
	conn, err := chx.Open(ctx, testenv.ClickHouse(b))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if err := Migrate(ctx, conn); err != nil {
		b.Fatal(err)
	}
	log := NewForecastLog(conn)
	day := time.Date(2011, 3, 4, 10, 30, 0, 0, time.UTC)
	results := make([]*scoring.Result, 1000)
	for i := range results {
		results[i] = fullResult(fmt.Sprint(i), day)
	}
	for _, v := range insertVersions {
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := processCPU()
			for range b.N {
				if err := v.insert(ctx, conn, log, results); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(results))/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N*len(results)), "client-cpu-µs/row")
		})
	}
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
	if err := Migrate(ctx, conn); err != nil {
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
	for _, v := range insertVersions {
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := processCPU()
			for range b.N {
				var wg sync.WaitGroup
				for _, batch := range batches {
					wg.Go(func() {
						if err := v.insert(ctx, conn, log, batch); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(b.N*partitions*perPartition)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N*partitions*perPartition), "client-cpu-µs/row")
		})
	}
}
