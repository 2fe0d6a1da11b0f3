package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/pkg/topics"
	catalogv1 "github.com/stockcast/stockcast/proto/stockcast/catalog/v1"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	"github.com/stockcast/stockcast/services/feature/internal/features"
)

// The history tables ingest writes (services/ingest/internal/store), read
// with FINAL so that every event is one row. Every event ingest published to
// demand.v1 has a row there: order lines of product SKUs (is_demand = 1),
// every inventory event, every catalog event. The inventory and catalog rows
// carry the whole event as protojson (payload); order lines carry the
// quantity, already signed.
const (
	orderHistory = `SELECT event_id, sku, location, occurred_at, quantity
	FROM order_lines FINAL
	WHERE series_key = ? AND is_demand = 1`
	inventoryHistory = `SELECT event_id, sku, location, occurred_at, payload
	FROM inventory_events FINAL
	WHERE series_key = ?`
	catalogHistory = `SELECT event_id, sku, location, occurred_at, payload
	FROM catalog_events FINAL
	WHERE series_key = ? AND kind != 'item'`
	itemHistory = `SELECT event_id, sku, location, occurred_at, payload
	FROM catalog_events FINAL
	WHERE kind = 'item'`
	allSeries = `SELECT series_key FROM (
		SELECT DISTINCT series_key FROM order_lines WHERE is_demand = 1
		UNION ALL SELECT DISTINCT series_key FROM inventory_events
		UNION ALL SELECT DISTINCT series_key FROM catalog_events WHERE kind != 'item'
	) GROUP BY series_key ORDER BY series_key`
)

// dayLayout is the DemandEvent day format ingest writes.
const dayLayout = "2006-01-02"

// History returns the changes of a series from the ClickHouse history,
// oldest first (by occurred_at, then event id): the DemandEvent ingest
// published for each row, passed through features.ChangeOf like the live
// consumer does. Events the live service rejects (dead-lettered) are left
// out and counted in rejected.
func History(ctx context.Context, conn driver.Conn, series string) (changes []features.Change, rejected int, err error) {
	var evs []*demandv1.DemandEvent
	for _, q := range []struct {
		query string
		build func(row historyRow) (*demandv1.DemandEvent, error)
	}{
		{orderHistory, orderEvent},
		{inventoryHistory, inventoryEvent},
		{catalogHistory, catalogEvent},
	} {
		got, err := readEvents(ctx, conn, q.query, q.build, series)
		if err != nil {
			return nil, 0, fmt.Errorf("history of %s: %w", series, err)
		}
		evs = append(evs, got...)
	}
	return toChanges(evs)
}

// ItemHistory returns every item (category, department) change, oldest first.
func ItemHistory(ctx context.Context, conn driver.Conn) (changes []features.Change, rejected int, err error) {
	evs, err := readEvents(ctx, conn, itemHistory, catalogEvent)
	if err != nil {
		return nil, 0, fmt.Errorf("item history: %w", err)
	}
	return toChanges(evs)
}

