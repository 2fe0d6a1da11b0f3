package simulate

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/retail"
)

// LoadM5 reads tiny_m5_long.csv.gz (data/m5-tiny): one Series per item x
// store over the whole calendar, valued at the item's weekly sell price
// (weeks before the first price take the first price).
func LoadM5(path string) ([]Series, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open M5 data: %w", err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("read M5 gzip: %w", err)
	}
	r := csv.NewReader(gz)
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("read M5 header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	for _, c := range []string{"id", "date", "value", "sell_price"} {
		if _, ok := col[c]; !ok {
			return nil, fmt.Errorf("M5 data: no %q column", c)
		}
	}
	var out []Series
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read M5 row: %w", err)
		}
		id := rec[col["id"]]
		day, err := forecasting.ParseDay(rec[col["date"]])
		if err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].ID != id {
			out = append(out, Series{ID: id, Start: day})
		}
		s := &out[len(out)-1]
		if want := s.Start + forecasting.Day(len(s.Demand)); day != want {
			return nil, fmt.Errorf("M5 series %s: day %s, want %s", id, day, want)
		}
		v, err := strconv.ParseFloat(rec[col["value"]], 64)
		if err != nil {
			return nil, fmt.Errorf("M5 series %s: value %q: %w", id, rec[col["value"]], err)
		}
		price := math.NaN()
		if p := rec[col["sell_price"]]; p != "NA" && p != "" {
			if price, err = strconv.ParseFloat(p, 64); err != nil {
				return nil, fmt.Errorf("M5 series %s: price %q: %w", id, p, err)
			}
		}
		s.Demand = append(s.Demand, v)
		s.Price = append(s.Price, price)
	}
	for i := range out {
		if !fillPrices(out[i].Price) {
			return nil, fmt.Errorf("M5 series %s: no price", out[i].ID)
		}
	}
	return out, nil
}

// fillPrices replaces NaN prices with the previous known price, or the
// first known one before it; false when there is none.
func fillPrices(p []float64) bool {
	first := math.NaN()
	for _, v := range p {
		if !math.IsNaN(v) {
			first = v
			break
		}
	}
	if math.IsNaN(first) {
		return false
	}
	last := first
	for i, v := range p {
		if math.IsNaN(v) {
			p[i] = last
		} else {
			last = v
		}
	}
	return true
}

