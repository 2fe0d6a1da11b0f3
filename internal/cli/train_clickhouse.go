package cli

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/stockcast/stockcast/pkg/backtest"
	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/modelregistry"
	catalogv1 "github.com/stockcast/stockcast/proto/stockcast/catalog/v1"
)

// The history `stockcast train -data clickhouse` reads from the tables
// ingest writes (services/ingest/internal/store), FINAL so that every
// event counts once. Demand is the net quantity of the demand order lines
// (placed minus cancelled and returned, as the feature service counts it).
const (
	chDemand = `SELECT sku, location, toString(day), sum(quantity), sumIf(quantity * unit_price, quantity > 0),
		sumIf(quantity, quantity > 0)
		FROM order_lines FINAL
		WHERE is_demand = 1 AND location != '' AND day >= toDate(?) AND day <= toDate(?)
		GROUP BY sku, location, day`
	chDayRange = `SELECT toString(min(day)), toString(max(day)), count() FROM order_lines FINAL WHERE is_demand = 1 AND location != ''`
	chStockout = `SELECT sku, location, toString(day), kind
		FROM inventory_events FINAL
		WHERE kind IN ('stockout_started', 'stockout_ended') AND day <= toDate(?)
		ORDER BY occurred_at, event_id`
	chPrices = `SELECT sku, location, toString(day), price
		FROM catalog_events FINAL
		WHERE kind = 'price_change' AND day <= toDate(?)
		ORDER BY occurred_at, event_id`
	chItems = `SELECT sku, payload FROM catalog_events FINAL WHERE kind = 'item' ORDER BY occurred_at, event_id`
)

// chRange selects the days and series loadClickHouse reads.
type chRange struct {
	from, to string // "YYYY-MM-DD"; empty: the first day with demand, the day before today (or the last day with demand if earlier)
	top      int    // the top series by units (0: all)
}

