package replay

import (
	"fmt"
	"io"
	"math"
	"sort"
	"time"
)

// Summary is what a replay did and measured.
type Summary struct {
	Read           int // CSV lines produced
	ByKind         [numKinds]int
	InitialStock   int // snapshots produced before the lines
	Rejected       int // lines dead-lettered by a service
	RejectedStock  int // initial stock snapshots dead-lettered
	ByReason       map[string]int
	Accepted       int // Read - Rejected
	NotDemand      int // accepted order lines of non-product codes: no forecast by design
	Forecasts      int // produced events (lines and snapshots) with a forecast
	ForecastDups   int // forecasts repeated for an event (redeliveries)
	Foreign        int // output records caused by events of other producers
	Series         int
	SeriesKeys     []string // the series forecast, sorted
	Proposals      int
	Approved       int // proposals approved (status records on replenishment.v1)
	Declined       int // proposals rejected (status records)
	PurchaseOrders int // purchase orders placed by an Actor (the demo's supplier)
	Receipts       int // receipts produced by an Actor
	Unaccounted    int
	// Duration runs from the first produce to the last forecast or rejection.
	Duration time.Duration
	// EventsPerSec is every produced event (lines and snapshots) over Duration.
	EventsPerSec float64
	Latency      Latency
}

func buildSummary(tr *Tracker) Summary {
	st := tr.Stats()
	s := Summary{
		ByKind:         st.ByKind,
		InitialStock:   st.ByKind[KindInitialStock],
		RejectedStock:  st.RejectedKinds[KindInitialStock],
		ByReason:       st.ByReason,
		NotDemand:      st.NotDemand,
		Forecasts:      st.Forecasts,
		ForecastDups:   st.ForecastDups,
		Foreign:        st.Foreign,
		Series:         st.Series,
		SeriesKeys:     tr.SeriesKeys(),
		Proposals:      st.Proposals,
		Approved:       st.Decisions["approved"],
		Declined:       st.Decisions["rejected"],
		PurchaseOrders: st.ByKind[KindPurchaseOrder],
		Receipts:       st.ByKind[KindReceipt],
		Latency:        tr.Latency(),
	}
	s.Read = st.Produced - s.InitialStock - s.PurchaseOrders - s.Receipts
	s.Rejected = st.Rejected - s.RejectedStock - st.RejectedKinds[KindPurchaseOrder] - st.RejectedKinds[KindReceipt]
	s.Accepted = s.Read - s.Rejected
	s.Unaccounted, _ = tr.Unaccounted(0)
	if !st.FirstProduce.IsZero() && st.LastArrival.After(st.FirstProduce) {
		s.Duration = st.LastArrival.Sub(st.FirstProduce)
		s.EventsPerSec = float64(st.Produced) / s.Duration.Seconds()
	}
	return s
}

// Print writes the summary table and, last, the summary line.
func (s Summary) Print(w io.Writer) {
	row := func(label string, n int) { fmt.Fprintf(w, "%-64s %10d\n", label, n) }
	fmt.Fprintf(w, "%-64s %10s\n", "events", "count")
	row("lines read", s.Read)
	for _, k := range []Kind{KindPlaced, KindCancelled, KindAdjustment} {
		row("  "+k.String(), s.ByKind[k])
	}
	row("rejected (dead-lettered)", s.Rejected)
	reasons := make([]string, 0, len(s.ByReason))
	for r := range s.ByReason {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		row("  "+r, s.ByReason[r])
	}
	row("accepted (read - rejected)", s.Accepted)
	row("  of which not demand (non-product codes: stored, no forecast)", s.NotDemand)
	row(KindInitialStock.String(), s.InitialStock)
	if s.RejectedStock > 0 {
		row("  rejected", s.RejectedStock)
	}
	row("forecasts (events with a forecast)", s.Forecasts)
	if s.ForecastDups > 0 {
		row("  repeated forecasts (redeliveries)", s.ForecastDups)
	}
	row("series forecast", s.Series)
	row("proposals", s.Proposals)
	if s.Approved+s.Declined+s.PurchaseOrders+s.Receipts > 0 {
		row("  approved", s.Approved)
		row("  rejected (superseded)", s.Declined)
		row(KindPurchaseOrder.String(), s.PurchaseOrders)
		row(KindReceipt.String(), s.Receipts)
	}
	if s.Unaccounted > 0 {
		row("UNACCOUNTED (no forecast, no rejection)", s.Unaccounted)
	}
	if s.Foreign > 0 {
		row("outputs of other producers' events (ignored)", s.Foreign)
	}
	fmt.Fprintf(w, "end to end: %s from first produce to last output, %.0f events/s\n",
		s.Duration.Round(time.Millisecond), s.EventsPerSec)
	fmt.Fprintf(w, "order-to-forecast latency (%d events): p50 %s  p99 %s  max %s\n",
		s.Latency.Count, ms(s.Latency.P50), ms(s.Latency.P99), ms(s.Latency.Max))
	fmt.Fprintln(w, s.Line())
}

// Line is the machine-readable last line of the summary.
func (s Summary) Line() string {
	return fmt.Sprintf("summary: read=%d accepted=%d rejected=%d series=%d forecasts=%d proposals=%d events_per_s=%d p99_ms=%d",
		s.Read, s.Accepted, s.Rejected, s.Series, s.Forecasts, s.Proposals,
		int64(math.Round(s.EventsPerSec)), s.Latency.P99.Milliseconds())
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }
