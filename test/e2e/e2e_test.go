// Package e2e runs the four services as separate processes on real
// redis-server, clickhouse-server and the embedded Kafka-protocol broker,
// replays real Online Retail order lines through them, and checks every
// store and topic against values computed independently from the CSV.
package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/internal/replay"
	"github.com/stockcast/stockcast/internal/stack"
	"github.com/stockcast/stockcast/internal/stack/stacktest"
	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/grpcx"
	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/topics"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"
	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"
)

// lines is how many real order lines the test replays (about four trading
// days of the shop).
const lines = 6000

func dataPath(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../../data/online-retail/online_retail.csv.gz")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the shipped data set is missing: %v", err)
	}
	return p
}

func TestPipelineEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))

	st, err := stack.Start(ctx, stack.Config{
		Dir:        t.TempDir(),
		BinDir:     stacktest.BuildServices(t),
		Partitions: 3,
		Logger:     log,
	})
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = st.Stop()
		}
	}()

	data := dataPath(t)
	csvLines := readCSV(t, data, lines)
	want := expect(csvLines)

	// 1. Replay the real lines (with an initial stock position per item) and
	// wait until every one is accounted for.
	sum, err := replay.New(replay.Config{
		Data: data, Limit: lines, InitialStock: true, StallTimeout: 2 * time.Minute,
		NonProductSKUs: keys(nonProduct),
	}, st.Kafka(), log, nil).Run(ctx)
	if err != nil {
		t.Fatalf("replay: %v (summary %+v)", err, sum)
	}
	if sum.Read != lines || sum.Unaccounted != 0 {
		t.Fatalf("replay read %d lines, %d unaccounted; want %d, 0", sum.Read, sum.Unaccounted, lines)
	}

	// 2. Hostile input after the replay: every one must land in a DLQ with
	// its reason, and change nothing else.
	bad := injectBad(ctx, t, st, csvLines)
	for id, reason := range bad {
		want.rejected[id] = reason
	}

	kcl, err := kgo.NewClient(kgo.SeedBrokers(st.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer kcl.Close()
	adm := kadm.NewClient(kcl)

	// The DLQs hold exactly the rejected real lines and the hostile records.
	dlq := pollDLQ(ctx, t, adm, st.Brokers(), len(want.rejected))
	if fmt.Sprint(sortedMap(dlq)) != fmt.Sprint(sortedMap(want.rejected)) {
		t.Fatalf("DLQ by event id:\n got  %v\n want %v", sortedMap(dlq), sortedMap(want.rejected))
	}

	// 3. ClickHouse history equals the CSV.
	conn, err := chx.Open(ctx, st.ClickHouse())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM order_lines FINAL").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if int(n) != want.orderLines {
		t.Errorf("order_lines FINAL = %d rows, want %d", n, want.orderLines)
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM order_lines FINAL WHERE is_demand = 0").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if int(n) != want.notDemandRows {
		t.Errorf("order_lines not demand = %d, want %d", n, want.notDemandRows)
	}
	// (The replenishment service's own stockout events are counted in 5.)
	if err := conn.QueryRow(ctx, "SELECT count() FROM inventory_events FINAL WHERE NOT startsWith(event_id, 'replenishment-stockout:')").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if int(n) != want.adjustments+sum.InitialStock {
		t.Errorf("inventory_events FINAL = %d, want %d adjustments + %d initial stock", n, want.adjustments, sum.InitialStock)
	}
	rows, err := conn.Query(ctx, "SELECT series_key, toString(day), sum(quantity) FROM order_lines FINAL WHERE is_demand = 1 GROUP BY series_key, day")
	if err != nil {
		t.Fatal(err)
	}
	gotDaily := map[string]map[string]float64{}
	for rows.Next() {
		var series, day string
		var q float64
		if err := rows.Scan(&series, &day, &q); err != nil {
			t.Fatal(err)
		}
		if gotDaily[series] == nil {
			gotDaily[series] = map[string]float64{}
		}
		gotDaily[series][day] = q
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	compareDaily(t, "ClickHouse", gotDaily, want.daily)

	// 4. Redis features equal the CSV's daily sums, for every series.
	checkFeatures(ctx, t, st, want.daily)

	// 5. One forecast for every (series, demand event), nothing else. The
	// replenishment service publishes the stockout periods it sees (on hand
	// reaching 0 and coming back) to inventory.v1; they come back as
	// forecasts too, after the replay is accounted for: poll until each
	// expected one (from the other forecasts, by the documented rule) is there.
	var forecasts []*kgo.Record
	var bySeries map[string][]*forecastv1.ForecastEvent
	var forecastFor map[string]int
	var wantStockouts []expectedStockout
	for deadline := time.Now().Add(2 * time.Minute); ; {
		forecasts = readAll(ctx, t, adm, st.Brokers(), topics.Forecasts)
		bySeries, forecastFor = map[string][]*forecastv1.ForecastEvent{}, map[string]int{}
		for _, r := range forecasts {
			var f forecastv1.ForecastEvent
			if err := proto.Unmarshal(r.Value, &f); err != nil {
				t.Fatalf("forecast at offset %d: %v", r.Offset, err)
			}
			if string(r.Key) != f.GetSeriesKey() || f.GetCause().GetEventId() != f.GetEventId() {
				t.Fatalf("forecast %s: key %q series %q cause %q", f.GetForecastId(), r.Key, f.GetSeriesKey(), f.GetCause().GetEventId())
			}
			forecastFor[f.GetEventId()]++
			bySeries[f.GetSeriesKey()] = append(bySeries[f.GetSeriesKey()], &f)
		}
		wantStockouts = expectStockouts(bySeries)
		missing := 0
		for _, s := range wantStockouts {
			if forecastFor[s.id] == 0 {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(wantStockouts) == 0 {
		t.Error("the replay should run some series out of stock")
	}
	wantForecasts := map[string]bool{}
	for id := range want.demandEvents {
		wantForecasts[id] = true
	}
	for _, s := range wantStockouts {
		wantForecasts[s.id] = true
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM inventory_events FINAL WHERE startsWith(event_id, 'replenishment-stockout:')").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if int(n) != len(wantStockouts) {
		t.Errorf("inventory_events FINAL has %d stockout events of the replenishment service, want %d", n, len(wantStockouts))
	}
	// The stockout days reach the feature service's history (censored days).
	checkStockoutFlags(ctx, t, st, wantStockouts)
	stock := 0
	for id := range forecastFor {
		if strings.HasPrefix(id, "or-stock-") {
			wantForecasts[id] = true
			stock++
		}
	}
	if stock != sum.InitialStock {
		t.Errorf("forecasts for %d initial stock snapshots, want %d", stock, sum.InitialStock)
	}
	for id := range wantForecasts {
		if forecastFor[id] != 1 {
			t.Errorf("event %s has %d forecasts, want 1", id, forecastFor[id])
		}
	}
	for id := range forecastFor {
		if !wantForecasts[id] {
			t.Errorf("forecast for unexpected event %s", id)
		}
	}
	if len(forecasts) != len(wantForecasts) {
		t.Errorf("forecasts.v1 has %d records, want %d", len(forecasts), len(wantForecasts))
	}

	// 6. The proposals are exactly the documented policy's decisions on
	// those forecasts, on the topic and in ClickHouse.
	wantProps := expectProposals(t, bySeries)
	if len(wantProps) == 0 {
		t.Fatal("the replay should cross some reorder points")
	}
	// The proposals of the last stockout forecasts may still be on their way.
	var gotProps map[string]*replenishmentv1.Proposal
	for deadline := time.Now().Add(time.Minute); ; {
		gotProps = map[string]*replenishmentv1.Proposal{}
		twice := 0
		for _, r := range readAll(ctx, t, adm, st.Brokers(), topics.Proposals) {
			var p replenishmentv1.Proposal
			if err := proto.Unmarshal(r.Value, &p); err != nil {
				t.Fatal(err)
			}
			if gotProps[p.GetProposalId()] != nil {
				twice++
			}
			gotProps[p.GetProposalId()] = &p
		}
		if len(gotProps) >= len(wantProps) || time.Now().After(deadline) {
			if twice > 0 {
				t.Errorf("%d proposals published twice", twice)
			}
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(gotProps) != len(wantProps) {
		t.Errorf("replenishment.v1 has %d proposals, want %d", len(gotProps), len(wantProps))
	}
	for _, w := range wantProps {
		g := gotProps[w.id]
		if g == nil {
			t.Errorf("missing proposal %s (series %s, event %s, qty %.0f)", w.id, w.series, w.eventID, w.quantity)
			continue
		}
		if g.GetQuantity() != w.quantity || g.GetReorderPoint() != w.rop || g.GetEventId() != w.eventID || g.GetReason().String() != w.reason {
			t.Errorf("proposal %s: qty %v rop %v event %s reason %v, want qty %v rop %v event %s reason %s",
				w.id, g.GetQuantity(), g.GetReorderPoint(), g.GetEventId(), g.GetReason(), w.quantity, w.rop, w.eventID, w.reason)
		}
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM proposals FINAL").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if int(n) != len(wantProps) {
		t.Errorf("proposals FINAL = %d rows, want %d", n, len(wantProps))
	}

	// 7. A clean stop.
	stopped = true
	if err := st.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	t.Logf("replayed %d lines: %d order lines, %d adjustments, %d rejected, %d series, %d forecasts, %d proposals",
		lines, want.orderLines, want.adjustments, len(want.rejected), len(want.daily), len(forecasts), len(wantProps))
}

// injectBad produces hostile records after the replay and returns event id
// (or a marker for records without one) -> expected reason.
func injectBad(ctx context.Context, t *testing.T, st *stack.Stack, real []csvLine) map[string]string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.Brokers()...), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	at := timestamppb.New(real[0].at)
	pb := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	first := real[0]
	recs := []*kgo.Record{
		// Not an event at all.
		{Topic: topics.Orders, Key: []byte("x|online"), Value: []byte("\x00\xffgarbage"), Headers: []kgo.RecordHeader{{Key: topics.HeaderEventID, Value: []byte("bad-garbage")}}},
		// JSON with a negative quantity.
		{Topic: topics.Orders, Key: []byte("85123A|online"), Value: []byte(`{"eventId":"bad-negative","occurredAt":"2010-12-01T09:00:00Z","type":"ORDER_LINE_TYPE_PLACED","orderId":"X1","sku":"85123A","location":"online","quantity":-5,"unitPrice":2.55,"currency":"GBP"}`),
			Headers: []kgo.RecordHeader{{Key: topics.HeaderContentType, Value: []byte(topics.ContentTypeJSON)}}},
		// An order line in the year 9999.
		{Topic: topics.Orders, Key: []byte("85123A|online"), Value: pb(&ordersv1.OrderLineEvent{EventId: "bad-future", OccurredAt: timestamppb.New(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)), Type: ordersv1.OrderLineType_ORDER_LINE_TYPE_PLACED, OrderId: "X2", Sku: "85123A", Location: "online", Quantity: 1, UnitPrice: 1, Currency: "GBP"})},
		// A stock snapshot without a SKU.
		{Topic: topics.Inventory, Key: []byte("|online"), Value: pb(&inventoryv1.InventoryEvent{EventId: "bad-nosku", OccurredAt: at, Location: "online", Kind: &inventoryv1.InventoryEvent_Snapshot{Snapshot: &inventoryv1.Snapshot{OnHand: 5}}})},
		// A real event id reused with different content.
		{Topic: topics.Orders, Key: []byte(first.sku + "|online"), Value: pb(&ordersv1.OrderLineEvent{EventId: first.id, OccurredAt: timestamppb.New(first.at), Type: ordersv1.OrderLineType_ORDER_LINE_TYPE_PLACED, OrderId: first.invoice, LineNumber: 1, Sku: first.sku, Location: "online", Quantity: first.qty + 1000, UnitPrice: first.price, Currency: "GBP"})},
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce hostile records: %v", err)
	}
	return map[string]string{
		"bad-garbage":  "undecodable",
		"bad-negative": "quantity_not_positive",
		"bad-future":   "occurred_at_in_future",
		"bad-nosku":    "missing_sku",
		first.id:       "duplicate_event_id_conflict",
	}
}

// pollDLQ reads the raw topics' DLQs until they hold want records (or the
// deadline passes) and returns event id -> reason. A record without an id
// is keyed by its stockcast-event-id header.
func pollDLQ(ctx context.Context, t *testing.T, adm *kadm.Client, brokers []string, want int) map[string]string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := map[string]string{}
		total := 0
		for _, topic := range []string{topics.DLQ(topics.Orders), topics.DLQ(topics.Inventory), topics.DLQ(topics.Catalog)} {
			for _, r := range readAll(ctx, t, adm, brokers, topic) {
				total++
				got[dlqEventID(r)] = header(r, topics.HeaderDLQReason)
			}
		}
		if total >= want || time.Now().After(deadline) {
			if total != len(got) {
				t.Errorf("DLQ has %d records for %d event ids", total, len(got))
			}
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dlqEventID decodes the original bytes to find the event id.
func dlqEventID(r *kgo.Record) string {
	var o ordersv1.OrderLineEvent
	if header(r, topics.HeaderContentType) == topics.ContentTypeJSON {
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(r.Value, &o); err == nil && o.GetEventId() != "" {
			return o.GetEventId()
		}
	}
	if r.Topic == topics.DLQ(topics.Inventory) {
		var inv inventoryv1.InventoryEvent
		if proto.Unmarshal(r.Value, &inv) == nil && inv.GetEventId() != "" {
			return inv.GetEventId()
		}
	}
	if proto.Unmarshal(r.Value, &o) == nil && o.GetEventId() != "" {
		return o.GetEventId()
	}
	return header(r, topics.HeaderEventID)
}

// readAll reads a topic from the start to its current end.
func readAll(ctx context.Context, t *testing.T, adm *kadm.Client, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	remaining := 0
	ends.Each(func(o kadm.ListedOffset) { remaining += int(o.Offset) })
	if remaining == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for len(out) < remaining {
		fs := cl.PollFetches(rctx)
		if err := rctx.Err(); err != nil {
			t.Fatalf("read %s: got %d of %d records: %v", topic, len(out), remaining, err)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].Offset < out[j].Offset
	})
	return out
}

func checkFeatures(ctx context.Context, t *testing.T, st *stack.Stack, want map[string]map[string]float64) {
	t.Helper()
	conn, err := grpcx.Dial(st.GRPC(stack.Feature), telemetry.NewDiscard())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := featurev1.NewFeatureServiceClient(conn)
	got := map[string]map[string]float64{}
	for series, days := range want {
		sku, loc, _ := topics.SplitSeriesKey(series)
		resp, err := client.GetFeatures(ctx, &featurev1.GetFeaturesRequest{Sku: sku, Location: loc, IncludeHistory: true})
		if err != nil {
			t.Fatalf("GetFeatures %s: %v", series, err)
		}
		got[series] = map[string]float64{}
		for _, d := range resp.GetHistory() {
			if d.GetQuantity() != 0 || days[d.GetDay()] != 0 {
				got[series][d.GetDay()] = d.GetQuantity()
			}
		}
		var total float64
		for _, q := range days {
			total += q
		}
		if math.Abs(resp.GetSnapshot().GetTotalDemand()-total) > 1e-9 {
			t.Errorf("features %s: total demand %v, want %v", series, resp.GetSnapshot().GetTotalDemand(), total)
		}
	}
	// Days whose net demand is zero (a line and its cancellation) are
	// indistinguishable from days without sales in the daily buckets.
	for _, days := range want {
		for d, q := range days {
			if q == 0 {
				delete(days, d)
			}
		}
	}
	compareDaily(t, "Redis", got, want)
}

func compareDaily(t *testing.T, store string, got, want map[string]map[string]float64) {
	t.Helper()
	bad := 0
	for series, days := range want {
		for day, q := range days {
			if g := got[series][day]; math.Abs(g-q) > 1e-9 {
				if bad++; bad <= 10 {
					t.Errorf("%s: %s on %s = %v, want %v", store, series, day, g, q)
				}
			}
		}
	}
	for series, days := range got {
		for day, q := range days {
			if _, ok := want[series][day]; !ok {
				if bad++; bad <= 10 {
					t.Errorf("%s: unexpected %s on %s = %v", store, series, day, q)
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d daily values differ from the CSV", store, bad)
	}
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedMap(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// checkStockoutFlags: the feature service's daily history marks the day of
// each stockout event the replenishment service published as (partly) out
// of stock, i.e. censored demand.
func checkStockoutFlags(ctx context.Context, t *testing.T, st *stack.Stack, want []expectedStockout) {
	t.Helper()
	conn, err := grpcx.Dial(st.GRPC(stack.Feature), telemetry.NewDiscard())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := featurev1.NewFeatureServiceClient(conn)
	flagged := map[string]map[string]bool{}
	bad := 0
	for _, s := range want {
		if flagged[s.series] == nil {
			sku, loc, _ := topics.SplitSeriesKey(s.series)
			resp, err := client.GetFeatures(ctx, &featurev1.GetFeaturesRequest{Sku: sku, Location: loc, IncludeHistory: true})
			if err != nil {
				t.Fatalf("GetFeatures %s: %v", s.series, err)
			}
			flagged[s.series] = map[string]bool{}
			for _, d := range resp.GetHistory() {
				if d.GetStockout() {
					flagged[s.series][d.GetDay()] = true
				}
			}
		}
		if !flagged[s.series][s.day] {
			if bad++; bad <= 10 {
				t.Errorf("features %s: day %s of stockout event %s (started %v) not flagged", s.series, s.day, s.id, s.started)
			}
		}
	}
	t.Logf("%d stockout events of the replenishment service over %d series, their days flagged in the features' history", len(want), len(flagged))
}
