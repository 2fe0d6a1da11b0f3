package consumer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/replenish"
	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
	"github.com/stockcast/stockcast/services/replenishment/internal/store"
)

// benchRecord is a forecasts.v1 record of the forecast service's default
// shape: 199 quantile levels, lead times 1,2,3,5,7,10,14,21,28, 28 days.
// benchRecord is at offset minute: the rounds are consecutive batches.
func benchRecord(b *testing.B, sku, eventID string, minute int) *kgo.Record {
	at := time.Date(2011, 3, 1, 9, 0, 0, 0, time.UTC).Add(time.Duration(minute) * time.Minute)
	ev := &forecastv1.ForecastEvent{
		ForecastId: "f-" + eventID, EventId: eventID, SeriesKey: sku + "|online", Sku: sku, Location: "online",
		AsOf: timestamppb.New(at), StartDay: "2011-03-01",
		Cause: &demandv1.DemandEvent{EventId: eventID, OccurredAt: timestamppb.New(at),
			Change: &demandv1.DemandEvent_Demand{Demand: &demandv1.Demand{Quantity: 1, Kind: demandv1.DemandKind_DEMAND_KIND_ORDER}}},
	}
	for i := 1; i <= 199; i++ {
		ev.QuantileLevels = append(ev.QuantileLevels, float64(i)/200)
	}
	for d := range 28 {
		ev.Daily = append(ev.Daily, &forecastv1.DailyForecast{Day: at.AddDate(0, 0, d).Format(time.DateOnly), Mean: 10})
	}
	for _, l := range []int32{1, 2, 3, 5, 7, 10, 14, 21, 28} {
		lt := &forecastv1.LeadTimeDemand{LeadTimeDays: l, Mean: 10 * float64(l)}
		for i := range ev.QuantileLevels {
			lt.Quantiles = append(lt.Quantiles, 10*float64(l)*(0.5+float64(i)/199))
		}
		ev.LeadTimeDemand = append(ev.LeadTimeDemand, lt)
	}
	v, err := proto.Marshal(ev)
	if err != nil {
		b.Fatal(err)
	}
	return &kgo.Record{Topic: topics.Forecasts, Key: []byte(ev.GetSeriesKey()), Value: v, Offset: int64(minute)}
}

// discard takes the proposals and records: this benchmark measures the
// decode -> plan -> Redis path, not ClickHouse or Kafka.
type discard struct{}

func (discard) Save(context.Context, []*replenishmentv1.Proposal) error { return nil }
func (discard) Produce(context.Context, ...*kgo.Record) error           { return nil }

// BenchmarkHandle: batches of 500 records over 100 series (one Kafka
// fetch), decoded and planned against a real redis-server; reports events/s.
func BenchmarkHandle(b *testing.B) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(b)})
	b.Cleanup(func() { _ = rdb.Close() })
	policies, err := planning.NewPolicies(store.NewPolicies(rdb),
		replenish.Policy{ServiceLevel: 0.95, LeadTimeDays: 7, MOQ: 1, PackSize: 1, OrderCoverDays: 14})
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	planner := planning.NewPlanner(policies, store.NewState(rdb, time.Hour), log)
	h, err := NewHandler(planner, discard{}, discard{}, telemetry.NewDiscard().Meter.Meter("bench"), log)
	if err != nil {
		b.Fatal(err)
	}
	const batch = 500
	rounds := (b.N + batch - 1) / batch
	recs := make([][]*kgo.Record, rounds)
	for r := range rounds {
		for i := range batch {
			recs[r] = append(recs[r], benchRecord(b, fmt.Sprintf("S%d", i%100), fmt.Sprintf("e%d-%d", r, i), r*batch+i))
		}
	}
	redisCPU0, selfCPU0 := redisCPU(b, rdb), selfCPU()
	b.ResetTimer()
	for r := range rounds {
		if err := h.Handle(ctx, recs[r]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	n := float64(rounds * batch)
	b.ReportMetric(n/b.Elapsed().Seconds(), "events/s")
	// CPU time is less disturbed than wall time by other load on the machine.
	b.ReportMetric((redisCPU(b, rdb)-redisCPU0)/n*1e6, "redis_cpu_us/event")
	b.ReportMetric((selfCPU()-selfCPU0)/n*1e6, "go_cpu_us/event")
}

// redisCPU is redis-server's user + system CPU seconds (INFO cpu).
func redisCPU(b *testing.B, rdb *redis.Client) float64 {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			total += x
		}
	}
	return total
}

// selfCPU is this process's user + system CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
