package replay

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"
	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/retail"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
)

const dataFile = "../../data/online-retail/online_retail.csv.gz"

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func startKafka(t *testing.T) kafkax.Config {
	t.Helper()
	return kafkax.Config{Brokers: testenv.Kafka(t), Partitions: 3}
}

func newAdmin(t *testing.T, kc kafkax.Config) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// readAll consumes every record of the given topics from the start until n
// records arrived or the deadline passed.
func readAll(t *testing.T, kc kafkax.Config, n int, ts ...string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.Brokers...), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeTopics(ts...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records from %v before the deadline", len(out), n, ts)
		}
		out = append(out, f.Records()...)
	}
	return out
}

// TestReplayProduces replays real lines into a broker with no pipeline
// behind it. The test plays the pipeline for the initial stock only: the
// replay must hold the lines back until every snapshot has its forecast,
// then produce every mapped event to its topic, keyed by series, with its
// headers, and give up after its timeout saying what is missing.
func TestReplayProduces(t *testing.T) {
	kc := startKafka(t)
	const limit = 3000
	// The stall timeout covers this test's own steps between the replay's
	// snapshots and the forecasts it answers with (reading the topic, new
	// clients): 2 s was not enough for a loaded machine. The replay ends
	// with that timeout too, once the lines are out and nothing answers.
	cfg := Config{Data: dataFile, Limit: limit, InitialStock: true, StallTimeout: 10 * time.Second, NonProductSKUs: retail.NonProductCodes()}
	var progress strings.Builder
	r := New(cfg, kc, quietLog(), NewProgress(&progress, false))
	type result struct {
		sum Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := r.Run(context.Background())
		done <- result{sum, err}
	}()

	lines, err := retail.ReadAll(dataFile, limit)
	if err != nil {
		t.Fatal(err)
	}
	stock := retail.InitialStock(lines)
	// The snapshots arrive, and no line before their forecasts.
	stockRecs := readAll(t, kc, len(stock), topics.Inventory)
	adm := newAdmin(t, kc)
	ends, err := adm.ListEndOffsets(context.Background(), topics.Orders)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset != 0 {
			t.Errorf("order lines produced before the initial stock went through: %s/%d at %d", o.Topic, o.Partition, o.Offset)
		}
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var forecasts []*kgo.Record
	for _, rec := range stockRecs {
		id := kafkax.HeaderValue(rec, topics.HeaderEventID)
		f, err := proto.Marshal(&forecastv1.ForecastEvent{ForecastId: "f-" + id, EventId: id, SeriesKey: string(rec.Key)})
		if err != nil {
			t.Fatal(err)
		}
		forecasts = append(forecasts, &kgo.Record{Topic: topics.Forecasts, Key: rec.Key, Value: f})
	}
	if err := cl.ProduceSync(context.Background(), forecasts...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	res := <-done
	sum, err := res.sum, res.err
	if err == nil || !strings.Contains(err.Error(), "pipeline made no progress for 10s") {
		t.Fatalf("Run error = %v, want a timeout waiting for the pipeline", err)
	}

	want := map[string]retail.Event{}
	var notDemand int
	for _, l := range lines {
		ev, err := retail.Map(l)
		if err != nil {
			t.Fatal(err)
		}
		want[ev.ID()] = ev
		if ev.Order != nil && !retail.IsProduct(l.StockCode) {
			notDemand++
		}
	}
	for _, s := range stock {
		want[s.GetEventId()] = retail.Event{Inventory: s}
	}
	if sum.Read != limit || sum.InitialStock != len(stock) || sum.Forecasts != len(stock) || sum.Accepted != limit ||
		sum.NotDemand != notDemand || sum.Unaccounted != len(want)-notDemand-len(stock) {
		t.Errorf("summary %+v; want read %d, initial stock %d with forecasts, not demand %d, unaccounted %d",
			sum, limit, len(stock), notDemand, len(want)-notDemand-len(stock))
	}

	recs := readAll(t, kc, len(want), topics.Orders, topics.Inventory)
	if len(recs) != len(want) {
		t.Fatalf("read %d records, want %d", len(recs), len(want))
	}
	seen := map[string]bool{}
	lineSeen := map[int32]bool{} // inventory.v1 partitions that had a line already
	for _, rec := range recs {
		id := kafkax.HeaderValue(rec, topics.HeaderEventID)
		ev, ok := want[id]
		if !ok || seen[id] {
			t.Fatalf("unexpected or repeated record %s on %s", id, rec.Topic)
		}
		seen[id] = true
		if rec.Topic != ev.Topic() || string(rec.Key) != ev.Key() ||
			kafkax.HeaderValue(rec, topics.HeaderContentType) != topics.ContentTypeProtobuf {
			t.Errorf("%s: topic %s key %q, want %s %q with content type", id, rec.Topic, rec.Key, ev.Topic(), ev.Key())
		}
		var got proto.Message = &ordersv1.OrderLineEvent{}
		var wantMsg proto.Message = ev.Order
		if ev.Order == nil {
			got, wantMsg = &inventoryv1.InventoryEvent{}, ev.Inventory
		}
		if err := proto.Unmarshal(rec.Value, got); err != nil || !proto.Equal(got, wantMsg) {
			t.Errorf("%s: value %v (%v), want %v", id, got, err, wantMsg)
		}
		// Within a partition the snapshots come before the lines.
		if rec.Topic == topics.Inventory {
			if strings.HasPrefix(id, "or-stock-") && lineSeen[rec.Partition] {
				t.Errorf("snapshot %s after a line on %s/%d", id, rec.Topic, rec.Partition)
			}
			lineSeen[rec.Partition] = lineSeen[rec.Partition] || !strings.HasPrefix(id, "or-stock-")
		}
	}
	if !strings.Contains(progress.String(), "produced") {
		t.Errorf("no progress written: %q", progress.String())
	}
}

// TestWatcherMeasures produces output records itself (forecasts, proposals,
// rejections) and checks what the watcher and the tracker make of them.
func TestWatcherMeasures(t *testing.T) {
	kc := startKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafkax.EnsureTopics(ctx, kc, WatchedTopics()...); err != nil {
		t.Fatal(err)
	}
	adm := newAdmin(t, kc)
	prod, err := kgo.NewClient(kgo.SeedBrokers(kc.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	forecast := func(id, series string, withHeader bool) *kgo.Record {
		b, _ := proto.Marshal(&forecastv1.ForecastEvent{EventId: id, SeriesKey: series, ForecastId: "f-" + id})
		r := &kgo.Record{Topic: topics.Forecasts, Key: []byte(series), Value: b}
		if withHeader {
			r.Headers = []kgo.RecordHeader{{Key: topics.HeaderEventID, Value: []byte(id)}}
		}
		return r
	}
	proposal := func(id, pid string) *kgo.Record {
		b, _ := proto.Marshal(&replenishmentv1.Proposal{EventId: id, ProposalId: pid})
		return &kgo.Record{Topic: topics.Proposals, Key: []byte("A|online"), Value: b}
	}
	dlq := func(topic, id, reason string) *kgo.Record {
		return &kgo.Record{Topic: topics.DLQ(topic), Value: []byte("raw"), Headers: []kgo.RecordHeader{
			{Key: topics.HeaderEventID, Value: []byte(id)}, {Key: topics.HeaderDLQReason, Value: []byte(reason)}}}
	}
	// Output of an earlier run: before the start offsets, must not count.
	if err := prod.ProduceSync(ctx, forecast("or-2", "A|online", true)).FirstErr(); err != nil {
		t.Fatal(err)
	}

	from, err := StartOffsets(ctx, adm)
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTracker()
	now := time.Now()
	for _, id := range []string{"or-2", "or-3", "or-4", "or-5", "or-6"} {
		tr.Produced(id, KindPlaced, false, now)
		tr.Acked(id, now)
	}
	w, err := NewWatcher(kc.Brokers, from, tr, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	werr := make(chan error, 1)
	go func() { werr <- w.Run(wctx) }()

	recs := []*kgo.Record{
		forecast("or-2", "A|online", true),
		forecast("or-3", "B|online", false), // event id from the body
		forecast("or-2", "A|online", true),  // repeated
		forecast("xx-1", "C|online", true),  // not ours
		proposal("or-3", "p-1"),
		proposal("or-3", "p-1"),
		proposal("or-2", "p-2"),
		dlq(topics.Orders, "or-4", "quantity_absurd"),
		dlq(topics.Demand, "or-5", "undecodable"),
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ends, err := endOffsets(ctx, adm, WatchedTopics()...)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "the watcher to read every output record", func() bool { return w.CaughtUp(ends) })
	wcancel()
	if err := <-werr; err != nil {
		t.Fatalf("watcher Run = %v", err)
	}

	s := tr.Stats()
	if s.Forecasts != 2 || s.ForecastDups != 1 || s.Foreign != 1 || s.Series != 2 || s.Proposals != 2 ||
		s.Rejected != 2 || s.ByReason["quantity_absurd"] != 1 || s.ByReason["undecodable"] != 1 {
		t.Errorf("stats %+v", s)
	}
	if n, ids := tr.Unaccounted(5); n != 1 || ids[0] != "or-6" {
		t.Errorf("unaccounted %d %v, want or-6", n, ids)
	}
	if lat := tr.Latency(); lat.Count != 2 || lat.Max <= 0 || lat.Max > time.Minute {
		t.Errorf("latency %+v, want two matched forecasts", lat)
	}
}

// TestPipelineLagAndWait commits group offsets itself and checks that the
// lag is measured stage by stage and that wait ends exactly when every
// event is accounted for and no stage lags.
func TestPipelineLagAndWait(t *testing.T) {
	kc := startKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stages := Pipeline()
	var all []string
	for _, s := range stages {
		all = append(all, s.Topics...)
	}
	all = append(all, WatchedTopics()...)
	slices.Sort(all)
	if err := kafkax.EnsureTopics(ctx, kc, slices.Compact(all)...); err != nil {
		t.Fatal(err)
	}
	adm := newAdmin(t, kc)
	prod, err := kgo.NewClient(kgo.SeedBrokers(kc.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()

	// Three order records and one demand record; nothing committed yet.
	var recs []*kgo.Record
	for i := range 3 {
		recs = append(recs, &kgo.Record{Topic: topics.Orders, Key: []byte{byte('a' + i)}, Value: []byte("x")})
	}
	recs = append(recs, &kgo.Record{Topic: topics.Demand, Key: []byte("a"), Value: []byte("x")})
	res := prod.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}

	lags, err := PipelineLag(ctx, adm, stages)
	if err != nil {
		t.Fatal(err)
	}
	if len(lags) != 1 || lags[0].Group != "stockcast-ingest" || lags[0].Lag != 3 || Drained(lags, stages) {
		t.Fatalf("lags %+v, want ingest=3 and stop there", lags)
	}

	commitAll := func(group string, ts ...string) {
		t.Helper()
		ends, err := adm.ListEndOffsets(ctx, ts...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := adm.CommitOffsets(ctx, group, ends.Offsets()); err != nil {
			t.Fatal(err)
		}
	}
	commitAll("stockcast-ingest", topics.Orders, topics.Inventory, topics.Catalog)
	lags, err = PipelineLag(ctx, adm, stages)
	if err != nil {
		t.Fatal(err)
	}
	if len(lags) != 2 || lags[0].Lag != 0 || lags[1].Group != "stockcast-feature" || lags[1].Lag != 1 {
		t.Fatalf("lags %+v, want ingest=0 feature=1", lags)
	}

	// wait: one event forecast, one not; then all stages committed.
	from, err := StartOffsets(ctx, adm)
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTracker()
	tr.Produced("or-2", KindPlaced, false, time.Now())
	tr.Produced("or-3", KindPlaced, false, time.Now())
	tr.Produced("or-4", KindPlaced, true, time.Now()) // not demand: accounted without output
	w, err := NewWatcher(kc.Brokers, from, tr, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	go func() { _ = w.Run(wctx) }()
	b, _ := proto.Marshal(&forecastv1.ForecastEvent{EventId: "or-2"})
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: topics.Forecasts, Key: []byte("A|online"), Value: b}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// The watcher holds or-2's forecast before the wait starts: the 500 ms
	// without progress then count from there, not from a watcher still
	// reading (a loaded machine's slower watcher left both unaccounted).
	outEnds, err := endOffsets(ctx, adm, WatchedTopics()...)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the watcher to read or-2's forecast", func() bool { return w.CaughtUp(outEnds) })
	r := &Replayer{cfg: Config{StallTimeout: 500 * time.Millisecond}, log: quietLog(), stages: stages, poll: 20 * time.Millisecond}
	if err := r.wait(ctx, tr, w, adm, &phase{}, true); err == nil || !strings.Contains(err.Error(), "with 1 events unaccounted for (e.g. or-3)") ||
		!strings.Contains(err.Error(), "feature=1") {
		t.Fatalf("wait with a lagging stage = %v, want a timeout naming the lag", err)
	}
	commitAll("stockcast-feature", topics.Demand)
	commitAll("stockcast-forecast", topics.Features)
	commitAll("stockcast-replenishment", topics.Forecasts)
	r.cfg.StallTimeout = 20 * time.Second
	if err := r.wait(ctx, tr, w, adm, &phase{}, true); err == nil || !strings.Contains(err.Error(), "drained but 1 events") {
		t.Fatalf("wait with or-3 missing = %v, want the drained-but-missing error", err)
	}
	b, _ = proto.Marshal(&forecastv1.ForecastEvent{EventId: "or-3"})
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: topics.Forecasts, Key: []byte("B|online"), Value: b}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// The replenishment group now lags by the new forecast until it commits.
	commitAll("stockcast-replenishment", topics.Forecasts)
	if err := r.wait(ctx, tr, w, adm, &phase{}, true); err != nil {
		t.Fatalf("wait with everything accounted = %v", err)
	}
}
