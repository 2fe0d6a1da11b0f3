package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	catalogv1 "github.com/stockcast/stockcast/proto/stockcast/catalog/v1"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"
)

// DayLayout formats the business day of an event (UTC date).
const DayLayout = "2006-01-02"

// DefaultNonProductSKUs are the codes of the Online Retail data set that
// are postage, fees, manual corrections, tests and gift vouchers, not goods.
const DefaultNonProductSKUs = "POST,DOT,M,m,D,C2,CRUK,BANK CHARGES,AMAZONFEE,PADS,S,B,ADJUST,ADJUST2," +
	"TEST001,TEST002,gift_0001_10,gift_0001_20,gift_0001_30,gift_0001_40,gift_0001_50"

// Source is where a raw event was read from.
type Source struct {
	Topic     string
	Partition int32
	Offset    int64
}

// OrderLineRow is an order line as the order_lines table stores it.
type OrderLineRow struct {
	EventID, SeriesKey, SKU, Location string
	Day, OccurredAt                   time.Time
	Type                              string // placed, cancelled, returned
	OrderID                           string
	LineNumber                        int32
	Quantity                          float64 // signed demand
	RawQuantity                       float64 // as reported, > 0
	UnitPrice                         float64
	Currency, CustomerID, Channel     string
	Country, Description              string
	IsDemand                          bool
	Source                            Source
	IngestedAt                        time.Time
}

// InventoryRow is a stock movement as the inventory_events table stores it.
type InventoryRow struct {
	EventID, SeriesKey, SKU, Location string
	Day, OccurredAt                   time.Time
	Kind                              string  // snapshot, adjustment, receipt, purchase_order_placed, stockout_started, stockout_ended
	Quantity                          float64 // on hand, signed delta or received/ordered units; 0 for stockouts
	Reserved                          float64 // snapshots only
	Reference                         string  // purchase order id, or the adjustment's reason
	SupplierID                        string
	ExpectedAt                        time.Time // purchase orders only; zero otherwise
	Payload                           string    // the event as compact protojson
	Source                            Source
	IngestedAt                        time.Time
}

// CatalogRow is an item, price or promotion event as the catalog_events
// table stores it.
type CatalogRow struct {
	EventID, SeriesKey, SKU, Location string // Location is empty for items
	Day, OccurredAt                   time.Time
	Kind                              string  // item, price_change, promotion
	Price                             float64 // selling price, or the item's unit cost
	Currency                          string
	PromotionID                       string
	DiscountPct                       float64
	StartsAt, EndsAt                  time.Time // promotions only; zero otherwise
	Payload                           string    // the event as compact protojson
	Source                            Source
	IngestedAt                        time.Time
}

// Normalised is what ingest makes of one accepted event: one history row
// (exactly one of the row fields is set) and the DemandEvent to publish,
// which is nil for order lines of non-product codes.
type Normalised struct {
	Demand    *demandv1.DemandEvent
	Order     *OrderLineRow
	Inventory *InventoryRow
	Catalog   *CatalogRow
}

// Rows are the history rows of one batch, per table.
type Rows struct {
	Orders    []*OrderLineRow
	Inventory []*InventoryRow
	Catalog   []*CatalogRow
}

// Add appends the row of n.
func (r *Rows) Add(n Normalised) {
	switch {
	case n.Order != nil:
		r.Orders = append(r.Orders, n.Order)
	case n.Inventory != nil:
		r.Inventory = append(r.Inventory, n.Inventory)
	case n.Catalog != nil:
		r.Catalog = append(r.Catalog, n.Catalog)
	}
}

// Len is the number of rows of all tables.
func (r *Rows) Len() int { return len(r.Orders) + len(r.Inventory) + len(r.Catalog) }

// Normaliser maps accepted events to history rows and DemandEvents.
type Normaliser struct {
	nonProduct map[string]bool
}

// NewNormaliser returns a Normaliser that treats order lines of the given
// SKUs (exact, case-sensitive) as not demand.
func NewNormaliser(nonProductSKUs []string) *Normaliser {
	n := &Normaliser{nonProduct: make(map[string]bool, len(nonProductSKUs))}
	for _, s := range nonProductSKUs {
		n.nonProduct[s] = true
	}
	return n
}

