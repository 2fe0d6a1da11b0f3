package app

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	"github.com/stockcast/stockcast/services/forecast/internal/consumer"
	"github.com/stockcast/stockcast/services/forecast/internal/scoring"
	"github.com/stockcast/stockcast/services/forecast/internal/store"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// asOf is the day of the test's snapshots, a Friday.
var asOf = forecasting.Day(15037) // 2011-03-04

// historyA is series A|online's stored daily demand before asOf.
func historyA() []float64 {
	out := make([]float64, 120)
	for i := range out {
		out[i] = float64(3 + (i*5)%7)
	}
	return out
}

// featureServer is a FeatureService peer serving a fixed history for
// A|online and NotFound for every other series.
type featureServer struct {
	featurev1.UnimplementedFeatureServiceServer
}

func (featureServer) GetFeatures(_ context.Context, req *featurev1.GetFeaturesRequest) (*featurev1.GetFeaturesResponse, error) {
	if req.GetSku() != "A" || req.GetLocation() != "online" || !req.GetIncludeHistory() {
		return nil, status.Errorf(codes.NotFound, "no features for series %s|%s", req.GetSku(), req.GetLocation())
	}
	hist := historyA()
	resp := &featurev1.GetFeaturesResponse{Snapshot: &featurev1.FeatureSnapshot{SeriesKey: "A|online"}}
	for i, q := range hist {
		day := asOf - forecasting.Day(len(hist)-i)
		resp.History = append(resp.History, &featurev1.DailyDemand{Day: day.String(), Quantity: q})
	}
	return resp, nil
}

func startFeatureServer(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	featurev1.RegisterFeatureServiceServer(srv, featureServer{})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// snapshotA is the feature service's snapshot of A|online on day, at hour,
// with closed days from historyA (and closedAsOf for asOf itself) and
// todaySoFar for day.
func snapshotA(eventID string, day forecasting.Day, hour int, todaySoFar, closedAsOf float64) *featurev1.FeatureSnapshot {
	hist := historyA()
	recent := make([]float64, 56)
	for j := range recent {
		d := day - forecasting.Day(55-j)
		switch {
		case d == day:
			recent[j] = todaySoFar
		case d == asOf:
			recent[j] = closedAsOf
		default:
			recent[j] = hist[len(hist)-int(asOf-d)]
		}
	}
	at := timestamppb.New(day.Time().Add(time.Duration(hour) * time.Hour))
	return &featurev1.FeatureSnapshot{
		EventId: eventID, OccurredAt: at, SeriesKey: "A|online", Sku: "A", Location: "online",
		AsOfDay: day.String(), RecentDaily: recent, Applied: true,
		Cause: &demandv1.DemandEvent{EventId: eventID, OccurredAt: at, SeriesKey: "A|online", Sku: "A", Location: "online",
			Day: day.String(), Change: &demandv1.DemandEvent_Demand{Demand: &demandv1.Demand{Quantity: 1, Kind: demandv1.DemandKind_DEMAND_KIND_ORDER}}},
	}
}

func record(t *testing.T, snap *featurev1.FeatureSnapshot) *kgo.Record {
	t.Helper()
	value, err := proto.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topics.Features, Key: []byte(snap.GetSeriesKey()), Value: value,
		Headers: []kgo.RecordHeader{{Key: topics.HeaderEventID, Value: []byte(snap.GetEventId())}}}
}

type runningService struct {
	grpcAddr, adminAddr string
	cancel              context.CancelFunc
	done                chan error
}

