package scoring

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stockcast/stockcast/pkg/backtest"
	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/gbt"
	"github.com/stockcast/stockcast/pkg/globalmodel"
	"github.com/stockcast/stockcast/pkg/modelregistry"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
)

// trainingSet is three series like testSeries' A|online (the first is
// its demand), for a small global model.
func trainingSet(src testSeries, days int) *backtest.Dataset {
	ds := &backtest.Dataset{Name: "test", Start: src.start, Days: days}
	for k, item := range []string{"A", "B", "C"} {
		s := backtest.Series{ID: item + "|online", Item: item, Dept: "all", Cat: "all", Store: "online",
			Values: make([]float64, days), Prices: make([]float64, days)}
		for t := range days {
			s.Values[t] = src.demand[t] * float64(k+1)
			s.Prices[t] = math.NaN()
		}
		ds.Series = append(ds.Series, s)
	}
	return ds
}

var trainOnce struct {
	sync.Once
	ds  *backtest.Dataset
	art *globalmodel.Artefact
	err error
}

// testArtefact trains a small global model on trainingSet (once per test
// binary).
func testArtefact(t testing.TB, src testSeries) (*backtest.Dataset, *globalmodel.Artefact) {
	t.Helper()
	trainOnce.Do(func() {
		ds := trainingSet(src, 300)
		p := gbt.DefaultParams()
		p.Rounds, p.MaxDepth, p.Eta, p.EarlyStoppingRounds, p.MinChildWeight = 40, 4, 0.1, 0, 1
		tr, err := globalmodel.Train(globalmodel.NewPanel(ds), 300, 28, p, false)
		if err != nil {
			trainOnce.err = err
			return
		}
		trainOnce.ds = ds
		trainOnce.art, trainOnce.err = globalmodel.NewArtefact(tr.Model, ds.Name, ds.Day(300).String(), 28, nil, time.Unix(0, 0))
	})
	if trainOnce.err != nil {
		t.Fatal(trainOnce.err)
	}
	return trainOnce.ds, trainOnce.art
}

func testModel(t testing.TB, src testSeries) (*Model, *backtest.Dataset) {
	t.Helper()
	ds, a := testArtefact(t, src)
	m, err := NewModel(a, modelregistry.NewSeries(a.Version, ds), DefaultGlobalWeight)
	if err != nil {
		t.Fatal(err)
	}
	return m, ds
}

// expectedGlobal computes the global model's means of series A from day
// index i on, independently of the service: features from a panel over
// A's whole history (not the service's 84-day window), codes from the
// training set.
func expectedGlobal(t *testing.T, a *globalmodel.Artefact, src testSeries, i int) (means []float64, row0 []float64) {
	t.Helper()
	ds := trainingSet(src, i+28)
	for t := i; t < i+28; t++ {
		ds.Series[0].Values[t] = 1e9 // after the origin: must not be read
	}
	p := globalmodel.NewPanel(ds)
	row := make([]float64, len(globalmodel.FeatureNames()))
	for h := range 28 {
		p.Row(0, i+h, row)
		means = append(means, a.Model.Predict(row))
		if h == 0 {
			row0 = append([]float64(nil), row...)
		}
	}
	return means, row0
}

