package retail

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"

	"github.com/stockcast/stockcast/pkg/topics"
)

const dataFile = "../../data/online-retail/online_retail.csv.gz"

// The expected numbers below were computed outside Go, with Python's csv
// module and zcat | awk over data/online-retail/online_retail.csv.gz.
const (
	wantLines        = 541909
	wantPlaced       = 531285
	wantCancelled    = 9288
	wantAdjustments  = 1336
	wantPlacedUnits  = 5660981
	wantCancelUnits  = 277574
	wantAdjustUnits  = -206957
	wantSKUs         = 4070
	wantInvoices     = 25900
	wantNonProduct   = 2950 // lines with a NonProductCodes StockCode
	wantSnapshots    = 3926 // products with a placed line
	wantStockOnHand  = 757445
	wantLastLineNo   = 541910
	wantMaxInvoiceLn = 1114 // lines of the longest invoice
)

func TestFullFileCounts(t *testing.T) {
	r, err := Open(dataFile)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	var (
		n, placed, cancelled, adjust, nonProduct int
		placedUnits, cancelUnits, adjustUnits    float64
		lastNo, maxInvLine                       int
		skus                                     = map[string]bool{}
		invoices                                 = map[string]bool{}
		ids                                      = map[string]bool{}
		prev                                     time.Time
		planner                                  = NewStockPlanner()
	)
	for {
		l, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		if l.Number != n+1 {
			t.Fatalf("line %d has Number %d, want %d", n, l.Number, n+1)
		}
		if l.Time.Before(prev) || l.Time.Location() != time.UTC {
			t.Fatalf("line %d: time %v not UTC or before the previous %v", l.Number, l.Time, prev)
		}
		prev = l.Time
		lastNo = l.Number
		maxInvLine = max(maxInvLine, l.InvoiceLine)
		skus[l.StockCode] = true
		invoices[l.Invoice] = true
		if !IsProduct(l.StockCode) {
			nonProduct++
		}
		planner.Add(l)

		ev, err := Map(l)
		if err != nil {
			t.Fatal(err)
		}
		if ids[ev.ID()] {
			t.Fatalf("duplicate event id %s", ev.ID())
		}
		ids[ev.ID()] = true
		if ev.Key() != l.StockCode+"|online" {
			t.Fatalf("line %d: key %q", l.Number, ev.Key())
		}
		switch {
		case ev.Order != nil && ev.Order.GetType() == ordersv1.OrderLineType_ORDER_LINE_TYPE_PLACED:
			placed++
			placedUnits += ev.Order.GetQuantity()
		case ev.Order != nil && ev.Order.GetType() == ordersv1.OrderLineType_ORDER_LINE_TYPE_CANCELLED:
			cancelled++
			cancelUnits += ev.Order.GetQuantity()
		case ev.Inventory.GetAdjustment() != nil:
			adjust++
			adjustUnits += ev.Inventory.GetAdjustment().GetDelta()
		default:
			t.Fatalf("line %d mapped to %v", l.Number, ev)
		}
	}

	snaps := planner.Snapshots()
	var onHand float64
	for _, s := range snaps {
		onHand += s.GetSnapshot().GetOnHand()
	}
	got := map[string]float64{
		"lines": float64(n), "placed": float64(placed), "cancelled": float64(cancelled),
		"adjustments": float64(adjust), "placed units": placedUnits, "cancelled units": cancelUnits,
		"adjustment units": adjustUnits, "skus": float64(len(skus)), "invoices": float64(len(invoices)),
		"non-product lines": float64(nonProduct), "snapshots": float64(len(snaps)),
		"initial on hand": onHand, "last line number": float64(lastNo), "longest invoice": float64(maxInvLine),
	}
	want := map[string]float64{
		"lines": wantLines, "placed": wantPlaced, "cancelled": wantCancelled,
		"adjustments": wantAdjustments, "placed units": wantPlacedUnits, "cancelled units": wantCancelUnits,
		"adjustment units": wantAdjustUnits, "skus": wantSKUs, "invoices": wantInvoices,
		"non-product lines": wantNonProduct, "snapshots": wantSnapshots,
		"initial on hand": wantStockOnHand, "last line number": wantLastLineNo, "longest invoice": wantMaxInvoiceLn,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
	if placed+cancelled+adjust != wantLines {
		t.Errorf("placed+cancelled+adjustments = %d, want every line", placed+cancelled+adjust)
	}
	// Spot checks of the initial stock rule (computed outside Go as well).
	for sku, want := range map[string]float64{"85123A": 3753, "22423": 2103, "23843": 80995} {
		if got := onHandOf(snaps, sku); got != want {
			t.Errorf("initial on hand of %s = %v, want %v", sku, got, want)
		}
	}
}

func onHandOf(snaps []*inventoryv1.InventoryEvent, sku string) float64 {
	for _, s := range snaps {
		if s.GetSku() == sku {
			return s.GetSnapshot().GetOnHand()
		}
	}
	return -1
}

// TestMapLines checks whole events for lines of the real file, picked by line
// number: first line, first cancellation, first write-off, a summer (BST) line,
// a quoted description with a comma, the last line.
func TestMapLines(t *testing.T) {
	ts := func(s string) *timestamppb.Timestamp {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return timestamppb.New(tm)
	}
	order := func(id int, typ ordersv1.OrderLineType, inv string, ln int32, sku, desc string, q, p float64, at, cust, country string) Event {
		return Event{Order: &ordersv1.OrderLineEvent{
			EventId: EventID(id), OccurredAt: ts(at), Type: typ, OrderId: inv, LineNumber: ln, Sku: sku,
			Location: "online", Quantity: q, UnitPrice: p, Currency: "GBP", CustomerId: cust, Channel: "web",
			Country: country, Description: desc,
		}}
	}
	placed, cancelled := ordersv1.OrderLineType_ORDER_LINE_TYPE_PLACED, ordersv1.OrderLineType_ORDER_LINE_TYPE_CANCELLED
	tests := []struct {
		line      int
		want      Event
		wantTopic string
	}{
		{2, order(2, placed, "536365", 1, "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6, 2.55, "2010-12-01T08:26:00Z", "17850", "United Kingdom"), topics.Orders},
		{143, order(143, cancelled, "C536379", 1, "D", "Discount", 1, 27.5, "2010-12-01T09:41:00Z", "14527", "United Kingdom"), topics.Orders},
		{2408, Event{Inventory: &inventoryv1.InventoryEvent{
			EventId: "or-2408", OccurredAt: ts("2010-12-01T16:50:00Z"), Sku: "21777", Location: "online",
			Kind: &inventoryv1.InventoryEvent_Adjustment{Adjustment: &inventoryv1.Adjustment{Delta: -10}},
		}}, topics.Inventory},
		{209031, order(209031, placed, "555156", 1, "23299", "FOOD COVER WITH BEADS SET 2", 6, 3.75, "2011-06-01T06:37:00Z", "15643", "United Kingdom"), topics.Orders},
		{255, order(255, placed, "536394", 1, "21506", "FANCY FONT BIRTHDAY CARD,", 24, 0.42, "2010-12-01T10:39:00Z", "13408", "United Kingdom"), topics.Orders},
		{541910, order(541910, placed, "581587", 15, "22138", "BAKING SET 9 PIECE RETROSPOT", 3, 4.95, "2011-12-09T12:50:00Z", "12680", "France"), topics.Orders},
	}
	lines, err := ReadAll(dataFile, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		l := lines[tt.line-2]
		got, err := Map(l)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got.Order, tt.want.Order) || !proto.Equal(got.Inventory, tt.want.Inventory) {
			t.Errorf("line %d: got\n%v %v\nwant\n%v %v", tt.line, got.Order, got.Inventory, tt.want.Order, tt.want.Inventory)
		}
		if got.Topic() != tt.wantTopic {
			t.Errorf("line %d: topic %s, want %s", tt.line, got.Topic(), tt.wantTopic)
		}
	}
}

func TestReaderInput(t *testing.T) {
	const csvText = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n" +
		"1,A,\"X, \"\"Y\"\"\",2,2011-03-27 00:59:00,1.5,,UK\n" +
		"1,B,Z,1,2011-03-27 02:00:00,1,12.0,UK\n"
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	if _, err := w.Write([]byte(csvText)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string]io.Reader{"plain": strings.NewReader(csvText), "gzip": &gz} {
		r, err := NewReader(in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		a, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		b, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Next(); !errors.Is(err, io.EOF) {
			t.Fatalf("%s: third Next = %v, want io.EOF", name, err)
		}
		// 00:59 is still GMT; 02:00 local is 01:00 UTC after the clocks went forward.
		if a.Description != `X, "Y"` || a.Customer != "" || a.Time != time.Date(2011, 3, 27, 0, 59, 0, 0, time.UTC) {
			t.Errorf("%s: first line %+v", name, a)
		}
		if b.Number != 3 || b.InvoiceLine != 2 || b.Customer != "12" || b.Time != time.Date(2011, 3, 27, 1, 0, 0, 0, time.UTC) {
			t.Errorf("%s: second line %+v", name, b)
		}
	}
}

func TestReaderErrors(t *testing.T) {
	const head = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
	tests := []struct{ name, in string }{
		{"header", "Invoice,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"},
		{"empty", ""},
		{"quantity", head + "1,A,d,two,2011-01-01 10:00:00,1,,UK\n"},
		{"date", head + "1,A,d,2,2011-01-01,1,,UK\n"},
		{"price", head + "1,A,d,2,2011-01-01 10:00:00,x,,UK\n"},
		{"fields", head + "1,A,d,2,2011-01-01 10:00:00,1,UK\n"},
		{"no sku", head + "1,,d,2,2011-01-01 10:00:00,1,,UK\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(strings.NewReader(tt.in))
			if err != nil {
				return // a bad or missing header
			}
			if _, err = r.Next(); err == nil || errors.Is(err, io.EOF) {
				t.Fatalf("got %v, want a parse error", err)
			}
		})
	}
	if _, err := Map(Line{Number: 7, Quantity: 0}); err == nil {
		t.Fatal("Map of quantity 0 succeeded")
	}
}

func TestInitialStockRule(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2011, 1, d, 12, 0, 0, 0, time.UTC) }
	lines := []Line{
		{Number: 2, StockCode: "A", Quantity: 5, Time: day(3)},
		{Number: 3, StockCode: "A", Quantity: 7, Time: day(30)}, // day 28 of selling: counted
		{Number: 4, StockCode: "A", Quantity: 100, Time: day(31)},
		{Number: 5, StockCode: "A", Invoice: "C1", Quantity: -5, Time: day(4)},
		{Number: 6, StockCode: "B", Quantity: -3, Time: day(2)}, // write-off only: no snapshot
		{Number: 7, StockCode: "POST", Quantity: 1, Time: day(2)},
		{Number: 8, StockCode: "C", Quantity: 2, Time: day(20)},
	}
	snaps := InitialStock(lines)
	want := map[string]float64{"A": 12, "C": 2}
	if len(snaps) != len(want) {
		t.Fatalf("got %d snapshots, want %d: %v", len(snaps), len(want), snaps)
	}
	for _, s := range snaps {
		if s.GetSnapshot().GetOnHand() != want[s.GetSku()] || s.GetEventId() != "or-stock-"+s.GetSku() ||
			!s.GetOccurredAt().AsTime().Equal(time.Date(2011, 1, 2, 0, 0, 0, 0, time.UTC)) || s.GetLocation() != "online" {
			t.Errorf("snapshot %v, want on hand %v at 2011-01-02T00:00Z", s, want[s.GetSku()])
		}
	}
}
