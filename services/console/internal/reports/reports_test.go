package reports

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stockcast/stockcast/services/console/internal/insight"
)

func sample() Report {
	fill := 0.75
	return Report{
		GeneratedAt: time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC),
		KPIs: insight.KPIs{Day: "2011-12-01", Series: 3, StockValue: 1234.5, ProjectedFillRate: &fill, ExpectedDemand: 40,
			ServedDemand: 30, ProposalsToday: 4, ProposalsOpen: 2, OpenQuantity: 48, IncomingOrders: 1, IncomingUnits: 24,
			StockoutRisks: 1, NegativeOnHand: 0},
		Risks: []insight.Risk{{SeriesKey: "85123A|online", SKU: "85123A", Location: "online", Description: "WHITE HANGING HEART, T-LIGHT",
			OnHand: 5, StockValue: 14.75, StockoutDay: "2011-12-03", DaysToStockout: 2, LeadTimeDays: 7, ProposalID: "p1",
			ProposalQty: 96, ProposalStatus: "PROPOSAL_STATUS_PROPOSED"}},
	}
}

func TestCSV(t *testing.T) {
	var b bytes.Buffer
	if err := sample().CSV(&b); err != nil {
		t.Fatal(err)
	}
	want := `kpi,value
generated_at,2026-11-28T06:00:00Z
day,2011-12-01
series,3
stock_value,1234.5
projected_fill_rate_pct,75
expected_demand_7d,40
served_demand_7d,30
proposals_today,4
proposals_open,2
open_quantity,48
incoming_orders,1
incoming_units,24
stockout_risks,1
negative_on_hand,0

series_key,sku,location,description,on_hand,stock_value,projected_stockout_day,days_to_stockout,lead_time_days,proposal_id,proposal_quantity,proposal_status
85123A|online,85123A,online,"WHITE HANGING HEART, T-LIGHT",5,14.75,2011-12-03,2,7,p1,96,PROPOSED
`
	if b.String() != want {
		t.Errorf("csv:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestHTMLAndPDF(t *testing.T) {
	var h bytes.Buffer
	if err := sample().HTML(&h); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Daily inventory report · 2011-12-01", "<th>stock_value</th><td class=\"n\">1234.50</td>",
		"<th>projected_fill_rate_pct</th><td class=\"n\">75.0</td>", "<td>WHITE HANGING HEART, T-LIGHT</td>"} {
		if !strings.Contains(h.String(), s) {
			t.Errorf("html lacks %q", s)
		}
	}
	var p1, p2 bytes.Buffer
	if err := sample().PDF(&p1); err != nil {
		t.Fatal(err)
	}
	if err := sample().PDF(&p2); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(p1.Bytes(), []byte("%PDF-")) || !bytes.Contains(p1.Bytes(), []byte("%%EOF")) || p1.Len() < 1000 {
		t.Errorf("not a PDF: %d bytes %q", p1.Len(), p1.Bytes()[:min(20, p1.Len())])
	}
	if !bytes.Equal(p1.Bytes(), p2.Bytes()) {
		t.Errorf("the same report renders to different PDFs")
	}
}

func TestScheduleAndFiles(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{{"06:00", 6 * time.Hour, true}, {"23:59:30", 23*time.Hour + 59*time.Minute + 30*time.Second, true},
		{"24:00", 0, false}, {"6", 0, false}, {"06:60", 0, false}} {
		got, err := ParseClock(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseClock(%q) = %v, %v", tc.in, got, err)
		}
	}
	now := time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC)
	if got := NextRun(now, 6*time.Hour); !got.Equal(now.AddDate(0, 0, 1)) {
		t.Errorf("next run at the scheduled instant = %v, want tomorrow", got)
	}
	if got := NextRun(now.Add(-time.Second), 6*time.Hour); !got.Equal(now) {
		t.Errorf("next run a second before = %v", got)
	}
	if err := (&Config{Schedule: "06:00"}).Validate(); err == nil {
		t.Error("a schedule without a dir validates")
	}

	dir := t.TempDir()
	names, err := Write(dir, sample())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, " ") != "report-2026-11-28.html report-2026-11-28.csv report-2026-11-28.pdf" {
		t.Errorf("names %v", names)
	}
	_ = os.WriteFile(filepath.Join(dir, "other.txt"), []byte("x"), 0o644)
	files, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 || files[0].Name != "report-2026-11-28.pdf" || files[2].Name != "report-2026-11-28.csv" || files[1].Size == 0 {
		t.Errorf("list %+v", files)
	}
	for _, n := range []string{"../report-2026-11-28.csv", "report-2026-11-28.exe", ".report-2026-11-28.csv.tmp"} {
		if ValidName(n) {
			t.Errorf("%q is a valid name", n)
		}
	}
}
