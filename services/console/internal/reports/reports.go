// Package reports builds the daily inventory report (KPIs and the top
// stockout risks) and renders it as HTML, CSV and PDF; a scheduler writes
// it to a directory every day at a set time (UTC).
package reports

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-pdf/fpdf"

	"github.com/stockcast/stockcast/services/console/internal/insight"
)

// TopRisks is how many stockout risks a report lists.
const TopRisks = 20

// Report is one daily inventory report.
type Report struct {
	GeneratedAt time.Time      `json:"generated_at"`
	KPIs        insight.KPIs   `json:"kpis"`
	Risks       []insight.Risk `json:"top_risks"` // the soonest TopRisks
}

// Build reads the current state and builds the report.
func Build(ctx context.Context, r *insight.Reader, now time.Time) (Report, error) {
	st, k, err := r.Compute(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("build report: %w", err)
	}
	risks := insight.StockoutRisks(st)
	if len(risks) > TopRisks {
		risks = risks[:TopRisks]
	}
	return Report{GeneratedAt: now.UTC().Truncate(time.Second), KPIs: k, Risks: risks}, nil
}

// KPIRow is one KPI as the renderers show it.
type KPIRow struct{ Name, Value string }

func num(x float64, prec int) string { return strconv.FormatFloat(x, 'f', prec, 64) }

// Rows lists the KPIs in display order with exact values (CSV) or rounded
// ones (HTML, PDF).
func (r Report) Rows(exact bool) []KPIRow {
	p := func(x float64, prec int) string {
		if exact {
			return strconv.FormatFloat(x, 'f', -1, 64)
		}
		return num(x, prec)
	}
	fill := ""
	if f := r.KPIs.ProjectedFillRate; f != nil {
		fill = p(*f*100, 1)
	}
	k := r.KPIs
	return []KPIRow{
		{"day", k.Day},
		{"series", strconv.Itoa(k.Series)},
		{"stock_value", p(k.StockValue, 2)},
		{"projected_fill_rate_pct", fill},
		{"expected_demand_7d", p(k.ExpectedDemand, 1)},
		{"served_demand_7d", p(k.ServedDemand, 1)},
		{"proposals_today", strconv.Itoa(k.ProposalsToday)},
		{"proposals_open", strconv.Itoa(k.ProposalsOpen)},
		{"open_quantity", p(k.OpenQuantity, 0)},
		{"incoming_orders", strconv.Itoa(k.IncomingOrders)},
		{"incoming_units", p(k.IncomingUnits, 0)},
		{"stockout_risks", strconv.Itoa(k.StockoutRisks)},
		{"negative_on_hand", strconv.Itoa(k.NegativeOnHand)},
	}
}

var riskHeader = []string{"series_key", "sku", "location", "description", "on_hand", "stock_value", "projected_stockout_day",
	"days_to_stockout", "lead_time_days", "proposal_id", "proposal_quantity", "proposal_status"}

func riskRow(x insight.Risk, exact bool) []string {
	p := func(v float64, prec int) string {
		if exact {
			return strconv.FormatFloat(v, 'f', -1, 64)
		}
		return num(v, prec)
	}
	return []string{x.SeriesKey, x.SKU, x.Location, x.Description, p(x.OnHand, 0), p(x.StockValue, 2), x.StockoutDay,
		strconv.Itoa(x.DaysToStockout), strconv.Itoa(int(x.LeadTimeDays)), x.ProposalID, p(x.ProposalQty, 0),
		strings.TrimPrefix(x.ProposalStatus, "PROPOSAL_STATUS_")}
}

// CSV writes the report as CSV: a "kpi,value" section, an empty line, then
// the risks with a header.
func (r Report) CSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"kpi", "value"})
	_ = cw.Write([]string{"generated_at", r.GeneratedAt.Format(time.RFC3339)})
	for _, k := range r.Rows(true) {
		_ = cw.Write([]string{k.Name, k.Value})
	}
	cw.Flush()
	if _, err := io.WriteString(w, "\n"); err != nil {
		return err
	}
	_ = cw.Write(riskHeader)
	for _, x := range r.Risks {
		_ = cw.Write(riskRow(x, true))
	}
	cw.Flush()
	return cw.Error()
}

