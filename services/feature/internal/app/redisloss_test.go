package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/recovery"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
	catalogv1 "github.com/stockcast/stockcast/proto/stockcast/catalog/v1"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
)

// ingestSchema is the part of ingest's history tables
// (services/ingest/internal/store.Schema) the rebuild reads, with ingest's
// column types and engine.
var ingestSchema = []string{
	`CREATE TABLE IF NOT EXISTS order_lines (event_id String, series_key String, sku String, location String,
		day Date, occurred_at DateTime('UTC'), type String, quantity Float64, is_demand UInt8, ingested_at DateTime('UTC')
	) ENGINE = ReplacingMergeTree(ingested_at) PARTITION BY toYYYYMM(day) ORDER BY (series_key, event_id)`,
	`CREATE TABLE IF NOT EXISTS inventory_events (event_id String, series_key String, sku String, location String,
		day Date, occurred_at DateTime('UTC'), kind String, payload String, ingested_at DateTime('UTC')
	) ENGINE = ReplacingMergeTree(ingested_at) PARTITION BY toYYYYMM(day) ORDER BY (series_key, event_id)`,
	`CREATE TABLE IF NOT EXISTS catalog_events (event_id String, series_key String, sku String, location String,
		day Date, occurred_at DateTime('UTC'), kind String, payload String, ingested_at DateTime('UTC')
	) ENGINE = ReplacingMergeTree(ingested_at) PARTITION BY toYYYYMM(day) ORDER BY (series_key, event_id)`,
}

// historyEvent is one accepted event: the DemandEvent ingest publishes and
// the row it stores.
type historyEvent struct {
	ev      *demandv1.DemandEvent
	table   string // order_lines, inventory_events, catalog_events
	kind    string
	payload string
}

func orderLine(id, sku, loc string, at time.Time, q float64) historyEvent {
	at = at.Truncate(time.Second) // order_lines keeps whole seconds
	return historyEvent{table: "order_lines", ev: &demandv1.DemandEvent{EventId: id, OccurredAt: timestamppb.New(at),
		SeriesKey: sku + "|" + loc, Sku: sku, Location: loc, Day: at.Format("2006-01-02"),
		Change: &demandv1.DemandEvent_Demand{Demand: &demandv1.Demand{Quantity: q}}}}
}

func inventory(t *testing.T, inv *inventoryv1.InventoryEvent, kind string) historyEvent {
	at := inv.GetOccurredAt().AsTime()
	return historyEvent{table: "inventory_events", kind: kind, payload: payloadOf(t, inv),
		ev: &demandv1.DemandEvent{EventId: inv.GetEventId(), OccurredAt: inv.GetOccurredAt(),
			SeriesKey: inv.GetSku() + "|" + inv.GetLocation(), Sku: inv.GetSku(), Location: inv.GetLocation(), Day: at.Format("2006-01-02"),
			Change: &demandv1.DemandEvent_Inventory{Inventory: inv}}}
}

func catalog(t *testing.T, sku, loc string, cat *catalogv1.CatalogEvent) historyEvent {
	at := cat.GetOccurredAt().AsTime()
	h := historyEvent{table: "catalog_events", payload: payloadOf(t, cat), ev: &demandv1.DemandEvent{EventId: cat.GetEventId(),
		OccurredAt: cat.GetOccurredAt(), SeriesKey: sku + "|" + loc, Sku: sku, Location: loc,
		Day: at.Format("2006-01-02")}}
	switch k := cat.GetKind().(type) {
	case *catalogv1.CatalogEvent_Item:
		h.kind, h.ev.SeriesKey, h.ev.Location = "item", sku, ""
		h.ev.Change = &demandv1.DemandEvent_Item{Item: k.Item}
	case *catalogv1.CatalogEvent_PriceChange:
		h.kind, h.ev.Change = "price_change", &demandv1.DemandEvent_Price{Price: k.PriceChange}
	case *catalogv1.CatalogEvent_Promotion:
		h.kind, h.ev.Change = "promotion", &demandv1.DemandEvent_Promotion{Promotion: k.Promotion}
	}
	return h
}

