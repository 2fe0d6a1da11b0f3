package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
	"github.com/stockcast/stockcast/services/ingest/internal/events"
	"github.com/stockcast/stockcast/services/ingest/internal/ingesting"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestSeen(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { rdb.Close() })
	seen := NewSeen(rdb, 168*time.Hour)
	now := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	seen.now = func() time.Time { return now }

	got, err := seen.Lookup(ctx, []string{"a", "b"})
	if err != nil || len(got) != 0 {
		t.Fatalf("Lookup on empty store = %v, %v", got, err)
	}
	h1, h2 := hashOf("one"), hashOf("two")
	if err := seen.Remember(ctx, map[string]ingesting.Mark{"a": {Hash: h1, Pos: 0xdeadbeef}, "b{x}": {Hash: h2}}); err != nil {
		t.Fatal(err)
	}
	got, err = seen.Lookup(ctx, []string{"a", "b{x}", "c"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["a"] != (ingesting.Mark{Hash: h1[:16], Pos: 0xdeadbeef}) || got["b{x}"] != (ingesting.Mark{Hash: h2[:16]}) {
		t.Fatalf("Lookup = %v, want a: %s at 0xdeadbeef, b{x}: %s", got, h1[:16], h2[:16])
	}
	// Each id is a field of its shard's hash of the current time bucket
	// (42h wide), which expires TTL after the bucket's end.
	bucket := now.Unix() / (42 * 3600)
	shard, _ := seen.fingerprint("a")
	key := SeenKey(bucket, shard)
	at, err := rdb.ExpireTime(ctx, key).Result()
	if want := time.Duration((bucket+1)*42*3600+168*3600) * time.Second; err != nil || at != want {
		t.Fatalf("expire time of %s = %v, %v; want %v", key, at, err, want)
	}
	if enc, err := rdb.ObjectEncoding(ctx, key).Result(); err != nil || enc != "listpack" {
		t.Fatalf("encoding of %s = %q, %v; want listpack", key, enc, err)
	}

	// Still found just before the TTL has passed since the bucket's end
	// (in the buckets looked up), not after the bucket expired.
	now = time.Unix((bucket+1)*42*3600+168*3600-1, 0)
	if got, err := seen.Lookup(ctx, []string{"a"}); err != nil || got["a"].Hash != h1[:16] {
		t.Fatalf("Lookup TTL after remembering = %v, %v", got, err)
	}
	if n := len(seen.buckets()); n != 5 {
		t.Fatalf("buckets looked up = %d, want 5", n)
	}
}

// hashOf is a content hash as events.Event.Hash makes it (64 hex digits).
func hashOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestSeenMemoryPerID remembers 20,000 ids, as ingest does batch by batch,
// and measures Redis memory per id (MEMORY USAGE of every key, SAMPLES 0)
// against the layout before (one string key per id, the full hash as
// value), in the same Redis.
func TestSeenMemoryPerID(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { rdb.Close() })
	const n, shards = 20000, 256 // ~78 ids per hash
	seen := NewSeenSharded(rdb, 168*time.Hour, shards)
	for b := 0; b < n; b += 500 {
		batch := map[string]ingesting.Mark{}
		for i := b; i < b+500; i++ {
			batch[fmt.Sprintf("order-line-%08d-1", i)] = ingesting.Mark{Hash: hashOf(strconv.Itoa(i)),
				Pos: ingesting.PosTag(events.Source{Topic: topics.Orders, Partition: int32(i % 6), Offset: int64(i)})}
		}
		if err := seen.Remember(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	newBytes, newKeys := memoryOf(ctx, t, rdb, "stockcast:ingest:seen:*")
	if newKeys != shards {
		t.Fatalf("keys = %d, want one per shard: %d", newKeys, shards)
	}
	// The layout before this store: SET stockcast:ingest:seen:{<id>} <hash> EX ttl.
	pipe := rdb.Pipeline()
	for i := 0; i < n; i++ {
		pipe.Set(ctx, fmt.Sprintf("old:seen:{order-line-%08d-1}", i), hashOf(strconv.Itoa(i)), 168*time.Hour)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	oldBytes, _ := memoryOf(ctx, t, rdb, "old:seen:*")
	t.Logf("bytes per id: %.1f (%d hashes), before: %.1f (one key per id)",
		float64(newBytes)/n, newKeys, float64(oldBytes)/n)
	if perID := float64(newBytes) / n; perID > 28 {
		t.Fatalf("%.1f bytes per id, want <= 28", perID)
	}
	// Every id is found with its hash's prefix; others are not.
	ids := []string{"order-line-00000007-1", "order-line-00019999-1", "order-line-00020000-1"}
	got, err := seen.Lookup(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[ids[0]].Hash != hashOf("7")[:16] || got[ids[1]].Hash != hashOf("19999")[:16] ||
		got[ids[0]].Pos != ingesting.PosTag(events.Source{Topic: topics.Orders, Partition: 1, Offset: 7}) {
		t.Fatalf("Lookup = %v", got)
	}
}

func memoryOf(ctx context.Context, t *testing.T, rdb *redis.Client, match string) (bytes int64, keys int) {
	t.Helper()
	iter := rdb.Scan(ctx, 0, match, 1000).Iterator()
	for iter.Next(ctx) {
		m, err := rdb.MemoryUsage(ctx, iter.Val(), 0).Result()
		if err != nil {
			t.Fatal(err)
		}
		bytes += m
		keys++
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return bytes, keys
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
