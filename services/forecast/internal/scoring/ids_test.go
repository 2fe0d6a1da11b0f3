package scoring

import (
	"context"
	"testing"

	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/modelregistry"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
)

// TestForecastIDCarriesModelVersion redelivers one snapshot to a scorer
// whose global model is swapped in between: with the same models the
// forecast (id and content) repeats; after a swap the event names the new
// models and gets another id, so that no two records share an id with
// different content.
func TestForecastIDCarriesModelVersion(t *testing.T) {
	src := testSeries{start: 19000, demand: weekly(400)}
	ds, art := testArtefact(t, src)
	m1, err := NewModel(art, modelregistry.NewSeries(art.Version, ds), DefaultGlobalWeight)
	if err != nil {
		t.Fatal(err)
	}
	other := *art
	other.Version = "gbt-000000000000" // the same trees under another version
	m2, err := NewModel(&other, modelregistry.NewSeries(other.Version, ds), 0.25)
	if err != nil {
		t.Fatal(err)
	}
	sc := New(testConfig(10), src, fixedClock)
	score(t, sc, src.snapshot(309, "warm"))
	snap := src.snapshot(310, "e310")
	// scored and not committed, as a batch that failed and is redelivered
	deliver := func() *forecastv1.ForecastEvent {
		t.Helper()
		res, err := sc.Begin().Score(context.Background(), snap)
		if err != nil {
			t.Fatal(err)
		}
		return res.Event
	}
	ids := map[string]string{} // id -> model version
	for _, step := range []struct {
		model   *Model
		version string
	}{
		{nil, forecasting.ModelVersion},
		{m1, forecasting.ModelVersion + "+" + art.Version},
		{m2, forecasting.ModelVersion + "+" + other.Version},
		{m1, forecasting.ModelVersion + "+" + art.Version}, // swapped back: the first id again
	} {
		sc.SetModel(step.model)
		ev := deliver()
		if ev.GetModelVersion() != step.version {
			t.Fatalf("model version %q, want %q", ev.GetModelVersion(), step.version)
		}
		if want := ForecastID("A|online", "e310", step.version); ev.GetForecastId() != want {
			t.Errorf("%s: id %s, want %s", step.version, ev.GetForecastId(), want)
		}
		if v, ok := ids[ev.GetForecastId()]; ok && v != step.version {
			t.Errorf("id %s used for %s and %s", ev.GetForecastId(), v, step.version)
		}
		ids[ev.GetForecastId()] = step.version
		again := deliver()
		if again.GetForecastId() != ev.GetForecastId() || again.GetDaily()[1].GetMean() != ev.GetDaily()[1].GetMean() {
			t.Errorf("%s: redelivery gave id %s mean %v, first %s %v", step.version, again.GetForecastId(),
				again.GetDaily()[1].GetMean(), ev.GetForecastId(), ev.GetDaily()[1].GetMean())
		}
	}
	if len(ids) != 3 {
		t.Errorf("%d distinct ids for three model versions: %v", len(ids), ids)
	}
	// the series is part of the id: another series' forecast of the same event differs
	if ForecastID("A|online", "e310", forecasting.ModelVersion) == ForecastID("B|online", "e310", forecasting.ModelVersion) {
		t.Error("two series, one id")
	}
}
