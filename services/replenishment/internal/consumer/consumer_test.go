package consumer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"

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

// nextOffset is the offset of the next record(): each record at its own
// offset of partition 2, as in forecasts.v1.
var nextOffset atomic.Int64

func record(t *testing.T, ev *forecastv1.ForecastEvent) *kgo.Record {
	t.Helper()
	v, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topics.Forecasts, Key: []byte(ev.GetSeriesKey()), Value: v, Partition: 2, Offset: 41 + nextOffset.Add(1)}
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
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeTopics(topics.DLQ(topics.Forecasts)),
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

// TestHandlePublishesStockouts: a stockout the position shows is recorded in
// ClickHouse and published once to stockouts.v1 with its deterministic id
// (also when the batch is redelivered: the same record again, for consumers
// to de-duplicate), to inventory.v1 only when opted in, and nowhere with the
// zero output.
func TestHandlePublishesStockouts(t *testing.T) {
	ctx := context.Background()
	brokers := testenv.Kafka(t)
	if err := kafkax.EnsureTopics(ctx, kafkax.Config{Brokers: brokers}, topics.Proposals, topics.Stockouts, topics.Inventory); err != nil {
		t.Fatal(err)
	}
	redisAddr := testenv.Redis(t)
	ch := testenv.ClickHouse(t)
	conn, err := chx.Open(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := store.MigrateStockouts(ctx, conn); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2011, 3, 1, 10, 0, 0, 0, time.UTC)
	stockEvent := func(series, id string, cause *demandv1.DemandEvent) *kgo.Record {
		cause.EventId = id
		cause.OccurredAt = timestamppb.New(at)
		sku, loc, _ := topics.SplitSeriesKey(series)
		return record(t, &forecastv1.ForecastEvent{EventId: id, SeriesKey: series, Sku: sku, Location: loc,
			AsOf: cause.OccurredAt, StartDay: "2011-03-01", Cause: cause})
	}
	snap := func(q float64) *demandv1.DemandEvent {
		return &demandv1.DemandEvent{Change: &demandv1.DemandEvent_Inventory{Inventory: &inventoryv1.InventoryEvent{
			Kind: &inventoryv1.InventoryEvent_Snapshot{Snapshot: &inventoryv1.Snapshot{OnHand: q}}}}}
	}
	order := func(q float64) *demandv1.DemandEvent {
		return &demandv1.DemandEvent{Change: &demandv1.DemandEvent_Demand{Demand: &demandv1.Demand{Quantity: q, Kind: demandv1.DemandKind_DEMAND_KIND_ORDER}}}
	}
	// The zero output: series A|x runs out, nothing is recorded or published.
	off := newHandler(t, redisAddr, brokers)
	if err := off.Handle(ctx, []*kgo.Record{stockEvent("A|x", "a1", snap(5)), stockEvent("A|x", "a2", order(5))}); err != nil {
		t.Fatal(err)
	}
	// Recorded and published: B|x runs out with b2; the batch is handled twice.
	h := newHandler(t, redisAddr, brokers)
	h.SetStockoutOutput(StockoutOutput{Store: store.NewStockouts(conn), Publish: true})
	batch := []*kgo.Record{stockEvent("B|x", "b1", snap(5)), stockEvent("B|x", "b2", order(7))}
	for range 2 {
		if err := h.Handle(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	// Opted in to the loop-back: C|x runs out with c2, to both topics.
	loop := newHandler(t, redisAddr, brokers)
	loop.SetStockoutOutput(StockoutOutput{Publish: true, ToInventory: true})
	if err := loop.Handle(ctx, []*kgo.Record{stockEvent("C|x", "c1", snap(5)), stockEvent("C|x", "c2", order(5))}); err != nil {
		t.Fatal(err)
	}

	id := func(series, event string) string {
		sum := sha256.Sum256([]byte(series + "|" + event + "|started"))
		return planning.StockoutEventPrefix + hex.EncodeToString(sum[:16])
	}
	wantB, wantC := id("B|x", "b2"), id("C|x", "c2")
	check := func(topic string, want []string) {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		var got []*kgo.Record
		testenv.Eventually(t, 30*time.Second, fmt.Sprintf("%d records on %s", len(want), topic), func() bool {
			pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			got = append(got, cl.PollFetches(pctx).Records()...)
			return len(got) >= len(want)
		})
		var ids []string
		for _, r := range got {
			var ev inventoryv1.InventoryEvent
			if err := proto.Unmarshal(r.Value, &ev); err != nil {
				t.Fatal(err)
			}
			series := ev.GetSku() + "|" + ev.GetLocation()
			if string(r.Key) != series || kafkax.HeaderValue(r, topics.HeaderEventID) != ev.GetEventId() ||
				ev.GetStockoutStarted() == nil || !ev.GetOccurredAt().AsTime().Equal(at) {
				t.Fatalf("%s: record key %q event %v, want a stockout_started at %v keyed by its series", topic, r.Key, &ev, at)
			}
			ids = append(ids, ev.GetEventId())
		}
		sort.Strings(ids)
		sort.Strings(want)
		if fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Fatalf("%s: event ids %v, want %v", topic, ids, want)
		}
		// Nothing else: the topic ends there.
		ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		total := int64(0)
		ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
		if total != int64(len(want)) {
			t.Fatalf("%s has %d records, want %d", topic, total, len(want))
		}
	}
	check(topics.Stockouts, []string{wantB, wantB, wantC}) // B's start twice (redelivery), C's
	check(topics.Inventory, []string{wantC})

	// ClickHouse: B's start once (FINAL), nothing of A or C.
	rows, err := conn.Query(ctx, "SELECT event_id, series_key, kind, toString(day), occurred_at_ns FROM stockouts FINAL")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var id, series, kind, day string
		var ns int64
		if err := rows.Scan(&id, &series, &kind, &day, &ns); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprint(id, " ", series, " ", kind, " ", day, " ", ns))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprint(wantB, " B|x stockout_started 2011-03-01 ", at.UnixNano()); len(got) != 1 || got[0] != want {
		t.Fatalf("stockouts FINAL = %q, want [%q]", got, want)
	}
}