var htmlTmpl = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>stockcast inventory report {{.R.KPIs.Day}}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}td.n{text-align:right}h1{font-size:20px}</style></head>
<body><h1>Daily inventory report · {{.R.KPIs.Day}}</h1>
<p>Generated {{.R.GeneratedAt.Format "2006-01-02 15:04:05"}} UTC by the stockcast console.</p>
<h2>KPIs</h2><table id="kpis">{{range .KPIs}}<tr><th>{{.Name}}</th><td class="n">{{.Value}}</td></tr>{{end}}</table>
<h2>Top stockout risks</h2>
{{if .R.Risks}}<table id="risks"><tr>{{range .Header}}<th>{{.}}</th>{{end}}</tr>
{{range .Risks}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>{{end}}</table>{{else}}<p>No series projects a stockout within its lead time.</p>{{end}}
</body></html>
`))

// HTML writes the report as a standalone HTML page.
func (r Report) HTML(w io.Writer) error {
	var risks [][]string
	for _, x := range r.Risks {
		risks = append(risks, riskRow(x, false))
	}
	return htmlTmpl.Execute(w, map[string]any{"R": r, "KPIs": r.Rows(false), "Header": riskHeader, "Risks": risks})
}

// PDF writes the report as a PDF (A4 landscape, core fonts: text outside
// Latin-1 is replaced).
func (r Report) PDF(w io.Writer) error {
	pdf := fpdf.New("L", "mm", "A4", "")
	pdf.SetCatalogSort(true) // the same report gives the same bytes
	pdf.SetCreationDate(r.GeneratedAt)
	pdf.SetModificationDate(r.GeneratedAt)
	pdf.SetTitle("stockcast inventory report "+r.KPIs.Day, true)
	tr := pdf.UnicodeTranslatorFromDescriptor("")
	pdf.AddPage()
	pdf.SetFont("Helvetica", "B", 16)
	pdf.CellFormat(0, 10, "Daily inventory report - "+r.KPIs.Day, "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 9)
	pdf.CellFormat(0, 6, "Generated "+r.GeneratedAt.Format("2006-01-02 15:04:05")+" UTC by the stockcast console.", "", 1, "L", false, 0, "")
	pdf.Ln(2)
	pdf.SetFont("Helvetica", "B", 12)
	pdf.CellFormat(0, 8, "KPIs", "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 10)
	for _, k := range r.Rows(false) {
		pdf.CellFormat(60, 6, k.Name, "B", 0, "L", false, 0, "")
		pdf.CellFormat(40, 6, k.Value, "B", 1, "R", false, 0, "")
	}
	pdf.Ln(4)
	pdf.SetFont("Helvetica", "B", 12)
	pdf.CellFormat(0, 8, "Top stockout risks", "", 1, "L", false, 0, "")
	if len(r.Risks) == 0 {
		pdf.SetFont("Helvetica", "", 10)
		pdf.CellFormat(0, 6, "No series projects a stockout within its lead time.", "", 1, "L", false, 0, "")
	} else {
		cols := []struct {
			i int
			w float64
		}{{1, 22}, {2, 22}, {3, 70}, {4, 18}, {5, 22}, {6, 28}, {7, 18}, {8, 18}, {10, 20}, {11, 25}}
		pdf.SetFont("Helvetica", "B", 8)
		for _, c := range cols {
			pdf.CellFormat(c.w, 6, riskHeader[c.i], "B", 0, "L", false, 0, "")
		}
		pdf.Ln(-1)
		pdf.SetFont("Helvetica", "", 8)
		for _, x := range r.Risks {
			row := riskRow(x, false)
			for _, c := range cols {
				s := tr(row[c.i])
				for pdf.GetStringWidth(s) > c.w-1 && len(s) > 1 {
					s = s[:len(s)-1]
				}
				pdf.CellFormat(c.w, 5, s, "", 0, "L", false, 0, "")
			}
			pdf.Ln(-1)
		}
	}
	return pdf.Output(w)
}

// Formats are the formats a report renders to.
var Formats = map[string]string{"html": "text/html; charset=utf-8", "csv": "text/csv; charset=utf-8", "pdf": "application/pdf"}

// Render writes the report in format.
func (r Report) Render(w io.Writer, format string) error {
	switch format {
	case "html":
		return r.HTML(w)
	case "csv":
		return r.CSV(w)
	case "pdf":
		return r.PDF(w)
	}
	return fmt.Errorf("unknown report format %q", format)
}

// Config configures the scheduled report.
type Config struct {
	Schedule string // "HH:MM" or "HH:MM:SS" UTC; "" = no schedule
	Dir      string
}

// RegisterFlags registers the -reports.* flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Schedule, "reports.schedule", "", "write the daily inventory report every day at this UTC time (HH:MM or HH:MM:SS) to -reports.dir; empty: only on demand")
	fs.StringVar(&c.Dir, "reports.dir", "", "directory of the scheduled reports (listed in the console)")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Schedule == "" {
		return nil
	}
	if _, err := ParseClock(c.Schedule); err != nil {
		return err
	}
	if c.Dir == "" {
		return errors.New("-reports.schedule needs -reports.dir")
	}
	return nil
}

// ParseClock parses "HH:MM" or "HH:MM:SS" into an offset from midnight.
func ParseClock(s string) (time.Duration, error) {
	var h, m, sec int
	var err error
	switch strings.Count(s, ":") {
	case 1:
		_, err = fmt.Sscanf(s, "%d:%d", &h, &m)
	case 2:
		_, err = fmt.Sscanf(s, "%d:%d:%d", &h, &m, &sec)
	default:
		err = errors.New("want HH:MM or HH:MM:SS")
	}
	if err == nil && (h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec > 59) {
		err = errors.New("out of range")
	}
	if err != nil {
		return 0, fmt.Errorf("-reports.schedule %q: %w", s, err)
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second, nil
}

// NextRun is the first time at clock (UTC) strictly after now.
func NextRun(now time.Time, clock time.Duration) time.Time {
	now = now.UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	t := day.Add(clock)
	if !t.After(now) {
		t = day.AddDate(0, 0, 1).Add(clock)
	}
	return t
}

// fileName matches the scheduled report files.
var fileName = regexp.MustCompile(`^report-\d{4}-\d{2}-\d{2}\.(html|csv|pdf)$`)

// ValidName reports whether name is a report file name.
func ValidName(name string) bool { return fileName.MatchString(name) }

// Write renders the report in every format into dir as
// report-YYYY-MM-DD.<format> (the UTC date of generation), each written
// to a temporary file and renamed, and returns the names.
func Write(dir string, r Report) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create report dir: %w", err)
	}
	var names []string
	for _, f := range []string{"html", "csv", "pdf"} {
		var b bytes.Buffer
		if err := r.Render(&b, f); err != nil {
			return names, err
		}
		name := "report-" + r.GeneratedAt.UTC().Format(time.DateOnly) + "." + f
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
			return names, fmt.Errorf("write report: %w", err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			return names, fmt.Errorf("write report: %w", err)
		}
		names = append(names, name)
	}
	return names, nil
}

// File is one written report file.
type File struct {
	Name     string    `json:"name"`
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified"`
}

