package consumer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/chx"
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

// BenchmarkHandleBatch: the handler's cost by batch size (1, 10, 100 and
// 1,000 records per Handle), against a real redis-server and ClickHouse
// (proposals; the producer discards): 1 event in 8 (drawn with a fixed
// seed) is a new series' first and crosses its reorder point (a proposal),
// the others are of an earlier series drawn at random, as in loadgen (~8
// lines per series, first lines spread over the run). Besides CPU per event it counts the store
// calls exactly: Redis round trips (a pipeline is one) and commands per
// batch, ClickHouse inserts and produce calls per batch. Run with a fixed
// -benchtime (e.g. 2000x) so every size handles the same events.
func BenchmarkHandleBatch(b *testing.B) {
	for _, size := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("records=%d", size), func(b *testing.B) { benchBatch(b, size) })
	}
}

// redisCalls counts a client's round trips (a pipeline is one) and
// commands.
type redisCalls struct{ trips, cmds atomic.Int64 }

func (c *redisCalls) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *redisCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.trips.Add(1)
		c.cmds.Add(1)
		return next(ctx, cmd)
	}
}

func (c *redisCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.trips.Add(1)
		c.cmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// countedProposals counts the inserts of the proposal store (Save inserts
// only when it has proposals).
type countedProposals struct {
	ProposalStore
	inserts atomic.Int64
}

func (c *countedProposals) Save(ctx context.Context, props []*replenishmentv1.Proposal) error {
	if len(props) > 0 {
		c.inserts.Add(1)
	}
	return c.ProposalStore.Save(ctx, props)
}

// countedProducer counts the produce calls that carry records and discards
// them.
type countedProducer struct{ calls, records atomic.Int64 }

func (c *countedProducer) Produce(_ context.Context, recs ...*kgo.Record) error {
	if len(recs) > 0 {
		c.calls.Add(1)
		c.records.Add(int64(len(recs)))
	}
	return nil
}

func benchBatch(b *testing.B, size int) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(b)})
	b.Cleanup(func() { _ = rdb.Close() })
	calls := &redisCalls{}
	rdb.AddHook(calls)
	conn, err := chx.Open(ctx, testenv.ClickHouse(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	if err := store.MigrateProposals(ctx, conn); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		// Hundreds of one-row parts: dropped here without testenv's 30 s
		// limit on dropping the database, which a loaded machine exceeds.
		ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		if err := conn.Exec(ctx, "DROP TABLE proposals"); err != nil {
			b.Error(err)
		}
	})
	policies, err := planning.NewPolicies(store.NewPolicies(rdb),
		replenish.Policy{ServiceLevel: 0.95, LeadTimeDays: 7, MOQ: 1, PackSize: 1, OrderCoverDays: 14})
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	planner := planning.NewPlannerLearning(policies, store.NewState(rdb, time.Hour), log, 3)
	props := &countedProposals{ProposalStore: store.NewProposals(conn)}
	producer := &countedProducer{}
	h, err := NewHandler(planner, props, producer, telemetry.NewDiscard().Meter.Meter("bench"), log)
	if err != nil {
		b.Fatal(err)
	}
	// One warm-up batch (script loaded, connections open), then the
	// measured events in batches of size.
	if err := h.Handle(ctx, []*kgo.Record{benchRecord(b, "warm", "warm", 0)}); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	series := 0
	var batches [][]*kgo.Record
	for k := range b.N {
		if k%size == 0 {
			batches = append(batches, make([]*kgo.Record, 0, size))
		}
		s := rng.IntN(max(series, 1))
		if series == 0 || rng.IntN(8) == 0 {
			s, series = series, series+1
		}
		last := &batches[len(batches)-1]
		*last = append(*last, benchRecord(b, fmt.Sprintf("B%d", s), fmt.Sprintf("e%d", k), k+1))
	}
	redisCPU0, selfCPU0 := redisCPU(b, rdb), selfCPU()
	calls.trips.Store(0)
	calls.cmds.Store(0)
	props.inserts.Store(0)
	producer.calls.Store(0)
	producer.records.Store(0)
	b.ResetTimer()
	for _, recs := range batches {
		if err := h.Handle(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	n, nb := float64(b.N), float64(len(batches))
	trips, cmds := calls.trips.Load(), calls.cmds.Load()
	redisNow, selfNow := redisCPU(b, rdb), selfCPU()
	b.ReportMetric(n/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric((selfNow-selfCPU0)/n*1e6, "go_cpu_us/event")
	b.ReportMetric((redisNow-redisCPU0)/n*1e6, "redis_cpu_us/event")
	b.ReportMetric(float64(trips)/nb, "redis_trips/batch")
	b.ReportMetric(float64(cmds)/n, "redis_cmds/event")
	b.ReportMetric(float64(props.inserts.Load())/nb, "ch_inserts/batch")
	b.ReportMetric(float64(producer.calls.Load())/nb, "produces/batch")
	b.ReportMetric(float64(producer.records.Load())/n, "proposals/event")
}
