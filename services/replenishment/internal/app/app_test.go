package app

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const series = "85123A|online"

// base is the event time of the first record; record i happens i minutes later.
var base = time.Date(2011, 3, 1, 9, 0, 0, 0, time.UTC)

// forecastRecord is the forecast after cause: daily mean 10 for 28 days
// from 2011-03-01; lead-time demand quantiles (levels 0.5/0.9/0.95/0.99)
// for 3 days [29 37 40 45] mean 30, 7 days [69 81 85 92] mean 70, 14 days
// [139 156 162 172] mean 140.
func forecastRecord(t *testing.T, i int, eventID string, cause *demandv1.DemandEvent) *kgo.Record {
	t.Helper()
	at := base.Add(time.Duration(i) * time.Minute)
	cause.EventId, cause.SeriesKey, cause.Sku, cause.Location = eventID, series, "85123A", "online"
	cause.OccurredAt, cause.Day = timestamppb.New(at), "2011-03-01"
	ev := &forecastv1.ForecastEvent{
		ForecastId: "f-" + eventID, EventId: eventID, SeriesKey: series, Sku: "85123A", Location: "online",
		AsOf: timestamppb.New(at), IssuedAt: timestamppb.New(at.Add(time.Second)), StartDay: "2011-03-01",
		QuantileLevels: []float64{0.5, 0.9, 0.95, 0.99},
		LeadTimeDemand: []*forecastv1.LeadTimeDemand{
			{LeadTimeDays: 3, Mean: 30, Quantiles: []float64{29, 37, 40, 45}},
			{LeadTimeDays: 7, Mean: 70, Quantiles: []float64{69, 81, 85, 92}},
			{LeadTimeDays: 14, Mean: 140, Quantiles: []float64{139, 156, 162, 172}},
		},
		Model: "test", ModelVersion: "1", Cause: cause,
	}
	for d := range 28 {
		ev.Daily = append(ev.Daily, &forecastv1.DailyForecast{Day: base.AddDate(0, 0, d).Format(time.DateOnly), Mean: 10})
	}
	value, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topics.Forecasts, Key: []byte(series), Value: value,
		Headers: []kgo.RecordHeader{{Key: topics.HeaderEventID, Value: []byte(eventID)}}}
}

func order(q float64) *demandv1.DemandEvent {
	return &demandv1.DemandEvent{Change: &demandv1.DemandEvent_Demand{Demand: &demandv1.Demand{Quantity: q, Kind: demandv1.DemandKind_DEMAND_KIND_ORDER}}}
}

func stock(inv *inventoryv1.InventoryEvent) *demandv1.DemandEvent {
	return &demandv1.DemandEvent{Change: &demandv1.DemandEvent_Inventory{Inventory: inv}}
}

// instance is one run of the app.
type instance struct {
	grpcAddr, adminAddr string
	cancel              context.CancelFunc
	done                chan error
}

