package app

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/stockcast/stockcast/pkg/backtest"
	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/gbt"
	"github.com/stockcast/stockcast/pkg/globalmodel"
	"github.com/stockcast/stockcast/pkg/modelregistry"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
)

// trainArtefact trains a small global model on A|online's history and two
// scaled copies, saves it with its series codes under dir, and returns
// its path and version.
func trainArtefact(t *testing.T, dir string, rounds int) (string, string) {
	t.Helper()
	hist := historyA()
	ds := &backtest.Dataset{Name: "test", Start: asOf - 120, Days: 120}
	for k, item := range []string{"A", "B", "C"} {
		s := backtest.Series{ID: item + "|online", Item: item, Dept: "all", Cat: "all", Store: "online",
			Values: make([]float64, 120), Prices: make([]float64, 120)}
		for d := range 120 {
			s.Values[d], s.Prices[d] = hist[d]*float64(k+1), math.NaN()
		}
		ds.Series = append(ds.Series, s)
	}
	p := gbt.DefaultParams()
	p.Rounds, p.MaxDepth, p.Eta, p.EarlyStoppingRounds, p.MinChildWeight = rounds, 3, 0.1, 0, 1
	tr, err := globalmodel.Train(globalmodel.NewPanel(ds), 120, 28, p, false)
	if err != nil {
		t.Fatal(err)
	}
	a, err := globalmodel.NewArtefact(tr.Model, ds.Name, asOf.String(), 28, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	path, err := a.Save(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := modelregistry.NewSeries(a.Version, ds).Save(path); err != nil {
		t.Fatal(err)
	}
	return path, a.Version
}

// TestHotLoad runs the service with no champion (the ensemble alone),
// promotes a model in the registry while it runs and polls until the
// forecasts carry its version; promotes a corrupt artefact (the service
// keeps the model, counts the failure) and then a second model (the
// forecasts switch, with reason MODEL_CHANGED).
func TestHotLoad(t *testing.T) {
	ctx := context.Background()
	brokers := testenv.Kafka(t)
	chCfg := testenv.ClickHouse(t)
	svc := start(t, brokers, chCfg, startFeatureServer(t), "-model.poll-interval", "100ms")
	defer svc.stop(t)
	conn, err := chx.Open(ctx, chCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	reg := modelregistry.New(conn) // the service created the table
	dir := t.TempDir()

	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	reader, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeTopics(topics.Forecasts),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	n := 0
	// forecastOnce publishes one snapshot of A and returns its forecast
	forecastOnce := func() *forecastv1.ForecastEvent {
		n++
		id := fmt.Sprintf("h%d", n)
		if err := producer.ProduceSync(ctx, record(t, snapshotA(id, asOf, 10, float64(n), 0))).FirstErr(); err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for {
			fetches := reader.PollFetches(cctx)
			if cctx.Err() != nil {
				t.Fatalf("no forecast of %s", id)
			}
			for _, r := range fetches.Records() {
				var ev forecastv1.ForecastEvent
				if err := proto.Unmarshal(r.Value, &ev); err != nil {
					t.Fatal(err)
				}
				if ev.GetEventId() == id {
					return &ev
				}
			}
		}
	}
	if ev := forecastOnce(); ev.GetGlobal() != nil || ev.GetModel() != "stat-ensemble" {
		t.Fatalf("without a champion: model %s, global %v", ev.GetModel(), ev.GetGlobal())
	}

	promote := func(path, version string) {
		t.Helper()
		if err := reg.Record(ctx, modelregistry.Model{Version: version, Artefact: path, DataSet: "test", Status: modelregistry.StatusChampion}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(version string) *forecastv1.ForecastEvent {
		t.Helper()
		var ev *forecastv1.ForecastEvent
		testenv.Eventually(t, 30*time.Second, "forecasts with model "+version, func() bool {
			ev = forecastOnce()
			return ev.GetGlobal().GetVersion() == version
		})
		return ev
	}
	path1, v1 := trainArtefact(t, dir, 20)
	promote(path1, v1)
	ev := waitFor(v1)
	if r := ev.GetReason(); r.GetCode() != forecastv1.ReasonCode_REASON_CODE_MODEL_CHANGED || r.GetPreviousModelVersion() != "" || r.GetModelVersion() != v1 {
		t.Errorf("first forecast with %s: reason %v", v1, r)
	}
	// Explain: the attributions add up to the global mean of the day
	explained, err := forecastClient(t, svc.grpcAddr).Explain(ctx, &forecastv1.ExplainRequest{Sku: "A", Location: "online"})
	if err != nil {
		t.Fatal(err)
	}
	g := explained.GetForecast().GetGlobal()
	sum := g.GetBias()
	for _, a := range g.GetAttributions() {
		sum += a.GetContribution()
	}
	if math.Abs(math.Exp(sum)-g.GetMeans()[0]) > 1e-9*max(1, g.GetMeans()[0]) || !hasComponent(explained.GetComponents(), "contribution_lag28") ||
		!hasComponent(explained.GetComponents(), "level") {
		t.Errorf("Explain: exp(bias + contributions) %v, mean %v; components %v", math.Exp(sum), g.GetMeans()[0], explained.GetComponents())
	}

	// a corrupt champion: counted, and the forecasts keep v1
	bad := filepath.Join(dir, "gbt-000000000bad.json")
	if err := os.WriteFile(bad, []byte(`{"version":"gbt-000000000bad","model":{"Trees":[`), 0o644); err != nil {
		t.Fatal(err)
	}
	promote(bad, "gbt-000000000bad")
	failed := regexp.MustCompile(`stockcast_forecast_model_loads_total\{[^}]*result="failed"[^}]*\} (\d+)`)
	testenv.Eventually(t, 30*time.Second, "the failed load counted", func() bool {
		m := failed.FindStringSubmatch(httpGet(t, "http://"+svc.adminAddr+"/metrics"))
		return m != nil && m[1] == "1"
	})
	if ev := forecastOnce(); ev.GetGlobal().GetVersion() != v1 {
		t.Errorf("after a corrupt champion: model %q, want %s kept", ev.GetGlobal().GetVersion(), v1)
	}

	// a second model
	path2, v2 := trainArtefact(t, dir, 35)
	if v2 == v1 {
		t.Fatal("two trainings gave one version")
	}
	promote(path2, v2)
	ev = waitFor(v2)
	if r := ev.GetReason(); r.GetCode() != forecastv1.ReasonCode_REASON_CODE_MODEL_CHANGED || r.GetPreviousModelVersion() != v1 {
		t.Errorf("first forecast with %s: reason %v", v2, r)
	}
	ok := regexp.MustCompile(`stockcast_forecast_model_loads_total\{[^}]*result="ok"[^}]*\} (\d+)`).FindStringSubmatch(httpGet(t, "http://"+svc.adminAddr+"/metrics"))
	if ok == nil || ok[1] != strconv.Itoa(2) {
		t.Errorf("ok loads %v, want 2", ok)
	}
}
