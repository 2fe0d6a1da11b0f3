package store

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/stockcast/stockcast/pkg/topics"
	"github.com/stockcast/stockcast/services/feature/internal/features"
)

// demandHistory reads the demand of a series from the order history that
// ingest writes (FINAL: one row per event_id).
const demandHistory = `SELECT event_id, sku, location, day, occurred_at, quantity
	FROM order_lines FINAL
	WHERE series_key = ? AND is_demand = 1
	ORDER BY occurred_at, event_id`

const demandSeries = `SELECT DISTINCT series_key FROM order_lines WHERE is_demand = 1 ORDER BY series_key`

// DemandHistory returns a series' demand events from ClickHouse, oldest first.
func DemandHistory(ctx context.Context, conn driver.Conn, series string) ([]features.Change, error) {
	rows, err := conn.Query(ctx, demandHistory, series)
	if err != nil {
		return nil, fmt.Errorf("query demand history of %s: %w", series, err)
	}
	defer rows.Close()
	var out []features.Change
	for rows.Next() {
		var c features.Change
		var day time.Time
		if err := rows.Scan(&c.EventID, &c.SKU, &c.Location, &day, &c.At, &c.Quantity); err != nil {
			return nil, fmt.Errorf("read demand history of %s: %w", series, err)
		}
		c.Kind, c.Day = features.KindDemand, features.DayOf(day)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read demand history of %s: %w", series, err)
	}
	return out, nil
}

// DemandSeries lists the series that have demand in ClickHouse.
func DemandSeries(ctx context.Context, conn driver.Conn) ([]string, error) {
	rows, err := conn.Query(ctx, demandSeries)
	if err != nil {
		return nil, fmt.Errorf("list series with demand: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("list series with demand: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Rebuild recomputes a series' features from its ClickHouse order history,
// for when Redis lost them. It returns the number of demand events applied.
//
// The series hash and the dedup markers of those events are replaced in one
// MULTI, by the same script the consumer runs, so the rebuilt state is the
// one the events would have built, and a later redelivery of any of them
// is still recognised. Only demand is in order_lines: price, promotion and
// stockout state come back with the next events of those kinds. Run it with
// the series' consumer stopped, or accept that events applied meanwhile are
// replaced.
func Rebuild(ctx context.Context, conn driver.Conn, s *Redis, series string) (int, error) {
	if _, _, ok := topics.SplitSeriesKey(series); !ok {
		return 0, fmt.Errorf("rebuild %q: not a series key (sku|location)", series)
	}
	changes, err := DemandHistory(ctx, conn, series)
	if err != nil {
		return 0, err
	}
	if err := s.replace(ctx, series, changes); err != nil {
		return 0, fmt.Errorf("rebuild %s: %w", series, err)
	}
	return len(changes), nil
}

// RebuildAll rebuilds every series with demand in ClickHouse; it returns
// the number of series and of events.
func RebuildAll(ctx context.Context, conn driver.Conn, s *Redis) (seriesCount, events int, err error) {
	all, err := DemandSeries(ctx, conn)
	if err != nil {
		return 0, 0, err
	}
	for _, series := range all {
		n, err := Rebuild(ctx, conn, s, series)
		if err != nil {
			return seriesCount, events, err
		}
		seriesCount, events = seriesCount+1, events+n
	}
	return seriesCount, events, nil
}

// replace deletes a series' hash and the markers of changes, then applies
// changes, all in one transaction.
func (s *Redis) replace(ctx context.Context, series string, changes []features.Change) error {
	if err := s.loadScripts(ctx); err != nil {
		return err
	}
	ttl := fmt.Sprint(int64(s.cfg.DedupTTL.Seconds()))
	tx := s.rdb.TxPipeline()
	tx.Del(ctx, SeriesKey(series))
	for _, c := range changes {
		tx.Del(ctx, SeenKey(series, c.EventID))
	}
	for _, c := range changes {
		at := fmt.Sprint(c.At.UnixMilli())
		s.series.EvalSha(ctx, tx, []string{SeriesKey(series), SeenKey(series, c.EventID)}, seriesArgs(c, ttl, at)...)
	}
	cmds, err := tx.Exec(ctx)
	if err != nil {
		return fmt.Errorf("replace state of %s: %w", series, err)
	}
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			return fmt.Errorf("replace state of %s: %w", series, err)
		}
	}
	return nil
}