func start(t *testing.T, brokers []string, redisAddr string, ch chx.Config, extra ...string) *instance {
	t.Helper()
	s := &instance{grpcAddr: testenv.FreeAddr(t), adminAddr: testenv.FreeAddr(t), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	args := []string{
		"-kafka.brokers", strings.Join(brokers, ","), "-kafka.partitions", "3",
		"-redis.addr", redisAddr,
		"-clickhouse.addr", ch.Addr, "-clickhouse.database", ch.Database,
		"-grpc.addr", s.grpcAddr, "-admin.addr", s.adminAddr, "-log.level", "warn",
	}
	args = append(args, extra...)
	go func() { s.done <- Run(ctx, args, func(string) string { return "" }, io.Discard) }()
	testenv.Eventually(t, 60*time.Second, "replenishment ready", func() bool {
		resp, err := http.Get("http://" + s.adminAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return s
}

func (s *instance) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("Run returned %v, want nil", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// outputs reads a topic from the start, growing with each call.
type outputs struct {
	cl   *kgo.Client
	recs []*kgo.Record
}

func newOutputs(t *testing.T, brokers []string, topic string) *outputs {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &outputs{cl: cl}
}

// waitFor polls until n records have arrived in total, and no more show up
// in a short extra poll.
func (o *outputs) waitFor(t *testing.T, n int) []*kgo.Record {
	t.Helper()
	testenv.Eventually(t, 60*time.Second, "output records", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		o.recs = append(o.recs, o.cl.PollFetches(ctx).Records()...)
		return len(o.recs) >= n
	})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	o.recs = append(o.recs, o.cl.PollFetches(ctx).Records()...)
	if len(o.recs) != n {
		t.Fatalf("%d records, want %d", len(o.recs), n)
	}
	return o.recs
}

func decodeProposals(t *testing.T, recs []*kgo.Record) []*replenishmentv1.Proposal {
	t.Helper()
	out := make([]*replenishmentv1.Proposal, len(recs))
	for i, r := range recs {
		var p replenishmentv1.Proposal
		if err := proto.Unmarshal(r.Value, &p); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != p.GetSeriesKey() || kafkax.HeaderValue(r, topics.HeaderEventID) != p.GetEventId() {
			t.Errorf("record key %q / event id header %q for proposal %v", r.Key, kafkax.HeaderValue(r, topics.HeaderEventID), &p)
		}
		out[i] = &p
	}
	return out
}

func assertSame(t *testing.T, what string, got, want []*replenishmentv1.Proposal) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d proposals, want %d:\n%v", what, len(got), len(want), got)
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("%s: proposal %d\n got %v\nwant %v", what, i, got[i], want[i])
		}
	}
}

// expected builds a proposal of series with the fields every one shares.
func expected(eventID string, minute int, seq int64, p *replenishmentv1.Proposal) *replenishmentv1.Proposal {
	p.ProposalId = idOf(eventID)
	p.SeriesKey, p.Sku, p.Location, p.EventId, p.ForecastId = series, "85123A", "online", eventID, "f-"+eventID
	p.DecidedAt = timestamppb.New(base.Add(time.Duration(minute) * time.Minute))
	p.Reason = replenishmentv1.ProposalReason_PROPOSAL_REASON_CROSSED_REORDER_POINT
	p.Status = replenishmentv1.ProposalStatus_PROPOSAL_STATUS_PROPOSED
	p.DecisionSeq = seq
	return p
}

// idOf is hex(sha256("85123A|online|" + event id))[:32], computed with
// `printf '%s' '85123A|online|e2' | sha256sum`,
// so the test does not compute the id the way the code does.
func idOf(eventID string) string {
	return map[string]string{
		"e2": "75c27dc75e4ca3efcb3bf51b9e60b5e3",
		"e6": "fe208c1a7017e227254f6073b6b8e709",
		"e8": "8448c3a53468aa71b2aa608cd3c692df",
	}[eventID]
}

func TestReplenishmentEndToEnd(t *testing.T) {
	ctx := context.Background()
	brokers := testenv.Kafka(t)
	redisAddr := testenv.Redis(t)
	ch := testenv.ClickHouse(t)

	// The test feeds forecasts.v1 an event twice and later re-publishes
	// the whole log, at new offsets: upstream duplicates, which only the
	// at-least-once path (-kafka.transactions=false) has, and which it
	// recognises by a marker per event. With transactions a redelivery is
	// recognised by its offset (the store's TestWatermarkWithoutMarkers, the
	// consumer's TestHandlePublishesStockouts, TestRecoverAfterRedisLoss).
	atLeastOnce := "-kafka.transactions=false"
	svc := start(t, brokers, redisAddr, ch, atLeastOnce)
	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	produce := func(recs ...*kgo.Record) {
		t.Helper()
		if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := grpc.NewClient(svc.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	client := replenishmentv1.NewReplenishmentServiceClient(conn)
	proposalsOut := newOutputs(t, brokers, topics.Proposals)
	dlqOut := newOutputs(t, brokers, topics.DLQ(topics.Forecasts))

	// Built-in policy (flag defaults): service level 0.95, lead time 7, cover
	// 14, MOQ 1, pack 1 -> reorder point q95(7) = 85, order-up-to 85 + 14*10 = 225.
	first := []*kgo.Record{
		forecastRecord(t, 1, "e1", stock(&inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_Snapshot{Snapshot: &inventoryv1.Snapshot{OnHand: 100}}})), // 100
		forecastRecord(t, 2, "e2", order(20)), // 80 < 85: P1
		forecastRecord(t, 2, "e2", order(20)), // duplicate: same P1 again, state unchanged
		forecastRecord(t, 3, "e3", order(10)), // 70: still below, no decision
		forecastRecord(t, 4, "e4", stock(&inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_PurchaseOrderPlaced{
			PurchaseOrderPlaced: &inventoryv1.PurchaseOrderPlaced{PurchaseOrderId: "PO1", Quantity: 145}}})), // on order 145: 215, re-armed
		forecastRecord(t, 5, "e5", stock(&inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_Receipt{
			Receipt: &inventoryv1.Receipt{PurchaseOrderId: "PO1", Quantity: 145}}})), // on hand 215, on order 0
		forecastRecord(t, 6, "e6", order(140)), // 75 < 85: P2
		{Topic: topics.Forecasts, Key: []byte(series), Value: []byte("not a forecast")},
	}
	produce(first...)

	p1 := expected("e2", 2, 1, &replenishmentv1.Proposal{
		Quantity: 145, UnconstrainedQuantity: 145, ReorderPoint: 85, OrderUpTo: 225,
		InventoryPosition: 80, OnHand: 80, SafetyStock: 15, ExpectedLeadTimeDemand: 70,
		Policy:               &replenishmentv1.Policy{ServiceLevel: 0.95, LeadTimeDays: 7, Moq: 1, PackSize: 1, OrderCoverDays: 14},
		ProjectedStockoutDay: "2011-03-08", // 80 at 10 a day: cumulative 80 on day index 7
		ExpectedArrivalDay:   "2011-03-08",
	})
	p2 := expected("e6", 6, 2, &replenishmentv1.Proposal{
		Quantity: 150, UnconstrainedQuantity: 150, ReorderPoint: 85, OrderUpTo: 225,
		InventoryPosition: 75, OnHand: 75, SafetyStock: 15, ExpectedLeadTimeDemand: 70,
		Policy:               &replenishmentv1.Policy{ServiceLevel: 0.95, LeadTimeDays: 7, Moq: 1, PackSize: 1, OrderCoverDays: 14},
		ProjectedStockoutDay: "2011-03-08", // cumulative 80 >= 75 on day index 7
		ExpectedArrivalDay:   "2011-03-08",
	})
	assertSame(t, "first run", decodeProposals(t, proposalsOut.waitFor(t, 3)), []*replenishmentv1.Proposal{p1, p1, p2})
	dlq := dlqOut.waitFor(t, 1)
	if got := kafkax.HeaderValue(dlq[0], topics.HeaderDLQReason); got != "undecodable" || string(dlq[0].Value) != "not a forecast" {
		t.Fatalf("dlq record reason %q value %q", got, dlq[0].Value)
	}

	// Policies: built-in until set; a series policy applies to the next decision.
	got, err := client.GetPolicy(ctx, &replenishmentv1.GetPolicyRequest{Sku: "85123A", Location: "online"})
	if err != nil || got.GetSource() != "built-in" || !proto.Equal(got.GetPolicy(), p1.GetPolicy()) {
		t.Fatalf("GetPolicy before set = %v, %v", got, err)
	}
	_, err = client.SetPolicy(ctx, &replenishmentv1.SetPolicyRequest{Policy: &replenishmentv1.Policy{Location: "online", ServiceLevel: 1}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("SetPolicy with service level 1: %v, want InvalidArgument", err)
	}
	seriesPolicy := &replenishmentv1.Policy{Sku: "85123A", Location: "online", ServiceLevel: 0.95, LeadTimeDays: 3, Moq: 100, PackSize: 50, OrderCoverDays: 7}
	if _, err := client.SetPolicy(ctx, &replenishmentv1.SetPolicyRequest{Policy: seriesPolicy}); err != nil {
		t.Fatal(err)
	}
	got, err = client.GetPolicy(ctx, &replenishmentv1.GetPolicyRequest{Sku: "85123A", Location: "online"})
	if err != nil || got.GetSource() != "series" || !proto.Equal(got.GetPolicy(), seriesPolicy) {
		t.Fatalf("GetPolicy after set = %v, %v", got, err)
	}
	if got, err := client.GetPolicy(ctx, &replenishmentv1.GetPolicyRequest{Sku: "OTHER", Location: "online"}); err != nil || got.GetSource() != "built-in" {
		t.Fatalf("GetPolicy of another series = %v, %v", got, err)
	}

	// Series policy: reorder point q95(3) = 40, order-up-to 40 + 7*10 = 110.
	second := []*kgo.Record{
		forecastRecord(t, 7, "e7", stock(&inventoryv1.InventoryEvent{Kind: &inventoryv1.InventoryEvent_Adjustment{Adjustment: &inventoryv1.Adjustment{Delta: 100}}})), // 175: re-armed
		forecastRecord(t, 8, "e8", order(140)), // 35 < 40: P3
	}
	produce(second...)
	p3 := expected("e8", 8, 3, &replenishmentv1.Proposal{
		// need 110 - 35 = 75 -> 100 in packs of 50, and the MOQ of 100.
		Quantity: 100, UnconstrainedQuantity: 75, ReorderPoint: 40, OrderUpTo: 110,
		InventoryPosition: 35, OnHand: 35, SafetyStock: 10, ExpectedLeadTimeDemand: 30,
		Policy:               seriesPolicy,
		ProjectedStockoutDay: "2011-03-04", // cumulative 10, 20, 30, 40
		ExpectedArrivalDay:   "2011-03-04",
	})
	assertSame(t, "after the policy change", decodeProposals(t, proposalsOut.waitFor(t, 4)[3:]), []*replenishmentv1.Proposal{p3})

	// ClickHouse and ListProposals: each proposal once, newest first, paged.
	assertStored := func(what string) {
		t.Helper()
		conn, err := chx.Open(ctx, ch)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM proposals FINAL").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 3 {
			t.Fatalf("%s: %d proposals in ClickHouse, want 3", what, n)
		}
		page1, err := client.ListProposals(ctx, &replenishmentv1.ListProposalsRequest{Sku: "85123A", PageSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		page2, err := client.ListProposals(ctx, &replenishmentv1.ListProposalsRequest{Sku: "85123A", PageSize: 2, PageToken: page1.GetNextPageToken()})
		if err != nil {
			t.Fatal(err)
		}
		if page2.GetNextPageToken() != "" {
			t.Errorf("%s: a third page", what)
		}
		assertSame(t, what+": ListProposals", append(page1.GetProposals(), page2.GetProposals()...), []*replenishmentv1.Proposal{p3, p2, p1})
		none, err := client.ListProposals(ctx, &replenishmentv1.ListProposalsRequest{Status: replenishmentv1.ProposalStatus_PROPOSAL_STATUS_APPROVED})
		if err != nil || len(none.GetProposals()) != 0 {
			t.Fatalf("%s: approved proposals %v, %v; want none", what, none, err)
		}
	}
	assertStored("first run")
	if _, err := client.ListProposals(ctx, &replenishmentv1.ListProposalsRequest{PageToken: "garbage!"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("ListProposals with a bad token: %v, want InvalidArgument", err)
	}

	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() { _ = rdb.Close() })
	state := func() map[string]string {
		t.Helper()
		h, err := rdb.HGetAll(ctx, "stockcast:r:{"+series+"}").Result()
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	before := state()
	if before["on_hand"] != "35" || before["on_order"] != "0" || before["backorders"] != "0" || before["decision_seq"] != "3" || before["below"] != "1" {
		t.Fatalf("state after the first run: %v", before)
	}
	_ = conn.Close()
	svc.stop(t)

	// Restart and replay the same records: the state does not move, no new
	// proposal appears; the decisions are re-published identically.
	svc = start(t, brokers, redisAddr, ch, atLeastOnce)
	conn, err = grpc.NewClient(svc.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client = replenishmentv1.NewReplenishmentServiceClient(conn)
	produce(append(first[:len(first)-1:len(first)-1], second...)...)
	assertSame(t, "replay", decodeProposals(t, proposalsOut.waitFor(t, 4+4)[4:]), []*replenishmentv1.Proposal{p1, p1, p2, p3})
	if after := state(); len(after) != len(before) || after["on_hand"] != "35" || after["decision_seq"] != "3" {
		t.Fatalf("state after the replay: %v, before %v", after, before)
	}
	assertStored("after the replay")
	svc.stop(t)
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    []string // lines of -config.print
		wantErr string
	}{
		{name: "defaults", args: []string{"-config.print"},
			want: []string{"replenishment.service-level=0.95", "replenishment.lead-time-days=7", "replenishment.review-period-days=0",
				"replenishment.moq=1", "replenishment.pack-size=1", "replenishment.max-order=0", "replenishment.order-cover-days=14",
				"replenishment.dedup-ttl=168h0m0s", "redis.addr=127.0.0.1:6379", "clickhouse.database=stockcast"}},
		{name: "env fills unset flags only", args: []string{"-config.print", "-replenishment.moq", "6"},
			env:  map[string]string{"STOCKCAST_REPLENISHMENT_MOQ": "12", "STOCKCAST_REPLENISHMENT_LEAD_TIME_DAYS": "21"},
			want: []string{"replenishment.moq=6", "replenishment.lead-time-days=21"}},
		{name: "invalid built-in policy", args: []string{"-replenishment.service-level", "1.5"}, wantErr: "service level"},
		{name: "dedup ttl too short", args: []string{"-replenishment.dedup-ttl", "10ms"}, wantErr: "dedup ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			err := Run(context.Background(), tt.args, func(k string) string { return tt.env[k] }, &out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			lines := "\n" + out.String()
			for _, w := range tt.want {
				if !strings.Contains(lines, "\n"+w+"\n") {
					t.Errorf("config print lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}
