package consumer

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/replenish"
	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
	"github.com/stockcast/stockcast/services/replenishment/internal/store"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// newHandler wires the handler to real stores; redisAddr may point nowhere.
func newHandler(t *testing.T, redisAddr string, brokers []string) *Handler {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	conn, err := chx.Open(ctx, testenv.ClickHouse(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if err := store.MigrateProposals(ctx, conn); err != nil {
		t.Fatal(err)
	}
	tel := telemetry.NewDiscard()
	producer, err := kafkax.NewProducer(kafkax.Config{Brokers: brokers}, tel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	policies, err := planning.NewPolicies(store.NewPolicies(rdb), replenish.Policy{ServiceLevel: 0.95, LeadTimeDays: 7, OrderCoverDays: 14})
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(planning.NewPlanner(policies, store.NewState(rdb, time.Hour), log),
		store.NewProposals(conn), producer, tel.Meter.Meter("test"), log)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func record(t *testing.T, ev *forecastv1.ForecastEvent) *kgo.Record {
	t.Helper()
	v, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topics.Forecasts, Key: []byte(ev.GetSeriesKey()), Value: v, Partition: 2, Offset: 41}
}

func TestHandleRejectsInvalidRecordsToTheDLQ(t *testing.T) {
	ctx := context.Background()
	brokers := testenv.Kafka(t)
	if err := kafkax.EnsureTopics(ctx, kafkax.Config{Brokers: brokers}, topics.DLQ(topics.Forecasts), topics.Proposals); err != nil {
		t.Fatal(err)
	}
	h := newHandler(t, testenv.Redis(t), brokers)
	order := &demandv1.DemandEvent{Change: &demandv1.DemandEvent_Demand{Demand: &demandv1.Demand{Quantity: 1}}}
	recs := []*kgo.Record{
		{Topic: topics.Forecasts, Key: []byte("a|b"), Value: []byte{0xff, 0xff}, Partition: 2, Offset: 40},
		record(t, &forecastv1.ForecastEvent{EventId: "e1", SeriesKey: "nokey", Cause: order}),
		record(t, &forecastv1.ForecastEvent{SeriesKey: "a|b", Cause: order}),
		record(t, &forecastv1.ForecastEvent{EventId: "e2", SeriesKey: "a|b"}),
	}
	if err := h.Handle(ctx, recs); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics.DLQ(topics.Forecasts)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []*kgo.Record
	testenv.Eventually(t, 30*time.Second, "4 DLQ records", func() bool {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		got = append(got, cl.PollFetches(pctx).Records()...)
		return len(got) >= 4
	})
	reasons := map[string]bool{}
	for _, r := range got {
		reasons[kafkax.HeaderValue(r, topics.HeaderDLQReason)] = true
		if kafkax.HeaderValue(r, topics.HeaderDLQService) != Service {
			t.Errorf("dlq service header %q", kafkax.HeaderValue(r, topics.HeaderDLQService))
		}
	}
	for _, want := range []string{ReasonUndecodable, planning.ReasonInvalidSeriesKey, planning.ReasonMissingEventID, planning.ReasonMissingCause} {
		if !reasons[want] {
			t.Errorf("no DLQ record with reason %s; got %v", want, reasons)
		}
	}
}

func TestHandleFailsWhileRedisIsDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Nothing listens on a fresh free address: Redis is down.
	h := newHandler(t, testenv.FreeAddr(t), testenv.Kafka(t))
	order := &demandv1.DemandEvent{Change: &demandv1.DemandEvent_Demand{Demand: &demandv1.Demand{Quantity: 1}}}
	err := h.Handle(ctx, []*kgo.Record{record(t, &forecastv1.ForecastEvent{EventId: "e1", SeriesKey: "a|b", Cause: order})})
	if err == nil {
		t.Fatal("Handle succeeded with Redis down; want an error so the batch is retried")
	}
}
