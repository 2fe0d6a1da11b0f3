package backtest

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/retail"
)

// Dataset is a panel of daily series on one common day range: Values[t] of
// every series is day Start+t.
type Dataset struct {
	Name   string
	Start  forecasting.Day
	Days   int
	Series []Series
	// Events holds, per day, the M5 calendar's event names and types
	// ("" when none); nil when the data set has no calendar.
	Events []Event
}

// Event is one day's calendar events.
type Event struct {
	Name1, Type1, Name2, Type2 string
}

// Series is one item x location series.
type Series struct {
	ID, Item, Dept, Cat, Store, State string
	Values                            []float64
	// Prices is the unit price on each day, NaN where unknown (not sold
	// yet).
	Prices []float64
	// Snap marks SNAP days for the series' state (M5); nil if unknown.
	Snap []bool
}

// Head returns the data set's first days days (the series' values,
// prices and SNAP days, and the calendar, sharing the arrays): what was
// known the day before day index days.
func (d *Dataset) Head(days int) *Dataset {
	days = min(max(days, 0), d.Days)
	out := *d
	out.Days, out.Series = days, make([]Series, len(d.Series))
	if d.Events != nil {
		out.Events = d.Events[:days]
	}
	for i, s := range d.Series {
		s.Values, s.Prices = s.Values[:days], s.Prices[:days]
		if s.Snap != nil {
			s.Snap = s.Snap[:days]
		}
		out.Series[i] = s
	}
	return &out
}

// Day returns the day of index t.
func (d *Dataset) Day(t int) forecasting.Day { return d.Start + forecasting.Day(t) }

// FindFile returns rel (e.g. "data/m5-tiny/tiny_m5_long.csv.gz") under the
// working directory or its nearest parent that has it.
func FindFile(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%s not found in the working directory or a parent", rel)
		}
		dir = parent
	}
}

func openMaybeGzip(path string) (io.Reader, func() error, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReaderSize(f, 1<<16)
	if !strings.HasSuffix(path, ".gz") {
		return br, f.Close, nil
	}
	gz, err := gzip.NewReader(br)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("read gzip %s: %w", path, err)
	}
	return gz, f.Close, nil
}

// LoadM5 reads the long M5 format of data/m5-tiny (id, item_id, dept_id,
// cat_id, store_id, state_id, date, value, sell_price, wm_yr_wk, wday,
// event_name_1, event_type_1, event_name_2, event_type_2, snap), rows
// grouped by series in day order, every series on the same days.
func LoadM5(path string) (*Dataset, error) {
	r, closeFn, err := openMaybeGzip(path)
	if err != nil {
		return nil, fmt.Errorf("open M5 data: %w", err)
	}
	defer closeFn()
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("read M5 header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	for _, c := range []string{"id", "item_id", "dept_id", "cat_id", "store_id", "state_id", "date", "value", "sell_price"} {
		if _, ok := col[c]; !ok {
			return nil, fmt.Errorf("M5 data: no column %q", c)
		}
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok {
			return rec[i]
		}
		return ""
	}
	ds := &Dataset{Name: "m5"}
	var s *Series
	var first forecasting.Day
	line := 1
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line++
		if err != nil {
			return nil, fmt.Errorf("read M5 line %d: %w", line, err)
		}
		day, err := forecasting.ParseDay(rec[col["date"]])
		if err != nil {
			return nil, fmt.Errorf("M5 line %d: %w", line, err)
		}
		if id := rec[col["id"]]; s == nil || s.ID != id {
			if s != nil && len(s.Values) != len(ds.Series[0].Values) {
				return nil, fmt.Errorf("M5 series %s has %d days, the first has %d", s.ID, len(s.Values), len(ds.Series[0].Values))
			}
			ds.Series = append(ds.Series, Series{ID: id, Item: get(rec, "item_id"), Dept: get(rec, "dept_id"),
				Cat: get(rec, "cat_id"), Store: get(rec, "store_id"), State: get(rec, "state_id")})
			s = &ds.Series[len(ds.Series)-1]
			first = day
			if len(ds.Series) == 1 {
				ds.Start = day
			} else if day != ds.Start {
				return nil, fmt.Errorf("M5 series %s starts %s, the first starts %s", id, day, ds.Start)
			}
		}
		if day != first+forecasting.Day(len(s.Values)) {
			return nil, fmt.Errorf("M5 line %d: series %s: day %s out of sequence", line, s.ID, day)
		}
		v, err := strconv.ParseFloat(rec[col["value"]], 64)
		if err != nil {
			return nil, fmt.Errorf("M5 line %d: value: %w", line, err)
		}
		price := math.NaN()
		if p := rec[col["sell_price"]]; p != "NA" && p != "" {
			if price, err = strconv.ParseFloat(p, 64); err != nil {
				return nil, fmt.Errorf("M5 line %d: sell_price: %w", line, err)
			}
		}
		s.Values = append(s.Values, v)
		s.Prices = append(s.Prices, price)
		s.Snap = append(s.Snap, get(rec, "snap") == "1")
		if len(ds.Series) == 1 {
			ds.Events = append(ds.Events, Event{get(rec, "event_name_1"), get(rec, "event_type_1"), get(rec, "event_name_2"), get(rec, "event_type_2")})
		}
	}
	if len(ds.Series) == 0 {
		return nil, errors.New("M5 data: no rows")
	}
	if s != nil && len(s.Values) != len(ds.Series[0].Values) {
		return nil, fmt.Errorf("M5 series %s has %d days, the first has %d", s.ID, len(s.Values), len(ds.Series[0].Values))
	}
	ds.Days = len(ds.Series[0].Values)
	return ds, nil
}

