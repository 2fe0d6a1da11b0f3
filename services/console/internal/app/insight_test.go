package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/stockcast/stockcast/internal/stack"
	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/grpcx"
	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
	alertv1 "github.com/stockcast/stockcast/proto/stockcast/alert/v1"
	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"
	"github.com/stockcast/stockcast/services/console/internal/live"
	"github.com/stockcast/stockcast/services/console/internal/reports"
)

func alertID(rule, subject, occasion string) string {
	h := sha256.Sum256([]byte(rule + "\x00" + subject + "\x00" + occasion))
	return hex.EncodeToString(h[:16])
}

// allProposals reads every proposal through the replenishment API.
func allProposals(t *testing.T, e *shared) []*replenishmentv1.Proposal {
	t.Helper()
	conn, err := grpcx.Dial(e.st.GRPC(stack.Replenishment), telemetry.NewDiscard())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rc := replenishmentv1.NewReplenishmentServiceClient(conn)
	var out []*replenishmentv1.Proposal
	tok := ""
	for {
		resp, err := rc.ListProposals(context.Background(), &replenishmentv1.ListProposalsRequest{PageSize: 1000, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, resp.GetProposals()...)
		if tok = resp.GetNextPageToken(); tok == "" {
			return out
		}
	}
}

// expectedStockoutAlerts applies the rule to the newest proposal of each
// series, read through the replenishment API: days from the decision to
// the projected stockout at most the policy's lead time, not rejected.
func expectedStockoutAlerts(t *testing.T, e *shared) map[string]string {
	newest := map[string]*replenishmentv1.Proposal{}
	for _, p := range allProposals(t, e) {
		q := newest[p.GetSeriesKey()]
		if q == nil || p.GetDecidedAt().AsTime().After(q.GetDecidedAt().AsTime()) ||
			(p.GetDecidedAt().AsTime().Equal(q.GetDecidedAt().AsTime()) && p.GetProposalId() > q.GetProposalId()) {
			newest[p.GetSeriesKey()] = p
		}
	}
	want := map[string]string{}
	for key, p := range newest {
		if p.GetProjectedStockoutDay() == "" || p.GetStatus() == replenishmentv1.ProposalStatus_PROPOSAL_STATUS_REJECTED {
			continue
		}
		so, err := time.Parse(time.DateOnly, p.GetProjectedStockoutDay())
		if err != nil {
			t.Fatal(err)
		}
		d := p.GetDecidedAt().AsTime().UTC()
		days := int(so.Sub(time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC)).Hours() / 24)
		if days <= int(p.GetPolicy().GetLeadTimeDays()) {
			want[alertID("STOCKOUT_WITHIN_LEAD_TIME", key, p.GetProposalId())] = key
		}
	}
	return want
}

// dlqMinutes reads every DLQ topic to its end and returns the alert ids of
// the DLQ spike rule at threshold 0 over 1-minute windows: one per reason
// and minute with a record. It waits (up to 30 s) until the record with
// event id mustHold was dead-lettered, then reads every DLQ to its end
// offsets: not what a few seconds of polling happen to bring.
func dlqMinutes(t *testing.T, e *shared, mustHold string) map[string]int {
	t.Helper()
	var recs []*kgo.Record
	for deadline := time.Now().Add(30 * time.Second); ; {
		recs = testenv.ReadTopics(t, e.st.Brokers(), live.DLQTopics()...)
		if slices.ContainsFunc(recs, func(r *kgo.Record) bool { return kafkax.HeaderValue(r, topics.HeaderEventID) == mustHold }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the record %s was not dead-lettered in 30s (%d DLQ records)", mustHold, len(recs))
		}
		time.Sleep(200 * time.Millisecond) // polling the DLQ topics
	}
	out := map[string]int{}
	for _, r := range recs {
		reason := kafkax.HeaderValue(r, topics.HeaderDLQReason)
		if reason == "" {
			reason = "unknown"
		}
		start := r.Timestamp.UTC().Truncate(time.Minute)
		out[alertID("DLQ_SPIKE", reason, start.Format(time.RFC3339))]++
	}
	return out
}

