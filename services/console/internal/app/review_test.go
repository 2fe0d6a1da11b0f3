package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/internal/stack"
	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/grpcx"
	"github.com/stockcast/stockcast/pkg/modelregistry"
	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"
	"github.com/stockcast/stockcast/services/console/internal/api"
	"github.com/stockcast/stockcast/services/console/internal/auth"
	"github.com/stockcast/stockcast/services/console/web"
)

func replClient(t *testing.T, e *shared) replenishmentv1.ReplenishmentServiceClient {
	conn, err := grpcx.Dial(e.st.GRPC(stack.Replenishment), telemetry.NewDiscard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return replenishmentv1.NewReplenishmentServiceClient(conn)
}

func getProposal(t *testing.T, rc replenishmentv1.ReplenishmentServiceClient, p *replenishmentv1.Proposal) *replenishmentv1.Proposal {
	resp, err := rc.ListProposals(context.Background(), &replenishmentv1.ListProposalsRequest{Sku: p.GetSku(), Location: p.GetLocation(), PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range resp.GetProposals() {
		if q.GetProposalId() == p.GetProposalId() {
			return q
		}
	}
	t.Fatalf("proposal %s not listed", p.GetProposalId())
	return nil
}

// TestReview: planners approve (with an adjusted quantity validated
// against the policy: the stack's built-in MOQ 12 and pack size 6) and
// reject through the replenishment API, and the change is visible there;
// viewers are refused; the service's refusals reach the caller.
func TestReview(t *testing.T) {
	e := env(t)
	rc := replClient(t, e)
	resp, err := rc.ListProposals(context.Background(), &replenishmentv1.ListProposalsRequest{
		Status: replenishmentv1.ProposalStatus_PROPOSAL_STATUS_PROPOSED, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var ps []*replenishmentv1.Proposal
	for _, p := range resp.GetProposals() {
		if p.GetPolicy().GetMoq() == 12 && p.GetPolicy().GetPackSize() == 6 && p.GetPolicy().GetMaxOrder() == 0 {
			ps = append(ps, p)
		}
	}
	if len(ps) < 2 {
		t.Fatalf("%d proposed proposals with moq 12 and pack size 6, want 2", len(ps))
	}
	a, b := ps[0], ps[1]
	approve := "/api/proposals/" + a.GetProposalId() + "/approve"

	viewer := newClient(t, e.url)
	viewer.login("vera")
	if code := viewer.do("POST", approve, map[string]any{"quantity": 24}, nil, nil); code != http.StatusForbidden {
		t.Errorf("viewer approves: HTTP %d, want 403", code)
	}
	planner := newClient(t, e.url)
	planner.login("paul")
	tok := planner.csrf
	planner.csrf = ""
	if code := planner.do("POST", approve, map[string]any{"quantity": 24}, nil, nil); code != http.StatusForbidden {
		t.Errorf("approve without CSRF token: HTTP %d, want 403", code)
	}
	planner.csrf = tok

	// The service's validation, as the caller's mistake with its message.
	for q, rule := range map[float64]string{13: "pack_size", 6: "moq", 0: "must be"} {
		var body string
		code := planner.doRaw("POST", approve, map[string]any{"quantity": q}, &body)
		if code != http.StatusBadRequest || !strings.Contains(body, rule) {
			t.Errorf("approve %v: HTTP %d %s, want 400 naming %s", q, code, body, rule)
		}
	}
	if got := getProposal(t, rc, a); got.GetStatus() != replenishmentv1.ProposalStatus_PROPOSAL_STATUS_PROPOSED {
		t.Fatalf("after refused approvals: %v", got.GetStatus())
	}

	var row api.ProposalRow
	if code := planner.do("POST", approve, map[string]any{"quantity": 24, "note": "round to 4 packs"}, nil, &row); code != 200 {
		t.Fatalf("approve 24: HTTP %d", code)
	}
	if row.Status != "PROPOSAL_STATUS_APPROVED" || row.ApprovedQuantity != 24 || row.DecidedBy != "paul" {
		t.Errorf("approved row %+v", row)
	}
	got := getProposal(t, rc, a)
	if got.GetStatus() != replenishmentv1.ProposalStatus_PROPOSAL_STATUS_APPROVED || got.GetApprovedQuantity() != 24 ||
		got.GetDecidedBy() != "paul" || got.GetStatusNote() != "round to 4 packs" {
		t.Errorf("through the replenishment API: %v %v %q %q", got.GetStatus(), got.GetApprovedQuantity(), got.GetDecidedBy(), got.GetStatusNote())
	}
	// Idempotent; another quantity is a conflict.
	if code := planner.do("POST", approve, map[string]any{"quantity": 24}, nil, nil); code != 200 {
		t.Errorf("approve again: HTTP %d, want 200", code)
	}
	if code := planner.do("POST", approve, map[string]any{"quantity": 30}, nil, nil); code != http.StatusConflict {
		t.Errorf("approve again with 30: HTTP %d, want 409", code)
	}
	// The console's list shows the new status (ClickHouse FINAL).
	var list struct {
		Proposals []api.ProposalRow
		Total     int
	}
	deadline := time.Now().Add(time.Minute)
	for {
		planner.do("GET", "/api/proposals?status=approved&sku="+a.GetSku()+"&location="+a.GetLocation(), nil, nil, &list)
		if len(list.Proposals) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("approved proposal not in the console's list")
		}
		time.Sleep(100 * time.Millisecond) // polling the list
	}
	if p := list.Proposals[0]; p.ID != a.GetProposalId() || p.ApprovedQuantity != 24 || p.DecidedBy != "paul" {
		t.Errorf("listed %+v", p)
	}

	admin := newClient(t, e.url)
	admin.login("ada")
	var rej api.ProposalRow
	if code := admin.do("POST", "/api/proposals/"+b.GetProposalId()+"/reject", map[string]any{"note": "stock elsewhere"}, nil, &rej); code != 200 ||
		rej.Status != "PROPOSAL_STATUS_REJECTED" || rej.DecidedBy != "ada" {
		t.Errorf("reject: HTTP %d %+v", code, rej)
	}
	if got := getProposal(t, rc, b); got.GetStatus() != replenishmentv1.ProposalStatus_PROPOSAL_STATUS_REJECTED || got.GetDecidedBy() != "ada" {
		t.Errorf("rejected through the API: %v %q", got.GetStatus(), got.GetDecidedBy())
	}
	if code := admin.do("POST", "/api/proposals/"+b.GetProposalId()+"/approve", nil, nil, nil); code != http.StatusConflict {
		t.Errorf("approve a rejected proposal: HTTP %d, want 409", code)
	}
	if code := admin.do("POST", "/api/proposals/no-such-proposal/approve", nil, nil, nil); code != http.StatusNotFound {
		t.Errorf("approve an unknown proposal: HTTP %d, want 404", code)
	}
}

// doRaw is do returning the body of any status.
func (c *client) doRaw(method, path string, body any, out *string) int {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(mustJSON(body)))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("X-CSRF-Token", c.csrf)
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	*out = string(b)
	return resp.StatusCode
}

// TestSeriesIncomingAndError: an open purchase order shows in the series
// detail and on its projection day; the recent forecast error equals one
// computed from the raw forecast log and order lines.
func TestSeriesIncomingAndError(t *testing.T) {
	e := env(t)
	c := newClient(t, e.url)
	c.login("vera")
	sku, loc := topSeries(t, e)
	key := topics.SeriesKey(sku, loc)
	var d api.SeriesDetail
	if code := c.do("GET", "/api/series/detail?key="+urlq(key), nil, nil, &d); code != 200 || d.Forecast == nil || len(d.Forecast.Daily) < 3 {
		t.Fatalf("detail: HTTP %d %+v", code, d.Forecast)
	}
	day := d.Forecast.Daily[2].Day
	expected, _ := time.Parse(time.DateOnly, day)
	ev := &inventoryv1.InventoryEvent{EventId: "console-po-1", OccurredAt: timestamppb.New(expected.Add(-72 * time.Hour)), Sku: sku, Location: loc,
		Kind: &inventoryv1.InventoryEvent_PurchaseOrderPlaced{PurchaseOrderPlaced: &inventoryv1.PurchaseOrderPlaced{
			PurchaseOrderId: "PO-CONSOLE-1", Quantity: 48, ExpectedAt: timestamppb.New(expected.Add(10 * time.Hour)), SupplierId: "S-1"}}}
	v, _ := proto.Marshal(ev)
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.st.Brokers()...), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topics.Inventory, Key: []byte(key), Value: v,
		Headers: []kgo.RecordHeader{{Key: topics.HeaderEventID, Value: []byte("console-po-1")},
			{Key: topics.HeaderContentType, Value: []byte(topics.ContentTypeProtobuf)}}}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		c.do("GET", "/api/series/detail?key="+urlq(key), nil, nil, &d)
		if len(d.Incoming) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("purchase order not in the detail: %+v", d.Incoming)
		}
		time.Sleep(200 * time.Millisecond) // polling ingest
	}
	if in := d.Incoming[0]; len(d.Incoming) != 1 || in.PurchaseOrderID != "PO-CONSOLE-1" || in.Quantity != 48 || in.ExpectedDay != day || in.SupplierID != "S-1" {
		t.Errorf("incoming %+v", d.Incoming)
	}
	marked := 0.0
	for _, p := range d.Projected {
		if p.Day == day {
			marked += p.Incoming
		}
	}
	if marked != 48 {
		t.Errorf("projection marks %v units on %s, want 48", marked, day)
	}

	// The recent error from the raw rows: for each day of the window, the
	// newest forecast made on an earlier day that covers it.
	conn, err := chx.Open(context.Background(), e.st.ClickHouse())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.Query(context.Background(), `SELECT as_of_ns, issued_at_ns, toString(start_day), means FROM forecast_log WHERE series_key = ?`, key)
	if err != nil {
		t.Fatal(err)
	}
	type best struct {
		at, issued int64
		mean       float64
	}
	pred := map[string]best{}
	for rows.Next() {
		var at, issued int64
		var start string
		var means []float64
		if err := rows.Scan(&at, &issued, &start, &means); err != nil {
			t.Fatal(err)
		}
		s, _ := time.Parse(time.DateOnly, start)
		asOfDay := time.Unix(0, at).UTC().Format(time.DateOnly)
		for i, m := range means {
			dd := s.AddDate(0, 0, i).Format(time.DateOnly)
			if dd < d.ErrorFrom || dd > d.ErrorTo || asOfDay >= dd {
				continue
			}
			if b := pred[dd]; at > b.at || (at == b.at && issued > b.issued) {
				pred[dd] = best{at, issued, m}
			}
		}
	}
	rows.Close()
	sold := map[string]float64{}
	rows, err = conn.Query(context.Background(), `SELECT toString(day), quantity FROM order_lines FINAL WHERE series_key = ? AND is_demand = 1`, key)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var dd string
		var q float64
		if err := rows.Scan(&dd, &q); err != nil {
			t.Fatal(err)
		}
		sold[dd] += q
	}
	rows.Close()
	fsum, asum, abs := 0.0, 0.0, 0.0
	for dd, b := range pred {
		fsum += b.mean
		asum += sold[dd]
		abs += math.Abs(b.mean - sold[dd])
	}
	re := d.RecentError
	if re == nil || re.Days != len(pred) || !near(re.Forecast, fsum) || !near(re.Actual, asum) {
		t.Fatalf("recent error %+v over %s..%s, want %d days, forecast %v, sold %v", re, d.ErrorFrom, d.ErrorTo, len(pred), fsum, asum)
	}
	if len(pred) > 0 && !near(re.MAE, abs/float64(len(pred))) {
		t.Errorf("mae %v, want %v", re.MAE, abs/float64(len(pred)))
	}
	t.Logf("recent error of %s over %s..%s: %d days, forecast %.2f, sold %.2f", key, d.ErrorFrom, d.ErrorTo, len(pred), fsum, asum)
}

