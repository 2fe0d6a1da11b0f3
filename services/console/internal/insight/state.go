// Package insight turns the history tables into what planners act on: the
// state of every series (book on hand, price, open purchase orders, the
// latest forecast and proposal), the inventory KPIs of the daily report and
// the overview (stock value, projected fill rate, proposals, stockout
// risks), forecast errors, and the alert rules with their evaluator, which
// publishes fired alerts to topic alerts.v1.
//
// The SQL runs on ClickHouse 18.16 and current releases; it only reads.
package insight

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Reader reads the tables the services write (order_lines,
// inventory_events, forecast_log, proposals).
type Reader struct{ ch driver.Conn }

// NewReader reads through ch.
func NewReader(ch driver.Conn) *Reader { return &Reader{ch: ch} }

// IncomingOrder is an open purchase order: placed and not (fully) received.
type IncomingOrder struct {
	PurchaseOrderID string  `json:"purchase_order_id"`
	Quantity        float64 `json:"quantity"`     // placed minus received
	ExpectedDay     string  `json:"expected_day"` // YYYY-MM-DD
	SupplierID      string  `json:"supplier_id"`
}

// Series is one series' current state.
type Series struct {
	SeriesKey   string `json:"series_key"`
	SKU         string `json:"sku"`
	Location    string `json:"location"`
	Description string `json:"description"`
	// OnHand is the book stock: the newest snapshot plus receipts and
	// adjustments minus demand after it (everything when there is no
	// snapshot). It may be negative (demand the book did not cover).
	OnHand float64 `json:"on_hand"`
	// Price is the unit price of the newest demand line.
	Price    float64         `json:"price"`
	Incoming []IncomingOrder `json:"incoming"`
	// The newest forecast: its first day and daily means.
	ForecastStart string    `json:"forecast_start"`
	ForecastMeans []float64 `json:"-"`
	Model         string    `json:"model"`
	// The newest proposal (by decision time), if any.
	Proposal *LatestProposal `json:"proposal"`
}

// LatestProposal is the part of a series' newest proposal the KPIs use.
type LatestProposal struct {
	ProposalID   string  `json:"proposal_id"`
	Status       string  `json:"status"`
	Quantity     float64 `json:"quantity"`
	DecidedDay   string  `json:"decided_day"`
	StockoutDay  string  `json:"projected_stockout_day"`
	LeadTimeDays int32   `json:"lead_time_days"`
	ReorderPoint float64 `json:"reorder_point"`
	Position     float64 `json:"inventory_position"`
}

// State is every series' state and the newest event day.
type State struct {
	Today  string // newest demand day, YYYY-MM-DD ("today" on a replay)
	Series []Series
}

// ReadState reads the state of every series that has demand, stock, a
// forecast or a proposal, in series key order.
func (r *Reader) ReadState(ctx context.Context) (State, error) {
	st := State{}
	by := map[string]*Series{}
	get := func(key string) *Series {
		s := by[key]
		if s == nil {
			s = &Series{SeriesKey: key, Incoming: []IncomingOrder{}}
			s.SKU, s.Location, _ = strings.Cut(key, "|")
			by[key] = s
		}
		return s
	}
	if err := r.ch.QueryRow(ctx, `SELECT toString(max(day)) FROM order_lines WHERE is_demand = 1`).Scan(&st.Today); err != nil {
		return st, fmt.Errorf("read newest demand day: %w", err)
	}

	// Book on hand: the newest snapshot, then the movements after it.
	err := r.each(ctx, `SELECT series_key, argMax(quantity, (occurred_at, event_id)) FROM inventory_events FINAL
		WHERE kind = 'snapshot' GROUP BY series_key`, nil, func(sc scanner) error {
		var key string
		var q float64
		if err := sc.Scan(&key, &q); err != nil {
			return err
		}
		get(key).OnHand = q
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("read snapshots: %w", err)
	}
	err = r.each(ctx, `SELECT series_key, sum(q) FROM (
			SELECT series_key, occurred_at, quantity AS q FROM inventory_events FINAL WHERE kind IN ('receipt', 'adjustment')
			UNION ALL
			SELECT series_key, occurred_at, -quantity AS q FROM order_lines FINAL WHERE is_demand = 1
		) ANY LEFT JOIN (
			SELECT series_key, max(occurred_at) AS snap_at FROM inventory_events FINAL WHERE kind = 'snapshot' GROUP BY series_key
		) USING series_key
		WHERE occurred_at > snap_at GROUP BY series_key`, nil, func(sc scanner) error {
		var key string
		var q float64
		if err := sc.Scan(&key, &q); err != nil {
			return err
		}
		get(key).OnHand += q
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("read stock movements: %w", err)
	}
	err = r.each(ctx, `SELECT series_key, argMax(unit_price, (occurred_at, event_id)), argMax(description, (occurred_at, event_id))
		FROM order_lines FINAL WHERE is_demand = 1 GROUP BY series_key`, nil, func(sc scanner) error {
		var key, desc string
		var p float64
		if err := sc.Scan(&key, &p, &desc); err != nil {
			return err
		}
		s := get(key)
		s.Price, s.Description = p, desc
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("read prices: %w", err)
	}
	if err := r.readIncoming(ctx, "", func(key string, o IncomingOrder) { s := get(key); s.Incoming = append(s.Incoming, o) }); err != nil {
		return st, err
	}
	err = r.each(ctx, `SELECT series_key, toString(argMax(start_day, (as_of_ns, issued_at_ns))), argMax(means, (as_of_ns, issued_at_ns)),
			argMax(model, (as_of_ns, issued_at_ns))
		FROM forecast_log GROUP BY series_key`, nil, func(sc scanner) error {
		var key, start, model string
		var means []float64
		if err := sc.Scan(&key, &start, &means, &model); err != nil {
			return err
		}
		s := get(key)
		s.ForecastStart, s.ForecastMeans, s.Model = start, means, model
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("read forecasts: %w", err)
	}
	err = r.each(ctx, `SELECT series_key, argMax(proposal_id, (decided_at_ns, proposal_id)), argMax(status, (decided_at_ns, proposal_id)),
			argMax(quantity, (decided_at_ns, proposal_id)), toString(argMax(toDate(decided_at), (decided_at_ns, proposal_id))),
			argMax(projected_stockout_day, (decided_at_ns, proposal_id)), argMax(policy_lead_time_days, (decided_at_ns, proposal_id)),
			argMax(reorder_point, (decided_at_ns, proposal_id)), argMax(inventory_position, (decided_at_ns, proposal_id))
		FROM proposals FINAL GROUP BY series_key`, nil, func(sc scanner) error {
		var key string
		var p LatestProposal
		if err := sc.Scan(&key, &p.ProposalID, &p.Status, &p.Quantity, &p.DecidedDay, &p.StockoutDay, &p.LeadTimeDays,
			&p.ReorderPoint, &p.Position); err != nil {
			return err
		}
		get(key).Proposal = &p
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("read proposals: %w", err)
	}
	for _, s := range by {
		st.Series = append(st.Series, *s)
	}
	sort.Slice(st.Series, func(i, j int) bool { return st.Series[i].SeriesKey < st.Series[j].SeriesKey })
	return st, nil
}

// Incoming returns the open purchase orders of one series.
func (r *Reader) Incoming(ctx context.Context, seriesKey string) ([]IncomingOrder, error) {
	out := []IncomingOrder{}
	err := r.readIncoming(ctx, seriesKey, func(_ string, o IncomingOrder) { out = append(out, o) })
	return out, err
}

func (r *Reader) readIncoming(ctx context.Context, seriesKey string, fn func(string, IncomingOrder)) error {
	where, args := "", []any(nil)
	if seriesKey != "" {
		where, args = " AND series_key = ?", []any{seriesKey}
	}
	err := r.each(ctx, `SELECT series_key, reference,
			sumIf(quantity, kind = 'purchase_order_placed') - sumIf(quantity, kind = 'receipt') AS open,
			toString(toDate(maxIf(ifNull(expected_at, occurred_at), kind = 'purchase_order_placed'))),
			maxIf(supplier_id, kind = 'purchase_order_placed')
		FROM inventory_events FINAL
		WHERE kind IN ('purchase_order_placed', 'receipt') AND reference != ''`+where+`
		GROUP BY series_key, reference
		HAVING countIf(kind = 'purchase_order_placed') > 0 AND open > 0
		ORDER BY series_key, reference`, args, func(sc scanner) error {
		var key string
		var o IncomingOrder
		if err := sc.Scan(&key, &o.PurchaseOrderID, &o.Quantity, &o.ExpectedDay, &o.SupplierID); err != nil {
			return err
		}
		fn(key, o)
		return nil
	})
	if err != nil {
		return fmt.Errorf("read open purchase orders: %w", err)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func (r *Reader) each(ctx context.Context, q string, args []any, fn func(scanner) error) error {
	rows, err := r.ch.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// FillRateHorizon is the number of forecast days the projected fill rate
// looks ahead.
const FillRateHorizon = 7

// KPIs are the inventory report's headline numbers.
type KPIs struct {
	Day    string `json:"day"`
	Series int    `json:"series"`
	// StockValue is the sum over series of max(on hand, 0) × price.
	StockValue float64 `json:"stock_value"`
	// ProjectedFillRate is, over the next FillRateHorizon forecast days of
	// every series with a forecast, the share of the expected demand that
	// the stock on hand plus the open orders due by then can serve:
	// Σ min(demand, supply) / Σ demand. Nil without expected demand.
	ProjectedFillRate *float64 `json:"projected_fill_rate"`
	ExpectedDemand    float64  `json:"expected_demand"`
	ServedDemand      float64  `json:"served_demand"`
	// Proposals decided on Day, and proposals still waiting for a planner.
	ProposalsToday int     `json:"proposals_today"`
	ProposalsOpen  int     `json:"proposals_open"`
	OpenQuantity   float64 `json:"open_quantity"`
	IncomingOrders int     `json:"incoming_orders"`
	IncomingUnits  float64 `json:"incoming_units"`
	StockoutRisks  int     `json:"stockout_risks"`
	NegativeOnHand int     `json:"negative_on_hand"`
}

// Supply is the stock a series can serve demand from over the fill-rate
// horizon: max(on hand, 0) plus open orders expected by its last day.
func (s Series) Supply() float64 {
	sup := math.Max(s.OnHand, 0)
	last := s.horizonEnd()
	for _, o := range s.Incoming {
		if last != "" && o.ExpectedDay <= last {
			sup += o.Quantity
		}
	}
	return sup
}

// ExpectedDemand is the sum of the newest forecast's first
// FillRateHorizon daily means.
func (s Series) ExpectedDemand() float64 {
	d := 0.0
	for i, m := range s.ForecastMeans {
		if i >= FillRateHorizon {
			break
		}
		d += m
	}
	return d
}

func (s Series) horizonEnd() string {
	start, err := time.Parse(time.DateOnly, s.ForecastStart)
	if err != nil {
		return ""
	}
	return start.AddDate(0, 0, FillRateHorizon-1).Format(time.DateOnly)
}

// ComputeKPIs computes the KPIs of a state; proposalsToday counts the
// proposals decided on st.Today (read separately: the state keeps only
// each series' newest).
func ComputeKPIs(st State, proposalsToday int) KPIs {
	k := KPIs{Day: st.Today, Series: len(st.Series), ProposalsToday: proposalsToday}
	for _, s := range st.Series {
		k.StockValue += math.Max(s.OnHand, 0) * s.Price
		if s.OnHand < 0 {
			k.NegativeOnHand++
		}
		if d := s.ExpectedDemand(); d > 0 {
			k.ExpectedDemand += d
			k.ServedDemand += math.Min(d, s.Supply())
		}
		for _, o := range s.Incoming {
			k.IncomingOrders++
			k.IncomingUnits += o.Quantity
		}
		if p := s.Proposal; p != nil && p.Status == "PROPOSAL_STATUS_PROPOSED" {
			k.ProposalsOpen++
			k.OpenQuantity += p.Quantity
		}
	}
	if k.ExpectedDemand > 0 {
		f := k.ServedDemand / k.ExpectedDemand
		k.ProjectedFillRate = &f
	}
	k.StockoutRisks = len(StockoutRisks(st))
	return k
}

// Risk is a series whose projected stockout falls within its lead time.
type Risk struct {
	SeriesKey      string  `json:"series_key"`
	SKU            string  `json:"sku"`
	Location       string  `json:"location"`
	Description    string  `json:"description"`
	OnHand         float64 `json:"on_hand"`
	StockValue     float64 `json:"stock_value"`
	StockoutDay    string  `json:"projected_stockout_day"`
	DaysToStockout int     `json:"days_to_stockout"`
	LeadTimeDays   int32   `json:"lead_time_days"`
	ProposalID     string  `json:"proposal_id"`
	ProposalQty    float64 `json:"proposal_quantity"`
	ProposalStatus string  `json:"proposal_status"`
	DecidedDay     string  `json:"decided_day"`
}

// StockoutRisks are the series whose newest proposal projects a stockout
// no later than its lead time after the decision (days to stockout ≤ lead
// time days), unless the proposal was rejected; the soonest first, then
// by series key.
func StockoutRisks(st State) []Risk {
	out := []Risk{}
	for _, s := range st.Series {
		p := s.Proposal
		if p == nil || p.StockoutDay == "" || p.Status == "PROPOSAL_STATUS_REJECTED" {
			continue
		}
		days, ok := daysBetween(p.DecidedDay, p.StockoutDay)
		if !ok || days > int(p.LeadTimeDays) {
			continue
		}
		out = append(out, Risk{SeriesKey: s.SeriesKey, SKU: s.SKU, Location: s.Location, Description: s.Description,
			OnHand: s.OnHand, StockValue: math.Max(s.OnHand, 0) * s.Price, StockoutDay: p.StockoutDay,
			DaysToStockout: days, LeadTimeDays: p.LeadTimeDays, ProposalID: p.ProposalID, ProposalQty: p.Quantity,
			ProposalStatus: p.Status, DecidedDay: p.DecidedDay})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].DaysToStockout != out[j].DaysToStockout {
			return out[i].DaysToStockout < out[j].DaysToStockout
		}
		return out[i].SeriesKey < out[j].SeriesKey
	})
	return out
}

func daysBetween(from, to string) (int, bool) {
	a, err1 := time.Parse(time.DateOnly, from)
	b, err2 := time.Parse(time.DateOnly, to)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return int(math.Round(b.Sub(a).Hours() / 24)), true
}

// ProposalsOn counts the proposals decided on day.
func (r *Reader) ProposalsOn(ctx context.Context, day string) (int, error) {
	var n uint64
	if err := r.ch.QueryRow(ctx, `SELECT count() FROM proposals FINAL WHERE toDate(decided_at) = toDate(?)`, day).Scan(&n); err != nil {
		return 0, fmt.Errorf("count proposals of %s: %w", day, err)
	}
	return int(n), nil
}

// Compute reads the state and computes its KPIs.
func (r *Reader) Compute(ctx context.Context) (State, KPIs, error) {
	st, err := r.ReadState(ctx)
	if err != nil {
		return st, KPIs{}, err
	}
	n, err := r.ProposalsOn(ctx, st.Today)
	if err != nil {
		return st, KPIs{}, err
	}
	return st, ComputeKPIs(st, n), nil
}