// LoadOnlineRetail aggregates the Online Retail lines (data/online-retail)
// into daily demand per product: each day (Europe/London) the units ordered
// minus the units cancelled, at least 0; stock write-offs are not demand,
// and non-product codes are left out. All series share the calendar from
// the first to the last day of the file (closed days are days without
// demand). Each is valued at its quantity-weighted mean unit price.
// Products sold on fewer than minSaleDays days are dropped.
func LoadOnlineRetail(path string, minSaleDays int) ([]Series, error) {
	rd, err := retail.Open(path)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	zone, err := time.LoadLocation(retail.Zone)
	if err != nil {
		return nil, fmt.Errorf("load time zone: %w", err)
	}
	type agg struct {
		days          map[forecasting.Day]float64
		units, amount float64
	}
	items := map[string]*agg{}
	first, last := forecasting.Day(math.MaxInt32), forecasting.Day(math.MinInt32)
	for {
		l, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if !retail.IsProduct(l.StockCode) {
			continue
		}
		y, m, d := l.Time.In(zone).Date()
		day := forecasting.DayOf(time.Date(y, m, d, 0, 0, 0, 0, time.UTC))
		first, last = min(first, day), max(last, day)
		if l.Quantity < 0 && !l.Cancellation() {
			continue // a write-off
		}
		a := items[l.StockCode]
		if a == nil {
			a = &agg{days: map[forecasting.Day]float64{}}
			items[l.StockCode] = a
		}
		a.days[day] += float64(l.Quantity)
		if l.Quantity > 0 && l.Price > 0 {
			a.units += float64(l.Quantity)
			a.amount += float64(l.Quantity) * l.Price
		}
	}
	codes := make([]string, 0, len(items))
	for c := range items {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	var out []Series
	for _, c := range codes {
		a := items[c]
		if a.units == 0 {
			continue
		}
		s := Series{ID: c, Start: first, Demand: make([]float64, last-first+1), Price: make([]float64, last-first+1)}
		saleDays := 0
		for d, q := range a.days {
			if q > 0 {
				s.Demand[d-first] = q
				saleDays++
			}
		}
		if saleDays < minSaleDays {
			continue
		}
		price := a.amount / a.units
		for i := range s.Price {
			s.Price[i] = price
		}
		out = append(out, s)
	}
	return out, nil
}

// Classify returns the Syntetos-Boylan class of demand over days [from, to):
// ADI (days per day with demand) against 1.32 and the squared coefficient
// of variation of the non-zero sizes against 0.49.
func Classify(demand []float64, from, to int) forecasting.Class {
	var n, sum, sq float64
	for _, y := range demand[from:to] {
		if y > 0 {
			n++
			sum += y
			sq += y * y
		}
	}
	if n < 2 {
		return forecasting.ClassNew
	}
	mean := sum / n
	adi := float64(to-from) / n
	cv2 := max(sq/n-mean*mean, 0) / (mean * mean)
	intermittent, variable := adi >= 1.32, cv2 >= 0.49
	switch {
	case intermittent && variable:
		return forecasting.ClassLumpy
	case intermittent:
		return forecasting.ClassIntermittent
	case variable:
		return forecasting.ClassErratic
	}
	return forecasting.ClassSmooth
}

// Where the demand classes of the report and of the stockcast policy's
// class band come from (stockcast simulate -classes).
const (
	// ClassesHistory: each series' HistoryClass, fixed before the
	// simulation (Series.Class; Config.Classes).
	ClassesHistory = "history"
	// ClassesSimulated: the report's class is that of the simulated days
	// (Series.SimulatedClass), the policy's its forecast's own.
	ClassesSimulated = "simulated"
)

// ClassDays is how many days before the simulation a series' planning
// class (HistoryClass) looks back: a year, so that every season weighs
// once.
const ClassDays = 364

// HistoryClass is the Syntetos-Boylan class a planner gives a series on
// the first simulated day (index warmup): from its demand of the last
// ClassDays days before it, or from its first sale on if that is later
// (days before an item was sold are not days without demand).
func HistoryClass(demand []float64, warmup int) forecasting.Class {
	from := max(warmup-ClassDays, 0, min(FirstSale(demand), warmup))
	return Classify(demand, from, warmup)
}

// FirstSale returns the index of the first day with demand, or len(demand).
func FirstSale(demand []float64) int {
	for i, y := range demand {
		if y > 0 {
			return i
		}
	}
	return len(demand)
}

// Prepare splits series sharing one calendar into warm-up history and the
// evalDays simulated at the end, and keeps those that can be simulated: on
// sale when the simulation starts (a first sale at least four weeks before
// the simulated days, and a sale in the last four weeks of the warm-up) and
// with some demand in the simulated days. An item off the shelf when the
// simulation starts would teach every policy "no demand" and, as policies
// see sales only, never be stocked again: not a comparison of policies. It sets each kept
// series' Class from the history before the simulated days (HistoryClass)
// and its SimulatedClass from the simulated days, and returns the warm-up
// length.
func Prepare(series []Series, evalDays int) ([]Series, int, error) {
	if len(series) == 0 {
		return nil, 0, errors.New("no series")
	}
	n := len(series[0].Demand)
	if evalDays <= 0 || evalDays >= n {
		return nil, 0, fmt.Errorf("%d simulated days: must be in 1..%d", evalDays, n-1)
	}
	warmup := n - evalDays
	var out []Series
	for _, s := range series {
		if len(s.Demand) != n || s.Start != series[0].Start {
			return nil, 0, fmt.Errorf("series %s does not share the calendar of %s", s.ID, series[0].ID)
		}
		if FirstSale(s.Demand) > warmup-28 || FirstSale(s.Demand[warmup-28:warmup]) == 28 ||
			FirstSale(s.Demand[warmup:]) == evalDays {
			continue
		}
		s.Class = HistoryClass(s.Demand, warmup)
		s.SimulatedClass = Classify(s.Demand, warmup, n)
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, 0, errors.New("no series with history before the simulated days and demand in them")
	}
	return out, warmup, nil
}
