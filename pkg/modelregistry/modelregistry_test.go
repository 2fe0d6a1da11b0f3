package modelregistry_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/modelregistry"
	"github.com/stockcast/stockcast/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestRegistry(t *testing.T) {
	ctx := context.Background()
	conn, err := chx.Open(ctx, testenv.ClickHouse(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for range 2 { // idempotent
		if err := modelregistry.Migrate(ctx, conn); err != nil {
			t.Fatal(err)
		}
	}
	reg := modelregistry.New(conn)
	if _, ok, err := reg.Champion(ctx); err != nil || ok {
		t.Fatalf("champion of an empty registry: ok %v, err %v", ok, err)
	}
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	a := modelregistry.Model{Version: "gbt-aaaaaaaaaaaa", CreatedAt: t0, DataSet: "m5-tiny", Artefact: "/m/a.json",
		WRMSSE: 0.91, WSPL: 0.2, MASE: 0.8, Bias: -0.01, Coverage50: 0.49, Coverage90: 0.9, Coverage98: 0.97,
		ChampionWRMSSE: math.NaN(), TrainSeconds: 12.5, MetricsJSON: `{"wrmsse":0.91}`}
	if err := reg.Record(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, ok, err := reg.Get(ctx, a.Version)
	if err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	if got.Status != modelregistry.StatusChallenger || got.WRMSSE != 0.91 || got.Coverage98 != 0.97 || got.Artefact != "/m/a.json" ||
		!got.CreatedAt.Equal(t0) || !math.IsNaN(got.ChampionWRMSSE) || got.MetricsJSON != `{"wrmsse":0.91}` || got.TrainSeconds != 12.5 {
		t.Errorf("recorded %+v", got)
	}
	if err := reg.Promote(ctx, a.Version); err != nil {
		t.Fatal(err)
	}
	b := a
	b.Version, b.CreatedAt, b.Artefact, b.WRMSSE, b.ChampionVersion, b.ChampionWRMSSE = "gbt-bbbbbbbbbbbb", t0.Add(time.Hour), "/m/b.json", 0.88, a.Version, 0.91
	if err := reg.Record(ctx, b); err != nil {
		t.Fatal(err)
	}
	// promote b within the same second as a's promotion: the revision, not
	// the second, decides
	if err := reg.Promote(ctx, b.Version); err != nil {
		t.Fatal(err)
	}
	c, ok, err := reg.Champion(ctx)
	if err != nil || !ok || c.Version != b.Version || c.ChampionWRMSSE != 0.91 || c.ChampionVersion != a.Version {
		t.Fatalf("champion %+v %v %v, want %s", c, ok, err, b.Version)
	}
	list, err := reg.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Version != b.Version || list[0].Status != "champion" || list[1].Version != a.Version || list[1].Status != "retired" {
		t.Fatalf("list %+v", list)
	}
	// a recorded champion retires b in the same insert
	d := a
	d.Version, d.Status = "gbt-dddddddddddd", modelregistry.StatusChampion
	if err := reg.Record(ctx, d); err != nil {
		t.Fatal(err)
	}
	if c, _, _ := reg.Champion(ctx); c.Version != d.Version {
		t.Fatalf("champion %s, want %s", c.Version, d.Version)
	}
	var champions uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM models FINAL WHERE status = 'champion'").Scan(&champions); err != nil || champions != 1 {
		t.Fatalf("%d champions (%v), want 1", champions, err)
	}
	if err := reg.Promote(ctx, "gbt-missing"); !errors.Is(err, modelregistry.ErrNotFound) {
		t.Errorf("promote unknown: %v", err)
	}
	if err := reg.Record(ctx, modelregistry.Model{Version: "x", Status: "best"}); err == nil {
		t.Error("unknown status accepted")
	}
	if err := reg.Record(ctx, modelregistry.Model{}); err == nil {
		t.Error("model without version accepted")
	}
}
