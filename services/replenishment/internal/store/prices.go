package store

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
)

// UnitPrices reads each series' latest unit price from ingest's
// order_lines (the demand lines the platform sends, unit_price > 0) in the
// shared ClickHouse database: the unit values of the portfolio allocation
// (the simulator values a series' stock at its price too). location ""
// reads every location. The latest is the line with the largest
// occurred_at, then event_id (a replayed line is the same line). The
// service only reads the table: without ingest there is none, and the
// error says so.
func UnitPrices(ctx context.Context, ch driver.Conn, location string) (map[planning.Scope]float64, error) {
	rows, err := ch.Query(ctx, `SELECT sku, location, argMax(unit_price, (occurred_at, event_id))
		FROM order_lines
		WHERE is_demand = 1 AND unit_price > 0 AND (? = '' OR location = ?)
		GROUP BY sku, location`, location, location)
	if err != nil {
		return nil, fmt.Errorf("read unit prices of location %q from order_lines: %w", location, err)
	}
	defer rows.Close()
	out := map[planning.Scope]float64{}
	for rows.Next() {
		var s planning.Scope
		var price float64
		if err := rows.Scan(&s.SKU, &s.Location, &price); err != nil {
			return nil, fmt.Errorf("scan unit price: %w", err)
		}
		out[s] = price
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read unit prices of location %q: %w", location, err)
	}
	return out, nil
}
