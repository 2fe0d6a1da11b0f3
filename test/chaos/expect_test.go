//go:build chaos

package chaos

import (
	"compress/gzip"
	"encoding/csv"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// This file computes what the stores must hold straight from the CSV and the
// documented rules (docs/design.md, "Online Retail mapping"), without the
// project's reader or mapping code: an independent expectation.

// nonProduct is the documented list of Online Retail codes that are not goods.
var nonProduct = map[string]bool{
	"POST": true, "DOT": true, "C2": true, "M": true, "m": true, "D": true, "S": true, "B": true,
	"CRUK": true, "BANK CHARGES": true, "AMAZONFEE": true, "PADS": true,
	"gift_0001_10": true, "gift_0001_20": true, "gift_0001_30": true, "gift_0001_40": true, "gift_0001_50": true,
}

type csvLine struct {
	id       string // "or-<line number>", the header being line 1
	sku      string
	qty      float64
	price    float64
	at       time.Time
	isCancel bool
}

// expected is what the CSV says ClickHouse and Redis must hold.
type expected struct {
	orderLines    int                           // accepted order lines (placed + cancelled)
	notDemandRows int                           // of which non-product codes
	adjustments   int                           // accepted stock write-offs (negative quantity, not a cancellation)
	rejected      map[string]string             // event id -> DLQ reason, for real lines the rules reject
	daily         map[string]map[string]float64 // series -> day -> net demand (products only)
}

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
	if _, err := r.Read(); err != nil {
		t.Fatal(err)
	}
	lines := make([]csvLine, 0, n)
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
			id: "or-" + strconv.Itoa(len(lines)+2), sku: rec[1], qty: qty, price: price,
			at: at.UTC(), isCancel: strings.HasPrefix(rec[0], "C"),
		})
	}
	return lines
}

func expect(lines []csvLine) expected {
	e := expected{rejected: map[string]string{}, daily: map[string]map[string]float64{}}
	for _, l := range lines {
		switch {
		case l.price < 0:
			e.rejected[l.id] = "price_negative"
		case l.qty <= 0 && !l.isCancel:
			e.adjustments++
		default:
			e.orderLines++
			if nonProduct[l.sku] {
				e.notDemandRows++
				continue
			}
			series := l.sku + "|online"
			if e.daily[series] == nil {
				e.daily[series] = map[string]float64{}
			}
			e.daily[series][l.at.Format(time.DateOnly)] += l.qty
		}
	}
	return e
}
