package e2e

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
)

// This file computes what the pipeline must produce straight from the CSV and
// the documented rules, without the project's own reader, mapping or policy
// code: a second implementation to compare the real one with.

// nonProduct is the documented list of Online Retail codes that are not goods
// (docs/design.md); their lines are stored but are not demand.
var nonProduct = map[string]bool{
	"POST": true, "DOT": true, "C2": true, "M": true, "m": true, "D": true, "S": true, "B": true,
	"CRUK": true, "BANK CHARGES": true, "AMAZONFEE": true, "PADS": true,
	"gift_0001_10": true, "gift_0001_20": true, "gift_0001_30": true, "gift_0001_40": true, "gift_0001_50": true,
}

type csvLine struct {
	id       string // event id: "or-<line number>", the header being line 1
	invoice  string
	sku      string
	qty      float64
	price    float64
	at       time.Time // UTC
	isCancel bool
}

// kind is how the documented mapping classifies a line.
func (l csvLine) kind() string {
	switch {
	case l.qty > 0:
		return "placed"
	case l.isCancel:
		return "cancelled"
	default:
		return "adjustment"
	}
}

// readCSV reads the first n order lines of the Online Retail file.
func readCSV(t *testing.T, path string, n int) []csvLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	r := csv.NewReader(gz)
	if _, err := r.Read(); err != nil { // header
		t.Fatal(err)
	}
	var lines []csvLine
	for len(lines) < n {
		rec, err := r.Read()
		if err != nil {
			t.Fatalf("read CSV line %d: %v", len(lines)+2, err)
		}
		qty, err1 := strconv.ParseFloat(rec[3], 64)
		price, err2 := strconv.ParseFloat(rec[5], 64)
		at, err3 := time.ParseInLocation("2006-01-02 15:04:05", rec[4], london)
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("CSV line %d: %v %v %v", len(lines)+2, err1, err2, err3)
		}
		lines = append(lines, csvLine{
			id:       "or-" + strconv.Itoa(len(lines)+2),
			invoice:  rec[0],
			sku:      rec[1],
			qty:      qty,
			price:    price,
			at:       at.UTC(),
			isCancel: strings.HasPrefix(rec[0], "C"),
		})
	}
	return lines
}

// expected is what the CSV says the stores and topics must hold.
type expected struct {
	orderLines    int                           // accepted order lines (placed + cancelled), stored in ClickHouse
	adjustments   int                           // accepted stock write-offs
	rejected      map[string]string             // event id -> reason, for real lines the rules reject
	daily         map[string]map[string]float64 // series -> day -> net demand (products only)
	demandEvents  map[string]bool               // event ids that must reach demand.v1 (and get a forecast)
	notDemandRows int                           // order lines of non-product codes
}

func expect(lines []csvLine) expected {
	e := expected{
		rejected:     map[string]string{},
		daily:        map[string]map[string]float64{},
		demandEvents: map[string]bool{},
	}
	for _, l := range lines {
		if l.price < 0 { // ingest: a negative price is never valid
			e.rejected[l.id] = "price_negative"
			continue
		}
		if l.kind() == "adjustment" {
			e.adjustments++
			e.demandEvents[l.id] = true
			continue
		}
		e.orderLines++
		if nonProduct[l.sku] {
			e.notDemandRows++
			continue
		}
		e.demandEvents[l.id] = true
		series := l.sku + "|online"
		if e.daily[series] == nil {
			e.daily[series] = map[string]float64{}
		}
		q := l.qty // placed: +q; cancelled: the CSV quantity is already negative
		e.daily[series][l.at.Format("2006-01-02")] += q
	}
	return e
}

// position is the replenishment state of one series, per the documented rules.
type position struct {
	onHand, onOrder, backorders float64
	below                       bool
	openUpTo                    float64 // order-up-to level of the open proposal
	decidedAt                   time.Time
}

func (p *position) apply(f *forecastv1.ForecastEvent) {
	c := f.GetCause()
	if d := c.GetDemand(); d != nil {
		q := d.GetQuantity()
		switch {
		case q > 0:
			p.onHand -= q
			if p.onHand < 0 {
				p.backorders += -p.onHand
				p.onHand = 0
			}
		case d.GetKind().String() == "DEMAND_KIND_RETURN":
			p.onHand += -q
		default: // cancellation: backorders first
			back := math.Min(p.backorders, -q)
			p.backorders -= back
			p.onHand += -q - back
		}
		return
	}
	inv := c.GetInventory()
	switch {
	case inv.GetSnapshot() != nil:
		p.onHand = inv.GetSnapshot().GetOnHand()
		p.backorders = inv.GetSnapshot().GetReserved()
	case inv.GetAdjustment() != nil:
		p.onHand = math.Max(0, p.onHand+inv.GetAdjustment().GetDelta())
	}
}

// expectedProposal is a decision the documented policy must take.
type expectedProposal struct {
	id       string
	series   string
	eventID  string
	quantity float64
	rop      float64
	reason   string
}