// PriceDelay is how old the online-retail prices are (see
// LoadOnlineRetail).
const PriceDelay = 28

// LoadOnlineRetail aggregates the Online Retail order lines (pkg/retail)
// to daily demand per StockCode, London calendar days: units of placed
// order lines (cancellations, write-offs and non-product codes are not
// demand). Unlike M5's planned prices, this data set's prices are only seen
// on days with sales, so the price of day t is the mean unit price of the
// last day with sales at least PriceDelay days before t: known a horizon
// ahead. It keeps the top series by units (all if
// top <= 0), every one on the full day range of the file.
func LoadOnlineRetail(path string, top int) (*Dataset, error) {
	rd, err := retail.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open online retail: %w", err)
	}
	defer rd.Close()
	london, err := time.LoadLocation(retail.Zone)
	if err != nil {
		return nil, fmt.Errorf("load zone: %w", err)
	}
	type cell struct{ units, revenue, lines float64 }
	type sku struct {
		code  string
		days  map[forecasting.Day]*cell
		total float64
	}
	skus := map[string]*sku{}
	minDay, maxDay := forecasting.Day(math.MaxInt32), forecasting.Day(math.MinInt32)
	for {
		l, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read online retail: %w", err)
		}
		lt := l.Time.In(london)
		day := forecasting.DayOf(time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, time.UTC))
		minDay, maxDay = min(minDay, day), max(maxDay, day)
		if l.Cancellation() || l.Quantity <= 0 || l.Price <= 0 || !retail.IsProduct(l.StockCode) {
			continue
		}
		k := skus[l.StockCode]
		if k == nil {
			k = &sku{code: l.StockCode, days: map[forecasting.Day]*cell{}}
			skus[l.StockCode] = k
		}
		c := k.days[day]
		if c == nil {
			c = &cell{}
			k.days[day] = c
		}
		q := float64(l.Quantity)
		c.units += q
		c.revenue += q * l.Price
		c.lines++
		k.total += q
	}
	if len(skus) == 0 {
		return nil, errors.New("online retail: no product order lines")
	}
	list := make([]*sku, 0, len(skus))
	for _, k := range skus {
		list = append(list, k)
	}
	slices.SortFunc(list, func(a, b *sku) int {
		if a.total != b.total {
			if a.total > b.total {
				return -1
			}
			return 1
		}
		return strings.Compare(a.code, b.code)
	})
	if top > 0 && len(list) > top {
		list = list[:top]
	}
	n := int(maxDay-minDay) + 1
	ds := &Dataset{Name: "online-retail", Start: minDay, Days: n}
	for _, k := range list {
		s := Series{ID: k.code, Item: k.code, Dept: "all", Cat: "all", Store: retail.Location, State: "UK",
			Values: make([]float64, n), Prices: make([]float64, n)}
		price := math.NaN()
		for t := range n {
			if c := k.days[minDay+forecasting.Day(t)]; c != nil {
				s.Values[t] = c.units
			}
			// the price of the last sale 28 or more days before: a price
			// seen only on days with sales would tell a model of the
			// horizon when the sales were
			if c := k.days[minDay+forecasting.Day(t-PriceDelay)]; t >= PriceDelay && c != nil {
				price = c.revenue / c.units
			}
			s.Prices[t] = price
		}
		ds.Series = append(ds.Series, s)
	}
	return ds, nil
}
