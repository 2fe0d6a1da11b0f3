package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
	catalogv1 "github.com/stockcast/stockcast/proto/stockcast/catalog/v1"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	ingestv1 "github.com/stockcast/stockcast/proto/stockcast/ingest/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"
	"github.com/stockcast/stockcast/services/ingest/internal/consumer"
	"github.com/stockcast/stockcast/services/ingest/internal/store"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// stores are the real dependencies of one test.
type stores struct {
	brokers []string
	redis   string
	ch      chx.Config
}

// syncBuffer collects the app's log lines from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// running is an app.Run in a goroutine.
type running struct {
	grpcAddr, adminAddr string
	cancel              context.CancelFunc
	done                chan error
	logs                *syncBuffer
}

func start(t *testing.T, s stores) *running {
	t.Helper()
	r := &running{grpcAddr: testenv.FreeAddr(t), adminAddr: testenv.FreeAddr(t), done: make(chan error, 1), logs: &syncBuffer{}}
	args := []string{
		"-kafka.brokers", strings.Join(s.brokers, ","),
		// A session no stall of a loaded test process outlasts: an expired
		// one moves the partitions mid-batch (seen in pkg/kafkax under
		// -race at load 40 with 1 s); a stopped instance leaves the group.
		"-kafka.session-timeout", "30s",
		"-redis.addr", s.redis,
		"-clickhouse.addr", s.ch.Addr,
		"-clickhouse.database", s.ch.Database,
		"-grpc.addr", r.grpcAddr,
		"-admin.addr", r.adminAddr,
		"-log.level", "debug",
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- Run(ctx, args, func(string) string { return "" }, r.logs) }()
	t.Cleanup(func() {
		cancel()
		<-r.done
		if t.Failed() {
			t.Logf("ingest logs:\n%s", r.logs.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-r.done:
			t.Fatalf("ingest exited while starting: %v\n%s", err, r.logs.String())
		default:
		}
		resp, err := http.Get("http://" + r.adminAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			// Ready is set before the gRPC server listens (app.Run):
			// wait for its port too, or the first call is refused.
			if resp.StatusCode == http.StatusOK && listening(r.grpcAddr) {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest not ready after 60s: %v\n%s", err, r.logs.String())
		}
		time.Sleep(50 * time.Millisecond) // polling readiness over HTTP
	}
}

// listening reports whether something accepts connections on addr.
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// stop cancels the app and asserts a clean shutdown.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run returned %v after cancel", err)
		}
		r.done <- nil // for the cleanup
	case <-time.After(60 * time.Second):
		t.Fatalf("Run did not return within 60s of cancel")
	}
}

func (r *running) metric(t *testing.T, name string, labels string) float64 {
	t.Helper()
	v, ok := r.scrape(t, name, labels)
	if !ok {
		t.Fatalf("metric %s{%s} not exposed", name, labels)
	}
	return v
}

// metricOr is metric with a default for a series not exposed (yet).
func (r *running) metricOr(t *testing.T, name string, labels string, def float64) float64 {
	t.Helper()
	if v, ok := r.scrape(t, name, labels); ok {
		return v
	}
	return def
}

