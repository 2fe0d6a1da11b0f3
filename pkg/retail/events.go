package retail

import (
	"fmt"
	"slices"
	"strconv"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"

	"github.com/stockcast/stockcast/pkg/topics"
)

// The shop ships everything from one warehouse: one location for all series.
const (
	Location = "online"
	Currency = "GBP"
	Channel  = "web"
)

// NonProductCodes returns the StockCodes of this data set that are not goods:
// postage, carriage, manual entries, discounts, samples, fees, vouchers.
// The ingest service's default list of non-product codes covers them; the
// stack passes this list to ingest so that both sides agree on what is not
// demand.
func NonProductCodes() []string {
	return []string{
		"POST", "DOT", "C2", "M", "m", "D", "S", "B", "CRUK", "BANK CHARGES", "AMAZONFEE", "PADS",
		"gift_0001_10", "gift_0001_20", "gift_0001_30", "gift_0001_40", "gift_0001_50",
	}
}

// IsProduct reports whether code is a product (not in NonProductCodes).
func IsProduct(code string) bool { return !slices.Contains(NonProductCodes(), code) }

// EventID is the event id of the line with the given CSV line number.
func EventID(lineNumber int) string { return "or-" + strconv.Itoa(lineNumber) }

// Event is a raw stockcast event made from a line: exactly one of Order and
// Inventory is set.
type Event struct {
	Order     *ordersv1.OrderLineEvent
	Inventory *inventoryv1.InventoryEvent
}

// ID returns the event id.
func (e Event) ID() string {
	if e.Order != nil {
		return e.Order.GetEventId()
	}
	return e.Inventory.GetEventId()
}

// Topic returns the raw topic the event belongs on.
func (e Event) Topic() string {
	if e.Order != nil {
		return topics.Orders
	}
	return topics.Inventory
}

// Key returns the record key: the series key sku|location.
func (e Event) Key() string {
	if e.Order != nil {
		return topics.SeriesKey(e.Order.GetSku(), e.Order.GetLocation())
	}
	return topics.SeriesKey(e.Inventory.GetSku(), e.Inventory.GetLocation())
}

// Marshal encodes the event as protobuf.
func (e Event) Marshal() ([]byte, error) {
	var m proto.Message = e.Order
	if e.Order == nil {
		m = e.Inventory
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshal event %s: %w", e.ID(), err)
	}
	return b, nil
}

// Map turns a line into its event (docs/design.md, "Online Retail mapping"):
//   - Quantity > 0: a placed order line;
//   - Quantity < 0 on a "C" invoice: a cancelled order line of |Quantity|;
//   - Quantity < 0 on any other invoice: a stock write-off, an inventory
//     Adjustment with delta = Quantity and the description as reason.
//
// A line with Quantity 0 has no meaning and is an error.
func Map(l Line) (Event, error) {
	at := timestamppb.New(l.Time)
	id := EventID(l.Number)
	switch {
	case l.Quantity > 0 || (l.Quantity < 0 && l.Cancellation()):
		typ, qty := ordersv1.OrderLineType_ORDER_LINE_TYPE_PLACED, l.Quantity
		if l.Quantity < 0 {
			typ, qty = ordersv1.OrderLineType_ORDER_LINE_TYPE_CANCELLED, -l.Quantity
		}
		return Event{Order: &ordersv1.OrderLineEvent{
			EventId:     id,
			OccurredAt:  at,
			Type:        typ,
			OrderId:     l.Invoice,
			LineNumber:  int32(l.InvoiceLine),
			Sku:         l.StockCode,
			Location:    Location,
			Quantity:    float64(qty),
			UnitPrice:   l.Price,
			Currency:    Currency,
			CustomerId:  l.Customer,
			Channel:     Channel,
			Country:     l.Country,
			Description: l.Description,
		}}, nil
	case l.Quantity < 0:
		return Event{Inventory: &inventoryv1.InventoryEvent{
			EventId:    id,
			OccurredAt: at,
			Sku:        l.StockCode,
			Location:   Location,
			Kind: &inventoryv1.InventoryEvent_Adjustment{Adjustment: &inventoryv1.Adjustment{
				Delta:  float64(l.Quantity),
				Reason: l.Description,
			}},
		}}, nil
	default:
		return Event{}, fmt.Errorf("map line %d: quantity 0 is neither an order nor a stock movement", l.Number)
	}
}
