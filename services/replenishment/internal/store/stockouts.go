package store

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"

	"github.com/stockcast/stockcast/pkg/chx"
)

// StockoutsTable records the stockout periods the service detects, one row
// per start or end (the events it publishes on stockouts.v1), with the
// columns inventory_events has for them (series_key, kind, day,
// occurred_at), so a reader can take both. ReplacingMergeTree by event_id:
// a redelivered event is harmless (read with FINAL).
const StockoutsTable = `CREATE TABLE IF NOT EXISTS stockouts (
	event_id String,
	series_key String,
	sku String,
	location String,
	kind String,
	day Date,
	occurred_at DateTime,
	occurred_at_ns Int64
) ENGINE = ReplacingMergeTree ORDER BY (series_key, event_id)`

// MigrateStockouts creates the stockouts table.
func MigrateStockouts(ctx context.Context, conn driver.Conn) error {
	return chx.Migrate(ctx, conn, StockoutsTable)
}

// Stockouts keeps detected stockout events in ClickHouse.
type Stockouts struct {
	conn driver.Conn
}

// NewStockouts returns the store; the table must exist (MigrateStockouts).
func NewStockouts(conn driver.Conn) *Stockouts { return &Stockouts{conn: conn} }

// Save inserts the events in one batch.
func (s *Stockouts) Save(ctx context.Context, events []*inventoryv1.InventoryEvent) error {
	if len(events) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO stockouts (event_id, series_key, sku, location, kind, day, occurred_at, occurred_at_ns)")
	if err != nil {
		return fmt.Errorf("prepare stockouts insert: %w", err)
	}
	defer func() { _ = batch.Abort() }()
	for _, ev := range events {
		kind := "stockout_started"
		if ev.GetStockoutEnded() != nil {
			kind = "stockout_ended"
		}
		at := ev.GetOccurredAt().AsTime().UTC()
		if err := batch.Append(ev.GetEventId(), ev.GetSku()+"|"+ev.GetLocation(), ev.GetSku(), ev.GetLocation(),
			kind, at, at, at.UnixNano()); err != nil {
			return fmt.Errorf("append stockout event %s: %w", ev.GetEventId(), err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d stockout events: %w", len(events), err)
	}
	return nil
}
