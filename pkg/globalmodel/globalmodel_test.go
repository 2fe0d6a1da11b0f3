package globalmodel

import (
	"context"
	"math"
	"reflect"
	"testing"

	"github.com/stockcast/stockcast/pkg/backtest"
	"github.com/stockcast/stockcast/pkg/gbt"
)

func loadM5(t *testing.T) *backtest.Dataset {
	t.Helper()
	path, err := backtest.FindFile("data/m5-tiny/tiny_m5_long.csv.gz")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := backtest.LoadM5(path)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// tail keeps the last days of every series (and n series).
func tail(ds *backtest.Dataset, n, days int) *backtest.Dataset {
	out := &backtest.Dataset{Name: ds.Name, Start: ds.Day(ds.Days - days), Days: days, Events: ds.Events[ds.Days-days:]}
	for _, s := range ds.Series[:n] {
		s.Values, s.Prices, s.Snap = s.Values[ds.Days-days:], s.Prices[ds.Days-days:], s.Snap[ds.Days-days:]
		out.Series = append(out.Series, s)
	}
	return out
}

// TestFeaturesAreHorizonSafe changes every value after day t-MinLag and
// requires the features of day t not to move: what the model sees of a
// horizon day is known at the origin, in training and in forecasting.
func TestFeaturesAreHorizonSafe(t *testing.T) {
	ds := tail(loadM5(t), 5, 400)
	p := NewPanel(ds)
	day := 300
	before := make([]float64, len(FeatureNames()))
	p.Row(2, day, before)
	for k := day - MinLag + 1; k < ds.Days; k++ {
		ds.Series[2].Values[k] += 17
	}
	after := make([]float64, len(FeatureNames()))
	NewPanel(ds).Row(2, day, after)
	for k := range before {
		if before[k] != after[k] && !(math.IsNaN(before[k]) && math.IsNaN(after[k])) {
			t.Errorf("feature %s moved from %v to %v with values after day t-%d", FeatureNames()[k], before[k], after[k], MinLag)
		}
	}
	// and it does move with the value of day t-MinLag (lag28)
	ds.Series[2].Values[day-MinLag] += 5
	NewPanel(ds).Row(2, day, after)
	if after[0] != before[0]+5 {
		t.Errorf("lag28 %v, want %v", after[0], before[0]+5)
	}
}

// TestGlobalModelBacktest trains the global model on 60 series x 600 days
// of m5-tiny and requires it, and its combination with the ensemble, to
// beat seasonal naive, the combination to beat the 28-day moving average
// too (on so little data the global model alone does not), and the
// training to be deterministic.
func TestGlobalModelBacktest(t *testing.T) {
	ds := tail(loadM5(t), 60, 600)
	params := gbt.DefaultParams()
	params.Rounds, params.MaxDepth, params.Eta, params.EarlyStoppingRounds = 150, 6, 0.1, 20
	global := &GBT{Params: params, Refit: true}
	res, err := backtest.Run(context.Background(), ds, backtest.Config{Horizon: 28, Origins: 1},
		[]backtest.Model{global, &Combined{Global: global}, backtest.Baseline{Kind: "seasonal_naive"},
			backtest.Baseline{Kind: "moving_average", Window: 28}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		t.Logf("%-20s WRMSSE %.4f WSPL %.4f coverage %.3f %.3f %.3f (%v)", r.Model, r.Summary.WRMSSE, r.Summary.WSPL,
			r.Summary.Coverage[0], r.Summary.Coverage[1], r.Summary.Coverage[2], r.Elapsed)
	}
	for _, c := range [][2]int{{0, 2}, {1, 2}, {1, 3}} {
		if r, base := res[c[0]], res[c[1]]; r.Summary.WRMSSE >= base.Summary.WRMSSE {
			t.Errorf("%s WRMSSE %.4f not below %s's %.4f", r.Model, r.Summary.WRMSSE, base.Model, base.Summary.WRMSSE)
		}
	}
	again, err := Train(NewPanel(ds), ds.Days-28, 28, params, true)
	if err != nil {
		t.Fatal(err)
	}
	if first := global.Trained(); !reflect.DeepEqual(first.Model.Trees, again.Model.Trees) {
		t.Error("two trainings with the same seed differ")
	}
}
