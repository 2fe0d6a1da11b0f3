package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
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
	orderHistory = `SELECT event_id, sku, location, occurred_at, quantity, ingested_at
	FROM order_lines FINAL
	WHERE series_key = ? AND is_demand = 1`
	inventoryHistory = `SELECT event_id, sku, location, occurred_at, payload, ingested_at
	FROM inventory_events FINAL
	WHERE series_key = ?`
	catalogHistory = `SELECT event_id, sku, location, occurred_at, payload, ingested_at
	FROM catalog_events FINAL
	WHERE series_key = ? AND kind != 'item'`
	itemHistory = `SELECT event_id, sku, location, occurred_at, payload, ingested_at
	FROM catalog_events FINAL
	WHERE kind = 'item'`
)

// dayLayout is the DemandEvent day format ingest writes.
const dayLayout = "2006-01-02"

// History returns the changes of a series from the ClickHouse history,
// oldest first (by occurred_at, then event id): the DemandEvent ingest
// published for each row, passed through features.ChangeOf like the live
// consumer does. Events the live service rejects (dead-lettered) are left
// out and counted in rejected.
func History(ctx context.Context, conn driver.Conn, series string) (h history, rejected int, err error) {
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
			return history{}, 0, fmt.Errorf("history of %s: %w", series, err)
		}
		evs = append(evs, got...)
	}
	return toChanges(evs)
}

// ItemHistory returns every item (category, department) change, oldest first.
func ItemHistory(ctx context.Context, conn driver.Conn) (h history, rejected int, err error) {
	evs, err := readEvents(ctx, conn, itemHistory, catalogEvent)
	if err != nil {
		return history{}, 0, fmt.Errorf("item history: %w", err)
	}
	return toChanges(evs)
}

