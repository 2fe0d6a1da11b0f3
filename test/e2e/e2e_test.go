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
	// Built before the test's deadline starts: the build alone took 4.5
	// minutes on a loaded machine.
	binDir := stacktest.BuildServices(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))

	st, err := stack.Start(ctx, stack.Config{
		Dir:        t.TempDir(),
		BinDir:     binDir,
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
	// Only the platform's inventory events: the replenishment service's
	// detected stockouts go to stockouts.v1, not back into inventory.v1.
	if err := conn.QueryRow(ctx, "SELECT count() FROM inventory_events FINAL").Scan(&n); err != nil {
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

	// 4. Redis features equal the CSV's daily sums, for every series; no
	// day is flagged out of stock (the replay reports no stockout, and the
	// replenishment service's detections do not come back as input).
	if flagged := checkFeatures(ctx, t, st, want.daily); flagged != 0 {
		t.Errorf("features: %d days flagged out of stock, want 0", flagged)
	}

	// 5. One forecast for every (series, demand event), nothing else.
	forecasts := readAll(ctx, t, adm, st.Brokers(), topics.Forecasts)
	bySeries, forecastFor := map[string][]*forecastv1.ForecastEvent{}, map[string]int{}
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
	wantForecasts := map[string]bool{}
	for id := range want.demandEvents {
		wantForecasts[id] = true
	}
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

	// 5b. The stockout periods the position shows (on hand reaching 0 and
	// coming back, by the documented rule) are on stockouts.v1 and in
	// ClickHouse, exactly.
	wantStockouts := expectStockouts(bySeries)
	if len(wantStockouts) == 0 {
		t.Error("the replay should run some series out of stock")
	}
	gotStockouts := pollStockouts(ctx, t, adm, st.Brokers(), len(wantStockouts))
	if g, w := fmt.Sprint(gotStockouts), fmt.Sprint(stockoutLines(wantStockouts)); g != w {
		t.Errorf("stockouts.v1:\n got  %s\n want %s", g, w)
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM stockouts FINAL").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if int(n) != len(wantStockouts) {
		t.Errorf("stockouts FINAL = %d rows, want %d", n, len(wantStockouts))
	}

	// 6. The proposals are exactly the documented policy's decisions on
	// those forecasts, on the topic and in ClickHouse.
	wantProps := expectProposals(t, bySeries)
	if len(wantProps) == 0 {
		t.Fatal("the replay should cross some reorder points")
	}
	gotProps := readProposals(ctx, t, adm, st.Brokers())
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
	reasons := map[string]int{}
	for _, p := range gotProps {
		reasons[strings.TrimPrefix(p.GetReason().String(), "PROPOSAL_REASON_")]++
	}
	t.Logf("replayed %d lines: %d order lines, %d adjustments, %d rejected, %d series, %d forecasts, %d proposals %v, %d stockout events",
		lines, want.orderLines, want.adjustments, len(want.rejected), len(want.daily), len(forecasts), len(wantProps), reasons, len(wantStockouts))

	// 8. Determinism: the same input through a stack with one partition per
	// topic instead of three (other batches, one consumer for every series)
	// gives byte-identical proposals and the same stockout events for every
	// series whose events reached demand.v1 in the same order. Only a series
	// with events on two raw topics (orders.v1 and an inventory.v1
	// adjustment) may be interleaved differently by ingest (docs/design.md,
	// "Order across raw topics"); its decisions then follow its other order.
	if testing.Short() {
		return
	}
	again := replayAgain(ctx, t, binDir, data, 1, log)
	twoTopics := map[string]bool{}
	for _, l := range csvLines {
		if l.kind() == "adjustment" {
			twoTopics[l.sku+"|online"] = true
		}
	}
	first := runOutput{proposals: map[string]map[string]string{}, stockouts: map[string][]string{}, order: eventOrder(bySeries)}
	for id, p := range gotProps {
		if first.proposals[p.GetSeriesKey()] == nil {
			first.proposals[p.GetSeriesKey()] = map[string]string{}
		}
		first.proposals[p.GetSeriesKey()][id] = marshal(t, p)
	}
	for _, s := range gotStockouts {
		series := strings.Fields(s)[1]
		first.stockouts[series] = append(first.stockouts[series], s)
	}
	same, reordered, notCompared := 0, 0, 0
	for series, order := range first.order {
		if again.order[series] != order {
			reordered++
			notCompared += len(first.proposals[series])
			if !twoTopics[series] {
				t.Errorf("second run: series %s got its events in another order, and it has events on one raw topic only", series)
			}
			continue
		}
		if g, w := fmt.Sprint(again.proposals[series]), fmt.Sprint(first.proposals[series]); g != w {
			t.Errorf("second run: series %s: %d proposals differ from the first run's %d", series, len(again.proposals[series]), len(first.proposals[series]))
		}
		if g, w := fmt.Sprint(again.stockouts[series]), fmt.Sprint(first.stockouts[series]); g != w {
			t.Errorf("second run: series %s: stockouts %v, want %v", series, g, w)
		}
		same += len(first.proposals[series])
	}
	if len(again.order) != len(first.order) {
		t.Errorf("second run: %d series, want %d", len(again.order), len(first.order))
	}
	t.Logf("second run (1 partition): %d of %d proposals byte-identical; %d series (of %d with an inventory.v1 adjustment) got their raw events in another order, their %d proposals not compared",
		same, len(gotProps), reordered, len(twoTopics), notCompared)
}

// runOutput is what a replay produced, by series: proposals by id (their
// deterministic protobuf bytes), stockout lines, and the order of the
// series' events (its forecasts' event ids).
type runOutput struct {
	proposals map[string]map[string]string
	stockouts map[string][]string
	order     map[string]string
}

// eventOrder is each series' event ids in forecasts.v1 order (the order
// of demand.v1, which everything downstream follows).
func eventOrder(bySeries map[string][]*forecastv1.ForecastEvent) map[string]string {
	out := make(map[string]string, len(bySeries))
	for series, fs := range bySeries {
		ids := make([]string, len(fs))
		for i, f := range fs {
			ids[i] = f.GetEventId()
		}
		out[series] = strings.Join(ids, " ")
	}
	return out
}

// replayAgain replays the same lines through a new stack with the given
// partitions and reads what it produced.
func replayAgain(ctx context.Context, t *testing.T, binDir, data string, partitions int, log *slog.Logger) runOutput {
	t.Helper()
	st, err := stack.Start(ctx, stack.Config{
		Dir:        t.TempDir(),
		BinDir:     binDir,
		Partitions: partitions,
		Logger:     log,
	})
	if err != nil {
		t.Fatalf("start second stack: %v", err)
	}
	defer func() {
		if err := st.Stop(); err != nil {
			t.Errorf("stop second stack: %v", err)
		}
	}()
	sum, err := replay.New(replay.Config{
		Data: data, Limit: lines, InitialStock: true, StallTimeout: 2 * time.Minute,
		NonProductSKUs: keys(nonProduct),
	}, st.Kafka(), log, nil).Run(ctx)
	if err != nil || sum.Read != lines || sum.Unaccounted != 0 {
		t.Fatalf("second replay: %v (summary %+v)", err, sum)
	}
	kcl, err := kgo.NewClient(kgo.SeedBrokers(st.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer kcl.Close()
	adm := kadm.NewClient(kcl)
	out := runOutput{proposals: map[string]map[string]string{}, stockouts: map[string][]string{}}
	for id, p := range readProposals(ctx, t, adm, st.Brokers()) {
		if out.proposals[p.GetSeriesKey()] == nil {
			out.proposals[p.GetSeriesKey()] = map[string]string{}
		}
		out.proposals[p.GetSeriesKey()][id] = marshal(t, p)
	}
	// The replay waits until replenishment is drained: its stockouts are
	// produced with its proposals.
	for _, s := range pollStockouts(ctx, t, adm, st.Brokers(), 0) {
		series := strings.Fields(s)[1]
		out.stockouts[series] = append(out.stockouts[series], s)
	}
	bySeries := map[string][]*forecastv1.ForecastEvent{}
	for _, r := range readAll(ctx, t, adm, st.Brokers(), topics.Forecasts) {
		var f forecastv1.ForecastEvent
		if err := proto.Unmarshal(r.Value, &f); err != nil {
			t.Fatal(err)
		}
		bySeries[f.GetSeriesKey()] = append(bySeries[f.GetSeriesKey()], &f)
	}
	out.order = eventOrder(bySeries)
	return out
}

// readProposals reads replenishment.v1 by proposal id; an id published
// twice is an error.
func readProposals(ctx context.Context, t *testing.T, adm *kadm.Client, brokers []string) map[string]*replenishmentv1.Proposal {
	t.Helper()
	got := map[string]*replenishmentv1.Proposal{}
	twice := 0
	for _, r := range readAll(ctx, t, adm, brokers, topics.Proposals) {
		var p replenishmentv1.Proposal
		if err := proto.Unmarshal(r.Value, &p); err != nil {
			t.Fatal(err)
		}
		if got[p.GetProposalId()] != nil {
			twice++
		}
		got[p.GetProposalId()] = &p
	}
	if twice > 0 {
		t.Errorf("%d proposals published twice", twice)
	}
	return got
}

// marshal is a proposal's deterministic protobuf encoding.
func marshal(t *testing.T, p *replenishmentv1.Proposal) string {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// pollStockouts reads stockouts.v1 until it holds at least want records (or
// a deadline passes) and returns them as sorted lines "id series kind day".
func pollStockouts(ctx context.Context, t *testing.T, adm *kadm.Client, brokers []string, want int) []string {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; {
		var out []string
		for _, r := range readAll(ctx, t, adm, brokers, topics.Stockouts) {
			var ev inventoryv1.InventoryEvent
			if err := proto.Unmarshal(r.Value, &ev); err != nil {
				t.Fatal(err)
			}
			kind := "started"
			if ev.GetStockoutEnded() != nil {
				kind = "ended"
			} else if ev.GetStockoutStarted() == nil {
				t.Fatalf("stockouts.v1 offset %d: %v is no stockout event", r.Offset, &ev)
			}
			series := topics.SeriesKey(ev.GetSku(), ev.GetLocation())
			if string(r.Key) != series || header(r, topics.HeaderEventID) != ev.GetEventId() {
				t.Fatalf("stockouts.v1 offset %d: key %q header %q for %v", r.Offset, r.Key, header(r, topics.HeaderEventID), &ev)
			}
			out = append(out, ev.GetEventId()+" "+series+" "+kind+" "+ev.GetOccurredAt().AsTime().UTC().Format(time.DateOnly))
		}
		if len(out) >= want || time.Now().After(deadline) {
			sort.Strings(out)
			return out
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stockoutLines are expected stockouts as pollStockouts returns them.
func stockoutLines(want []expectedStockout) []string {
	out := make([]string, 0, len(want))
	for _, s := range want {
		kind := "ended"
		if s.started {
			kind = "started"
		}
		out = append(out, s.id+" "+s.series+" "+kind+" "+s.day)
	}
	sort.Strings(out)
	return out
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
	// Outputs are written in transactions: read committed records only,
	// and the markers too (skipped), which take offsets up to the end.
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	if len(left) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for len(left) > 0 {
		fs := cl.PollFetches(rctx)
		if err := rctx.Err(); err != nil {
			t.Fatalf("read %s: got %d records, partitions %v not read to their end: %v", topic, len(out), left, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := left[r.Partition]
			if !ok {
				return
			}
			if r.Offset >= end-1 { // at the end, or past it (the end was an aborted record)
				delete(left, r.Partition)
			}
			if r.Offset < end && !r.Attrs.IsControl() {
				out = append(out, r)
			}
		})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].Offset < out[j].Offset
	})
	return out
}

// checkFeatures compares every series' daily history with the CSV and
// returns how many days are flagged out of stock.
func checkFeatures(ctx context.Context, t *testing.T, st *stack.Stack, want map[string]map[string]float64) int {
	t.Helper()
	flagged := 0
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
			if d.GetStockout() {
				flagged++
			}
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
	return flagged
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