func start(t *testing.T, brokers []string, ch chx.Config, featureAddr string, extra ...string) *runningService {
	t.Helper()
	s := &runningService{grpcAddr: testenv.FreeAddr(t), adminAddr: testenv.FreeAddr(t), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	args := []string{
		"-kafka.brokers", strings.Join(brokers, ","), "-kafka.partitions", "3",
		"-clickhouse.addr", ch.Addr, "-clickhouse.database", ch.Database,
		"-feature.addr", featureAddr, "-grpc.addr", s.grpcAddr, "-admin.addr", s.adminAddr,
		"-forecast.max-series", "100", "-log.level", "warn",
	}
	args = append(args, extra...)
	go func() { s.done <- Run(ctx, args, func(string) string { return "" }, testWriter{t}) }()
	testenv.Eventually(t, 60*time.Second, "forecast ready", func() bool {
		resp, err := http.Get("http://" + s.adminAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return s
}

func (s *runningService) stop(t *testing.T) {
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

func TestForecastService(t *testing.T) {
	ctx := context.Background()
	brokers := testenv.Kafka(t)
	chCfg := testenv.ClickHouse(t)
	featureAddr := startFeatureServer(t)
	svc := start(t, brokers, chCfg, featureAddr)

	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	next := asOf + 1
	b1 := &featurev1.FeatureSnapshot{EventId: "b1", OccurredAt: timestamppb.New(asOf.Time().Add(11 * time.Hour)),
		SeriesKey: "B|online", Sku: "B", Location: "online", AsOfDay: asOf.String(), RecentDaily: append(make([]float64, 55), 2),
		Cause: &demandv1.DemandEvent{EventId: "b1", SeriesKey: "B|online"}}
	item := &featurev1.FeatureSnapshot{EventId: "i1", SeriesKey: "A", Sku: "A", AsOfDay: asOf.String(),
		Cause: &demandv1.DemandEvent{EventId: "i1", SeriesKey: "A"}}
	invalid := &featurev1.FeatureSnapshot{EventId: "x1", SeriesKey: "A|online", AsOfDay: "not a day"}
	recs := []*kgo.Record{
		record(t, snapshotA("a1", asOf, 10, 3, 0)), // cold: rebuilt from the feature service
		record(t, snapshotA("a2", asOf, 15, 9, 0)), // same day, more demand
		record(t, snapshotA("a3", next, 9, 1, 12)), // asOf closed with 12
		record(t, snapshotA("a1", asOf, 10, 3, 0)), // a1 redelivered
		record(t, b1), record(t, item), record(t, invalid),
		{Topic: topics.Features, Key: []byte("A|online"), Value: []byte{0xff, 0xff, 0xff}},
	}
	if err := client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	forecasts := consume(t, brokers, topics.Forecasts, 6)
	byEvent := map[string][]*forecastv1.ForecastEvent{}
	for _, r := range forecasts {
		var ev forecastv1.ForecastEvent
		if err := proto.Unmarshal(r.Value, &ev); err != nil {
			t.Fatalf("decode forecast: %v", err)
		}
		if string(r.Key) != ev.GetSeriesKey() {
			t.Errorf("forecast %s: key %q, want the series key %q", ev.GetEventId(), r.Key, ev.GetSeriesKey())
		}
		if got := headerValue(r, topics.HeaderEventID); got != ev.GetEventId() || ev.GetCause().GetEventId() != ev.GetEventId() {
			t.Errorf("forecast %s: header event id %q, cause %q", ev.GetEventId(), got, ev.GetCause().GetEventId())
		}
		if want := scoring.ForecastID(ev.GetSeriesKey(), ev.GetEventId(), ev.GetModelVersion()); ev.GetForecastId() != want {
			t.Errorf("forecast %s: id %s, want %s", ev.GetEventId(), ev.GetForecastId(), want)
		}
		byEvent[ev.GetEventId()] = append(byEvent[ev.GetEventId()], &ev)
	}
	for event, n := range map[string]int{"a1": 2, "a2": 1, "a3": 1, "b1": 1, "i1": 1} {
		if len(byEvent[event]) != n {
			t.Fatalf("%d forecasts for %s, want %d (one per snapshot)", len(byEvent[event]), event, n)
		}
	}
	a1, a1again, a2, a3 := byEvent["a1"][0], byEvent["a1"][1], byEvent["a2"][0], byEvent["a3"][0]
	wantReasons := map[*forecastv1.ForecastEvent]forecastv1.ReasonCode{
		a1:               forecastv1.ReasonCode_REASON_CODE_DAY_CLOSED, // state rebuilt from history
		a3:               forecastv1.ReasonCode_REASON_CODE_DAY_CLOSED,
		byEvent["b1"][0]: forecastv1.ReasonCode_REASON_CODE_NEW_SERIES,
		byEvent["i1"][0]: forecastv1.ReasonCode_REASON_CODE_UNCHANGED,
	}
	for ev, want := range wantReasons {
		if got := ev.GetReason().GetCode(); got != want {
			t.Errorf("%s: reason %v (%s), want %v", ev.GetEventId(), got, ev.GetReason().GetDetail(), want)
		}
	}
	if len(a1.GetDaily()) != 28 || len(a1.GetLeadTimeDemand()) != 9 || len(a1.GetQuantileLevels()) != 14 ||
		a1.GetStartDay() != asOf.String() || a3.GetStartDay() != next.String() || a1.GetDemandClass() != "smooth" {
		t.Errorf("a1: %d days, %d lead times, %d levels, start %s, class %s", len(a1.GetDaily()), len(a1.GetLeadTimeDemand()),
			len(a1.GetQuantileLevels()), a1.GetStartDay(), a1.GetDemandClass())
	}
	if a2.GetDaily()[0].GetMean() <= a1.GetDaily()[0].GetMean() {
		t.Errorf("today's mean did not grow with demand so far: %v then %v", a1.GetDaily()[0].GetMean(), a2.GetDaily()[0].GetMean())
	}
	// A redelivered snapshot gives the same forecast (id and numbers).
	if a1again.GetForecastId() != a1.GetForecastId() || !proto.Equal(
		&forecastv1.ForecastEvent{Daily: a1.GetDaily(), LeadTimeDemand: a1.GetLeadTimeDemand()},
		&forecastv1.ForecastEvent{Daily: a1again.GetDaily(), LeadTimeDemand: a1again.GetLeadTimeDemand()}) {
		t.Error("the redelivered snapshot a1 gave a different forecast")
	}
	if len(byEvent["i1"][0].GetDaily()) != 0 {
		t.Error("an item snapshot got a series forecast")
	}

	dlq := consume(t, brokers, topics.DLQ(topics.Features), 2)
	reasons := []string{headerValue(dlq[0], topics.HeaderDLQReason), headerValue(dlq[1], topics.HeaderDLQReason)}
	if !(contains(reasons, consumer.ReasonInvalidSnapshot) && contains(reasons, consumer.ReasonUndecodable)) {
		t.Errorf("DLQ reasons %v", reasons)
	}

	conn, err := chx.Open(ctx, chCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var rows uint64
	var ids []string
	testenv.Eventually(t, 30*time.Second, "forecast_log rows", func() bool {
		err := conn.QueryRow(ctx, "SELECT count(), groupArray(event_id) FROM (SELECT event_id FROM forecast_log FINAL ORDER BY event_id)").Scan(&rows, &ids)
		return err == nil && rows == 4
	})
	if strings.Join(ids, ",") != "a1,a2,a3,b1" {
		t.Errorf("forecast_log holds %v, want a1,a2,a3,b1 once each", ids)
	}
	var means []float64
	var packed string // the daily, then the lead-time quantiles (store.DecodeQuantiles)
	if err := conn.QueryRow(ctx, "SELECT means, quantiles_pk FROM forecast_log FINAL WHERE event_id = 'a3'").Scan(&means, &packed); err != nil {
		t.Fatal(err)
	}
	quantiles, ltQuantiles, err := store.DecodeQuantiles(packed, len(a3.GetQuantileLevels()), len(means), len(a3.GetLeadTimeDemand()))
	if err != nil {
		t.Fatal(err)
	}
	if len(means) != 28 || len(quantiles) != 28 || means[5] != a3.GetDaily()[5].GetMean() || quantiles[5][6] != a3.GetDaily()[5].GetQuantiles()[6] ||
		ltQuantiles[2][3] != a3.GetLeadTimeDemand()[2].GetQuantiles()[3] {
		t.Errorf("forecast_log row of a3 does not hold the published numbers")
	}

	api := forecastClient(t, svc.grpcAddr)
	got, err := api.GetForecast(ctx, &forecastv1.GetForecastRequest{Sku: "A", Location: "online"})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.GetForecast(), a3) {
		t.Error("GetForecast(A) is not the latest published forecast a3")
	}
	explained, err := api.Explain(ctx, &forecastv1.ExplainRequest{Sku: "A", Location: "online"})
	if err != nil {
		t.Fatal(err)
	}
	if !hasComponent(explained.GetComponents(), "level") || !hasComponent(explained.GetComponents(), "weekday_factor") {
		t.Errorf("Explain components %v", explained.GetComponents())
	}
	if _, err := api.GetForecast(ctx, &forecastv1.GetForecastRequest{Sku: "Z", Location: "online"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetForecast(Z): %v, want NotFound", err)
	}
	if _, err := api.GetForecast(ctx, &forecastv1.GetForecastRequest{Sku: "A"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("GetForecast without location: %v, want InvalidArgument", err)
	}
	metrics := httpGet(t, "http://"+svc.adminAddr+"/metrics")
	for _, m := range []string{"stockcast_forecast_series", "stockcast_forecast_cold_series", "stockcast_forecast_state_builds_total"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics has no %s", m)
		}
	}
	svc.stop(t)

	// A restarted service has an empty memory: it answers from ClickHouse.
	svc = start(t, brokers, chCfg, featureAddr)
	api = forecastClient(t, svc.grpcAddr)
	got, err = api.GetForecast(ctx, &forecastv1.GetForecastRequest{Sku: "B", Location: "online"})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.GetForecast(), byEvent["b1"][0]) {
		t.Errorf("GetForecast(B) after a restart\n got %v\nwant %v", got.GetForecast(), byEvent["b1"][0])
	}
	explained, err = api.Explain(ctx, &forecastv1.ExplainRequest{Sku: "A", Location: "online"})
	if err != nil || !proto.Equal(explained.GetForecast(), a3) || !hasComponent(explained.GetComponents(), "level") {
		t.Errorf("Explain(A) after a restart: %v", err)
	}
	svc.stop(t)
}

func consume(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for len(out) < n {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: %d records after 60s, want %d", topic, len(out), n)
		}
		out = append(out, fetches.Records()...)
	}
	// Nothing more: exactly one output per input.
	short, cancelShort := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelShort()
	if extra := cl.PollFetches(short).Records(); len(extra) > 0 {
		t.Fatalf("%s: %d records more than the %d expected", topic, len(extra), n)
	}
	return out
}

func forecastClient(t *testing.T, addr string) forecastv1.ForecastServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return forecastv1.NewForecastServiceClient(conn)
}

func hasComponent(cs []*forecastv1.Component, name string) bool {
	for _, c := range cs {
		if c.GetName() == name {
			return true
		}
	}
	return false
}

func headerValue(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// testWriter sends the service's logs to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