// ParseSKUList splits a comma-separated SKU list. Entries are kept exactly
// as written apart from surrounding spaces ("BANK CHARGES" keeps its inner one).
func ParseSKUList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// IsDemand reports whether order lines of sku are customer demand.
func (n *Normaliser) IsDemand(sku string) bool { return !n.nonProduct[sku] }

// Normalise maps a validated event. src is where it was read from and
// ingestedAt the time of this ingest run.
func (n *Normaliser) Normalise(e Event, src Source, ingestedAt time.Time) (Normalised, error) {
	occurred := e.OccurredAt().AsTime()
	day := occurred.Truncate(24 * time.Hour)
	de := &demandv1.DemandEvent{
		EventId:    e.EventID(),
		OccurredAt: timestamppb.New(occurred),
		SeriesKey:  e.Key(),
		Sku:        e.SKU(),
		Location:   e.Location(),
		Day:        occurred.Format(DayLayout),
		Source:     &demandv1.SourcePosition{Topic: src.Topic, Partition: src.Partition, Offset: src.Offset},
		IngestedAt: timestamppb.New(ingestedAt),
	}
	switch {
	case e.Order != nil:
		row, demand := n.orderLine(e.Order, de.SeriesKey, day, occurred, src, ingestedAt)
		if !row.IsDemand {
			return Normalised{Order: row}, nil
		}
		de.Change = &demandv1.DemandEvent_Demand{Demand: demand}
		return Normalised{Demand: de, Order: row}, nil
	case e.Inventory != nil:
		row, err := inventoryRow(e.Inventory, de.SeriesKey, day, occurred, src, ingestedAt)
		if err != nil {
			return Normalised{}, err
		}
		de.Change = &demandv1.DemandEvent_Inventory{Inventory: proto.CloneOf(e.Inventory)}
		return Normalised{Demand: de, Inventory: row}, nil
	case e.Catalog != nil:
		row, err := catalogRow(e.Catalog, e, day, occurred, src, ingestedAt)
		if err != nil {
			return Normalised{}, err
		}
		switch k := e.Catalog.GetKind().(type) {
		case *catalogv1.CatalogEvent_Item:
			de.Change = &demandv1.DemandEvent_Item{Item: proto.CloneOf(k.Item)}
		case *catalogv1.CatalogEvent_PriceChange:
			de.Change = &demandv1.DemandEvent_Price{Price: proto.CloneOf(k.PriceChange)}
		case *catalogv1.CatalogEvent_Promotion:
			de.Change = &demandv1.DemandEvent_Promotion{Promotion: proto.CloneOf(k.Promotion)}
		}
		return Normalised{Demand: de, Catalog: row}, nil
	}
	return Normalised{}, fmt.Errorf("normalise empty event")
}

func (n *Normaliser) orderLine(ev *ordersv1.OrderLineEvent, key string, day, occurred time.Time, src Source, ingestedAt time.Time) (*OrderLineRow, *demandv1.Demand) {
	sign, kind, typ := 1.0, demandv1.DemandKind_DEMAND_KIND_ORDER, "placed"
	switch ev.GetType() {
	case ordersv1.OrderLineType_ORDER_LINE_TYPE_CANCELLED:
		sign, kind, typ = -1, demandv1.DemandKind_DEMAND_KIND_CANCELLATION, "cancelled"
	case ordersv1.OrderLineType_ORDER_LINE_TYPE_RETURNED:
		sign, kind, typ = -1, demandv1.DemandKind_DEMAND_KIND_RETURN, "returned"
	}
	row := &OrderLineRow{
		EventID: ev.GetEventId(), SeriesKey: key, SKU: ev.GetSku(), Location: ev.GetLocation(),
		Day: day, OccurredAt: occurred, Type: typ,
		OrderID: ev.GetOrderId(), LineNumber: ev.GetLineNumber(),
		Quantity: sign * ev.GetQuantity(), RawQuantity: ev.GetQuantity(), UnitPrice: ev.GetUnitPrice(),
		Currency: ev.GetCurrency(), CustomerID: ev.GetCustomerId(), Channel: ev.GetChannel(),
		Country: ev.GetCountry(), Description: ev.GetDescription(),
		IsDemand: n.IsDemand(ev.GetSku()), Source: src, IngestedAt: ingestedAt,
	}
	demand := &demandv1.Demand{
		Quantity: row.Quantity, Kind: kind, UnitPrice: ev.GetUnitPrice(), Currency: ev.GetCurrency(),
		OrderId: ev.GetOrderId(), CustomerId: ev.GetCustomerId(), Country: ev.GetCountry(),
	}
	return row, demand
}

