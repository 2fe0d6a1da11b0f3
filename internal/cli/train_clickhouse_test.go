package cli

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/modelregistry"
	"github.com/stockcast/stockcast/pkg/testenv"
	catalogv1 "github.com/stockcast/stockcast/proto/stockcast/catalog/v1"
	ingestv1 "github.com/stockcast/stockcast/proto/stockcast/ingest/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"
)

// startIngest builds and runs the real ingest service on the given stores,
// and returns a client of its gRPC API once it is ready.
func startIngest(t *testing.T, ch chx.Config) ingestv1.IngestServiceClient {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ingest")
	build := exec.Command("go", "build", "-o", bin, "github.com/stockcast/stockcast/services/ingest/cmd/ingest")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build ingest: %v\n%s", err, out)
	}
	grpcAddr, adminAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	cmd := exec.Command(bin, "-kafka.brokers="+strings.Join(testenv.Kafka(t), ","), "-grpc.addr="+grpcAddr, "-admin.addr="+adminAddr,
		"-redis.addr="+testenv.Redis(t), "-clickhouse.addr="+ch.Addr, "-clickhouse.database="+ch.Database)
	logs, err := os.Create(filepath.Join(t.TempDir(), "ingest.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logs.Close()
		if t.Failed() {
			body, _ := os.ReadFile(logs.Name())
			t.Logf("ingest log:\n%s", body)
		}
	})
	testenv.Eventually(t, 60*time.Second, "ingest ready", func() bool {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ingestv1.NewIngestServiceClient(conn)
}

// TestTrainFromClickHouse pushes 150 days of order lines, a stockout and a
// price change for three series through the real ingest service, trains
// on what ingest stored in ClickHouse, and checks the data set the
// training read against values computed here, the registry's record of
// the run and its promotion rules: the first model becomes the champion,
// the same model again stays it, -promote never records a challenger,
// -promote force promotes.
func TestTrainFromClickHouse(t *testing.T) {
	ctx := context.Background()
	ch := testenv.ClickHouse(t)
	ingest := startIngest(t, ch)

	const days = 150
	start := forecasting.DayOf(time.Now()) - days // the last day is yesterday
	at := func(day int, hour int) *timestamppb.Timestamp {
		return timestamppb.New(start.Time().Add(time.Duration(day)*24*time.Hour + time.Duration(hour)*time.Hour))
	}
	skus := []string{"SA", "SB", "SC"}
	// demand of series s on day t: a weekly pattern scaled per series;
	// placed lines, and on day t%10 == 3 one unit cancelled
	placed := func(s, t int) float64 { return float64((s+1)*(1+(t%7)%3) + t%5) }
	var orders []*ordersv1.OrderLineEvent
	want := map[string][]float64{}
	for s, sku := range skus {
		want[sku] = make([]float64, days)
		for d := range days {
			t := d
			q := placed(s, t)
			orders = append(orders, &ordersv1.OrderLineEvent{EventId: fmt.Sprintf("o-%s-%d", sku, t), OccurredAt: at(t, 10),
				Type: ordersv1.OrderLineType_ORDER_LINE_TYPE_PLACED, OrderId: fmt.Sprintf("%s%d", sku, t), LineNumber: 1,
				Sku: sku, Location: "S1", Quantity: q, UnitPrice: 2 + float64(s), Currency: "EUR"})
			want[sku][t] = q
			if t%10 == 3 {
				orders = append(orders, &ordersv1.OrderLineEvent{EventId: fmt.Sprintf("c-%s-%d", sku, t), OccurredAt: at(t, 12),
					Type: ordersv1.OrderLineType_ORDER_LINE_TYPE_CANCELLED, OrderId: fmt.Sprintf("%s%d", sku, t), LineNumber: 1,
					Sku: sku, Location: "S1", Quantity: 1, UnitPrice: 2 + float64(s), Currency: "EUR"})
				want[sku][t]--
			}
		}
	}
	resp, err := ingest.PublishOrderLines(ctx, &ingestv1.PublishOrderLinesRequest{Events: orders})
	if err != nil || len(resp.GetResult().GetRejected()) > 0 {
		t.Fatalf("publish orders: %v %v", err, resp.GetResult().GetRejected())
	}
	// B is out of stock on days 100..104 (a sale on those days is not
	// demand); A's price is 9 from day 120 on; A is in department D1
	inv, err := ingest.PublishInventoryEvents(ctx, &ingestv1.PublishInventoryEventsRequest{Events: []*inventoryv1.InventoryEvent{
		{EventId: "so-1", OccurredAt: at(100, 15), Sku: "SB", Location: "S1", Kind: &inventoryv1.InventoryEvent_StockoutStarted{StockoutStarted: &inventoryv1.StockoutStarted{}}},
		{EventId: "so-2", OccurredAt: at(104, 9), Sku: "SB", Location: "S1", Kind: &inventoryv1.InventoryEvent_StockoutEnded{StockoutEnded: &inventoryv1.StockoutEnded{}}},
	}})
	if err != nil || len(inv.GetResult().GetRejected()) > 0 {
		t.Fatalf("publish inventory: %v %v", err, inv.GetResult().GetRejected())
	}
	cat, err := ingest.PublishCatalogEvents(ctx, &ingestv1.PublishCatalogEventsRequest{Events: []*catalogv1.CatalogEvent{
		{EventId: "p-1", OccurredAt: at(120, 0), Kind: &catalogv1.CatalogEvent_PriceChange{PriceChange: &catalogv1.PriceChange{Sku: "SA", Location: "S1", Price: 9, Currency: "EUR"}}},
		{EventId: "i-1", OccurredAt: at(0, 0), Kind: &catalogv1.CatalogEvent_Item{Item: &catalogv1.ItemAttributes{Sku: "SA", Department: "D1", Category: "C1"}}},
	}})
	if err != nil || len(cat.GetResult().GetRejected()) > 0 {
		t.Fatalf("publish catalog: %v %v", err, cat.GetResult().GetRejected())
	}
	conn, err := chx.Open(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wantRows := uint64(len(orders))
	testenv.Eventually(t, 60*time.Second, "ingest stored every event", func() bool {
		var o, i, c uint64
		if conn.QueryRow(ctx, "SELECT count() FROM order_lines FINAL").Scan(&o) != nil ||
			conn.QueryRow(ctx, "SELECT count() FROM inventory_events FINAL").Scan(&i) != nil ||
			conn.QueryRow(ctx, "SELECT count() FROM catalog_events FINAL").Scan(&c) != nil {
			return false
		}
		return o == wantRows && i == 2 && c == 2
	})

	// the data set, against what was sent
	ds, censored, err := loadClickHouse(ctx, conn, chRange{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if ds.Days != days || ds.Start != start || len(ds.Series) != 3 || censored != 5 {
		t.Fatalf("data set: %d days from %s, %d series, %d censored; want %d from %s, 3, 5", ds.Days, ds.Start, len(ds.Series), censored, days, start)
	}
	// the series by units: C, B, A
	for i, sku := range []string{"SC", "SB", "SA"} {
		s := ds.Series[i]
		if s.ID != sku+"|S1" || s.Item != sku || s.Store != "S1" {
			t.Fatalf("series %d: %s (%s, %s), want %s|S1", i, s.ID, s.Item, s.Store, sku)
		}
		exp := append([]float64(nil), want[sku]...)
		if sku == "SB" {
			sum := 0.0
			for d := 72; d < 100; d++ {
				sum += exp[d]
			}
			for d := 100; d <= 104; d++ {
				exp[d] = sum / 28 // the mean of the 28 days before the stockout
			}
		}
		for d := range days {
			if math.Abs(s.Values[d]-exp[d]) > 1e-9 {
				t.Fatalf("%s day %d: %v, want %v", sku, d, s.Values[d], exp[d])
			}
		}
	}
	a := ds.Series[2]
	if a.Dept != "D1" || a.Cat != "C1" || ds.Series[0].Dept != "all" {
		t.Errorf("departments: A %s/%s, C %s", a.Dept, a.Cat, ds.Series[0].Dept)
	}
	// A's price: unknown before day 28, then the mean price of the sales
	// 28 days before (2, cancellations excluded), 9 from day 120 on
	for _, c := range []struct {
		day   int
		price float64
	}{{27, math.NaN()}, {28, 2}, {119, 2}, {120, 9}, {149, 9}} {
		if p := a.Prices[c.day]; p != c.price && !(math.IsNaN(p) && math.IsNaN(c.price)) {
			t.Errorf("A's price on day %d: %v, want %v", c.day, p, c.price)
		}
	}

	// train on it: registry on by default with -data clickhouse
	dir := t.TempDir()
	run := func(extra ...string) string {
		args := append([]string{"train", "--data", "clickhouse", "--clickhouse.addr", ch.Addr, "--clickhouse.database", ch.Database,
			"--rounds", "30", "--max-depth", "3", "--out", dir}, extra...)
		var out, errOut strings.Builder
		if err := Run(ctx, args, func(string) string { return "" }, &out, &errOut); err != nil {
			t.Fatalf("train %v: %v\n%s%s", extra, err, out.String(), errOut.String())
		}
		t.Log("\n" + out.String())
		return out.String()
	}
	first := run()
	if !strings.Contains(first, "3 series x 150 days from "+start.String()+", 5 stockout days censored") {
		t.Errorf("no data set line in\n%s", first)
	}
	version := regexp.MustCompile(`artefact (gbt-[0-9a-f]{12})`).FindStringSubmatch(first)
	if version == nil || !strings.Contains(first, "registry: "+version[1]+" recorded as champion") {
		t.Fatalf("the first model should become the champion:\n%s", first)
	}
	reg := modelregistry.New(conn)
	champ, ok, err := reg.Champion(ctx)
	if err != nil || !ok || champ.Version != version[1] || champ.DataSet != "clickhouse" || !math.IsNaN(champ.ChampionWRMSSE) ||
		champ.WRMSSE <= 0 || champ.TrainSeconds <= 0 || !strings.Contains(champ.MetricsJSON, `"combined_wrmsse"`) {
		t.Fatalf("champion %+v %v %v", champ, ok, err)
	}
	if _, err := modelregistry.LoadSeries(champ.Artefact); err != nil {
		t.Errorf("series codes of the artefact: %v", err)
	}
	// the same model again: compared with itself, it stays the champion
	if again := run(); !strings.Contains(again, "keep the champion") || !strings.Contains(again, "recorded as champion") {
		t.Errorf("retraining the same model:\n%s", again)
	}
	// another model, never promoted: a challenger compared with the champion
	other := run("--seed", "7", "--rounds", "20", "--promote", "never")
	v2 := regexp.MustCompile(`artefact (gbt-[0-9a-f]{12})`).FindStringSubmatch(other)
	if v2 == nil || v2[1] == version[1] || !strings.Contains(other, "recorded as challenger") {
		t.Fatalf("second model:\n%s", other)
	}
	m2, _, err := reg.Get(ctx, v2[1])
	if err != nil || m2.ChampionVersion != version[1] || math.Abs(m2.ChampionWRMSSE-champ.WRMSSE) > 1e-12 {
		t.Errorf("challenger %+v (%v): want compared with %s at %v", m2, err, version[1], champ.WRMSSE)
	}
	if c, _, _ := reg.Champion(ctx); c.Version != version[1] {
		t.Errorf("champion %s after -promote never, want %s", c.Version, version[1])
	}
	// forced: the second model becomes the champion, the first is retired
	run("--seed", "7", "--rounds", "20", "--promote", "force")
	list, err := reg.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, m := range list {
		status[m.Version] = m.Status
	}
	if len(list) != 2 || status[v2[1]] != "champion" || status[version[1]] != "retired" {
		t.Errorf("registry after -promote force: %v", status)
	}
	// the first settings again (better than the forced champion on the
	// same days): promoted automatically
	back := run()
	if !strings.Contains(back, "promote "+version[1]) || !strings.Contains(back, "registry: "+version[1]+" recorded as champion") {
		t.Errorf("a better model should be promoted:\n%s", back)
	}
	if c, _, _ := reg.Champion(ctx); c.Version != version[1] || c.ChampionVersion != v2[1] {
		t.Errorf("champion %s compared with %s, want %s compared with %s", c.Version, c.ChampionVersion, version[1], v2[1])
	}
}