// payloadOf is the event as ingest stores it: compact protojson with the
// proto field names.
func payloadOf(t *testing.T, m proto.Message) string {
	t.Helper()
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func insertHistory(t *testing.T, conn driver.Conn, hs []historyEvent) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	for _, table := range []string{"order_lines", "inventory_events", "catalog_events"} {
		var b driver.Batch
		var err error
		if table == "order_lines" {
			b, err = conn.PrepareBatch(ctx, "INSERT INTO order_lines (event_id, series_key, sku, location, day, occurred_at, type, quantity, is_demand, ingested_at)")
		} else {
			b, err = conn.PrepareBatch(ctx, "INSERT INTO "+table+" (event_id, series_key, sku, location, day, occurred_at, kind, payload, ingested_at)")
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			if h.table != table {
				continue
			}
			ev := h.ev
			at := ev.GetOccurredAt().AsTime()
			day := at.Truncate(24 * time.Hour)
			if table == "order_lines" {
				err = b.Append(ev.GetEventId(), ev.GetSeriesKey(), ev.GetSku(), ev.GetLocation(), day, at, "placed", ev.GetDemand().GetQuantity(), uint8(1), now)
			} else {
				err = b.Append(ev.GetEventId(), ev.GetSeriesKey(), ev.GetSku(), ev.GetLocation(), day, at, h.kind, h.payload, now)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Send(); err != nil {
			t.Fatal(err)
		}
	}
}

// redisDump is every key of the feature store: hashes with their fields.
// Markers are left out: with Kafka transactions the live service keeps
// none (a series' undo log is its offset watermark), a rebuild writes one
// per event (markerKeys) so that a replay changes nothing.
func redisDump(t *testing.T, rdb *redis.Client) map[string]map[string]string {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "stockcast:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for _, k := range keys {
		if strings.HasPrefix(k, recovery.Key("")) {
			continue // the state sentinel: a generation id of its own per run
		}
		if strings.Contains(k, ":seen:") {
			continue
		}
		if strings.HasSuffix(k, ":undo") {
			continue // the undo logs of the last batch (store.UndoKey): a rebuild has none
		}
		h, err := rdb.HGetAll(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		out[k] = h
	}
	return out
}

// markerKeys counts the feature store's dedup markers.
func markerKeys(t *testing.T, rdb *redis.Client) int {
	t.Helper()
	keys, err := rdb.Keys(context.Background(), "stockcast:*:seen:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

func diffDump(want, got map[string]map[string]string) string {
	var lines []string
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			lines = append(lines, "missing "+k)
			continue
		}
		for f, v := range w {
			if g[f] != v {
				lines = append(lines, fmt.Sprintf("%s %s: got %.80q, want %.80q", k, f, g[f], v))
			}
		}
		for f := range g {
			if _, ok := w[f]; !ok {
				lines = append(lines, fmt.Sprintf("%s: extra field %s", k, f))
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			lines = append(lines, "extra "+k)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestRebuildAfterRedisLoss: events of every kind go through the running
// feature service; Redis then loses everything (FLUSHALL); `feature rebuild
// -all` rebuilds it from ClickHouse, and every series hash, item hash and
// exactly-once marker is byte for byte what the live service had built.
// Replaying the whole topic afterwards changes nothing.
func TestRebuildAfterRedisLoss(t *testing.T) {
	ctx := context.Background()
	brokers := testenv.Kafka(t)
	redisAddr := testenv.Redis(t)
	ch := testenv.ClickHouse(t)
	conn, err := chx.Open(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := chx.Migrate(ctx, conn, ingestSchema...); err != nil {
		t.Fatal(err)
	}

	ms := time.Millisecond
	ts := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(monday.Add(d)) }
	// In occurred_at order, as they arrive; inventory and catalog times have
	// milliseconds, order lines whole seconds (as ClickHouse keeps them).
	hs := []historyEvent{
		catalog(t, "A", "", &catalogv1.CatalogEvent{EventId: "it-1", OccurredAt: ts(-48 * time.Hour),
			Kind: &catalogv1.CatalogEvent_Item{Item: &catalogv1.ItemAttributes{Sku: "A", Category: "lights", Department: "home"}}}),
		catalog(t, "A", "shop", &catalogv1.CatalogEvent{EventId: "pr-1", OccurredAt: ts(-47*time.Hour + 250*ms),
			Kind: &catalogv1.CatalogEvent_PriceChange{PriceChange: &catalogv1.PriceChange{Sku: "A", Location: "shop", Price: 2.55, Currency: "GBP"}}}),
		orderLine("or-1", "A", "shop", monday, 6),
		orderLine("or-2", "A", "shop", monday.Add(2*time.Hour), 4),
		orderLine("or-3", "B", "shop", monday.Add(3*time.Hour), 1.5),
		inventory(t, &inventoryv1.InventoryEvent{EventId: "iv-1", Sku: "A", Location: "shop", OccurredAt: ts(5*time.Hour + 120*ms),
			Kind: &inventoryv1.InventoryEvent_Snapshot{Snapshot: &inventoryv1.Snapshot{OnHand: 12}}}, "snapshot"),
		orderLine("or-4", "A", "shop", monday.Add(24*time.Hour), 3),
		orderLine("or-5", "A", "shop", monday.Add(26*time.Hour), -1),
		inventory(t, &inventoryv1.InventoryEvent{EventId: "so-1", Sku: "A", Location: "shop", OccurredAt: ts(49*time.Hour + 7*ms),
			Kind: &inventoryv1.InventoryEvent_StockoutStarted{StockoutStarted: &inventoryv1.StockoutStarted{}}}, "stockout_started"),
		catalog(t, "B", "shop", &catalogv1.CatalogEvent{EventId: "pm-1", OccurredAt: ts(50*time.Hour + 999*ms),
			Kind: &catalogv1.CatalogEvent_Promotion{Promotion: &catalogv1.PromotionWindow{Sku: "B", Location: "shop", PromotionId: "xmas", DiscountPct: 20,
				StartsAt: ts(72 * time.Hour), EndsAt: ts(96 * time.Hour)}}}),
		orderLine("or-6", "B", "shop", monday.Add(73*time.Hour), 2),
		inventory(t, &inventoryv1.InventoryEvent{EventId: "so-2", Sku: "A", Location: "shop", OccurredAt: ts(97*time.Hour + 500*ms),
			Kind: &inventoryv1.InventoryEvent_StockoutEnded{StockoutEnded: &inventoryv1.StockoutEnded{}}}, "stockout_ended"),
		orderLine("or-7", "A", "shop", monday.Add(98*time.Hour), 5),
		catalog(t, "A", "", &catalogv1.CatalogEvent{EventId: "it-2", OccurredAt: ts(99 * time.Hour),
			Kind: &catalogv1.CatalogEvent_Item{Item: &catalogv1.ItemAttributes{Sku: "A", Category: "lamps", Department: "home"}}}),
	}
	insertHistory(t, conn, hs)
	events := make([]*demandv1.DemandEvent, len(hs))
	for i, h := range hs {
		events[i] = h.ev
	}
	produce(t, brokers, events...)

	svc := start(t, brokers, redisAddr)
	readSnapshots(t, brokers, len(events)) // every event applied and published
	svc.stop(t)

	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	live := redisDump(t, rdb)
	if n := len(live); n != 3 { // 2 series + 1 item hash
		t.Fatalf("live store has %d keys, want 3: %v", n, live)
	}
	if n := markerKeys(t, rdb); n != 0 {
		t.Fatalf("live store has %d markers, want none (Kafka transactions: offset watermarks)", n)
	}
	if err := rdb.FlushAll(ctx).Err(); err != nil { // Redis lost everything
		t.Fatal(err)
	}

	env := func(k string) string {
		return map[string]string{"STOCKCAST_CLICKHOUSE_ADDR": ch.Addr, "STOCKCAST_CLICKHOUSE_DATABASE": ch.Database,
			"STOCKCAST_REDIS_ADDR": redisAddr}[k]
	}
	var out bytes.Buffer
	if err := Run(ctx, []string{"rebuild", "-all"}, env, &out); err != nil {
		t.Fatal(err)
	}
	if want := "rebuilt 2 series and 1 items from 14 events (0 rejected by validation, as the live service does)\n" +
		"redis state marked complete (generation *): the feature service resumes\n"; !globMatch(want, out.String()) {
		t.Fatalf("rebuild printed %q, want %q", out.String(), want)
	}
	rebuilt := redisDump(t, rdb)
	if d := diffDump(live, rebuilt); d != "" {
		t.Fatalf("rebuilt store differs from the live one:\n%s", d)
	}
	if n := markerKeys(t, rdb); n != len(events) {
		t.Fatalf("rebuilt store has %d markers, want one per event: %d", n, len(events))
	}

	// Replay the whole topic: every event is recognised, nothing changes.
	deleteGroupOffsets(t, brokers)
	svc = start(t, brokers, redisAddr)
	snaps := readSnapshots(t, brokers, 2*len(events))
	svc.stop(t)
	redelivered := 0
	for _, group := range snaps {
		for _, s := range group[len(group)/2:] {
			if !s.snap.GetApplied() {
				redelivered++
			}
		}
	}
	if redelivered != len(events) {
		t.Errorf("%d of the %d replayed events were recognised as applied", redelivered, len(events))
	}
	if d := diffDump(live, redisDump(t, rdb)); d != "" {
		t.Fatalf("replay after the rebuild changed the store:\n%s", d)
	}
	if !reflect.DeepEqual(len(live), len(rebuilt)) {
		t.Fatal("key count changed")
	}
}

// TestRecoverAfterRedisLoss: the running feature service loses Redis
// (FLUSHALL) between two halves of a stream; it notices before applying the
// second half (the scripts refuse to write), rebuilds the first half from
// ClickHouse by itself, and applies the second half. Every key, and every
// snapshot it published, is byte for byte what a run without the loss
// produced, and no event is published twice.
func TestRecoverAfterRedisLoss(t *testing.T) {
	ctx := context.Background()
	ch := testenv.ClickHouse(t)
	conn, err := chx.Open(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := chx.Migrate(ctx, conn, ingestSchema...); err != nil {
		t.Fatal(err)
	}
	var hs []historyEvent
	hs = append(hs, catalog(t, "A", "", &catalogv1.CatalogEvent{EventId: "it-1", OccurredAt: timestamppb.New(monday.Add(-time.Hour)),
		Kind: &catalogv1.CatalogEvent_Item{Item: &catalogv1.ItemAttributes{Sku: "A", Category: "lights", Department: "home"}}}))
	for i := range 30 {
		sku := []string{"A", "B", "C"}[i%3]
		hs = append(hs, orderLine(fmt.Sprintf("or-%d", i), sku, "shop", monday.Add(time.Duration(i)*7*time.Hour), float64(1+i%4)))
		if i == 20 {
			hs = append(hs, inventory(t, &inventoryv1.InventoryEvent{EventId: "so-1", Sku: "B", Location: "shop",
				OccurredAt: timestamppb.New(monday.Add(time.Duration(i)*7*time.Hour + 30*time.Minute)),
				Kind:       &inventoryv1.InventoryEvent_StockoutStarted{StockoutStarted: &inventoryv1.StockoutStarted{}}}, "stockout_started"))
		}
	}
	first, second := hs[:16], hs[16:]
	events := func(hs []historyEvent) []*demandv1.DemandEvent {
		out := make([]*demandv1.DemandEvent, len(hs))
		for i, h := range hs {
			out[i] = h.ev
		}
		return out
	}
	chFlags := []string{"-clickhouse.addr", ch.Addr, "-clickhouse.database", ch.Database}

	// The reference: the whole stream, no loss.
	refBrokers, refRedis := testenv.Kafka(t), testenv.Redis(t)
	produce(t, refBrokers, events(hs)...)
	svc := start(t, refBrokers, refRedis, chFlags...)
	want := snapshotValues(t, readTopic(t, refBrokers, topics.Features, len(hs)))
	svc.stop(t)
	refRdb := redis.NewClient(&redis.Options{Addr: refRedis})
	defer refRdb.Close()
	wantDump := redisDump(t, refRdb)

	// The run that loses Redis after the first half: ingest stored each
	// event in ClickHouse before publishing it.
	brokers, redisAddr := testenv.Kafka(t), testenv.Redis(t)
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	insertHistory(t, conn, first)
	produce(t, brokers, events(first)...)
	svc = start(t, brokers, redisAddr, chFlags...)
	readTopic(t, brokers, topics.Features, len(first))
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	insertHistory(t, conn, second)
	produce(t, brokers, events(second)...)
	got := snapshotValues(t, readTopic(t, brokers, topics.Features, len(hs)))
	svc.stop(t)

	ends, err := recovery.Ends(ctx, kafkax.Config{Brokers: brokers}, topics.Features)
	if err != nil {
		t.Fatal(err)
	}
	// Count the committed records, not the end offsets: transaction
	// markers take offsets too.
	published, err := recovery.Read(ctx, kafkax.Config{Brokers: brokers}, topics.Features, nil, ends, 1000,
		func([]*kgo.Record) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if published != len(hs) {
		t.Errorf("published %d snapshots for %d events", published, len(hs))
	}
	if d := diffDump(wantDump, redisDump(t, rdb)); d != "" {
		t.Errorf("recovered store differs from the run without loss:\n%s", d)
	}
	for id, w := range want {
		if !bytes.Equal(got[id], w) {
			t.Errorf("snapshot of %s differs from the run without loss", id)
		}
	}
	gen, err := rdb.Get(ctx, recovery.Key("feature")).Result()
	if err != nil || gen == "" {
		t.Errorf("state sentinel after the recovery: %q, %v", gen, err)
	}
}

// snapshotValues maps each snapshot's event id to its value.
func snapshotValues(t *testing.T, recs []*kgo.Record) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, r := range recs {
		id := header(r, topics.HeaderEventID)
		if _, dup := out[id]; dup {
			t.Errorf("snapshot of %s published twice", id)
		}
		out[id] = r.Value
	}
	return out
}