// Built-in policy of the replenishment service (its flag defaults).
const (
	serviceLevel = 0.95
	leadTime     = 7
	coverDays    = 14
	// -replenishment.revise-threshold, -revise-min-units, -revise-interval
	reviseThreshold = 0.5
	reviseMinUnits  = 2
	reviseInterval  = 24 * time.Hour
)

// expectProposals replays the forecasts of each series in partition order
// through the documented position and crossing rules.
func expectProposals(t *testing.T, bySeries map[string][]*forecastv1.ForecastEvent) []expectedProposal {
	t.Helper()
	var out []expectedProposal
	for series, fs := range bySeries {
		p := &position{}
		for _, f := range fs {
			p.apply(f)
			rop, ok := reorderPoint(f)
			if !ok {
				continue
			}
			pos := p.onHand + p.onOrder - p.backorders
			if pos >= rop {
				p.below = false
				continue
			}
			upTo := rop
			for d := leadTime + 1; d <= leadTime+coverDays; d++ {
				upTo += f.GetDaily()[d].GetMean()
			}
			reason := "PROPOSAL_REASON_CROSSED_REORDER_POINT"
			if inv := f.GetCause().GetInventory(); inv.GetSnapshot() != nil || inv.GetAdjustment() != nil {
				reason = "PROPOSAL_REASON_STOCK_CORRECTED"
			}
			at := f.GetCause().GetOccurredAt()
			if at == nil {
				at = f.GetAsOf()
			}
			now := at.AsTime()
			if p.below {
				// An open proposal is revised when the order-up-to level
				// moved by more than the revise threshold and by at least
				// the min units, a day (event time) or more after the
				// series' last decision.
				move := math.Abs(upTo - p.openUpTo)
				if move <= reviseThreshold*math.Max(p.openUpTo, 1) || move < reviseMinUnits || now.Before(p.decidedAt.Add(reviseInterval)) {
					continue
				}
				reason = "PROPOSAL_REASON_FORECAST_CHANGED"
			}
			p.below, p.openUpTo, p.decidedAt = true, upTo, now
			qty := math.Max(1, math.Ceil(upTo-pos-1e-9))
			sum := sha256.Sum256([]byte(series + "|" + f.GetEventId()))
			out = append(out, expectedProposal{
				id: hex.EncodeToString(sum[:16]), series: series, eventID: f.GetEventId(), quantity: qty, rop: rop, reason: reason,
			})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	reasons := map[string]int{}
	for _, p := range out {
		reasons[p.reason]++
	}
	t.Logf("expected proposals by reason: %v", reasons)
	return out
}

// reorderPoint is the 95% quantile of 7-day lead-time demand; false when the
// forecast has no lead-time demand (item attribute events).
func reorderPoint(f *forecastv1.ForecastEvent) (float64, bool) {
	levels := f.GetQuantileLevels()
	for _, lt := range f.GetLeadTimeDemand() {
		if lt.GetLeadTimeDays()+lt.GetReviewPeriodDays() != leadTime {
			continue
		}
		for i, l := range levels {
			if math.Abs(l-serviceLevel) < 1e-12 {
				return lt.GetQuantiles()[i], true
			}
		}
		panic(fmt.Sprintf("forecast %s has no %.2f quantile level: %v", f.GetForecastId(), serviceLevel, levels))
	}
	return 0, false
}

// expectedStockout is a stockout period's start or end the replenishment
// service must publish: on hand reaching 0 from above / back above 0, by the
// documented position rules, for series whose platform reports none.
type expectedStockout struct {
	id, series, day string
	started         bool
}

// stockoutPrefix starts the service's stockout event ids.
const stockoutPrefix = "replenishment-stockout:"

// expectStockouts replays each series' forecasts (the service's own
// stockout events, which come back only when opted in, excluded: they move
// nothing) through the position rules.
func expectStockouts(bySeries map[string][]*forecastv1.ForecastEvent) []expectedStockout {
	var out []expectedStockout
	for series, fs := range bySeries {
		p := &position{}
		open := false
		for _, f := range fs {
			if strings.HasPrefix(f.GetEventId(), stockoutPrefix) {
				continue
			}
			prev := p.onHand
			p.apply(f)
			signal := ""
			switch {
			case !open && prev > 0 && p.onHand <= 0:
				signal, open = "started", true
			case open && p.onHand > 0:
				signal, open = "ended", false
			}
			if signal == "" {
				continue
			}
			at := f.GetCause().GetOccurredAt()
			if at == nil {
				at = f.GetAsOf()
			}
			sum := sha256.Sum256([]byte(series + "|" + f.GetEventId() + "|" + signal))
			out = append(out, expectedStockout{
				id: stockoutPrefix + hex.EncodeToString(sum[:16]), series: series,
				day: at.AsTime().UTC().Format(time.DateOnly), started: signal == "started",
			})
		}
	}
	return out
}