func inventoryRow(ev *inventoryv1.InventoryEvent, key string, day, occurred time.Time, src Source, ingestedAt time.Time) (*InventoryRow, error) {
	payload, err := compactJSON(ev)
	if err != nil {
		return nil, err
	}
	row := &InventoryRow{
		EventID: ev.GetEventId(), SeriesKey: key, SKU: ev.GetSku(), Location: ev.GetLocation(),
		Day: day, OccurredAt: occurred, Payload: payload, Source: src, IngestedAt: ingestedAt,
	}
	switch k := ev.GetKind().(type) {
	case *inventoryv1.InventoryEvent_Snapshot:
		row.Kind, row.Quantity, row.Reserved = "snapshot", k.Snapshot.GetOnHand(), k.Snapshot.GetReserved()
	case *inventoryv1.InventoryEvent_Adjustment:
		row.Kind, row.Quantity, row.Reference = "adjustment", k.Adjustment.GetDelta(), k.Adjustment.GetReason()
	case *inventoryv1.InventoryEvent_Receipt:
		row.Kind, row.Quantity, row.Reference = "receipt", k.Receipt.GetQuantity(), k.Receipt.GetPurchaseOrderId()
	case *inventoryv1.InventoryEvent_PurchaseOrderPlaced:
		po := k.PurchaseOrderPlaced
		row.Kind, row.Quantity, row.Reference = "purchase_order_placed", po.GetQuantity(), po.GetPurchaseOrderId()
		row.SupplierID, row.ExpectedAt = po.GetSupplierId(), po.GetExpectedAt().AsTime()
	case *inventoryv1.InventoryEvent_StockoutStarted:
		row.Kind = "stockout_started"
	case *inventoryv1.InventoryEvent_StockoutEnded:
		row.Kind = "stockout_ended"
	}
	return row, nil
}

func catalogRow(ev *catalogv1.CatalogEvent, e Event, day, occurred time.Time, src Source, ingestedAt time.Time) (*CatalogRow, error) {
	payload, err := compactJSON(ev)
	if err != nil {
		return nil, err
	}
	row := &CatalogRow{
		EventID: ev.GetEventId(), SeriesKey: e.Key(), SKU: e.SKU(), Location: e.Location(),
		Day: day, OccurredAt: occurred, Payload: payload, Source: src, IngestedAt: ingestedAt,
	}
	switch k := ev.GetKind().(type) {
	case *catalogv1.CatalogEvent_Item:
		row.Kind, row.Price = "item", k.Item.GetUnitCost()
	case *catalogv1.CatalogEvent_PriceChange:
		row.Kind, row.Price, row.Currency = "price_change", k.PriceChange.GetPrice(), k.PriceChange.GetCurrency()
	case *catalogv1.CatalogEvent_Promotion:
		p := k.Promotion
		row.Kind, row.PromotionID, row.DiscountPct = "promotion", p.GetPromotionId(), p.GetDiscountPct()
		row.StartsAt, row.EndsAt = p.GetStartsAt().AsTime(), p.GetEndsAt().AsTime()
	}
	return row, nil
}

// compactJSON renders m as protojson without the random spaces protojson
// adds to discourage byte comparisons, so a replayed event stores the
// same payload.
func compactJSON(m proto.Message) (string, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("marshal %s as json: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return "", fmt.Errorf("compact json of %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return out.String(), nil
}
