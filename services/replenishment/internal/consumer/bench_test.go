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

	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/replenish"
	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
	"github.com/stockcast/stockcast/services/replenishment/internal/store"
)

// benchRecord is a forecasts.v1 record of the forecast service's published
// shape (publishedForecast: 14 levels, 28 days with quantiles, 9 lead
// times, reason, global part), at offset minute: the rounds are
// consecutive batches.
func benchRecord(b *testing.B, sku, eventID string, minute int) *kgo.Record {
	at := time.Date(2011, 3, 1, 9, 0, 0, 0, time.UTC).Add(time.Duration(minute) * time.Minute)
	ev := publishedForecast()
	ev.ForecastId, ev.EventId, ev.SeriesKey, ev.Sku = "f-"+eventID, eventID, sku+"|online", sku
	ev.AsOf = timestamppb.New(at)
	ev.Cause.EventId, ev.Cause.OccurredAt = eventID, timestamppb.New(at)
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
// fetch), decoded and planned against a real redis-server; reports events/s
// and CPU per event, for records decoded whole (whole, the baseline: the
// decoding before trimForecast) and trimmed; run with -count to alternate.
func BenchmarkHandle(b *testing.B) { byDecoding(b, benchHandle) }

// byDecoding runs bench with records decoded whole (the baseline) and
// trimmed.
func byDecoding(b *testing.B, bench func(b *testing.B)) {
	for _, trim := range []bool{false, true} {
		name := "whole"
		if trim {
			name = "trimmed"
		}
		b.Run(name, func(b *testing.B) {
			defer func(was bool) { trimValues = was }(trimValues)
			trimValues = trim
			bench(b)
		})
	}
}

func benchHandle(b *testing.B) {
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

// BenchmarkDecode: a forecasts.v1 record of the published shape decoded
// and validated (decode), whole (the baseline) and trimmed.
func BenchmarkDecode(b *testing.B) {
	rec := benchRecord(b, "85123A", "order-line-536365-1", 0)
	start := map[int32]int64{0: 0}
	var scratch []byte
	byDecoding(b, func(b *testing.B) {
		b.ReportAllocs()
		cpu0 := selfCPU()
		for b.Loop() {
			if _, err := decode(rec, start, &scratch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric((selfCPU()-cpu0)/float64(b.N)*1e6, "cpu_us/op")
	})
}