// DemandSeries lists the series (sku|location) with events in ClickHouse.
func DemandSeries(ctx context.Context, conn driver.Conn) ([]string, error) {
	rows, err := conn.Query(ctx, allSeries)
	if err != nil {
		return nil, fmt.Errorf("list series: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("list series: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

type historyRow struct {
	eventID, sku, location string
	occurredAt             time.Time
	quantity               float64 // order lines
	payload                string  // inventory and catalog events
}

func readEvents(ctx context.Context, conn driver.Conn, query string, build func(historyRow) (*demandv1.DemandEvent, error), args ...any) ([]*demandv1.DemandEvent, error) {
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	defer rows.Close()
	var out []*demandv1.DemandEvent
	for rows.Next() {
		var r historyRow
		var err error
		if query == orderHistory {
			err = rows.Scan(&r.eventID, &r.sku, &r.location, &r.occurredAt, &r.quantity)
		} else {
			err = rows.Scan(&r.eventID, &r.sku, &r.location, &r.occurredAt, &r.payload)
		}
		if err != nil {
			return nil, fmt.Errorf("read row: %w", err)
		}
		ev, err := build(r)
		if err != nil {
			return nil, fmt.Errorf("event %s: %w", r.eventID, err)
		}
		out = append(out, ev)
	}
	return out, rows.Err()
}

// demandEvent is the envelope ingest's normaliser writes around a change.
func demandEvent(r historyRow, occurred time.Time, seriesKey string) *demandv1.DemandEvent {
	occurred = occurred.UTC()
	return &demandv1.DemandEvent{
		EventId:    r.eventID,
		OccurredAt: timestamppb.New(occurred),
		SeriesKey:  seriesKey,
		Sku:        r.sku,
		Location:   r.location,
		Day:        occurred.Format(dayLayout),
	}
}

// orderEvent: order_lines stores occurred_at in whole seconds, so a
// rebuilt series' latest_at/event_at can be up to 1s earlier than the live
// one when its newest events were order lines with sub-second times (days,
// hours and totals do not depend on it).
func orderEvent(r historyRow) (*demandv1.DemandEvent, error) {
	ev := demandEvent(r, r.occurredAt, topics.SeriesKey(r.sku, r.location))
	ev.Change = &demandv1.DemandEvent_Demand{Demand: &demandv1.Demand{Quantity: r.quantity}}
	return ev, nil
}

func inventoryEvent(r historyRow) (*demandv1.DemandEvent, error) {
	var inv inventoryv1.InventoryEvent
	if err := protojson.Unmarshal([]byte(r.payload), &inv); err != nil {
		return nil, fmt.Errorf("decode inventory payload: %w", err)
	}
	ev := demandEvent(r, occurredOf(inv.GetOccurredAt(), r.occurredAt), topics.SeriesKey(r.sku, r.location))
	ev.Change = &demandv1.DemandEvent_Inventory{Inventory: &inv}
	return ev, nil
}

func catalogEvent(r historyRow) (*demandv1.DemandEvent, error) {
	var cat catalogv1.CatalogEvent
	if err := protojson.Unmarshal([]byte(r.payload), &cat); err != nil {
		return nil, fmt.Errorf("decode catalog payload: %w", err)
	}
	ev := demandEvent(r, occurredOf(cat.GetOccurredAt(), r.occurredAt), topics.SeriesKey(r.sku, r.location))
	switch k := cat.GetKind().(type) {
	case *catalogv1.CatalogEvent_Item:
		ev.SeriesKey, ev.Location = r.sku, ""
		ev.Change = &demandv1.DemandEvent_Item{Item: k.Item}
	case *catalogv1.CatalogEvent_PriceChange:
		ev.Change = &demandv1.DemandEvent_Price{Price: k.PriceChange}
	case *catalogv1.CatalogEvent_Promotion:
		ev.Change = &demandv1.DemandEvent_Promotion{Promotion: k.Promotion}
	}
	return ev, nil
}

// occurredOf prefers the event's own timestamp (full precision) to the
// table's (whole seconds).
func occurredOf(ts *timestamppb.Timestamp, column time.Time) time.Time {
	if ts != nil && ts.IsValid() {
		return ts.AsTime()
	}
	return column
}

// toChanges validates like the live consumer and orders by occurred_at.
func toChanges(evs []*demandv1.DemandEvent) ([]features.Change, int, error) {
	out := make([]features.Change, 0, len(evs))
	rejected := 0
	for _, ev := range evs {
		c, err := features.ChangeOf(ev)
		var inv *features.InvalidError
		if errors.As(err, &inv) {
			rejected++
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		out = append(out, c)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.Before(out[j].At)
		}
		return out[i].EventID < out[j].EventID
	})
	return out, rejected, nil
}

// Rebuild recomputes a series' features from the ClickHouse history, for
// when Redis lost them. It returns the number of events applied.
//
// The series hash and the dedup markers of those events are replaced in one
// MULTI, by the same script the consumer runs (series.lua, same arguments),
// so the rebuilt state is the one the events build when they arrive in
// occurred_at order, and a later redelivery of any of them is recognised
// and changes nothing. Run it with the feature service stopped (or its
// consumer paused), or accept that events applied meanwhile are replaced.
func Rebuild(ctx context.Context, conn driver.Conn, s *Redis, series string) (int, error) {
	if _, _, ok := topics.SplitSeriesKey(series); !ok {
		return 0, fmt.Errorf("rebuild %q: not a series key (sku|location)", series)
	}
	changes, _, err := History(ctx, conn, series)
	if err != nil {
		return 0, err
	}
	if err := s.replace(ctx, series, changes); err != nil {
		return 0, fmt.Errorf("rebuild %s: %w", series, err)
	}
	return len(changes), nil
}

// RebuildStats counts what RebuildAll did.
type RebuildStats struct {
	Series, Items int
	Events        int // applied: series and item events
	Rejected      int // in ClickHouse, but rejected by the feature service's validation (its DLQ)
}

// RebuildAll rebuilds every item's attributes and every series with events
// in ClickHouse.
func RebuildAll(ctx context.Context, conn driver.Conn, s *Redis) (RebuildStats, error) {
	var st RebuildStats
	items, rejected, err := ItemHistory(ctx, conn)
	if err != nil {
		return st, err
	}
	st.Rejected += rejected
	bySKU := map[string][]features.Change{}
	var skus []string
	for _, c := range items {
		if bySKU[c.SKU] == nil {
			skus = append(skus, c.SKU)
		}
		bySKU[c.SKU] = append(bySKU[c.SKU], c)
	}
	for _, sku := range skus {
		if err := s.replaceItem(ctx, sku, bySKU[sku]); err != nil {
			return st, fmt.Errorf("rebuild item %s: %w", sku, err)
		}
		st.Items++
		st.Events += len(bySKU[sku])
	}

	all, err := DemandSeries(ctx, conn)
	if err != nil {
		return st, err
	}
	for _, series := range all {
		changes, rejected, err := History(ctx, conn, series)
		if err != nil {
			return st, err
		}
		if err := s.replace(ctx, series, changes); err != nil {
			return st, fmt.Errorf("rebuild %s: %w", series, err)
		}
		st.Series++
		st.Events += len(changes)
		st.Rejected += rejected
	}
	return st, nil
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
	return execAll(ctx, tx, series)
}

// replaceItem does the same for a SKU's attributes, with item.lua.
func (s *Redis) replaceItem(ctx context.Context, sku string, changes []features.Change) error {
	if err := s.loadScripts(ctx); err != nil {
		return err
	}
	ttl := fmt.Sprint(int64(s.cfg.DedupTTL.Seconds()))
	tx := s.rdb.TxPipeline()
	tx.Del(ctx, ItemKey(sku))
	for _, c := range changes {
		tx.Del(ctx, SeenKey(sku, c.EventID))
	}
	for _, c := range changes {
		at := fmt.Sprint(c.At.UnixMilli())
		s.item.EvalSha(ctx, tx, []string{ItemKey(sku), SeenKey(sku, c.EventID)}, ttl, at, c.Item.Category, c.Item.Department)
	}
	return execAll(ctx, tx, sku)
}

func execAll(ctx context.Context, tx redis.Pipeliner, key string) error {
	cmds, err := tx.Exec(ctx)
	if err != nil {
		return fmt.Errorf("replace state of %s: %w", key, err)
	}
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			return fmt.Errorf("replace state of %s: %w", key, err)
		}
	}
	return nil
}
