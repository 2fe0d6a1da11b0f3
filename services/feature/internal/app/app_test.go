package app

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
	catalogv1 "github.com/stockcast/stockcast/proto/stockcast/catalog/v1"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// monday is 2024-09-30, 10:00 UTC.
var monday = time.Date(2024, 9, 30, 10, 0, 0, 0, time.UTC)

func demandEvent(id string, at time.Time, q float64) *demandv1.DemandEvent {
	return &demandv1.DemandEvent{EventId: id, OccurredAt: timestamppb.New(at), SeriesKey: "85123A|online",
		Sku: "85123A", Location: "online", Day: at.Format("2006-01-02"),
		Change: &demandv1.DemandEvent_Demand{Demand: &demandv1.Demand{Quantity: q, Kind: demandv1.DemandKind_DEMAND_KIND_ORDER}}}
}

type running struct {
	grpcAddr, adminAddr string
	cancel              context.CancelFunc
	done                chan error
}

// start runs app.Run with the given dependencies and waits until it is ready.
func start(t *testing.T, brokers []string, redisAddr string, extra ...string) *running {
	t.Helper()
	s := &running{grpcAddr: freeAddr(t), adminAddr: freeAddr(t), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	args := []string{
		"-kafka.brokers", strings.Join(brokers, ","), "-kafka.partitions", "3",
		"-redis.addr", redisAddr, "-grpc.addr", s.grpcAddr, "-admin.addr", s.adminAddr,
		"-log.level", "warn",
	}
	args = append(args, extra...)
	go func() { s.done <- Run(ctx, args, func(string) string { return "" }, testWriter{t}) }()
	waitFor(t, 30*time.Second, "feature ready", func() bool {
		resp, err := http.Get("http://" + s.adminAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return s
}

// stop cancels Run and asserts that it returns nil.
func (s *running) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("Run returned %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestFeatureService(t *testing.T) {
	ctx := context.Background()
	brokers := testenv.Kafka(t)
	redisAddr := testenv.Redis(t)

	item := &demandv1.DemandEvent{EventId: "item-1", OccurredAt: timestamppb.New(monday.Add(-time.Hour)), SeriesKey: "85123A",
		Sku: "85123A", Day: "2024-09-30", Change: &demandv1.DemandEvent_Item{Item: &catalogv1.ItemAttributes{
			Sku: "85123A", Category: "lights", Department: "home"}}}
	stockout := &demandv1.DemandEvent{EventId: "so-1", OccurredAt: timestamppb.New(monday.Add(49 * time.Hour)), SeriesKey: "85123A|online",
		Sku: "85123A", Location: "online", Day: "2024-10-02", Change: &demandv1.DemandEvent_Inventory{Inventory: &inventoryv1.InventoryEvent{
			EventId: "so-1", Sku: "85123A", Location: "online",
			Kind: &inventoryv1.InventoryEvent_StockoutStarted{StockoutStarted: &inventoryv1.StockoutStarted{}}}}}
	events := []*demandv1.DemandEvent{
		item,
		demandEvent("or-1", monday, 6), // Mon 10h
		demandEvent("or-2", monday.Add(2*time.Hour), 4),   // Mon 12h
		demandEvent("or-3", monday.Add(24*time.Hour), 3),  // Tue 10h
		demandEvent("or-4", monday.Add(26*time.Hour), -1), // Tue: a cancellation
		stockout, // Wed 11h
		demandEvent("or-5", monday.Add(50*time.Hour), 2),  // Wed 12h
		demandEvent("or-6", monday.Add(-72*time.Hour), 5), // Fri before: late
	}
	produce(t, brokers, events...)

	svc := start(t, brokers, redisAddr)
	byKey := readSnapshots(t, brokers, len(events))
	snaps := append(byKey["85123A"], byKey["85123A|online"]...) // the item event came first

	// The exact snapshots, by hand. Days: Fri 09-27 (late), Mon 09-30 .. Wed 10-02.
	type want struct {
		key, id   string
		applied   bool
		asOf      string
		tail      []float64 // end of recent_daily
		sum7      float64
		mean7     float64
		ewma      float64
		total     float64
		events    int64
		history   int32
		sinceSale int32
		stockout  bool
		soDays    []int32
	}
	wants := []want{
		{key: "85123A", id: "item-1", applied: true, asOf: "2024-09-30", sinceSale: -1},
		{key: "85123A|online", id: "or-1", applied: true, asOf: "2024-09-30", tail: []float64{6}, sum7: 6, mean7: 6, total: 6, events: 1, history: 1},
		{key: "85123A|online", id: "or-2", applied: true, asOf: "2024-09-30", tail: []float64{10}, sum7: 10, mean7: 10, total: 10, events: 2, history: 1},
		{key: "85123A|online", id: "or-3", applied: true, asOf: "2024-10-01", tail: []float64{10, 3}, sum7: 13, mean7: 6.5, ewma: 10, total: 13, events: 3, history: 2},
		{key: "85123A|online", id: "or-4", applied: true, asOf: "2024-10-01", tail: []float64{10, 2}, sum7: 12, mean7: 6, ewma: 10, total: 12, events: 4, history: 2},
		// ewma over Mon 10, Tue 2: 0.1*2 + 0.9*10 = 9.2
		{key: "85123A|online", id: "so-1", applied: true, asOf: "2024-10-02", tail: []float64{10, 2, 0}, sum7: 12, mean7: 4, ewma: 9.2, total: 12, events: 5, history: 3, stockout: true, soDays: []int32{55}, sinceSale: 1},
		{key: "85123A|online", id: "or-5", applied: true, asOf: "2024-10-02", tail: []float64{10, 2, 2}, sum7: 14, mean7: 14.0 / 3, ewma: 9.2, total: 14, events: 6, history: 3, stockout: true, soDays: []int32{55}},
		// Late Friday sale: history from Fri (6 days), ewma over Fri 5, Sat 0, Sun 0, Mon 10, Tue 2:
		// 5 -> 4.5 -> 4.05 -> 0.1*10 + 0.9*4.05 = 4.645 -> 0.1*2 + 0.9*4.645 = 4.3805
		{key: "85123A|online", id: "or-6", applied: true, asOf: "2024-10-02", tail: []float64{5, 0, 0, 10, 2, 2}, sum7: 19, mean7: 19.0 / 6, ewma: 4.3805, total: 19, events: 7, history: 6, stockout: true, soDays: []int32{55}},
	}
	for i, w := range wants {
		r, s := snaps[i].rec, snaps[i].snap
		tail := s.GetRecentDaily()[max(0, len(s.GetRecentDaily())-len(w.tail)):]
		if w.tail == nil {
			tail = nil
		}
		got := want{key: string(r.Key), id: header(r, topics.HeaderEventID), applied: s.GetApplied(), asOf: s.GetAsOfDay(), tail: tail,
			sum7: s.GetSum_7(), mean7: s.GetMean_7(), ewma: s.GetEwma(), total: s.GetTotalDemand(), events: s.GetEventsApplied(),
			history: s.GetHistoryDays(), sinceSale: s.GetDaysSinceLastSale(), stockout: s.GetStockout(), soDays: s.GetStockoutDays()}
		if fmt.Sprintf("%.9v", got) != fmt.Sprintf("%.9v", w) {
			t.Errorf("snapshot %d:\n got %+v\nwant %+v", i, got, w)
		}
		if s.GetEventId() != w.id || s.GetCause().GetEventId() != w.id {
			t.Errorf("snapshot %d: event id %s, cause %s", i, s.GetEventId(), s.GetCause().GetEventId())
		}
		if w.key != "85123A" && (s.GetCategory() != "lights" || s.GetDepartment() != "home") {
			t.Errorf("snapshot %d: item %q/%q", i, s.GetCategory(), s.GetDepartment())
		}
	}
	// One snapshot in full: the last one.
	last := snaps[len(snaps)-1].snap
	recent := make([]float64, 56)
	copy(recent[50:], []float64{5, 0, 0, 10, 2, 2})
	wantLast := &featurev1.FeatureSnapshot{
		EventId: "or-6", OccurredAt: timestamppb.New(monday.Add(-72 * time.Hour)), SeriesKey: "85123A|online",
		Sku: "85123A", Location: "online", AsOfDay: "2024-10-02", Cause: events[7], Applied: true,
		RecentDaily: recent, Sum_7: 19, Sum_28: 19, Sum_91: 19, Mean_7: 19.0 / 6, Mean_28: 19.0 / 6, Mean_91: 19.0 / 6,
		Ewma:       last.GetEwma(), // checked above to 9 digits
		DowProfile: []float64{10, 2, 2, 0, 5, 0, 0},
		// Placed demand by hour: 10h 6+3, 12h 4+2, and the late sale at 10h: 5. Total 20.
		IntradayCumulative: cumulative(map[int]float64{10: 14.0 / 20, 12: 1}),
		DaysSinceLastSale:  0, LastZeroRun: 2, CurrentZeroRun: 0, HistoryDays: 6, TotalDemand: 19, EventsApplied: 7,
		Stockout: true, StockoutDays: []int32{55}, Category: "lights", Department: "home",
	}
	if diff := cmpDiff(wantLast, last); diff != "" {
		t.Errorf("last snapshot differs (-want +got):\n%s", diff)
	}

	// GetFeatures: the state of the last snapshot, without a cause.
	conn, err := grpc.NewClient(svc.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := featurev1.NewFeatureServiceClient(conn)
	resp, err := client.GetFeatures(ctx, &featurev1.GetFeaturesRequest{Sku: "85123A", Location: "online", IncludeHistory: true})
	if err != nil {
		t.Fatal(err)
	}
	apiWant := proto.CloneOf(wantLast)
	apiWant.Cause, apiWant.Applied = nil, false
	apiWant.Ewma = resp.GetSnapshot().GetEwma()
	apiWant.EventId, apiWant.OccurredAt = "or-6", timestamppb.New(monday.Add(-72*time.Hour)) // the event applied last
	if diff := cmpDiff(apiWant, resp.GetSnapshot()); diff != "" {
		t.Errorf("GetFeatures snapshot differs (-want +got):\n%s", diff)
	}
	var hist []string
	for _, d := range resp.GetHistory() {
		hist = append(hist, fmt.Sprintf("%s=%v%s", d.GetDay(), d.GetQuantity(), map[bool]string{true: "!"}[d.GetStockout()]))
	}
	if want := []string{"2024-09-27=5", "2024-09-28=0", "2024-09-29=0", "2024-09-30=10", "2024-10-01=2", "2024-10-02=2!"}; !slices.Equal(hist, want) {
		t.Errorf("history %v, want %v", hist, want)
	}
	for _, tc := range []struct {
		req  *featurev1.GetFeaturesRequest
		code codes.Code
	}{
		{&featurev1.GetFeaturesRequest{Sku: "85123A", Location: "elsewhere"}, codes.NotFound},
		{&featurev1.GetFeaturesRequest{Sku: "85123A"}, codes.InvalidArgument},
		{&featurev1.GetFeaturesRequest{Location: "online"}, codes.InvalidArgument},
	} {
		if _, err := client.GetFeatures(ctx, tc.req); status.Code(err) != tc.code {
			t.Errorf("GetFeatures(%v) = %v, want %s", tc.req, err, tc.code)
		}
	}
	svc.stop(t)

	// Restart and replay the whole log (the group's offsets are gone): every
	// event is redelivered and nothing is counted twice. The events of the
	// batch the store logged last (its undo log; the first run most likely
	// handled all of them in one batch from offset 0) are undone and applied
	// again: their snapshots equal the first ones. Events before that
	// batch's start were committed: they change nothing and get the current
	// state.
	firstSnaps := snaps
	deleteGroupOffsets(t, brokers)
	produce(t, brokers, demandEvent("or-7", monday.Add(51*time.Hour), 1))
	svc = start(t, brokers, redisAddr)
	byKey = readSnapshots(t, brokers, 2*len(events)+1)
	if len(byKey["85123A"]) != 2 || len(byKey["85123A|online"]) != 2*(len(events)-1)+1 {
		t.Fatalf("after replay: %d item and %d series snapshots", len(byKey["85123A"]), len(byKey["85123A|online"]))
	}
	snaps = append(byKey["85123A"][1:], byKey["85123A|online"][len(events)-1:]...)
	for i, s := range snaps[:len(events)] {
		if proto.Equal(s.snap, firstSnaps[i].snap) {
			continue
		}
		if s.snap.GetApplied() {
			t.Errorf("replayed snapshot %d (%s) applied, and not the first one", i, s.snap.GetEventId())
		}
		if s.snap.GetSeriesKey() == "85123A|online" && (s.snap.GetTotalDemand() != 19 || s.snap.GetEventsApplied() != 7) {
			t.Errorf("replayed snapshot %d: total %v events %d, want the first snapshot or 19 and 7", i, s.snap.GetTotalDemand(), s.snap.GetEventsApplied())
		}
	}
	if s := snaps[len(snaps)-1].snap; !s.GetApplied() || s.GetEventId() != "or-7" || s.GetTotalDemand() != 20 || s.GetEventsApplied() != 8 {
		t.Errorf("new event after replay: %s applied %v total %v events %d", s.GetEventId(), s.GetApplied(), s.GetTotalDemand(), s.GetEventsApplied())
	}
	svc.stop(t)
}

func cumulative(steps map[int]float64) []float64 {
	out := make([]float64, 24)
	var v float64
	for h := range out {
		if s, ok := steps[h]; ok {
			v = s
		}
		out[h] = v
	}
	return out
}

// cmpDiff is empty when want and got are equal, else both in text form.
func cmpDiff(want, got proto.Message) string {
	if proto.Equal(want, got) {
		return ""
	}
	return "-want " + prototext.Format(want) + "\n+got " + prototext.Format(got)
}

type snapshotRecord struct {
	rec  *kgo.Record
	snap *featurev1.FeatureSnapshot
}

// readSnapshots reads exactly n records of features.v1 and groups them by
// key; one key lives on one partition, so each group is in order.
func readSnapshots(t *testing.T, brokers []string, n int) map[string][]snapshotRecord {
	t.Helper()
	out := map[string][]snapshotRecord{}
	for _, r := range readTopic(t, brokers, topics.Features, n) {
		s := &featurev1.FeatureSnapshot{}
		if err := proto.Unmarshal(r.Value, s); err != nil {
			t.Fatal(err)
		}
		out[string(r.Key)] = append(out[string(r.Key)], snapshotRecord{rec: r, snap: s})
	}
	return out
}

func produce(t *testing.T, brokers []string, events ...*demandv1.DemandEvent) {
	t.Helper()
	if err := kafkax.EnsureTopics(context.Background(), kafkax.Config{Brokers: brokers, Partitions: 3}, topics.Demand); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, ev := range events {
		b, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		// All records on one partition keep the test's order across keys.
		rec := &kgo.Record{Topic: topics.Demand, Key: []byte(ev.GetSeriesKey()), Value: b, Partition: 0}
		if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

func deleteGroupOffsets(t *testing.T, brokers []string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	waitFor(t, 30*time.Second, "group deleted", func() bool {
		resp, err := adm.DeleteGroup(ctx, "stockcast-feature")
		return err == nil && resp.Err == nil
	})
}

func readTopic(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: got %d records, want %d", topic, len(out), n)
		}
		out = append(out, fs.Records()...)
	}
	if len(out) != n {
		t.Fatalf("read %s: got %d records, want %d", topic, len(out), n)
	}
	return out
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
