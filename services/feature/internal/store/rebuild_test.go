package store

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/services/feature/internal/features"
)

// orderLinesDDL is ingest's order_lines table (services/ingest/internal/store).
const orderLinesDDL = `CREATE TABLE IF NOT EXISTS order_lines (
	event_id String, series_key String, sku String, location String, day Date,
	occurred_at DateTime('UTC'), type String, order_id String, line_number Int32,
	quantity Float64, raw_quantity Float64, unit_price Float64, currency String,
	customer_id String, channel String, country String, description String, is_demand UInt8,
	source_topic String, source_partition Int32, source_offset Int64, ingested_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(day)
ORDER BY (series_key, event_id)`

// inventoryDDL and catalogDDL are ingest's other history tables.
const inventoryDDL = `CREATE TABLE IF NOT EXISTS inventory_events (
	event_id String, series_key String, sku String, location String, day Date,
	occurred_at DateTime('UTC'), kind String, quantity Float64, reserved Float64, reference String,
	supplier_id String, expected_at Nullable(DateTime('UTC')), payload String,
	source_topic String, source_partition Int32, source_offset Int64, ingested_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(day)
ORDER BY (series_key, event_id)`

const catalogDDL = `CREATE TABLE IF NOT EXISTS catalog_events (
	event_id String, series_key String, sku String, location String, day Date,
	occurred_at DateTime('UTC'), kind String, price Float64, currency String, promotion_id String,
	discount_pct Float64, starts_at Nullable(DateTime('UTC')), ends_at Nullable(DateTime('UTC')), payload String,
	source_topic String, source_partition Int32, source_offset Int64, ingested_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(day)
ORDER BY (series_key, event_id)`

type orderLine struct {
	change   features.Change
	isDemand bool
	ingested time.Time // zero: now
}