func TestGlobalCombination(t *testing.T) {
	src := testSeries{start: 19000, demand: weekly(400)}
	m, _ := testModel(t, src)
	_, art := testArtefact(t, src)
	withModel := New(testConfig(10), src, fixedClock)
	withModel.SetModel(m)
	alone := New(testConfig(10), src, fixedClock)
	var prev *Result
	for i := 310; i < 320; i++ {
		for k := range 3 { // three events a day: one global forecast per day
			snap := src.snapshot(i, fmt.Sprintf("e%d-%d", i, k))
			res := score(t, withModel, snap)
			ens := score(t, alone, snap)
			g := res.Event.GetGlobal()
			if g.GetVersion() != art.Version || res.Event.GetModelVersion() != forecasting.ModelVersion+"+"+art.Version ||
				res.Event.GetReason().GetModelVersion() != art.Version {
				t.Fatalf("day %d: global %v, model version %s", i, g.GetVersion(), res.Event.GetModelVersion())
			}
			want, row0 := expectedGlobal(t, art, src, i)
			for h := range 28 {
				if math.Abs(g.GetMeans()[h]-want[h]) > 1e-9*max(1, want[h]) {
					t.Fatalf("day %d+%d: global mean %v, independently %v", i, h, g.GetMeans()[h], want[h])
				}
				e, c := ens.Event.GetDaily()[h], res.Event.GetDaily()[h]
				base, share := 0.0, 0.0
				if h == 0 {
					base, share = src.demand[i]/2, 0.5 // noon, half the day seen
				}
				wantMean := base + 0.5*(e.GetMean()-base) + 0.5*want[h]*(1-share)
				if math.Abs(c.GetMean()-wantMean) > 1e-9 {
					t.Fatalf("day %d+%d: combined mean %v, want %v", i, h, c.GetMean(), wantMean)
				}
				// the ensemble's quantiles scaled to the combined mean
				r := (c.GetMean() - base) / (e.GetMean() - base)
				for q := range e.GetQuantiles() {
					if wq := base + (e.GetQuantiles()[q]-base)*r; math.Abs(c.GetQuantiles()[q]-wq) > 1e-9 {
						t.Fatalf("day %d+%d quantile %d: %v, want %v", i, h, q, c.GetQuantiles()[q], wq)
					}
				}
			}
			// lead time L: the ensemble's demand still to come over days
			// 0..L plus the combination's change of it
			for li, lt := range res.Event.GetLeadTimeDemand() {
				want := ens.Event.GetLeadTimeDemand()[li].GetMean()
				for h := 0; h <= int(lt.GetLeadTimeDays()) && h < 28; h++ {
					want += res.Event.GetDaily()[h].GetMean() - ens.Event.GetDaily()[h].GetMean()
				}
				if math.Abs(lt.GetMean()-want) > 1e-9 {
					t.Fatalf("lead time %d: %v, want %v", lt.GetLeadTimeDays(), lt.GetMean(), want)
				}
			}
			// attributions: bias + contributions = log of the global mean
			// of the first day, and the values are the independent row
			sum := g.GetBias()
			for k, a := range g.GetAttributions() {
				sum += a.GetContribution()
				if v := row0[k]; a.GetValue() != v && !(math.IsNaN(v) && math.IsNaN(a.GetValue())) && math.Abs(a.GetValue()-v) > 1e-9 {
					t.Fatalf("feature %s = %v, independently %v", a.GetFeature(), a.GetValue(), v)
				}
			}
			if g.GetLink() != "log" || math.Abs(math.Exp(sum)-want[0]) > 1e-9*max(1, want[0]) {
				t.Fatalf("exp(bias + contributions) = %v, global mean %v (link %s)", math.Exp(sum), want[0], g.GetLink())
			}
			// the explanation: ensemble components, then the global model's
			comps := map[string]float64{}
			for _, c := range res.Components {
				comps[c.Name] = c.Value
			}
			if comps["global_mean"] != g.GetMeans()[0] || comps["contribution_lag28"] != g.GetAttributions()[0].GetContribution() ||
				comps["global_weight"] != 0.5 || comps["level"] == 0 {
				t.Fatalf("components %v", comps)
			}
			// why it changed: the first event of a day after the first day
			// names the moved features
			reason := res.Event.GetReason()
			if k == 0 && prev != nil {
				if reason.GetCode() != forecastv1.ReasonCode_REASON_CODE_DAY_CLOSED || len(reason.GetFactors()) == 0 {
					t.Fatalf("day %d: reason %v", i, reason)
				}
				for _, f := range reason.GetFactors() {
					var before float64
					for _, a := range prev.Event.GetGlobal().GetAttributions() {
						if a.GetFeature() == f.GetFeature() {
							before = a.GetContribution()
						}
					}
					if math.Abs(f.GetChange()-(f.GetContribution()-before)) > 1e-12 {
						t.Fatalf("factor %s change %v, contributions %v -> %v", f.GetFeature(), f.GetChange(), before, f.GetContribution())
					}
				}
			}
			if k > 0 && len(reason.GetFactors()) != 0 {
				t.Fatalf("day %d event %d: factors %v without a new global forecast", i, k, reason.GetFactors())
			}
			prev = res
		}
	}
	if st := withModel.Stats(); st.GlobalForecasts != 10 {
		t.Errorf("%d global forecasts for 30 events on 10 days, want 10", st.GlobalForecasts)
	}

	// the model goes away: the ensemble alone, and the reason says so
	withModel.SetModel(nil)
	res := score(t, withModel, src.snapshot(320, "f"))
	if res.Event.GetGlobal() != nil || res.Event.GetModelVersion() != forecasting.ModelVersion ||
		res.Event.GetReason().GetCode() != forecastv1.ReasonCode_REASON_CODE_MODEL_CHANGED ||
		res.Event.GetReason().GetPreviousModelVersion() != art.Version {
		t.Errorf("without the model: %v %s %v", res.Event.GetGlobal(), res.Event.GetModelVersion(), res.Event.GetReason())
	}
	if ens := score(t, alone, src.snapshot(320, "f")); fmt.Sprint(ens.Event.GetDaily()) != fmt.Sprint(res.Event.GetDaily()) {
		t.Error("without the model the forecast is not the ensemble's")
	}
}

func TestLoadModel(t *testing.T) {
	src := testSeries{start: 19000, demand: weekly(400)}
	ds, art := testArtefact(t, src)
	dir := t.TempDir()
	path, err := art.Save(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := modelregistry.NewSeries(art.Version, ds).Save(path); err != nil {
		t.Fatal(err)
	}
	m, err := LoadModel(path, 0.5)
	if err != nil || m.Version != art.Version || m.series == nil {
		t.Fatalf("load: %v %v", m, err)
	}
	if _, err := LoadModel(path, 0); err == nil {
		t.Error("weight 0 accepted")
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"version":"gbt-x","model":`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadModel(bad, 0.5); err == nil {
		t.Error("a truncated artefact loaded")
	}
	if _, err := LoadModel(filepath.Join(dir, "missing.json"), 0.5); err == nil {
		t.Error("a missing artefact loaded")
	}
}
