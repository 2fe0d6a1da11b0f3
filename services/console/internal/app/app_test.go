package app

import (
	"context"
	"encoding/csv"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockcast/stockcast/internal/stack"
	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/grpcx"
	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/topics"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"
	"github.com/stockcast/stockcast/services/console/internal/api"
	"github.com/stockcast/stockcast/services/console/internal/live"
)

// TestAuthRolesCSRF: no session, wrong password, cookie attributes, CSRF
// and Origin checks, roles, and a planner's policy change visible through
// the replenishment API.
func TestAuthRolesCSRF(t *testing.T) {
	e := env(t)
	anon := newClient(t, e.url)
	if code := anon.do("GET", "/api/overview", nil, nil, nil); code != http.StatusUnauthorized {
		t.Errorf("overview without a session: HTTP %d, want 401", code)
	}
	if code := anon.do("POST", "/api/login", map[string]string{"username": "paul", "password": "wrong"}, nil, nil); code != http.StatusUnauthorized {
		t.Errorf("wrong password: HTTP %d, want 401", code)
	}
	if code := anon.do("POST", "/api/login", map[string]string{"username": "nobody", "password": "nobody-pw"}, nil, nil); code != http.StatusUnauthorized {
		t.Errorf("unknown user: HTTP %d, want 401", code)
	}
	if code := anon.do("POST", "/api/login", map[string]string{"username": "paul", "password": "paul-pw"},
		map[string]string{"Origin": "http://evil.example"}, nil); code != http.StatusForbidden {
		t.Errorf("cross-origin login: HTTP %d, want 403", code)
	}

	// The session cookie is HttpOnly and SameSite=Strict.
	resp, err := http.Post(e.url+"/api/login", "application/json", strings.NewReader(`{"username":"vera","password":"vera-pw"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "stockcast_session" {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" || len(cookie.Value) < 40 {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/, a long random value", cookie)
	}

	viewer := newClient(t, e.url)
	viewer.login("vera")
	var me struct{ User, Role string }
	if code := viewer.do("GET", "/api/me", nil, nil, &me); code != 200 || me.User != "vera" || me.Role != "viewer" {
		t.Errorf("me = %d %+v, want vera viewer", code, me)
	}

	sku, loc := topSeries(t, e)
	policy := map[string]any{"sku": sku, "location": loc, "service_level": 0.9, "lead_time_days": 5,
		"review_period_days": 0, "order_cover_days": 10, "moq": 12, "pack_size": 6, "max_order": 0}
	if code := viewer.do("PUT", "/api/policy", policy, nil, nil); code != http.StatusForbidden {
		t.Errorf("viewer sets a policy: HTTP %d, want 403", code)
	}

	planner := newClient(t, e.url)
	planner.login("paul")
	token := planner.csrf
	planner.csrf = ""
	if code := planner.do("PUT", "/api/policy", policy, nil, nil); code != http.StatusForbidden {
		t.Errorf("planner without CSRF token: HTTP %d, want 403", code)
	}
	planner.csrf = "forged"
	if code := planner.do("PUT", "/api/policy", policy, nil, nil); code != http.StatusForbidden {
		t.Errorf("planner with a wrong CSRF token: HTTP %d, want 403", code)
	}
	planner.csrf = token
	if code := planner.do("PUT", "/api/policy", policy, map[string]string{"Origin": "http://evil.example"}, nil); code != http.StatusForbidden {
		t.Errorf("planner, token but cross-origin: HTTP %d, want 403", code)
	}
	if code := planner.do("PUT", "/api/policy", policy, nil, nil); code != http.StatusOK {
		t.Fatalf("planner sets a policy: HTTP %d, want 200", code)
	}
	// The change is visible through the replenishment API itself.
	conn, err := grpcx.Dial(e.st.GRPC(stack.Replenishment), telemetry.NewDiscard())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got, err := replenishmentv1.NewReplenishmentServiceClient(conn).GetPolicy(context.Background(),
		&replenishmentv1.GetPolicyRequest{Sku: sku, Location: loc})
	if err != nil {
		t.Fatal(err)
	}
	if p := got.GetPolicy(); got.GetSource() != "series" || p.GetMoq() != 12 || p.GetPackSize() != 6 || p.GetLeadTimeDays() != 5 {
		t.Errorf("policy after the planner's change: %s %v", got.GetSource(), p)
	}
	// An invalid policy is the caller's mistake, not the gateway's.
	bad := map[string]any{"sku": sku, "location": loc, "service_level": 1.5}
	if code := planner.do("PUT", "/api/policy", bad, nil, nil); code != http.StatusBadRequest {
		t.Errorf("invalid policy: HTTP %d, want 400", code)
	}

	if code := planner.do("POST", "/api/logout", nil, nil, nil); code != http.StatusNoContent {
		t.Errorf("logout: HTTP %d", code)
	}
	if code := planner.do("GET", "/api/me", nil, nil, nil); code != http.StatusUnauthorized {
		t.Errorf("me after logout: HTTP %d, want 401", code)
	}
}

// topSeries is the series with the most demand, from ClickHouse directly.
func topSeries(t *testing.T, e *shared) (string, string) {
	t.Helper()
	conn, err := chx.Open(context.Background(), e.st.ClickHouse())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var sku, loc string
	if err := conn.QueryRow(context.Background(), `SELECT sku, location FROM proposals FINAL
		GROUP BY sku, location ORDER BY count() DESC, sku LIMIT 1`).Scan(&sku, &loc); err != nil {
		t.Fatalf("a series with proposals: %v", err)
	}
	return sku, loc
}

// TestOverview: live numbers from the services' metrics, freshness and
// today's proposals, checked against the services' own APIs.
func TestOverview(t *testing.T) {
	e := env(t)
	c := newClient(t, e.url)
	c.login("vera")
	var o api.Overview
	testenv := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: overview %+v", what, o)
			}
			time.Sleep(200 * time.Millisecond) // polling the overview
		}
	}
	testenv("all four services scraped, ingest consumed the replay", func() bool {
		c.do("GET", "/api/overview", nil, nil, &o)
		up := 0
		for _, s := range o.Live.Services {
			if s.Up {
				up++
			}
		}
		ing := serviceStats(o.Live, "ingest")
		return up == 4 && ing != nil && ing.Consumed >= float64(e.replay.Read)
	})
	if len(o.Errors) != 0 {
		t.Errorf("overview errors: %v", o.Errors)
	}
	if o.Freshness.Forecasts == 0 || o.Freshness.LastAsOf == "" || o.Freshness.AgeSeconds < 0 || o.Freshness.AgeSeconds > 600 {
		t.Errorf("forecast freshness %+v: want forecasts issued in the last minutes", o.Freshness)
	}

	// Proposals today, counted independently through ListProposals.
	conn, err := grpcx.Dial(e.st.GRPC(stack.Replenishment), telemetry.NewDiscard())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rc := replenishmentv1.NewReplenishmentServiceClient(conn)
	var n, newest int
	newestDay := ""
	tok := ""
	for {
		resp, err := rc.ListProposals(context.Background(), &replenishmentv1.ListProposalsRequest{PageSize: 1000, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range resp.GetProposals() {
			n++
			d := p.GetDecidedAt().AsTime().UTC().Format(time.DateOnly)
			if d > newestDay {
				newestDay, newest = d, 0
			}
			if d == newestDay {
				newest++
			}
		}
		if tok = resp.GetNextPageToken(); tok == "" {
			break
		}
	}
	if n == 0 {
		t.Fatal("the replay made no proposals")
	}
	if o.Proposals.Day != newestDay || int(o.Proposals.Count) != newest {
		t.Errorf("proposals today = %s %d, want %s %d (of %d)", o.Proposals.Day, o.Proposals.Count, newestDay, newest, n)
	}

	// The stream sends the same overview as a server-sent event.
	req, _ := http.NewRequest("GET", e.url+"/api/stream", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.http.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("stream content type %q", ct)
	}
	buf := make([]byte, 64*1024)
	got := ""
	for strings.Count(got, "event: overview\n") < 2 {
		k, err := resp.Body.Read(buf)
		if err != nil {
			t.Fatalf("read stream after %q: %v", got, err)
		}
		got += string(buf[:k])
	}
	if !strings.Contains(got, `"proposals_today":{"day":"`+newestDay) {
		t.Errorf("stream events lack today's proposals: %.300s", got)
	}
}

func serviceStats(s live.Snapshot, name string) *live.ServiceStats {
	for i := range s.Services {
		if s.Services[i].Name == name {
			return &s.Services[i]
		}
	}
	return nil
}

// TestSeriesExplorer: search finds the series, the detail carries its real
// history (as the feature service has it), the forecast with ordered
// quantile bands, and a projection from the latest proposal.
func TestSeriesExplorer(t *testing.T) {
	e := env(t)
	c := newClient(t, e.url)
	c.login("vera")
	sku, loc := topSeries(t, e)
	var hits struct{ Series []api.SeriesHit }
	if code := c.do("GET", "/api/series?q="+url.QueryEscape(strings.ToLower(sku)), nil, nil, &hits); code != 200 {
		t.Fatalf("search: HTTP %d", code)
	}
	var hit *api.SeriesHit
	for i := range hits.Series {
		if !strings.Contains(strings.ToLower(hits.Series[i].SKU+hits.Series[i].Description+hits.Series[i].Location), strings.ToLower(sku)) {
			t.Errorf("hit %+v does not contain %q", hits.Series[i], sku)
		}
		if hits.Series[i].SKU == sku && hits.Series[i].Location == loc {
			hit = &hits.Series[i]
		}
	}
	if hit == nil {
		t.Fatalf("search %q: %+v lacks %s|%s", sku, hits.Series, sku, loc)
	}

	var d api.SeriesDetail
	if code := c.do("GET", "/api/series/detail?key="+url.QueryEscape(sku+"|"+loc), nil, nil, &d); code != 200 {
		t.Fatalf("detail: HTTP %d", code)
	}
	if len(d.Errors) != 0 {
		t.Errorf("detail errors: %v", d.Errors)
	}
	conn, err := grpcx.Dial(e.st.GRPC(stack.Feature), telemetry.NewDiscard())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	f, err := featurev1.NewFeatureServiceClient(conn).GetFeatures(context.Background(),
		&featurev1.GetFeaturesRequest{Sku: sku, Location: loc, IncludeHistory: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.History) != len(f.GetHistory()) || len(d.History) == 0 {
		t.Fatalf("history has %d days, the feature service %d", len(d.History), len(f.GetHistory()))
	}
	total := 0.0
	for i, h := range d.History {
		if h.Day != f.GetHistory()[i].GetDay() || h.Quantity != f.GetHistory()[i].GetQuantity() {
			t.Errorf("history day %d = %+v, feature service %v", i, h, f.GetHistory()[i])
		}
		total += h.Quantity
	}
	if diff := total - hit.Demand; diff > 1e-6 || diff < -1e-6 {
		t.Errorf("search demand %v, history sums to %v", hit.Demand, total)
	}
	if d.Forecast == nil || len(d.Forecast.Daily) == 0 || len(d.Forecast.QuantileLevels) < 2 || d.Forecast.Model == "" {
		t.Fatalf("forecast %+v", d.Forecast)
	}
	for _, day := range d.Forecast.Daily {
		if len(day.Quantiles) != len(d.Forecast.QuantileLevels) || !sort.Float64sAreSorted(day.Quantiles) {
			t.Errorf("forecast day %+v: quantiles not one per level, ascending", day)
		}
	}
	if d.Proposal == nil || d.Policy == nil || len(d.Events) == 0 {
		t.Fatalf("proposal %+v, policy %+v, %d events", d.Proposal, d.Policy, len(d.Events))
	}
	if len(d.Projected) != len(d.Forecast.Daily) {
		t.Fatalf("%d projected days for %d forecast days", len(d.Projected), len(d.Forecast.Daily))
	}
	want := d.Proposal.InventoryPosition - d.Forecast.Daily[0].Mean
	if p := d.Projected[0]; p.Expected != want || p.ReorderPoint != d.Proposal.ReorderPoint || p.Pessimistic > p.Expected {
		t.Errorf("first projected day %+v, want expected %v, reorder point %v", p, want, d.Proposal.ReorderPoint)
	}
	if code := c.do("GET", "/api/series/detail?key=nokey", nil, nil, nil); code != http.StatusBadRequest {
		t.Errorf("bad key: HTTP %d, want 400", code)
	}
}

// TestProposals: paging covers every proposal once, sorting and filters
// hold, the CSV has every row, bad parameters are refused.
func TestProposals(t *testing.T) {
	e := env(t)
	c := newClient(t, e.url)
	c.login("ada")
	type page struct {
		Proposals []api.ProposalRow
		Total     int
	}
	var first page
	if code := c.do("GET", "/api/proposals?page_size=7", nil, nil, &first); code != 200 || first.Total == 0 {
		t.Fatalf("first page: HTTP %d, %d proposals", code, first.Total)
	}
	seen := map[string]bool{}
	prev := ""
	for p := 1; (p-1)*7 < first.Total; p++ {
		var pg page
		c.do("GET", "/api/proposals?page_size=7&page="+itoa(p), nil, nil, &pg)
		for _, r := range pg.Proposals {
			if seen[r.ID] {
				t.Fatalf("proposal %s on two pages", r.ID)
			}
			seen[r.ID] = true
			if prev != "" && r.DecidedAt > prev {
				t.Fatalf("newest first broken: %s after %s", r.DecidedAt, prev)
			}
			prev = r.DecidedAt
		}
	}
	if len(seen) != first.Total {
		t.Errorf("pages hold %d proposals, total says %d", len(seen), first.Total)
	}

	var asc page
	c.do("GET", "/api/proposals?sort=quantity&order=asc&page_size=500", nil, nil, &asc)
	for i := 1; i < len(asc.Proposals); i++ {
		if asc.Proposals[i].Quantity < asc.Proposals[i-1].Quantity {
			t.Fatalf("quantity ascending broken at %d", i)
		}
	}
	sku, loc := topSeries(t, e)
	var one page
	c.do("GET", "/api/proposals?sku="+url.QueryEscape(sku)+"&location="+url.QueryEscape(loc)+"&status=proposed", nil, nil, &one)
	if one.Total == 0 {
		t.Fatalf("no proposals for %s|%s", sku, loc)
	}
	for _, r := range one.Proposals {
		if r.SKU != sku || r.Location != loc || r.Status != "PROPOSAL_STATUS_PROPOSED" {
			t.Errorf("filtered row %+v", r)
		}
	}

	var body string
	if code := c.do("GET", "/api/proposals.csv", nil, nil, &body); code != 200 {
		t.Fatalf("csv: HTTP %d", code)
	}
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("csv: %v", err)
	}
	if len(recs) != first.Total+1 || recs[0][0] != "proposal_id" {
		t.Errorf("csv has %d records, want a header and %d rows", len(recs), first.Total)
	}
	for _, r := range recs[1:] {
		if !seen[r[0]] {
			t.Errorf("csv row %s not listed", r[0])
		}
	}
	for _, q := range []string{"sort=nope", "page_size=0", "page_size=501", "page=0", "status=lost"} {
		if code := c.do("GET", "/api/proposals?"+q, nil, nil, nil); code != http.StatusBadRequest {
			t.Errorf("%s: HTTP %d, want 400", q, code)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestDataQuality: every record in the DLQ topics is counted by reason,
// and the counts agree with the services' rejected counters.
func TestDataQuality(t *testing.T) {
	e := env(t)
	c := newClient(t, e.url)
	c.login("vera")
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.st.Brokers()...), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	garbage := "\x00\xffgarbage-for-the-console"
	negative := `{"eventId":"console-negative","occurredAt":"2010-12-01T09:00:00Z","type":"ORDER_LINE_TYPE_PLACED","orderId":"X1","sku":"85123A","location":"online","quantity":-5,"unitPrice":2.55,"currency":"GBP"}`
	if err := cl.ProduceSync(context.Background(),
		&kgo.Record{Topic: topics.Orders, Key: []byte("x|online"), Value: []byte(garbage),
			Headers: []kgo.RecordHeader{{Key: topics.HeaderEventID, Value: []byte("console-garbage")}}},
		&kgo.Record{Topic: topics.Orders, Key: []byte("85123A|online"), Value: []byte(negative),
			Headers: []kgo.RecordHeader{{Key: topics.HeaderContentType, Value: []byte(topics.ContentTypeJSON)}}},
	).FirstErr(); err != nil {
		t.Fatalf("produce bad records: %v", err)
	}
	var d struct {
		Total   int
		Reasons []live.Reason
	}
	var o api.Overview
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.do("GET", "/api/dlq", nil, nil, &d)
		c.do("GET", "/api/overview", nil, nil, &o)
		rejected := 0.0
		for _, s := range o.Live.Services {
			rejected += s.Rejected
		}
		if float64(d.Total) == rejected && hasSample(d.Reasons, "undecodable", "garbage-for-the-console") &&
			hasSample(d.Reasons, "quantity_not_positive", "console-negative") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("DLQ total %d, services rejected %v", d.Total, rejected)
		}
		time.Sleep(200 * time.Millisecond) // polling the console
	}
	sum := 0
	for _, r := range d.Reasons {
		sum += r.Count
		if r.Reason == "" || len(r.Samples) == 0 || len(r.Samples) > 5 || r.Samples[0].Topic == "" || r.Samples[0].Source == "" {
			t.Errorf("reason %+v", r)
		}
	}
	if sum != d.Total {
		t.Errorf("reasons sum to %d, total %d", sum, d.Total)
	}
}

// TestAppServing: the embedded app is served for client routes, hashed
// assets are cached, unknown API paths are JSON 404s.
func TestAppServing(t *testing.T) {
	e := env(t)
	resp, err := http.Get(e.url + "/some/client/route")
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4096)
	k, _ := resp.Body.Read(b)
	resp.Body.Close()
	html := string(b[:k])
	if resp.StatusCode != 200 || !strings.Contains(html, `<div id="root">`) || resp.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("index: HTTP %d %q", resp.StatusCode, html)
	}
	i := strings.Index(html, "/assets/")
	j := strings.Index(html[i:], `"`)
	asset := html[i : i+j]
	resp, err = http.Get(e.url + asset)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
		t.Errorf("%s: HTTP %d, Cache-Control %q", asset, resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	resp, err = http.Get(e.url + "/assets/missing.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("missing asset: HTTP %d", resp.StatusCode)
	}
}

// hasSample reports whether reason has a sample whose value contains text.
func hasSample(rs []live.Reason, reason, text string) bool {
	for _, r := range rs {
		if r.Reason != reason {
			continue
		}
		for _, s := range r.Samples {
			if strings.Contains(s.Value, text) && s.Topic == topics.DLQ(topics.Orders) && s.Service == "ingest" {
				return true
			}
		}
	}
	return false
}
