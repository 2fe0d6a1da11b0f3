// Package retail reads the UCI "Online Retail" data set (data/online-retail)
// and maps its lines to stockcast's raw events, as docs/design.md ("Online
// Retail mapping") defines. The demo, the replay and the pipeline benchmark
// use it; nothing in the services depends on it.
package retail

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Header is the CSV header line the reader expects, column by column.
var header = []string{"InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"}

// timeLayout is the layout of InvoiceDate: Europe/London local time.
const timeLayout = "2006-01-02 15:04:05"

// Zone is the time zone InvoiceDate is written in.
const Zone = "Europe/London"

// Line is one order line of the CSV, typed.
type Line struct {
	// Number is the 1-based line number in the CSV file (the header is
	// line 1, so the first order line is 2); it makes event ids stable.
	Number int
	// InvoiceLine is the 1-based position of the line within its invoice.
	InvoiceLine int
	Invoice     string
	StockCode   string
	Description string
	// Quantity is signed: negative on cancellations and stock write-offs.
	Quantity int
	// Time is InvoiceDate converted from Europe/London local time to UTC.
	Time time.Time
	// Price is the unit price in GBP.
	Price float64
	// Customer is the CustomerID without the float's ".0"; empty if unknown.
	Customer string
	Country  string
}

// Cancellation reports whether the line is on a cancellation invoice (a
// leading "C").
func (l Line) Cancellation() bool { return strings.HasPrefix(l.Invoice, "C") }

// Reader streams Lines from an Online Retail CSV, plain or gzip-compressed.
type Reader struct {
	csv      *csv.Reader
	zone     *time.Location
	closer   io.Closer
	perInv   map[string]int
	lastDate string
	lastTime time.Time
}

// Open opens the CSV(.gz) file at path. Close the Reader when done.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open online retail data: %w", err)
	}
	r, err := NewReader(f)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	r.closer = f
	return r, nil
}

// NewReader reads an Online Retail CSV from r; gzip input is detected by its
// magic bytes. It reads and checks the header line.
func NewReader(r io.Reader) (*Reader, error) {
	zone, err := time.LoadLocation(Zone)
	if err != nil {
		// Programs that may run without system zoneinfo import _ "time/tzdata".
		return nil, fmt.Errorf("load time zone %s: %w", Zone, err)
	}
	br := bufio.NewReaderSize(r, 1<<16)
	var in io.Reader = br
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("open gzip stream: %w", err)
		}
		in = gz
	}
	cr := csv.NewReader(in)
	cr.FieldsPerRecord = len(header)
	cr.ReuseRecord = true
	got, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	for i, name := range header {
		if got[i] != name {
			return nil, fmt.Errorf("read header: column %d is %q, want %q", i+1, got[i], name)
		}
	}
	return &Reader{csv: cr, zone: zone, perInv: make(map[string]int)}, nil
}

// Next returns the next line, or io.EOF after the last one.
func (r *Reader) Next() (Line, error) {
	rec, err := r.csv.Read()
	if errors.Is(err, io.EOF) {
		return Line{}, io.EOF
	}
	if err != nil {
		return Line{}, fmt.Errorf("read csv: %w", err)
	}
	number, _ := r.csv.FieldPos(0)
	l := Line{
		Number:      number,
		Invoice:     rec[0],
		StockCode:   rec[1],
		Description: strings.TrimSpace(rec[2]),
		Customer:    strings.TrimSuffix(rec[6], ".0"),
		Country:     rec[7],
	}
	if l.Invoice == "" || l.StockCode == "" {
		return Line{}, fmt.Errorf("line %d: empty InvoiceNo or StockCode", number)
	}
	if l.Quantity, err = strconv.Atoi(rec[3]); err != nil {
		return Line{}, fmt.Errorf("line %d: parse Quantity: %w", number, err)
	}
	if l.Price, err = strconv.ParseFloat(rec[5], 64); err != nil {
		return Line{}, fmt.Errorf("line %d: parse UnitPrice: %w", number, err)
	}
	if l.Time, err = r.parseTime(rec[4]); err != nil {
		return Line{}, fmt.Errorf("line %d: parse InvoiceDate: %w", number, err)
	}
	// Invoices are almost always contiguous, but not always: count per invoice.
	r.perInv[l.Invoice]++
	l.InvoiceLine = r.perInv[l.Invoice]
	return l, nil
}

// parseTime converts a local InvoiceDate to UTC. Lines of one invoice share
// their timestamp, so the last conversion is reused.
func (r *Reader) parseTime(s string) (time.Time, error) {
	if s == r.lastDate {
		return r.lastTime, nil
	}
	t, err := time.ParseInLocation(timeLayout, s, r.zone)
	if err != nil {
		return time.Time{}, err
	}
	r.lastDate, r.lastTime = s, t.UTC()
	return r.lastTime, nil
}

// Close closes the file opened by Open; it is a no-op for NewReader.
func (r *Reader) Close() error {
	if r.closer == nil {
		return nil
	}
	return r.closer.Close()
}

// ReadAll reads every line of the file at path, at most limit lines when
// limit > 0.
func ReadAll(path string, limit int) ([]Line, error) {
	r, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var lines []Line
	for limit <= 0 || len(lines) < limit {
		l, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		lines = append(lines, l)
	}
	return lines, nil
}