func (r *running) scrape(t *testing.T, name string, labels string) (float64, bool) {
	t.Helper()
	resp, err := http.Get("http://" + r.adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? ([0-9.e+-]+)$`)
	for _, m := range re.FindAllStringSubmatch(string(body), -1) {
		if strings.Contains(m[1], labels) {
			v, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				t.Fatal(err)
			}
			return v, true
		}
	}
	return 0, false
}

// The input: what platforms write to the raw topics.

var occurred = time.Date(2011, 12, 9, 10, 0, 0, 0, time.UTC)

func orderLine(id, sku string, typ ordersv1.OrderLineType, qty float64) *ordersv1.OrderLineEvent {
	return &ordersv1.OrderLineEvent{
		EventId: id, OccurredAt: timestamppb.New(occurred), Type: typ, OrderId: "536365", LineNumber: 1,
		Sku: sku, Location: "online", Quantity: qty, UnitPrice: 2.55, Currency: "GBP", CustomerId: "17850", Country: "United Kingdom",
	}
}

const (
	placed    = ordersv1.OrderLineType_ORDER_LINE_TYPE_PLACED
	cancelled = ordersv1.OrderLineType_ORDER_LINE_TYPE_CANCELLED
	returned  = ordersv1.OrderLineType_ORDER_LINE_TYPE_RETURNED
)

func pbRecord(t *testing.T, topic, key string, m proto.Message) *kgo.Record {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(key), Value: b}
}

func inventoryEvent(id string, kind any) *inventoryv1.InventoryEvent {
	ev := &inventoryv1.InventoryEvent{EventId: id, OccurredAt: timestamppb.New(occurred), Sku: "85123A", Location: "online"}
	switch k := kind.(type) {
	case *inventoryv1.Snapshot:
		ev.Kind = &inventoryv1.InventoryEvent_Snapshot{Snapshot: k}
	case *inventoryv1.PurchaseOrderPlaced:
		ev.Kind = &inventoryv1.InventoryEvent_PurchaseOrderPlaced{PurchaseOrderPlaced: k}
	}
	return ev
}

type inputs struct {
	recs    []*kgo.Record
	rejects map[int]string // index in recs -> reason
}

func mixedInput(t *testing.T) inputs {
	or5JSON := `{"event_id":"or-5","occurred_at":"2011-12-09T10:00:00Z","type":"ORDER_LINE_TYPE_PLACED","order_id":"536365",
		"line_number":1,"sku":"84406B","location":"online","quantity":3,"unit_price":2.55,"currency":"GBP",
		"customer_id":"17850","country":"United Kingdom"}`
	badCurrency := orderLine("or-7", "85123A", placed, 1)
	badCurrency.Currency = "gbp"
	future := orderLine("or-9", "85123A", placed, 1)
	future.OccurredAt = timestamppb.New(time.Now().Add(48 * time.Hour))
	recs := []*kgo.Record{
		0: pbRecord(t, topics.Orders, "85123A|online", orderLine("or-1", "85123A", placed, 6)),
		1: pbRecord(t, topics.Orders, "71053|online", orderLine("or-2", "71053", placed, 8)),
		2: pbRecord(t, topics.Orders, "85123A|online", orderLine("or-3", "85123A", cancelled, 2)),
		3: pbRecord(t, topics.Orders, "POST|online", orderLine("or-4", "POST", placed, 1)),
		4: {Topic: topics.Orders, Key: []byte("84406B|online"), Value: []byte(or5JSON),
			Headers: []kgo.RecordHeader{{Key: topics.HeaderContentType, Value: []byte(topics.ContentTypeJSON)}}},
		5:  pbRecord(t, topics.Orders, "85123A|online", orderLine("or-1", "85123A", placed, 6)), // exact duplicate of 0
		6:  pbRecord(t, topics.Orders, "71053|online", orderLine("or-2", "71053", placed, 9)),   // conflicts with 1
		7:  pbRecord(t, topics.Orders, "85123A|online", orderLine("or-6", "85123A", placed, 0)),
		8:  pbRecord(t, topics.Orders, "85123A|online", badCurrency),
		9:  {Topic: topics.Orders, Key: []byte("85123A|online"), Value: []byte{0xde, 0xad, 0xbe, 0xef, 0xff, 0xff}},
		10: {Topic: topics.Orders, Key: []byte("85123A|online"), Value: []byte(`{"event_id":"or-x","colour":"red"}`)},
		11: pbRecord(t, topics.Orders, "71053|online", orderLine("or-8", "71053", returned, 1)),
		12: pbRecord(t, topics.Orders, "85123A|online", future),
		// The protobuf form of the JSON event 4: the same content.
		13: pbRecord(t, topics.Orders, "84406B|online", &ordersv1.OrderLineEvent{EventId: "or-5", OccurredAt: timestamppb.New(occurred),
			Type: placed, OrderId: "536365", LineNumber: 1, Sku: "84406B", Location: "online", Quantity: 3, UnitPrice: 2.55,
			Currency: "GBP", CustomerId: "17850", Country: "United Kingdom"}),

		14: pbRecord(t, topics.Inventory, "85123A|online", inventoryEvent("inv-1", &inventoryv1.Snapshot{OnHand: 40})),
		15: pbRecord(t, topics.Inventory, "85123A|online", inventoryEvent("inv-2", &inventoryv1.PurchaseOrderPlaced{
			PurchaseOrderId: "po-1", Quantity: 24, ExpectedAt: timestamppb.New(occurred.Add(72 * time.Hour))})),
		16: pbRecord(t, topics.Inventory, "85123A|online", inventoryEvent("inv-3", &inventoryv1.Snapshot{OnHand: -1})),

		17: pbRecord(t, topics.Catalog, "85123A|online", &catalogv1.CatalogEvent{EventId: "cat-1", OccurredAt: timestamppb.New(occurred),
			Kind: &catalogv1.CatalogEvent_PriceChange{PriceChange: &catalogv1.PriceChange{Sku: "85123A", Location: "online", Price: 2.95, Currency: "GBP"}}}),
		18: pbRecord(t, topics.Catalog, "71053|online", &catalogv1.CatalogEvent{EventId: "cat-2", OccurredAt: timestamppb.New(occurred),
			Kind: &catalogv1.CatalogEvent_Promotion{Promotion: &catalogv1.PromotionWindow{Sku: "71053", Location: "online", PromotionId: "xmas",
				StartsAt: timestamppb.New(occurred), EndsAt: timestamppb.New(occurred.Add(72 * time.Hour)), DiscountPct: 20}}}),
		19: pbRecord(t, topics.Catalog, "85123A", &catalogv1.CatalogEvent{EventId: "cat-3", OccurredAt: timestamppb.New(occurred),
			Kind: &catalogv1.CatalogEvent_Item{Item: &catalogv1.ItemAttributes{Sku: "85123A", Description: "WHITE HANGING HEART", PackSize: 6}}}),
		20: pbRecord(t, topics.Catalog, "85123A|online", &catalogv1.CatalogEvent{EventId: "cat-4", OccurredAt: timestamppb.New(occurred)}),
	}
	return inputs{recs: recs, rejects: map[int]string{
		6: "duplicate_event_id_conflict", 7: "quantity_not_positive", 8: "invalid_currency", 9: "undecodable",
		10: "undecodable", 12: "occurred_at_in_future", 16: "quantity_negative", 20: "unknown_catalog_kind",
	}}
}

// demandSummary renders a demand.v1 record as "key event_id change".
func demandSummary(t *testing.T, r *kgo.Record) string {
	t.Helper()
	var de demandv1.DemandEvent
	if err := proto.Unmarshal(r.Value, &de); err != nil {
		t.Fatalf("demand.v1 record is not a DemandEvent: %v", err)
	}
	if header(r, topics.HeaderEventID) != de.GetEventId() || string(r.Key) != de.GetSeriesKey() {
		t.Fatalf("demand record key %q / event id header %q do not match %v", r.Key, header(r, topics.HeaderEventID), &de)
	}
	var change string
	switch c := de.GetChange().(type) {
	case *demandv1.DemandEvent_Demand:
		change = fmt.Sprintf("demand %+g %s", c.Demand.GetQuantity(), c.Demand.GetKind())
	case *demandv1.DemandEvent_Inventory:
		change = "inventory"
	case *demandv1.DemandEvent_Price:
		change = fmt.Sprintf("price %g", c.Price.GetPrice())
	case *demandv1.DemandEvent_Promotion:
		change = "promotion " + c.Promotion.GetPromotionId()
	case *demandv1.DemandEvent_Item:
		change = "item"
	}
	return fmt.Sprintf("%s %s %s %s", de.GetSeriesKey(), de.GetEventId(), de.GetDay(), change)
}

func demandSummaries(t *testing.T, brokers []string) []string {
	var out []string
	for _, r := range testenv.ReadTopics(t, brokers, topics.Demand) {
		out = append(out, demandSummary(t, r))
	}
	sort.Strings(out)
	return out
}

func dlqRecords(t *testing.T, brokers []string) []*kgo.Record {
	var out []*kgo.Record
	for _, topic := range consumer.Topics {
		out = append(out, testenv.ReadTopics(t, brokers, topics.DLQ(topic))...)
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

type tableCounts struct {
	orders, demandLines, nonDemand, inventory, catalog uint64
	demandSum                                          float64
}

func countRows(t *testing.T, cfg chx.Config) tableCounts {
	t.Helper()
	ctx := context.Background()
	conn, err := chx.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var c tableCounts
	if err := conn.QueryRow(ctx, `SELECT count(), countIf(is_demand = 1), countIf(is_demand = 0), sumIf(quantity, is_demand = 1)
		FROM order_lines FINAL`).Scan(&c.orders, &c.demandLines, &c.nonDemand, &c.demandSum); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT count() FROM inventory_events FINAL`).Scan(&c.inventory); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT count() FROM catalog_events FINAL`).Scan(&c.catalog); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestIngestEndToEnd(t *testing.T) {
	s := stores{brokers: testenv.Kafka(t), redis: testenv.Redis(t), ch: testenv.ClickHouse(t)}
	in := mixedInput(t)
	app := start(t, s)
	produce(t, s.brokers, in.recs)
	waitCommitted(t, s.brokers, consumer.Group, consumer.Topics...)

	wantDemand := []string{
		"71053|online cat-2 2011-12-09 promotion xmas",
		"71053|online or-2 2011-12-09 demand +8 DEMAND_KIND_ORDER",
		"71053|online or-8 2011-12-09 demand -1 DEMAND_KIND_RETURN",
		"84406B|online or-5 2011-12-09 demand +3 DEMAND_KIND_ORDER",
		"85123A cat-3 2011-12-09 item",
		"85123A|online cat-1 2011-12-09 price 2.95",
		"85123A|online inv-1 2011-12-09 inventory",
		"85123A|online inv-2 2011-12-09 inventory",
		"85123A|online or-1 2011-12-09 demand +6 DEMAND_KIND_ORDER",
		"85123A|online or-3 2011-12-09 demand -2 DEMAND_KIND_CANCELLATION",
	}
	sort.Strings(wantDemand)
	if got := demandSummaries(t, s.brokers); !equalStrings(got, wantDemand) {
		t.Fatalf("demand.v1:\n got %q\nwant %q", got, wantDemand)
	}

	checkDLQ := func(dlq []*kgo.Record) {
		t.Helper()
		if len(dlq) != len(in.rejects) {
			t.Fatalf("%d DLQ records, want %d", len(dlq), len(in.rejects))
		}
		for i, reason := range in.rejects {
			src := in.recs[i]
			found := false
			for _, r := range dlq {
				if bytes.Equal(r.Value, src.Value) && bytes.Equal(r.Key, src.Key) {
					found = true
					if r.Topic != topics.DLQ(src.Topic) || header(r, topics.HeaderDLQReason) != reason ||
						header(r, topics.HeaderDLQService) != "ingest" || header(r, topics.HeaderDLQDetail) == "" ||
						!strings.HasPrefix(header(r, topics.HeaderDLQSource), src.Topic+"/") {
						t.Errorf("DLQ record of input %d: topic %s, headers %v; want reason %s", i, r.Topic, r.Headers, reason)
					}
					if ct := header(src, topics.HeaderContentType); ct != "" && header(r, topics.HeaderContentType) != ct {
						t.Errorf("DLQ record of input %d lost its content-type header", i)
					}
				}
			}
			if !found {
				t.Errorf("input %d (%s) has no DLQ record with its original key and bytes", i, reason)
			}
		}
	}
	checkDLQ(dlqRecords(t, s.brokers))

	want := tableCounts{orders: 6, demandLines: 5, nonDemand: 1, inventory: 2, catalog: 3, demandSum: 6 + 8 - 2 + 3 - 1}
	if got := countRows(t, s.ch); got != want {
		t.Fatalf("ClickHouse FINAL counts %+v, want %+v", got, want)
	}

	// Push over gRPC: one new line, one already ingested, one invalid.
	conn, err := grpc.NewClient(app.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pushedBad := orderLine("or-11", "85123A", placed, -1)
	resp, err := ingestv1.NewIngestServiceClient(conn).PublishOrderLines(ctx, &ingestv1.PublishOrderLinesRequest{Events: []*ordersv1.OrderLineEvent{
		orderLine("or-10", "85123A", placed, 4),
		orderLine("or-1", "85123A", placed, 6),
		pushedBad,
	}})
	if err != nil {
		t.Fatal(err)
	}
	res := resp.GetResult()
	if res.GetAccepted() != 1 || res.GetDuplicates() != 1 || len(res.GetRejected()) != 1 {
		t.Fatalf("PublishOrderLines result %v", res)
	}
	if r := res.GetRejected()[0]; r.GetIndex() != 2 || r.GetEventId() != "or-11" || r.GetReason() != "quantity_not_positive" || r.GetDetail() == "" {
		t.Fatalf("rejection %v", r)
	}
	// The accepted line is on orders.v1 when the call returns.
	var pushed []*kgo.Record
	for _, r := range testenv.ReadTopics(t, s.brokers, topics.Orders) {
		if header(r, topics.HeaderEventID) == "or-10" {
			pushed = append(pushed, r)
		}
	}
	if len(pushed) != 1 || string(pushed[0].Key) != "85123A|online" || header(pushed[0], topics.HeaderContentType) != topics.ContentTypeProtobuf {
		t.Fatalf("pushed records on orders.v1: %v", pushed)
	}
	var got ordersv1.OrderLineEvent
	if err := proto.Unmarshal(pushed[0].Value, &got); err != nil || !proto.Equal(&got, orderLine("or-10", "85123A", placed, 4)) {
		t.Fatalf("pushed record value %v, %v", &got, err)
	}
	// The refused one is dead-lettered.
	var pushedDLQ []*kgo.Record
	for _, r := range testenv.ReadTopics(t, s.brokers, topics.DLQ(topics.Orders)) {
		if header(r, topics.HeaderDLQSource) == "grpc/orders.v1/2" {
			pushedDLQ = append(pushedDLQ, r)
		}
	}
	wantBytes, _ := proto.Marshal(pushedBad)
	if len(pushedDLQ) != 1 || !bytes.Equal(pushedDLQ[0].Value, wantBytes) || header(pushedDLQ[0], topics.HeaderDLQReason) != "quantity_not_positive" {
		t.Fatalf("DLQ records of the push: %v", pushedDLQ)
	}

	waitCommitted(t, s.brokers, consumer.Group, consumer.Topics...)
	wantDemand = append(wantDemand, "85123A|online or-10 2011-12-09 demand +4 DEMAND_KIND_ORDER")
	sort.Strings(wantDemand)
	if got := demandSummaries(t, s.brokers); !equalStrings(got, wantDemand) {
		t.Fatalf("demand.v1 after the push:\n got %q\nwant %q", got, wantDemand)
	}
	want.orders, want.demandLines, want.demandSum = 7, 6, want.demandSum+4
	if got := countRows(t, s.ch); got != want {
		t.Fatalf("ClickHouse FINAL counts after the push %+v, want %+v", got, want)
	}

	for _, m := range []struct {
		name, labels string
		want         float64
	}{
		{"stockcast_ingest_accepted_total", `topic="orders.v1"`, 7},
		{"stockcast_ingest_accepted_total", `topic="inventory.v1"`, 2},
		{"stockcast_ingest_accepted_total", `topic="catalog.v1"`, 3},
		{"stockcast_ingest_duplicates_total", `topic="orders.v1"`, 3}, // inputs 5 and 13, and the push
		{"stockcast_ingest_non_demand_total", "", 1},
		{"stockcast_rejected_total", `reason="undecodable"`, 2},
		{"stockcast_rejected_total", `reason="quantity_not_positive"`, 2}, // input 7 and the push
		{"stockcast_rejected_total", `reason="duplicate_event_id_conflict"`, 1},
	} {
		if got := app.metric(t, m.name, m.labels); got != m.want {
			t.Errorf("%s{%s} = %v, want %v", m.name, m.labels, got, m.want)
		}
	}
	app.stop(t)

	// Restart on the same stores and replay the same input: nothing new
	// reaches demand.v1 or ClickHouse; the rejects are rejected again.
	dlqBefore := len(dlqRecords(t, s.brokers))
	app = start(t, s)
	produce(t, s.brokers, in.recs)
	waitCommitted(t, s.brokers, consumer.Group, consumer.Topics...)
	if got := demandSummaries(t, s.brokers); !equalStrings(got, wantDemand) {
		t.Fatalf("demand.v1 after the replay:\n got %q\nwant %q", got, wantDemand)
	}
	if got := countRows(t, s.ch); got != want {
		t.Fatalf("ClickHouse FINAL counts after the replay %+v, want %+v", got, want)
	}
	dlq := dlqRecords(t, s.brokers)
	if len(dlq) != dlqBefore+len(in.rejects) {
		t.Fatalf("%d DLQ records after the replay, want %d", len(dlq), dlqBefore+len(in.rejects))
	}
	var replayed []*kgo.Record
	for _, r := range dlq {
		src := header(r, topics.HeaderDLQSource)
		if !strings.HasPrefix(src, "grpc/") {
			replayed = append(replayed, r)
		}
	}
	// Each reject of the input is now dead-lettered twice.
	for i := range in.rejects {
		n := 0
		for _, r := range replayed {
			if bytes.Equal(r.Value, in.recs[i].Value) {
				n++
			}
		}
		if n != 2 {
			t.Errorf("input %d dead-lettered %d times over two runs, want 2", i, n)
		}
	}
	if got := app.metric(t, "stockcast_ingest_duplicates_total", `topic="orders.v1"`); got != 8 {
		// 0, 1, 2, 3, 4, 5, 11, 13 of the replay are duplicates of accepted events.
		t.Errorf("duplicates after the replay = %v, want 8", got)
	}

	rdb := redis.NewClient(&redis.Options{Addr: s.redis})
	defer rdb.Close()
	// The seen ids are fields of small hashes (store.Seen), which expire
	// at least the TTL after the ids were remembered.
	keys, err := rdb.Keys(context.Background(), "stockcast:ingest:seen:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	ids := int64(0)
	for _, k := range keys {
		n, err := rdb.HLen(context.Background(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		ids += n
		if ttl, err := rdb.TTL(context.Background(), k).Result(); err != nil || ttl < 167*time.Hour || ttl > 211*time.Hour {
			t.Fatalf("TTL of seen key %s %v, %v; want 168h-210h", k, ttl, err)
		}
	}
	if ids != 12 {
		t.Fatalf("seen ids %d in %d keys; want 12 (7 order lines, 2 inventory, 3 catalog events)", ids, len(keys))
	}
	app.stop(t)
}

func TestConfigPrint(t *testing.T) {
	var out bytes.Buffer
	err := Run(context.Background(), []string{"-config.print", "-clickhouse.password", "secret"},
		func(k string) string { return map[string]string{"STOCKCAST_INGEST_DEDUP_TTL": "24h"}[k] }, &out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ingest.dedup-ttl=24h0m0s", "ingest.non-product-skus=POST,DOT,", "clickhouse.password=***", "kafka.brokers="} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("config print lacks %q:\n%s", want, out.String())
		}
	}
}

// TestStoreOutageHoldsTheBatch: while ClickHouse rejects the insert, the
// batch is retried, nothing reaches demand.v1 and nothing is committed;
// once the table is back the same batch goes through exactly once.
func TestStoreOutageHoldsTheBatch(t *testing.T) {
	s := stores{brokers: testenv.Kafka(t), redis: testenv.Redis(t), ch: testenv.ClickHouse(t)}
	app := start(t, s)
	ctx := context.Background()
	conn, err := chx.Open(ctx, s.ch)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Exec(ctx, "DROP TABLE order_lines"); err != nil {
		t.Fatal(err)
	}

	produce(t, s.brokers, []*kgo.Record{pbRecord(t, topics.Orders, "85123A|online", orderLine("or-1", "85123A", placed, 6))})
	testenv.Eventually(t, 60*time.Second, "a failed handler attempt", func() bool {
		return app.metricOr(t, "stockcast_handler_errors_total", `topic="orders.v1"`, 0) >= 1
	})
	if got := testenv.ReadTopics(t, s.brokers, topics.Demand); len(got) != 0 {
		t.Fatalf("%d demand records published while the history insert fails", len(got))
	}

	if err := chx.Migrate(ctx, conn, store.Schema...); err != nil {
		t.Fatal(err)
	}
	waitCommitted(t, s.brokers, consumer.Group, consumer.Topics...)
	if got := demandSummaries(t, s.brokers); !equalStrings(got, []string{"85123A|online or-1 2011-12-09 demand +6 DEMAND_KIND_ORDER"}) {
		t.Fatalf("demand.v1 after recovery: %q", got)
	}
	if got := countRows(t, s.ch); got.orders != 1 || got.demandSum != 6 {
		t.Fatalf("ClickHouse after recovery %+v", got)
	}
	app.stop(t)
}

// TestOneTopicKeepsSeriesOrder: a series' order lines, stock movements and
// price changes on one topic (orders.v1), the kind in the header
// stockcast-event-type, come out on demand.v1 in the order produced, each
// stored in its table; a reject goes to orders.v1.dlq.
func TestOneTopicKeepsSeriesOrder(t *testing.T) {
	s := stores{brokers: testenv.Kafka(t), redis: testenv.Redis(t), ch: testenv.ClickHouse(t)}
	typed := func(r *kgo.Record, eventType string) *kgo.Record {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: topics.HeaderEventType, Value: []byte(eventType)})
		return r
	}
	const key = "85123A|online"
	price := &catalogv1.CatalogEvent{EventId: "cat-1", OccurredAt: timestamppb.New(occurred),
		Kind: &catalogv1.CatalogEvent_PriceChange{PriceChange: &catalogv1.PriceChange{Sku: "85123A", Location: "online", Price: 2.95, Currency: "GBP"}}}
	recs := []*kgo.Record{
		pbRecord(t, topics.Orders, key, orderLine("or-1", "85123A", placed, 6)),
		typed(pbRecord(t, topics.Orders, key, inventoryEvent("inv-1", &inventoryv1.Snapshot{OnHand: 40})), topics.EventTypeInventory),
		typed(pbRecord(t, topics.Orders, key, orderLine("or-2", "85123A", placed, 2)), topics.EventTypeOrderLine),
		typed(pbRecord(t, topics.Orders, key, price), topics.EventTypeCatalog),
		typed(pbRecord(t, topics.Orders, key, inventoryEvent("inv-2", &inventoryv1.Snapshot{OnHand: -1})), topics.EventTypeInventory),
		typed(pbRecord(t, topics.Orders, key, inventoryEvent("inv-3", &inventoryv1.Snapshot{OnHand: 1})), "stock"),
		pbRecord(t, topics.Orders, key, orderLine("or-3", "85123A", cancelled, 1)),
	}
	app := start(t, s)
	produce(t, s.brokers, recs)
	waitCommitted(t, s.brokers, consumer.Group, consumer.Topics...)

	var got []string
	for _, r := range testenv.ReadTopics(t, s.brokers, topics.Demand) {
		got = append(got, demandSummary(t, r))
	}
	want := []string{
		"85123A|online or-1 2011-12-09 demand +6 DEMAND_KIND_ORDER",
		"85123A|online inv-1 2011-12-09 inventory",
		"85123A|online or-2 2011-12-09 demand +2 DEMAND_KIND_ORDER",
		"85123A|online cat-1 2011-12-09 price 2.95",
		"85123A|online or-3 2011-12-09 demand -1 DEMAND_KIND_CANCELLATION",
	}
	if !equalStrings(got, want) {
		t.Errorf("demand.v1 in offset order:\n got  %q\n want %q", got, want)
	}
	var reasons []string
	for _, r := range dlqRecords(t, s.brokers) {
		reasons = append(reasons, r.Topic+" "+header(r, topics.HeaderDLQReason)+" "+header(r, topics.HeaderEventType))
	}
	if want := []string{"orders.v1.dlq quantity_negative inventory", "orders.v1.dlq unknown_event_type stock"}; !equalStrings(reasons, want) {
		t.Errorf("dead letters %q, want %q", reasons, want)
	}
	ctx := context.Background()
	conn, err := chx.Open(ctx, s.ch)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for table, want := range map[string]uint64{"order_lines": 3, "inventory_events": 1, "catalog_events": 1} {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+table+" FINAL WHERE source_topic = 'orders.v1'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("%s: %d rows from orders.v1, want %d", table, n, want)
		}
	}
	app.stop(t)
}
