package api

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
)

// TestToForecastAttributions: the reason's factors in their order, the
// global model's contributions largest |contribution| first and cut to
// maxAttributions, NaN values (a missing feature) as null: the JSON encodes.
func TestToForecastAttributions(t *testing.T) {
	var attrs []*forecastv1.Attribution
	for i := 0; i < 12; i++ {
		attrs = append(attrs, &forecastv1.Attribution{Feature: "f" + string(rune('a'+i)), Value: float64(i), Contribution: float64(i%5) - 2})
	}
	attrs[3].Value = math.NaN()
	attrs[11].Contribution = -7 // the largest in size
	ex := &forecastv1.ExplainResponse{
		Forecast: &forecastv1.ForecastEvent{
			Model: "ensemble", ModelVersion: "gbt-2",
			Reason: &forecastv1.ForecastReason{Code: forecastv1.ReasonCode(1), Factors: []*forecastv1.Attribution{
				{Feature: "lag_7", Value: 3, Contribution: 0.2, Change: 0.15}, {Feature: "price", Value: math.NaN(), Contribution: -0.1, Change: math.NaN()}},
				ModelVersion: "gbt-2", PreviousModelVersion: "gbt-1"},
			Global: &forecastv1.GlobalForecast{Version: "gbt-2", Weight: 0.5, Link: "log", Bias: 1.25, Attributions: attrs},
		},
		Components: []*forecastv1.Component{{Name: "level", Value: math.NaN()}},
	}
	f := toForecast(ex)
	if len(f.Factors) != 2 || f.Factors[0].Feature != "lag_7" || f.Factors[1].Value != nil || f.Factors[1].Change != 0 || f.PreviousModelVersion != "gbt-1" {
		t.Errorf("factors %+v previous %q", f.Factors, f.PreviousModelVersion)
	}
	g := f.Global
	if g == nil || g.Version != "gbt-2" || g.Weight != 0.5 || g.Bias != 1.25 || len(g.Attributions) != maxAttributions {
		t.Fatalf("global %+v", g)
	}
	if g.Attributions[0].Feature != "fl" || g.Attributions[0].Contribution != -7 {
		t.Errorf("largest first: %+v", g.Attributions[0])
	}
	for i := 1; i < len(g.Attributions); i++ {
		if math.Abs(g.Attributions[i].Contribution) > math.Abs(g.Attributions[i-1].Contribution) {
			t.Errorf("not by size: %+v", g.Attributions)
		}
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	if !strings.Contains(string(b), `{"feature":"price","value":null,"contribution":-0.1,"change":0}`) {
		t.Errorf("json %s", b)
	}
}