type alertsResp struct {
	Alerts []struct {
		ID                               string `json:"alert_id"`
		Rule, Severity, Subject, Summary string
		Value, Threshold                 float64
	}
	Total       int
	Matching    int
	Evaluations int
	Published   int
	Error       string
}

// allAlerts reads every page of the alerts.
func allAlerts(c *client) alertsResp {
	c.t.Helper()
	var all alertsResp
	for page := 1; ; page++ {
		var a alertsResp
		if code := c.do("GET", "/api/alerts?page_size=500&page="+itoa(page), nil, nil, &a); code != 200 {
			c.t.Fatalf("alerts page %d: HTTP %d", page, code)
		}
		a.Alerts = append(all.Alerts, a.Alerts...)
		all = a
		if len(all.Alerts) >= all.Matching || page > 100 {
			return all
		}
	}
}

// TestAlerts: the stockout and DLQ rules fire exactly for the state built
// independently (the replenishment API, the DLQ topics); alerts.v1 gets each
// alert once however often the rules run; viewers see them.
func TestAlerts(t *testing.T) {
	e := env(t)
	c := newClient(t, e.url)
	c.login("vera")
	// A record ingest cannot decode: at least one DLQ minute.
	pc, err := kgo.NewClient(kgo.SeedBrokers(e.st.Brokers()...), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := pc.ProduceSync(context.Background(), &kgo.Record{Topic: topics.Orders, Key: []byte("alert|online"),
		Value: []byte("\x00\xffgarbage-for-the-alerts"), Headers: []kgo.RecordHeader{{Key: topics.HeaderEventID, Value: []byte("console-alerts-garbage")}}},
	).FirstErr(); err != nil {
		t.Fatalf("produce a bad record: %v", err)
	}
	wantStock := expectedStockoutAlerts(t, e)
	wantDLQ := dlqMinutes(t, e, "console-alerts-garbage")
	t.Logf("%d stockout alerts, %d DLQ minute windows expected", len(wantStock), len(wantDLQ))
	if len(wantStock) == 0 || len(wantDLQ) == 0 {
		t.Fatalf("the replay should give stockout risks and rejections: %d, %d", len(wantStock), len(wantDLQ))
	}
	var a alertsResp
	got := func(rule string) map[string]bool {
		m := map[string]bool{}
		for _, x := range a.Alerts {
			if x.Rule == rule {
				m[x.ID] = true
			}
		}
		return m
	}
	same := func(g map[string]bool, w map[string]int) bool {
		if len(g) != len(w) {
			return false
		}
		for id := range w {
			if !g[id] {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(60 * time.Second)
	start := -1
	for {
		a = allAlerts(c)
		if start < 0 {
			start = a.Evaluations
		}
		ws := map[string]int{}
		for id := range wantStock {
			ws[id] = 1
		}
		// Three evaluations after the first look, and the rules agree.
		if a.Evaluations >= start+3 && same(got("STOCKOUT_WITHIN_LEAD_TIME"), ws) && same(got("DLQ_SPIKE"), wantDLQ) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alerts after %d evaluations (error %q): stockout %d want %d, dlq %d want %d", a.Evaluations, a.Error,
				len(got("STOCKOUT_WITHIN_LEAD_TIME")), len(wantStock), len(got("DLQ_SPIKE")), len(wantDLQ))
		}
		time.Sleep(200 * time.Millisecond) // polling the evaluator
	}
	if a.Error != "" {
		t.Errorf("evaluation error: %s", a.Error)
	}
	for _, x := range a.Alerts {
		if x.Rule == "STOCKOUT_WITHIN_LEAD_TIME" && (x.Value > x.Threshold || !strings.Contains(x.Summary, "stockout projected")) {
			t.Errorf("stockout alert %+v", x)
		}
	}

	// alerts.v1 carries every alert the console shows, each exactly once.
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.st.Brokers()...), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeTopics(topics.Alerts),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want := map[string]bool{}
	for _, x := range a.Alerts {
		want[x.ID] = true
	}
	for ctx.Err() == nil {
		complete := true
		for id := range want {
			if seen[id] == 0 {
				complete = false
			}
		}
		if complete {
			break
		}
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var m alertv1.Alert
			if err := proto.Unmarshal(r.Value, &m); err != nil {
				t.Errorf("alerts.v1 record: %v", err)
				return
			}
			if string(r.Key) != m.GetAlertId() {
				t.Errorf("record key %q, alert id %q", r.Key, m.GetAlertId())
			}
			seen[m.GetAlertId()]++
		})
	}
	// Evaluate a few more times, then read what came since: nothing again.
	n0 := a.Evaluations
	for a.Evaluations < n0+2 {
		c.do("GET", "/api/alerts", nil, nil, &a)
		time.Sleep(200 * time.Millisecond) // polling the evaluator
	}
	pctx, pcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer pcancel()
	for pctx.Err() == nil {
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { seen[string(r.Key)]++ })
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("alert %s published %d times, want once", id, seen[id])
		}
	}
	// Alerts of an earlier state (a superseded proposal) stay published,
	// but no id twice.
	for id, n := range seen {
		if n != 1 {
			t.Errorf("alert %s published %d times", id, n)
		}
	}
	if code := newClient(t, e.url).do("GET", "/api/alerts", nil, nil, nil); code != http.StatusUnauthorized {
		t.Errorf("alerts without a session: HTTP %d", code)
	}
}