// List returns the report files in dir, newest name first.
func List(dir string) ([]File, error) {
	out := []File{}
	if dir == "" {
		return out, nil
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list reports: %w", err)
	}
	for _, e := range ents {
		if !ValidName(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, File{Name: e.Name(), Size: fi.Size(), Modified: fi.ModTime().UTC()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name > out[j].Name })
	return out, nil
}

// Scheduler writes the report every day at the configured time.
type Scheduler struct {
	cfg    Config
	reader *insight.Reader
	log    *slog.Logger
	now    func() time.Time
	// Wrote is called after each scheduled run (tests, metrics); may be nil.
	Wrote func(names []string, err error)
}

// NewScheduler returns a scheduler; Run does nothing without a schedule.
func NewScheduler(cfg Config, r *insight.Reader, log *slog.Logger, now func() time.Time) *Scheduler {
	return &Scheduler{cfg: cfg, reader: r, log: log, now: now}
}

// Run waits for each scheduled time and writes the report, until ctx is
// done.
func (s *Scheduler) Run(ctx context.Context) error {
	if s.cfg.Schedule == "" {
		<-ctx.Done()
		return nil
	}
	clock, err := ParseClock(s.cfg.Schedule)
	if err != nil {
		return err
	}
	for {
		next := NextRun(s.now(), clock)
		s.log.Info("next scheduled report", "at", next)
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		r, err := Build(bctx, s.reader, s.now())
		cancel()
		var names []string
		if err == nil {
			names, err = Write(s.cfg.Dir, r)
		}
		if err != nil {
			s.log.Warn("scheduled report", "err", err)
		} else {
			s.log.Info("scheduled report written", "dir", s.cfg.Dir, "files", names)
		}
		if s.Wrote != nil {
			s.Wrote(names, err)
		}
	}
}
