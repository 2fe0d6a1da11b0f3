package store

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
	"github.com/stockcast/stockcast/services/ingest/internal/events"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestSeen(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { rdb.Close() })
	seen := NewSeen(rdb, 168*time.Hour)

	got, err := seen.Lookup(ctx, []string{"a", "b"})
	if err != nil || len(got) != 0 {
		t.Fatalf("Lookup on empty store = %v, %v", got, err)
	}
	if err := seen.Remember(ctx, map[string]string{"a": "h1", "b{x}": "h2"}); err != nil {
		t.Fatal(err)
	}
	got, err = seen.Lookup(ctx, []string{"a", "b{x}", "c"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["a"] != "h1" || got["b{x}"] != "h2" {
		t.Fatalf("Lookup = %v", got)
	}
	ttl, err := rdb.TTL(ctx, "stockcast:ingest:seen:{a}").Result()
	if err != nil || ttl < 167*time.Hour || ttl > 168*time.Hour {
		t.Fatalf("TTL of the seen key = %v, %v; want about 168h", ttl, err)
	}
}

func TestHistoryWriteIsIdempotent(t *testing.T) {
	ctx := context.Background()
	conn, err := chx.Open(ctx, testenv.ClickHouse(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := chx.Migrate(ctx, conn, Schema...); err != nil {
		t.Fatal(err)
	}
	// Twice: the schema is created with IF NOT EXISTS at every start.
	if err := chx.Migrate(ctx, conn, Schema...); err != nil {
		t.Fatal(err)
	}

	occurred := time.Date(2011, 12, 9, 23, 30, 15, 0, time.UTC)
	day := time.Date(2011, 12, 9, 0, 0, 0, 0, time.UTC)
	ingested := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	src := events.Source{Topic: topics.Orders, Partition: 2, Offset: 7}
	rows := events.Rows{
		Orders: []*events.OrderLineRow{
			{EventID: "or-1", SeriesKey: "A|online", SKU: "A", Location: "online", Day: day, OccurredAt: occurred, Type: "placed",
				OrderID: "o1", LineNumber: 1, Quantity: 6, RawQuantity: 6, UnitPrice: 2.5, Currency: "GBP", IsDemand: true, Source: src, IngestedAt: ingested},
			{EventID: "or-2", SeriesKey: "A|online", SKU: "A", Location: "online", Day: day, OccurredAt: occurred, Type: "cancelled",
				OrderID: "C1", LineNumber: 1, Quantity: -2, RawQuantity: 2, UnitPrice: 2.5, Currency: "GBP", IsDemand: true, Source: src, IngestedAt: ingested},
			{EventID: "or-3", SeriesKey: "POST|online", SKU: "POST", Location: "online", Day: day, OccurredAt: occurred, Type: "placed",
				OrderID: "o1", LineNumber: 2, Quantity: 1, RawQuantity: 1, UnitPrice: 18, Currency: "GBP", IsDemand: false, Source: src, IngestedAt: ingested},
		},
		Inventory: []*events.InventoryRow{
			{EventID: "inv-1", SeriesKey: "A|online", SKU: "A", Location: "online", Day: day, OccurredAt: occurred, Kind: "snapshot",
				Quantity: 40, Reserved: 2, Payload: `{"event_id":"inv-1"}`, Source: src, IngestedAt: ingested},
			{EventID: "inv-2", SeriesKey: "A|online", SKU: "A", Location: "online", Day: day, OccurredAt: occurred, Kind: "purchase_order_placed",
				Quantity: 24, Reference: "po-1", ExpectedAt: occurred.Add(72 * time.Hour), Source: src, IngestedAt: ingested},
		},
		Catalog: []*events.CatalogRow{
			{EventID: "cat-1", SeriesKey: "A", SKU: "A", Day: day, OccurredAt: occurred, Kind: "item", Price: 1.2, Source: src, IngestedAt: ingested},
			{EventID: "cat-2", SeriesKey: "A|online", SKU: "A", Location: "online", Day: day, OccurredAt: occurred, Kind: "promotion",
				PromotionID: "xmas", DiscountPct: 20, StartsAt: day, EndsAt: day.Add(72 * time.Hour), Source: src, IngestedAt: ingested},
		},
	}
	history := NewHistory(conn)
	for attempt := 0; attempt < 3; attempt++ {
		if err := history.Write(ctx, rows); err != nil {
			t.Fatalf("write attempt %d: %v", attempt, err)
		}
	}

	var (
		n, nDemand      uint64
		sumQty          float64
		gotDay, gotOcc  time.Time
		gotIsDemand     uint8
		gotSrcPartition int32
		gotSrcOffset    int64
	)
	if err := conn.QueryRow(ctx, `SELECT count(), countIf(is_demand = 1), sumIf(quantity, is_demand = 1) FROM order_lines FINAL`).Scan(&n, &nDemand, &sumQty); err != nil {
		t.Fatal(err)
	}
	if n != 3 || nDemand != 2 || sumQty != 4 {
		t.Fatalf("order_lines FINAL: %d rows, %d demand, demand sum %v; want 3, 2, 4", n, nDemand, sumQty)
	}
	if err := conn.QueryRow(ctx, `SELECT day, occurred_at, is_demand, source_partition, source_offset FROM order_lines FINAL WHERE event_id = 'or-3'`).
		Scan(&gotDay, &gotOcc, &gotIsDemand, &gotSrcPartition, &gotSrcOffset); err != nil {
		t.Fatal(err)
	}
	if !gotDay.Equal(day) || !gotOcc.Equal(occurred) || gotIsDemand != 0 || gotSrcPartition != 2 || gotSrcOffset != 7 {
		t.Fatalf("or-3 read back as day %v occurred %v is_demand %d source %d/%d", gotDay, gotOcc, gotIsDemand, gotSrcPartition, gotSrcOffset)
	}

	var expected *time.Time
	var invRows uint64
	if err := conn.QueryRow(ctx, `SELECT count() FROM inventory_events FINAL`).Scan(&invRows); err != nil || invRows != 2 {
		t.Fatalf("inventory_events FINAL: %d rows, %v; want 2", invRows, err)
	}
	if err := conn.QueryRow(ctx, `SELECT expected_at FROM inventory_events FINAL WHERE event_id = 'inv-1'`).Scan(&expected); err != nil || expected != nil {
		t.Fatalf("snapshot expected_at = %v, %v; want NULL", expected, err)
	}
	if err := conn.QueryRow(ctx, `SELECT expected_at FROM inventory_events FINAL WHERE event_id = 'inv-2'`).Scan(&expected); err != nil ||
		expected == nil || !expected.Equal(occurred.Add(72*time.Hour)) {
		t.Fatalf("purchase order expected_at = %v, %v", expected, err)
	}

	var catRows uint64
	var itemKey, itemLoc string
	if err := conn.QueryRow(ctx, `SELECT count() FROM catalog_events FINAL`).Scan(&catRows); err != nil || catRows != 2 {
		t.Fatalf("catalog_events FINAL: %d rows, %v; want 2", catRows, err)
	}
	if err := conn.QueryRow(ctx, `SELECT series_key, location FROM catalog_events FINAL WHERE kind = 'item'`).Scan(&itemKey, &itemLoc); err != nil ||
		itemKey != "A" || itemLoc != "" {
		t.Fatalf("item row key %q location %q, %v", itemKey, itemLoc, err)
	}

	// An empty batch writes nothing and is no error.
	if err := history.Write(ctx, events.Rows{}); err != nil {
		t.Fatal(err)
	}
}
