package retail

import (
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
)

// StockDays is how many days of a SKU's first sales its initial stock covers.
const StockDays = 28

// The data set has no stock levels, so the replay starts every product with a
// deterministic one. The rule:
//
//	on hand of a SKU = units of its placed order lines on its first StockDays
//	days of selling (UTC days, counted from the day of its first placed line)
//
// so items start reasonably stocked, run down as they sell, and the
// replenishment service has crossings to propose orders for. Only products
// (IsProduct) with at least one placed line get a snapshot. Every snapshot
// happens at midnight UTC of the first line's day, before any line.

// StockPlanner derives the initial stock from a stream of lines; Add every
// line (in any order), then take the Snapshots.
type StockPlanner struct {
	start time.Time
	// units[sku][day] = units placed on that UTC day (days since the Unix epoch).
	units map[string]map[int64]float64
}

// NewStockPlanner returns an empty planner.
func NewStockPlanner() *StockPlanner {
	return &StockPlanner{units: make(map[string]map[int64]float64)}
}

// Add takes one line into account.
func (p *StockPlanner) Add(l Line) {
	if p.start.IsZero() || l.Time.Before(p.start) {
		p.start = l.Time
	}
	if l.Quantity <= 0 || !IsProduct(l.StockCode) {
		return
	}
	days := p.units[l.StockCode]
	if days == nil {
		days = make(map[int64]float64)
		p.units[l.StockCode] = days
	}
	days[dayNumber(l.Time)] += float64(l.Quantity)
}

// Snapshots returns one inventory Snapshot per product, ordered by SKU, with
// event id "or-stock-<sku>".
func (p *StockPlanner) Snapshots() []*inventoryv1.InventoryEvent {
	skus := make([]string, 0, len(p.units))
	for sku := range p.units {
		skus = append(skus, sku)
	}
	slices.Sort(skus)
	at := timestamppb.New(p.start.UTC().Truncate(24 * time.Hour))
	events := make([]*inventoryv1.InventoryEvent, 0, len(skus))
	for _, sku := range skus {
		days := p.units[sku]
		first := int64(-1)
		for d := range days {
			if first < 0 || d < first {
				first = d
			}
		}
		var onHand float64
		for d, u := range days {
			if d < first+StockDays {
				onHand += u
			}
		}
		events = append(events, &inventoryv1.InventoryEvent{
			EventId:    "or-stock-" + sku,
			OccurredAt: at,
			Sku:        sku,
			Location:   Location,
			Kind:       &inventoryv1.InventoryEvent_Snapshot{Snapshot: &inventoryv1.Snapshot{OnHand: onHand}},
		})
	}
	return events
}

// InitialStock returns the initial stock snapshots of lines (see StockPlanner).
func InitialStock(lines []Line) []*inventoryv1.InventoryEvent {
	p := NewStockPlanner()
	for _, l := range lines {
		p.Add(l)
	}
	return p.Snapshots()
}

func dayNumber(t time.Time) int64 { return t.Unix() / 86400 }