// rawState folds the raw rows into book on hand and price per series,
// independently of the console's SQL.
func rawState(t *testing.T, e *shared) (onHand, price map[string]float64) {
	conn, err := chx.Open(context.Background(), e.st.ClickHouse())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	type mv struct {
		at   time.Time
		kind string
		q    float64
	}
	moves := map[string][]mv{}
	rows, err := conn.Query(ctx, `SELECT series_key, occurred_at, kind, quantity FROM inventory_events FINAL`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		var m mv
		if err := rows.Scan(&k, &m.at, &m.kind, &m.q); err != nil {
			t.Fatal(err)
		}
		moves[k] = append(moves[k], m)
	}
	rows.Close()
	price = map[string]float64{}
	lastAt := map[string]time.Time{}
	rows, err = conn.Query(ctx, `SELECT series_key, occurred_at, quantity, unit_price FROM order_lines FINAL WHERE is_demand = 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		var at time.Time
		var q, p float64
		if err := rows.Scan(&k, &at, &q, &p); err != nil {
			t.Fatal(err)
		}
		moves[k] = append(moves[k], mv{at: at, kind: "demand", q: q})
		if !at.Before(lastAt[k]) {
			lastAt[k], price[k] = at, p
		}
	}
	rows.Close()
	onHand = map[string]float64{}
	for k, ms := range moves {
		var snapAt time.Time
		snap, hasSnap := 0.0, false
		for _, m := range ms {
			if m.kind == "snapshot" && (!hasSnap || !m.at.Before(snapAt)) {
				snap, snapAt, hasSnap = m.q, m.at, true
			}
		}
		v := snap
		for _, m := range ms {
			if hasSnap && !m.at.After(snapAt) {
				continue
			}
			switch m.kind {
			case "receipt", "adjustment":
				v += m.q
			case "demand":
				v -= m.q
			}
		}
		onHand[k] = v
	}
	return onHand, price
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// TestReports: the daily report's KPIs against an independent fold of the
// raw rows and the replenishment API; the HTML, CSV and PDF downloads; the
// scheduled report written to -reports.dir and listed.
func TestReports(t *testing.T) {
	e := env(t)
	c := newClient(t, e.url)
	c.login("vera")
	var rep reports.Report
	if code := c.do("GET", "/api/reports/daily", nil, nil, &rep); code != 200 {
		t.Fatalf("report: HTTP %d", code)
	}
	onHand, price := rawState(t, e)
	value := 0.0
	for k, v := range onHand {
		value += math.Max(v, 0) * price[k]
	}
	if !near(rep.KPIs.StockValue, value) || value == 0 {
		t.Errorf("stock value %v, want %v", rep.KPIs.StockValue, value)
	}
	// Proposals of the newest decision day and the open ones, through the API.
	ps := allProposals(t, e)
	today := rep.KPIs.Day
	nToday := 0
	for _, p := range ps {
		if p.GetDecidedAt().AsTime().UTC().Format(time.DateOnly) == today {
			nToday++
		}
	}
	if rep.KPIs.ProposalsToday != nToday {
		t.Errorf("proposals on %s = %d, want %d", today, rep.KPIs.ProposalsToday, nToday)
	}
	if want := len(expectedStockoutAlerts(t, e)); rep.KPIs.StockoutRisks != want || len(rep.Risks) != min(want, reports.TopRisks) {
		t.Errorf("stockout risks %d (listed %d), want %d", rep.KPIs.StockoutRisks, len(rep.Risks), want)
	}
	for i := 1; i < len(rep.Risks); i++ {
		if rep.Risks[i].DaysToStockout < rep.Risks[i-1].DaysToStockout {
			t.Errorf("risks not soonest first: %+v", rep.Risks)
		}
	}
	// Fill rate from the raw forecast log: the newest forecast per series.
	conn, err := chx.Open(context.Background(), e.st.ClickHouse())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Open purchase orders: placed minus received per order id.
	type po struct {
		open     float64
		expected string
		placed   bool
	}
	pos := map[[2]string]*po{}
	rows, err := conn.Query(context.Background(), `SELECT series_key, reference, kind, quantity, expected_at FROM inventory_events FINAL
		WHERE kind IN ('purchase_order_placed', 'receipt')`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k, ref, kind string
		var q float64
		var exp *time.Time
		if err := rows.Scan(&k, &ref, &kind, &q, &exp); err != nil {
			t.Fatal(err)
		}
		o := pos[[2]string{k, ref}]
		if o == nil {
			o = &po{}
			pos[[2]string{k, ref}] = o
		}
		if kind == "receipt" {
			o.open -= q
		} else {
			o.open += q
			o.placed = true
			if exp != nil {
				o.expected = exp.UTC().Format(time.DateOnly)
			}
		}
	}
	rows.Close()
	rows, err = conn.Query(context.Background(), `SELECT series_key, as_of_ns, issued_at_ns, toString(start_day), means FROM forecast_log`)
	if err != nil {
		t.Fatal(err)
	}
	type fc struct {
		at, issued int64
		start      string
		means      []float64
	}
	newest := map[string]fc{}
	for rows.Next() {
		var k string
		var f fc
		if err := rows.Scan(&k, &f.at, &f.issued, &f.start, &f.means); err != nil {
			t.Fatal(err)
		}
		// The newest by event time; of equal ones the last computed.
		if n := newest[k]; f.at > n.at || (f.at == n.at && f.issued > n.issued) {
			newest[k] = f
		}
	}
	rows.Close()
	demand, served := 0.0, 0.0
	for k, f := range newest {
		d := 0.0
		for i := 0; i < len(f.means) && i < 7; i++ {
			d += f.means[i]
		}
		if d > 0 {
			start, _ := time.Parse(time.DateOnly, f.start)
			last := start.AddDate(0, 0, 6).Format(time.DateOnly)
			supply := math.Max(onHand[k], 0)
			for key, o := range pos {
				if key[0] == k && o.placed && o.open > 0 && o.expected <= last {
					supply += o.open
				}
			}
			demand += d
			served += math.Min(d, supply)
		}
	}
	if rep.KPIs.ProjectedFillRate == nil || !near(rep.KPIs.ExpectedDemand, demand) || !near(rep.KPIs.ServedDemand, served) ||
		!near(*rep.KPIs.ProjectedFillRate, served/demand) {
		t.Errorf("fill rate: demand %v served %v, want %v %v", rep.KPIs.ExpectedDemand, rep.KPIs.ServedDemand, demand, served)
	}
	t.Logf("report %s: stock value %.2f, fill rate %.4f, proposals today %d, risks %d", today, value, served/demand, nToday, rep.KPIs.StockoutRisks)

	// The downloads.
	for _, f := range []struct{ format, ctype, starts string }{
		{"csv", "text/csv; charset=utf-8", "kpi,value\n"},
		{"html", "text/html; charset=utf-8", "<!doctype html>"},
		{"pdf", "application/pdf", "%PDF-"},
	} {
		var body string
		req, _ := http.NewRequest("GET", e.url+"/api/reports/daily?format="+f.format, nil)
		resp, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1<<20)
		n, _ := readAll(resp, b)
		body = string(b[:n])
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != f.ctype || !strings.HasPrefix(body, f.starts) {
			t.Errorf("%s: HTTP %d %s %.40q", f.format, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		if f.format == "csv" && !strings.Contains(body, "\nproposals_today,"+itoa(nToday)+"\n") {
			t.Errorf("csv lacks proposals_today %d:\n%.600s", nToday, body)
		}
	}
	if code := c.do("GET", "/api/reports/daily?format=xml", nil, nil, nil); code != http.StatusBadRequest {
		t.Errorf("format xml: HTTP %d", code)
	}

	// The page's downloads name the report shown (generated_at) and get
	// that report again, not a new one, once the clock has moved on.
	var shown reports.Report
	if code := c.do("GET", "/api/reports/daily", nil, nil, &shown); code != 200 {
		t.Fatalf("report: HTTP %d", code)
	}
	testenv.Eventually(t, 5*time.Second, "the clock passes the report's second", func() bool {
		return time.Now().UTC().Truncate(time.Second).After(shown.GeneratedAt)
	})
	at := url.QueryEscape(shown.GeneratedAt.Format(time.RFC3339Nano))
	var shownCSV string
	if code := c.do("GET", "/api/reports/daily?format=csv&download=1&generated_at="+at, nil, nil, &shownCSV); code != 200 ||
		!strings.Contains(shownCSV, "generated_at,"+shown.GeneratedAt.Format(time.RFC3339)+"\n") {
		t.Errorf("csv of the report shown: HTTP %d %.200q, want generated_at %s", code, shownCSV, shown.GeneratedAt.Format(time.RFC3339))
	}
	var fresh reports.Report
	if code := c.do("GET", "/api/reports/daily?generated_at=2001-01-01T00:00:00Z", nil, nil, &fresh); code != 200 || !fresh.GeneratedAt.After(shown.GeneratedAt) {
		t.Errorf("a report of another time: HTTP %d generated %s, want built now (after %s)", code, fresh.GeneratedAt, shown.GeneratedAt)
	}

	// The scheduled report: written at the set time, listed, served.
	name := "report-" + e.reportAt.Format(time.DateOnly) + ".csv"
	// The scheduler gives the report's build two minutes (reports.Scheduler).
	deadline := e.reportAt.Add(3 * time.Minute)
	for {
		if _, err := os.Stat(filepath.Join(e.reportsDir, name)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scheduled report %s not written by %s", name, deadline)
		}
		time.Sleep(100 * time.Millisecond) // polling the report directory
	}
	var list struct{ Files []reports.File }
	if code := c.do("GET", "/api/reports", nil, nil, &list); code != 200 {
		t.Fatalf("list reports: HTTP %d", code)
	}
	var names []string
	for _, f := range list.Files {
		names = append(names, f.Name)
	}
	sort.Strings(names)
	if strings.Join(names, " ") != strings.TrimSuffix(name, ".csv")+".csv "+strings.TrimSuffix(name, ".csv")+".html "+strings.TrimSuffix(name, ".csv")+".pdf" {
		t.Errorf("listed reports %v", names)
	}
	var csvBody string
	if code := c.do("GET", "/api/reports/files/"+name, nil, nil, &csvBody); code != 200 || !strings.HasPrefix(csvBody, "kpi,value\n") {
		t.Errorf("scheduled csv: HTTP %d %.60q", code, csvBody)
	}
	if code := c.do("GET", "/api/reports/files/..%2fstack%2fconsole.log", nil, nil, nil); code != http.StatusNotFound {
		t.Errorf("path traversal: HTTP %d, want 404", code)
	}
}

func readAll(resp *http.Response, b []byte) (int, error) {
	defer resp.Body.Close()
	n := 0
	for n < len(b) {
		k, err := resp.Body.Read(b[n:])
		n += k
		if err != nil {
			return n, nil
		}
	}
	return n, nil
}