type historyRow struct {
	eventID, sku, location string
	occurredAt, ingestedAt time.Time
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
			err = rows.Scan(&r.eventID, &r.sku, &r.location, &r.occurredAt, &r.quantity, &r.ingestedAt)
		} else {
			err = rows.Scan(&r.eventID, &r.sku, &r.location, &r.occurredAt, &r.payload, &r.ingestedAt)
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
		IngestedAt: timestamppb.New(r.ingestedAt),
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

// history is a series' (or the items') changes, oldest first, with the
// time ingest stored each event: an event's exactly-once marker is kept
// -feature.dedup-ttl after that, as it was in the live store.
type history struct {
	changes  []features.Change
	ingested []time.Time
}

// toChanges validates like the live consumer and orders by occurred_at.
func toChanges(evs []*demandv1.DemandEvent) (history, int, error) {
	type pair struct {
		c        features.Change
		ingested time.Time
	}
	ps := make([]pair, 0, len(evs))
	rejected := 0
	for _, ev := range evs {
		c, err := features.ChangeOf(ev)
		var inv *features.InvalidError
		if errors.As(err, &inv) {
			rejected++
			continue
		}
		if err != nil {
			return history{}, 0, err
		}
		ps = append(ps, pair{c, ev.GetIngestedAt().AsTime()})
	}
	sort.SliceStable(ps, func(i, j int) bool {
		if !ps[i].c.At.Equal(ps[j].c.At) {
			return ps[i].c.At.Before(ps[j].c.At)
		}
		return ps[i].c.EventID < ps[j].c.EventID
	})
	h := history{changes: make([]features.Change, len(ps)), ingested: make([]time.Time, len(ps))}
	for i, p := range ps {
		h.changes[i], h.ingested[i] = p.c, p.ingested
	}
	return h, rejected, nil
}

// markerTTL is what is left of an event's marker lifetime: ttl after it was
// ingested (about when the live service applied it), at least 1 s, so a
// rebuild keeps the markers the live store still had and not one per event
// of the whole history.
func markerTTL(ttl time.Duration, ingested, now time.Time) string {
	left := ttl
	if !ingested.IsZero() {
		left = ttl - now.Sub(ingested)
	}
	return strconv.FormatInt(max(1, int64(left/time.Second)), 10)
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
	h, _, err := History(ctx, conn, series)
	if err != nil {
		return 0, err
	}
	if err := s.replace(ctx, series, h); err != nil {
		return 0, fmt.Errorf("rebuild %s: %w", series, err)
	}
	return len(h.changes), nil
}

// RebuildStats counts what RebuildAll did.
type RebuildStats struct {
	Series, Items int
	Events        int // applied: series and item events
	Rejected      int // in ClickHouse, but rejected by the feature service's validation (its DLQ)
}

// RebuildAll rebuilds every item's attributes and every series with events
// in ClickHouse: it scans each history table once in series order and hands
// each series' changes to one of workers goroutines, which replace the
// series in Redis (one transaction each).
func RebuildAll(ctx context.Context, conn driver.Conn, s *Redis, workers int) (RebuildStats, error) {
	return RebuildAllExcept(ctx, conn, s, workers, nil)
}

// Skip tells RebuildAllExcept to leave an event out (by its id and the time
// ingest stored it): the events the consumer has not applied yet, which it
// applies itself after the rebuild.
type Skip func(eventID string, ingested time.Time) bool

// without is h less the events skip names.
func (h history) without(skip Skip) history {
	if skip == nil {
		return h
	}
	out := history{changes: h.changes[:0:0], ingested: h.ingested[:0:0]}
	for i, c := range h.changes {
		if !skip(c.EventID, h.ingested[i]) {
			out.changes = append(out.changes, c)
			out.ingested = append(out.ingested, h.ingested[i])
		}
	}
	return out
}

// RebuildAllExcept is RebuildAll without the events skip names (nil: none).
// Series and items left without events are not written.
func RebuildAllExcept(ctx context.Context, conn driver.Conn, s *Redis, workers int, skip Skip) (RebuildStats, error) {
	var st RebuildStats
	items, rejected, err := ItemHistory(ctx, conn)
	if err != nil {
		return st, err
	}
	items = items.without(skip)
	st.Rejected += rejected
	bySKU := map[string]*history{}
	var skus []string
	for i, c := range items.changes {
		h := bySKU[c.SKU]
		if h == nil {
			h = &history{}
			bySKU[c.SKU] = h
			skus = append(skus, c.SKU)
		}
		h.changes = append(h.changes, c)
		h.ingested = append(h.ingested, items.ingested[i])
	}
	for _, sku := range skus {
		if err := s.replaceItem(ctx, sku, *bySKU[sku]); err != nil {
			return st, fmt.Errorf("rebuild item %s: %w", sku, err)
		}
		st.Items++
		st.Events += len(bySKU[sku].changes)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type job struct {
		series string
		h      history
	}
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
			cancel()
		}
	}
	jobs := make(chan job, max(1, workers))
	for range max(1, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if err := s.replace(ctx, j.series, j.h); err != nil {
					fail(fmt.Errorf("rebuild %s: %w", j.series, err))
					continue
				}
				mu.Lock()
				st.Series++
				st.Events += len(j.h.changes)
				mu.Unlock()
			}
		}()
	}
	rejectedAll, err := scanSeries(ctx, conn, func(series string, h history) bool {
		if kept := h.without(skip); len(kept.changes) < len(h.changes) {
			if len(kept.changes) == 0 {
				return true // all its events are still to come
			}
			h = kept
		}
		select {
		case jobs <- job{series, h}:
			return true
		case <-ctx.Done():
			return false
		}
	})
	close(jobs)
	wg.Wait()
	if err != nil {
		fail(err)
	}
	st.Rejected += rejectedAll
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return st, first
}

// The whole history, one scan per table in series order, for RebuildAll:
// three queries in all instead of three per series.
const (
	orderAll = `SELECT series_key, event_id, sku, location, occurred_at, quantity, ingested_at
	FROM order_lines FINAL WHERE is_demand = 1 ORDER BY series_key`
	inventoryAll = `SELECT series_key, event_id, sku, location, occurred_at, payload, ingested_at
	FROM inventory_events FINAL ORDER BY series_key`
	catalogAll = `SELECT series_key, event_id, sku, location, occurred_at, payload, ingested_at
	FROM catalog_events FINAL WHERE kind != 'item' ORDER BY series_key`
)

// tableStream reads one table's rows in series order.
type tableStream struct {
	rows  driver.Rows
	order bool // order_lines: quantity instead of payload
	build func(historyRow) (*demandv1.DemandEvent, error)
	key   string
	row   historyRow
	done  bool
}

