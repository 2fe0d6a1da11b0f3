package store

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/stockcast/stockcast/services/ingest/internal/events"
)

// Schema creates ingest's history tables. ReplacingMergeTree keyed by the
// event id makes a replayed batch harmless: read with FINAL, each event is
// one row (the one ingested last, by the ingested_at version). The SQL runs
// on ClickHouse 18.16 (no LowCardinality, DateTime64 or TTL).
var Schema = []string{
	`CREATE TABLE IF NOT EXISTS order_lines (
		event_id String,
		series_key String,
		sku String,
		location String,
		day Date,
		occurred_at DateTime('UTC'),
		type String,
		order_id String,
		line_number Int32,
		quantity Float64,
		raw_quantity Float64,
		unit_price Float64,
		currency String,
		customer_id String,
		channel String,
		country String,
		description String,
		is_demand UInt8,
		source_topic String,
		source_partition Int32,
		source_offset Int64,
		ingested_at DateTime('UTC')
	) ENGINE = ReplacingMergeTree(ingested_at)
	PARTITION BY toYYYYMM(day)
	ORDER BY (series_key, event_id)`,

	`CREATE TABLE IF NOT EXISTS inventory_events (
		event_id String,
		series_key String,
		sku String,
		location String,
		day Date,
		occurred_at DateTime('UTC'),
		kind String,
		quantity Float64,
		reserved Float64,
		reference String,
		supplier_id String,
		expected_at Nullable(DateTime('UTC')),
		payload String,
		source_topic String,
		source_partition Int32,
		source_offset Int64,
		ingested_at DateTime('UTC')
	) ENGINE = ReplacingMergeTree(ingested_at)
	PARTITION BY toYYYYMM(day)
	ORDER BY (series_key, event_id)`,

	`CREATE TABLE IF NOT EXISTS catalog_events (
		event_id String,
		series_key String,
		sku String,
		location String,
		day Date,
		occurred_at DateTime('UTC'),
		kind String,
		price Float64,
		currency String,
		promotion_id String,
		discount_pct Float64,
		starts_at Nullable(DateTime('UTC')),
		ends_at Nullable(DateTime('UTC')),
		payload String,
		source_topic String,
		source_partition Int32,
		source_offset Int64,
		ingested_at DateTime('UTC')
	) ENGINE = ReplacingMergeTree(ingested_at)
	PARTITION BY toYYYYMM(day)
	ORDER BY (series_key, event_id)`,
}

// Explicit column lists: 18.16 needs them, and they keep an INSERT valid
// when a later release adds a column.
const (
	insertOrderLines = `INSERT INTO order_lines (event_id, series_key, sku, location, day, occurred_at, type,
		order_id, line_number, quantity, raw_quantity, unit_price, currency, customer_id, channel, country,
		description, is_demand, source_topic, source_partition, source_offset, ingested_at)`
	insertInventory = `INSERT INTO inventory_events (event_id, series_key, sku, location, day, occurred_at, kind,
		quantity, reserved, reference, supplier_id, expected_at, payload, source_topic, source_partition,
		source_offset, ingested_at)`
	insertCatalog = `INSERT INTO catalog_events (event_id, series_key, sku, location, day, occurred_at, kind,
		price, currency, promotion_id, discount_pct, starts_at, ends_at, payload, source_topic, source_partition,
		source_offset, ingested_at)`
)

// History writes accepted events to ClickHouse.
type History struct {
	conn driver.Conn
}

// NewHistory returns a History on conn; the tables must exist (Schema).
func NewHistory(conn driver.Conn) *History { return &History{conn: conn} }

// Write inserts the rows of one batch, one INSERT per table that has rows.
// A failed insert may be retried with the same rows: the tables replace
// rows by event id.
func (h *History) Write(ctx context.Context, rows events.Rows) error {
	if len(rows.Orders) > 0 {
		if err := h.insert(ctx, "order_lines", insertOrderLines, len(rows.Orders), func(b driver.Batch, i int) error {
			r := rows.Orders[i]
			return b.Append(r.EventID, r.SeriesKey, r.SKU, r.Location, r.Day, r.OccurredAt, r.Type,
				r.OrderID, r.LineNumber, r.Quantity, r.RawQuantity, r.UnitPrice, r.Currency, r.CustomerID, r.Channel, r.Country,
				r.Description, boolToUInt8(r.IsDemand), r.Source.Topic, r.Source.Partition, r.Source.Offset, r.IngestedAt)
		}); err != nil {
			return err
		}
	}
	if len(rows.Inventory) > 0 {
		if err := h.insert(ctx, "inventory_events", insertInventory, len(rows.Inventory), func(b driver.Batch, i int) error {
			r := rows.Inventory[i]
			return b.Append(r.EventID, r.SeriesKey, r.SKU, r.Location, r.Day, r.OccurredAt, r.Kind,
				r.Quantity, r.Reserved, r.Reference, r.SupplierID, nullableTime(r.ExpectedAt), r.Payload, r.Source.Topic, r.Source.Partition,
				r.Source.Offset, r.IngestedAt)
		}); err != nil {
			return err
		}
	}
	if len(rows.Catalog) > 0 {
		if err := h.insert(ctx, "catalog_events", insertCatalog, len(rows.Catalog), func(b driver.Batch, i int) error {
			r := rows.Catalog[i]
			return b.Append(r.EventID, r.SeriesKey, r.SKU, r.Location, r.Day, r.OccurredAt, r.Kind,
				r.Price, r.Currency, r.PromotionID, r.DiscountPct, nullableTime(r.StartsAt), nullableTime(r.EndsAt), r.Payload,
				r.Source.Topic, r.Source.Partition, r.Source.Offset, r.IngestedAt)
		}); err != nil {
			return err
		}
	}
	return nil
}

func (h *History) insert(ctx context.Context, table, query string, n int, appendRow func(driver.Batch, int) error) error {
	b, err := h.conn.PrepareBatch(ctx, query)
	if err != nil {
		return fmt.Errorf("prepare insert into %s: %w", table, err)
	}
	for i := 0; i < n; i++ {
		if err := appendRow(b, i); err != nil {
			_ = b.Abort() // the append error is the one to report
			return fmt.Errorf("append row %d to %s batch: %w", i, table, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert %d rows into %s: %w", n, table, err)
	}
	return nil
}

func boolToUInt8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// nullableTime maps the zero time (field not set) to NULL.
func nullableTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