// TestModels: the models page lists the registry (pkg/modelregistry) with
// the champion, NaN metrics as null.
func TestModels(t *testing.T) {
	e := env(t)
	conn, err := chx.Open(context.Background(), e.st.ClickHouse())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := newClient(t, e.url)
	c.login("vera")
	if err := modelregistry.Migrate(context.Background(), conn); err != nil {
		t.Fatal(err)
	}
	reg := modelregistry.New(conn)
	t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	first := modelregistry.Model{Version: "console-test-v1", CreatedAt: t0, Status: modelregistry.StatusChampion, DataSet: "online-retail",
		Artefact: filepath.Join(t.TempDir(), "absent-v1.gob"), WRMSSE: 0.9, WSPL: 0.5, MASE: 1.1, Bias: 0.02, Coverage50: 0.48,
		Coverage90: 0.88, Coverage98: 0.97, ChampionWRMSSE: math.NaN(), TrainSeconds: 12.5, MetricsJSON: "{}"}
	second := first
	second.Version, second.CreatedAt, second.Status, second.WRMSSE = "console-test-v2", t0.Add(24*time.Hour), modelregistry.StatusChallenger, 0.95
	second.ChampionVersion, second.ChampionWRMSSE = "console-test-v1", 0.9
	for _, m := range []modelregistry.Model{first, second} {
		if err := reg.Record(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	var out struct {
		Models   []api.ModelRow
		Champion *api.ModelRow
		Accuracy []struct {
			Day  string
			Days int
		}
		Errors []string
	}
	if code := c.do("GET", "/api/models", nil, nil, &out); code != 200 {
		t.Fatalf("models: HTTP %d", code)
	}
	var mine []api.ModelRow
	for _, m := range out.Models {
		if strings.HasPrefix(m.Version, "console-test-") {
			mine = append(mine, m)
		}
	}
	if len(mine) != 2 || mine[0].Version != "console-test-v2" || mine[1].Version != "console-test-v1" {
		t.Fatalf("models %+v", mine)
	}
	if v2 := mine[0]; v2.Status != "challenger" || *v2.WRMSSE != 0.95 || *v2.ChampionWRMSSE != 0.9 || v2.ChampionVersion != "console-test-v1" || v2.CreatedAt != "2026-11-02 08:00:00" {
		t.Errorf("v2 %+v", v2)
	}
	if v1 := mine[1]; v1.Status != "champion" || v1.ChampionWRMSSE != nil || *v1.TrainSeconds != 12.5 || *v1.Coverage90 != 0.88 {
		t.Errorf("v1 %+v", v1)
	}
	if out.Champion == nil || out.Champion.Version != "console-test-v1" {
		t.Errorf("champion %+v", out.Champion)
	}
	if len(out.Errors) != 0 {
		t.Errorf("errors %v", out.Errors)
	}
	for i := 1; i < len(out.Accuracy); i++ {
		if out.Accuracy[i].Day <= out.Accuracy[i-1].Day || out.Accuracy[i].Days <= 0 {
			t.Errorf("accuracy days %+v", out.Accuracy)
		}
	}
}

// TestTLS: with -http.tls-cert/-key the console serves HTTPS only and its
// session cookie is Secure.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	h, err := bcrypt.GenerateFromPassword([]byte("ada-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users, err := auth.ParseUsers([]string{"ada:admin:" + string(h)})
	if err != nil {
		t.Fatal(err)
	}
	handler := api.NewHandler(api.Deps{Users: users, Sessions: auth.NewSessions(time.Hour, true, time.Now), Assets: web.Assets(),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now})
	addr := testenv.FreeAddr(t)
	srv := &webServer{cfg: HTTPConfig{Addr: addr, TLSCert: certFile, TLSKey: keyFile}, handler: handler}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	base := "https://" + addr
	var resp *http.Response
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err = hc.Post(base+"/api/login", "application/json", strings.NewReader(`{"username":"ada","password":"ada-pw"}`))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("https login: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // polling the server's start
	}
	resp.Body.Close()
	var secure bool
	for _, ck := range resp.Cookies() {
		if ck.Name == "stockcast_session" {
			secure = ck.Secure && ck.HttpOnly
		}
	}
	if resp.StatusCode != 200 || !secure || resp.TLS == nil {
		t.Errorf("https login: HTTP %d, secure cookie %v, tls %v", resp.StatusCode, secure, resp.TLS != nil)
	}
	if r, err := hc.Get(base + "/api/me"); err != nil || r.StatusCode != 200 {
		t.Errorf("me over https: %v %v", r, err)
	} else {
		r.Body.Close()
	}
	// Plain HTTP on the TLS port gets no page.
	if r, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/api/me"); err == nil {
		if r.StatusCode != http.StatusBadRequest {
			t.Errorf("plain http on the https port: HTTP %d, want 400", r.StatusCode)
		}
		r.Body.Close()
	}
	// An untrusted client refuses the certificate.
	if _, err := (&http.Client{Timeout: 5 * time.Second}).Get(base + "/"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("client without the CA: %v, want a certificate error", err)
	}
	hc.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("https server stop: %v", err)
	}
}

func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "console test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func mustJSON(v any) string {
	if v == nil {
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func urlq(s string) string { return url.QueryEscape(s) }