func (t *tableStream) advance() error {
	if !t.rows.Next() {
		t.done = true
		return t.rows.Err()
	}
	var err error
	if t.order {
		err = t.rows.Scan(&t.key, &t.row.eventID, &t.row.sku, &t.row.location, &t.row.occurredAt, &t.row.quantity, &t.row.ingestedAt)
	} else {
		err = t.rows.Scan(&t.key, &t.row.eventID, &t.row.sku, &t.row.location, &t.row.occurredAt, &t.row.payload, &t.row.ingestedAt)
	}
	return err
}

// scanSeries merges the three tables by series key and calls apply with
// each series' changes (as History returns them); apply returning false
// stops the scan. It returns the number of rejected events.
func scanSeries(ctx context.Context, conn driver.Conn, apply func(series string, h history) bool) (int, error) {
	var streams []*tableStream
	defer func() {
		for _, t := range streams {
			t.rows.Close()
		}
	}()
	for _, q := range []struct {
		query string
		order bool
		build func(historyRow) (*demandv1.DemandEvent, error)
	}{
		{orderAll, true, orderEvent},
		{inventoryAll, false, inventoryEvent},
		{catalogAll, false, catalogEvent},
	} {
		rows, err := conn.Query(ctx, q.query)
		if err != nil {
			return 0, fmt.Errorf("scan history: %w", err)
		}
		t := &tableStream{rows: rows, order: q.order, build: q.build}
		streams = append(streams, t)
		if err := t.advance(); err != nil {
			return 0, fmt.Errorf("scan history: %w", err)
		}
	}
	rejected := 0
	for {
		key, found := "", false
		for _, t := range streams {
			if !t.done && (!found || t.key < key) {
				key, found = t.key, true
			}
		}
		if !found {
			return rejected, nil
		}
		var evs []*demandv1.DemandEvent
		for _, t := range streams {
			for !t.done && t.key == key {
				ev, err := t.build(t.row)
				if err != nil {
					return rejected, fmt.Errorf("event %s: %w", t.row.eventID, err)
				}
				evs = append(evs, ev)
				if err := t.advance(); err != nil {
					return rejected, fmt.Errorf("scan history: %w", err)
				}
			}
		}
		h, n, err := toChanges(evs)
		if err != nil {
			return rejected, err
		}
		rejected += n
		if !apply(key, h) {
			return rejected, ctx.Err()
		}
	}
}

// replace deletes a series' hash and the markers of its events, then
// applies the events, all in one transaction.
func (s *Redis) replace(ctx context.Context, series string, h history) error {
	if err := s.loadScripts(ctx); err != nil {
		return err
	}
	now := time.Now()
	tx := s.rdb.TxPipeline()
	tx.Del(ctx, SeriesKey(series), UndoKey(series))
	for _, c := range h.changes {
		tx.Del(ctx, SeenKey(series, c.EventID))
	}
	for i, c := range h.changes {
		at := strconv.FormatInt(c.At.UnixMilli(), 10)
		ttl := markerTTL(s.cfg.DedupTTL, h.ingested[i], now)
		c.Pos = nil // events before the committed offsets: no undo log
		s.series.EvalSha(ctx, tx, []string{SeriesKey(series), SeenKey(series, c.EventID), s.guardKey, UndoKey(series)},
			append(append(seriesArgs(c, ttl, at), s.guardToken), posArgs(c, false)...)...)
	}
	return execAll(ctx, tx, series)
}

// replaceItem does the same for a SKU's attributes, with item.lua.
func (s *Redis) replaceItem(ctx context.Context, sku string, h history) error {
	if err := s.loadScripts(ctx); err != nil {
		return err
	}
	now := time.Now()
	tx := s.rdb.TxPipeline()
	tx.Del(ctx, ItemKey(sku), ItemUndoKey(sku))
	for _, c := range h.changes {
		tx.Del(ctx, SeenKey(sku, c.EventID))
	}
	for i, c := range h.changes {
		at := strconv.FormatInt(c.At.UnixMilli(), 10)
		ttl := markerTTL(s.cfg.DedupTTL, h.ingested[i], now)
		c.Pos = nil
		s.item.EvalSha(ctx, tx, []string{ItemKey(sku), SeenKey(sku, c.EventID), s.guardKey, ItemUndoKey(sku)},
			append([]any{ttl, at, c.Item.Category, c.Item.Department, s.guardToken}, posArgs(c, true)...)...)
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