func TestRebuildFromClickHouse(t *testing.T) {
	ctx := context.Background()
	s, rdb := newStore(t)
	conn, err := chx.Open(ctx, testenv.ClickHouse(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := chx.Migrate(ctx, conn, orderLinesDDL, inventoryDDL, catalogDDL); err != nil {
		t.Fatal(err)
	}

	// The live stream, in arrival order: a late line and a cancellation
	// included, so the rebuild (ordered by occurred_at) differs in order.
	live := []features.Change{
		demand("o1", monday, 9, 4),
		demand("o2", monday+1, 15, 2),
		demand("o3", monday+300, 10, 7),
		demand("o4", monday+1, 17, -2), // cancels o2's day
		demand("o5", monday-20, 8, 3),  // late
		demand("o6", monday+300, 23, 1.5),
	}
	other := demand("x1", monday, 9, 100)
	other.SKU = "sku2"
	postage := demand("p1", monday, 9, 1)
	postage.EventID = "post-1"
	rows := []orderLine{{change: other, isDemand: true}, {change: postage}}
	for _, c := range live {
		rows = append(rows, orderLine{change: c, isDemand: true})
	}
	insertOrderLines(t, conn, rows)
	insertOrderLines(t, conn, []orderLine{{change: live[0], isDemand: true}}) // ingest re-inserted a line: FINAL keeps one

	res, err := s.Apply(ctx, live)
	if err != nil {
		t.Fatal(err)
	}
	want := res[len(res)-1].State
	if err := rdb.FlushDB(ctx).Err(); err != nil { // Redis lost everything
		t.Fatal(err)
	}
	// The scripts refuse to write until the state is being rebuilt (here
	// without the recovery lock: the sentinel set by hand).
	if _, err := Rebuild(ctx, conn, s, series); err == nil || !strings.Contains(err.Error(), "STATELOST") {
		t.Fatalf("rebuild into a Redis that lost the state: %v, want STATELOST", err)
	}
	markComplete(t, rdb)

	n, err := Rebuild(ctx, conn, s, series)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(live) {
		t.Fatalf("rebuilt from %d events, want %d", n, len(live))
	}
	got, _, found, err := s.Load(ctx, "sku1", "shop")
	if err != nil || !found {
		t.Fatalf("load rebuilt series: found %v, %v", found, err)
	}
	// The last applied event differs with the order; everything else must not.
	want.LastEventID, want.LastEventAt = got.LastEventID, got.LastEventAt
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rebuilt state differs:\n got %+v\nwant %+v", got, want)
	}
	if got.LastEventID != "o6" {
		t.Errorf("last event of the rebuild %s, want o6 (latest occurred_at)", got.LastEventID)
	}

	// The markers are back: a redelivery of a rebuilt event changes nothing.
	again, err := s.Apply(ctx, []features.Change{live[2]})
	if err != nil || again[0].Applied || again[0].State.TotalDemand != want.TotalDemand {
		t.Fatalf("redelivery after rebuild: applied %v total %v, %v", again[0].Applied, again[0].State.TotalDemand, err)
	}

	if _, err := Rebuild(ctx, conn, s, "no-location"); err == nil {
		t.Error("rebuild accepted a key without location")
	}
	st, err := RebuildAll(ctx, conn, s, 4)
	if err != nil || st != (RebuildStats{Series: 2, Events: len(live) + 1}) {
		t.Fatalf("rebuild all: %+v, %v; want 2 series, %d events", st, err, len(live)+1)
	}
}

func insertOrderLines(t testing.TB, conn driver.Conn, rows []orderLine) {
	t.Helper()
	ctx := context.Background()
	b, err := conn.PrepareBatch(ctx, `INSERT INTO order_lines (event_id, series_key, sku, location, day, occurred_at,
		type, quantity, raw_quantity, is_demand, ingested_at)`)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		c := r.change
		typ := "placed"
		if c.Quantity < 0 {
			typ = "cancelled"
		}
		isDemand := uint8(0)
		if r.isDemand {
			isDemand = 1
		}
		ingested := r.ingested
		if ingested.IsZero() {
			ingested = time.Now().UTC().Truncate(time.Second)
		}
		if err := b.Append(c.EventID, c.SeriesKey(), c.SKU, c.Location, c.Day.Time(), c.At, typ, c.Quantity,
			max(c.Quantity, -c.Quantity), isDemand, ingested); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
}

// TestRebuildMarkerTTL: a rebuilt marker lives what was left of the live
// one: -feature.dedup-ttl after the event was ingested, at least 1 s.
func TestRebuildMarkerTTL(t *testing.T) {
	ctx := context.Background()
	_, rdb := newStore(t)
	s := NewRedis(rdb, Config{DedupTTL: 168 * time.Hour})
	conn, err := chx.Open(ctx, testenv.ClickHouse(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := chx.Migrate(ctx, conn, orderLinesDDL, inventoryDDL, catalogDDL); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	insertOrderLines(t, conn, []orderLine{
		{change: demand("old", monday, 9, 1), isDemand: true, ingested: now.Add(-200 * time.Hour)},
		{change: demand("recent", monday+1, 9, 1), isDemand: true, ingested: now.Add(-time.Hour)},
	})
	st, err := RebuildAll(ctx, conn, s, 1)
	if err != nil || st != (RebuildStats{Series: 1, Events: 2}) {
		t.Fatalf("rebuild: %+v, %v", st, err)
	}
	old, err := rdb.TTL(ctx, SeenKey(series, "old")).Result()
	if err != nil || old > time.Second {
		t.Errorf("marker of an event ingested 200h ago: ttl %v, %v; want at most 1s", old, err)
	}
	recent, err := rdb.TTL(ctx, SeenKey(series, "recent")).Result()
	if err != nil || recent > 167*time.Hour || recent < 167*time.Hour-time.Minute {
		t.Errorf("marker of an event ingested 1h ago: ttl %v, %v; want 167h", recent, err)
	}
	if got := markerTTL(time.Hour, time.Time{}, now); got != "3600" {
		t.Errorf("markerTTL without an ingest time = %s, want the full 3600", got)
	}
}