// loadClickHouse builds a data set from ingest's tables: one series per
// sku x location with demand, on the common day range, days without
// order lines being zero. Stockout days (from a stockout_started event's
// day through its stockout_ended event's day, or the end of the range) are
// censored: their demand is unknown, and is filled by
// modelregistry.ImputeCensored, as the forecast service fills them. The
// price of a day is the catalog price in force (the latest price_change of
// the series, or of the sku for every location, on or before it), else the
// mean unit price of the last day with sales at least backtest.PriceDelay
// days before (the online-retail rule: known a horizon ahead). Department
// and category come from the items' catalog attributes ("all" without).
func loadClickHouse(ctx context.Context, conn driver.Conn, r chRange, now time.Time) (*backtest.Dataset, int, error) {
	from, to := r.from, r.to
	if from == "" || to == "" {
		var lo, hi string
		var n uint64
		if err := conn.QueryRow(ctx, chDayRange).Scan(&lo, &hi, &n); err != nil {
			return nil, 0, fmt.Errorf("read the day range of order_lines: %w", err)
		}
		if n == 0 {
			return nil, 0, fmt.Errorf("order_lines has no demand")
		}
		if from == "" {
			from = lo
		}
		if to == "" {
			to = hi
			if yesterday := forecasting.DayOf(now) - 1; mustDay(hi) > yesterday {
				to = yesterday.String() // today is not over
			}
		}
	}
	first, err := forecasting.ParseDay(from)
	if err != nil {
		return nil, 0, err
	}
	last, err := forecasting.ParseDay(to)
	if err != nil {
		return nil, 0, err
	}
	if last < first {
		return nil, 0, fmt.Errorf("day range %s .. %s is empty", from, to)
	}
	days := int(last-first) + 1

	type cell struct{ net, revenue, units float64 }
	type series struct {
		sku, location string
		cells         map[int]*cell
		total         float64
		censored      []bool
		catalog       []float64 // catalog price from each day on, NaN before any
	}
	byKey := map[[2]string]*series{}
	rows, err := conn.Query(ctx, chDemand, from, to)
	if err != nil {
		return nil, 0, fmt.Errorf("query daily demand: %w", err)
	}
	for rows.Next() {
		var sku, loc, day string
		var c cell
		if err := rows.Scan(&sku, &loc, &day, &c.net, &c.revenue, &c.units); err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("read daily demand: %w", err)
		}
		s := byKey[[2]string{sku, loc}]
		if s == nil {
			s = &series{sku: sku, location: loc, cells: map[int]*cell{}}
			byKey[[2]string{sku, loc}] = s
		}
		s.cells[int(mustDay(day)-first)] = &c
		s.total += max(c.net, 0)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("read daily demand: %w", err)
	}
	if len(byKey) == 0 {
		return nil, 0, fmt.Errorf("no demand between %s and %s", from, to)
	}
	list := make([]*series, 0, len(byKey))
	for _, s := range byKey {
		list = append(list, s)
	}
	slices.SortFunc(list, func(a, b *series) int {
		if a.total != b.total {
			if a.total > b.total {
				return -1
			}
			return 1
		}
		return strings.Compare(a.sku+"|"+a.location, b.sku+"|"+b.location)
	})
	if r.top > 0 && len(list) > r.top {
		list = list[:r.top]
	}
	for _, s := range list {
		s.censored = make([]bool, days)
		s.catalog = make([]float64, days)
		for t := range s.catalog {
			s.catalog[t] = math.NaN()
		}
	}

	// stockouts: censor from the start's day through the end's day
	open := map[[2]string]int{}
	rows, err = conn.Query(ctx, chStockout, to)
	if err != nil {
		return nil, 0, fmt.Errorf("query stockouts: %w", err)
	}
	censor := func(s *series, a, b int) {
		for t := max(a, 0); t <= min(b, days-1); t++ {
			s.censored[t] = true
		}
	}
	for rows.Next() {
		var sku, loc, day, kind string
		if err := rows.Scan(&sku, &loc, &day, &kind); err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("read stockouts: %w", err)
		}
		k := [2]string{sku, loc}
		s := byKey[k]
		if s == nil || s.censored == nil {
			continue
		}
		t := int(mustDay(day) - first)
		switch start, isOpen := open[k]; {
		case kind == "stockout_started" && !isOpen:
			open[k] = t
		case kind == "stockout_ended" && isOpen:
			censor(s, start, t)
			delete(open, k)
		case kind == "stockout_ended":
			censor(s, t, t) // its start is not in the data: at least its last day
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("read stockouts: %w", err)
	}
	for k, start := range open {
		censor(byKey[k], start, days-1)
	}

	// catalog prices, in the order they took effect
	rows, err = conn.Query(ctx, chPrices, to)
	if err != nil {
		return nil, 0, fmt.Errorf("query prices: %w", err)
	}
	for rows.Next() {
		var sku, loc, day string
		var price float64
		if err := rows.Scan(&sku, &loc, &day, &price); err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("read prices: %w", err)
		}
		t := max(int(mustDay(day)-first), 0)
		for _, s := range list {
			if s.sku == sku && (loc == "" || s.location == loc) {
				for u := t; u < days; u++ {
					s.catalog[u] = price
				}
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("read prices: %w", err)
	}

	// departments and categories
	dept, cat := map[string]string{}, map[string]string{}
	rows, err = conn.Query(ctx, chItems)
	if err != nil {
		return nil, 0, fmt.Errorf("query items: %w", err)
	}
	for rows.Next() {
		var sku, payload string
		if err := rows.Scan(&sku, &payload); err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("read items: %w", err)
		}
		var ev catalogv1.CatalogEvent
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal([]byte(payload), &ev); err != nil {
			continue // a payload this build cannot read: no attributes
		}
		if it := ev.GetItem(); it != nil {
			if it.GetDepartment() != "" {
				dept[sku] = it.GetDepartment()
			}
			if it.GetCategory() != "" {
				cat[sku] = it.GetCategory()
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("read items: %w", err)
	}

	ds := &backtest.Dataset{Name: "clickhouse", Start: first, Days: days}
	censoredDays := 0
	for _, s := range list {
		out := backtest.Series{ID: s.sku + "|" + s.location, Item: s.sku, Dept: orAll(dept[s.sku]), Cat: orAll(cat[s.sku]),
			Store: s.location, State: "all", Values: make([]float64, days), Prices: make([]float64, days)}
		price := math.NaN()
		for t := range days {
			if c := s.cells[t]; c != nil {
				out.Values[t] = max(c.net, 0)
			}
			if c := s.cells[t-backtest.PriceDelay]; t >= backtest.PriceDelay && c != nil && c.units > 0 {
				price = c.revenue / c.units
			}
			out.Prices[t] = price
			if !math.IsNaN(s.catalog[t]) {
				out.Prices[t] = s.catalog[t]
			}
			if s.censored[t] {
				censoredDays++
			}
		}
		modelregistry.ImputeCensored(out.Values, s.censored)
		ds.Series = append(ds.Series, out)
	}
	return ds, censoredDays, nil
}

func orAll(s string) string {
	if s == "" {
		return "all"
	}
	return s
}

// mustDay parses a day ClickHouse formatted.
func mustDay(s string) forecasting.Day {
	d, err := forecasting.ParseDay(s)
	if err != nil {
		panic(fmt.Sprintf("clickhouse returned day %q: %v", s, err))
	}
	return d
}
