package scoring

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stockcast/stockcast/pkg/gbt"
	"github.com/stockcast/stockcast/pkg/globalmodel"
	"github.com/stockcast/stockcast/pkg/modelregistry"
)

// TestForestPredictsAsGBT: the compact forest's margins equal
// gbt.Model.Margin bit for bit, and the stable plus the volatile trees'
// predictions and attributions equal Predict's and Contributions' up to
// the rounding of the sums' order, on the rows of a whole series, its first
// days included (missing lags, NaN), and on rows with every feature
// missing or at a threshold.
func TestForestPredictsAsGBT(t *testing.T) {
	src := testSeries{start: 19000, demand: weekly(400)}
	m, ds := testModel(t, src)
	panel := globalmodel.NewPanel(ds)
	cols := len(m.names)
	var rows []float64
	for i := range ds.Series {
		for day := range ds.Days {
			row := make([]float64, cols)
			panel.Row(i, day, row)
			rows = append(rows, row...)
		}
	}
	nan := make([]float64, cols)
	for k := range nan {
		nan[k] = math.NaN()
	}
	rows = append(rows, nan...)
	// a row on the thresholds of the first tree's splits
	at := make([]float64, cols)
	for _, n := range m.gbt.Trees[0].Nodes {
		if n.Left >= 0 {
			at[n.Feature] = n.Threshold
		}
	}
	rows = append(rows, at...)
	out := make([]float64, len(rows)/cols)
	all := newForest(m.gbt)
	all.margins(rows, cols, out)
	for r := range out {
		if want := m.gbt.Margin(rows[r*cols : (r+1)*cols]); out[r] != want {
			t.Fatalf("row %d: margin %v, gbt %v", r, out[r], want)
		}
	}
	m.predictRows(rows, cols, out)
	for r := range out {
		row := rows[r*cols : (r+1)*cols]
		if want := m.gbt.Predict(row); math.Abs(out[r]-want) > 1e-12*want {
			t.Fatalf("row %d: %v, Predict %v", r, out[r], want)
		}
		// all the trees in one forest: Contributions' values bit for bit
		allContrib := make([]float64, cols)
		allBias := all.contributions(row, allContrib)
		gbtBias, gbtContrib := m.gbt.Contributions(row)
		if allBias != gbtBias || fmt.Sprint(allContrib) != fmt.Sprint(gbtContrib) {
			t.Fatalf("row %d: forest attributions %v %v, gbt %v %v", r, allBias, allContrib, gbtBias, gbtContrib)
		}
		contrib := make([]float64, cols)
		bias := m.stable.contributions(row, contrib)
		bias += m.volatile.contributions(row, contrib)
		wantBias, wantContrib := m.gbt.Contributions(row)
		if math.Abs(bias-wantBias) > 1e-12 {
			t.Fatalf("row %d: bias %v, gbt %v", r, bias, wantBias)
		}
		for k := range contrib {
			if math.Abs(contrib[k]-wantContrib[k]) > 1e-12 {
				t.Fatalf("row %d feature %s: contribution %v, gbt %v", r, m.names[k], contrib[k], wantContrib[k])
			}
		}
	}
	if len(all.roots) != len(m.gbt.Trees) || len(m.stable.roots)+len(m.volatile.roots) != len(m.gbt.Trees) {
		t.Fatalf("%d + %d trees laid out of %d", len(m.stable.roots), len(m.volatile.roots), len(m.gbt.Trees))
	}
}

// pricedModel is a global model trained on series whose demand follows
// their price, so that some of its trees split on the price's features.
func pricedModel(t *testing.T, src testSeries) *Model {
	t.Helper()
	const days = 300
	ds := trainingSet(src, days)
	for k := range ds.Series {
		s := &ds.Series[k]
		for d := range days {
			s.Prices[d] = 2 + float64((d/5+k)%3)*0.5
			s.Values[d] = math.Round(s.Values[d] * 3 / s.Prices[d])
		}
	}
	p := gbt.DefaultParams()
	p.Rounds, p.MaxDepth, p.Eta, p.EarlyStoppingRounds, p.MinChildWeight = 40, 4, 0.1, 0, 1
	tr, err := globalmodel.Train(globalmodel.NewPanel(ds), days, 28, p, false)
	if err != nil {
		t.Fatal(err)
	}
	a, err := globalmodel.NewArtefact(tr.Model, ds.Name, ds.Day(days).String(), 28, nil, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(a, modelregistry.NewSeries(a.Version, ds), DefaultGlobalWeight)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.stable.roots) == 0 || len(m.volatile.roots) == 0 {
		t.Fatalf("%d stable and %d volatile trees: want both", len(m.stable.roots), len(m.volatile.roots))
	}
	return m
}

// TestCarryOverEqualsRecompute scores a series through closed days, gaps
// and price changes with one scorer (carrying the stable trees' margins
// and the other days over) and each snapshot again with a new scorer (its
// state rebuilt from the history, all 28 days predicted by every tree):
// the global means and the published daily means and quantiles are the
// same, bit for bit, and the attributions add up to the first day's mean.
func TestCarryOverEqualsRecompute(t *testing.T) {
	src := testSeries{start: 19000, demand: weekly(400)}
	m := pricedModel(t, src)
	sc := New(testConfig(10), src, fixedClock)
	sc.SetModel(m)
	prices := []float64{2, 2.5, 3, 0, 2.5}
	n := 0
	for _, day := range []int{310, 311, 312, 315, 330, 331, 331, 350} {
		for k := range 3 {
			snap := src.snapshot(day, fmt.Sprintf("e%d-%d", day, k))
			snap.Price = prices[n%len(prices)]
			n++
			if k == 2 {
				snap.Price = prices[(n+1)%len(prices)] // a second change the same day
			}
			got := score(t, sc, snap)
			fresh := New(testConfig(10), src, fixedClock)
			fresh.SetModel(m)
			want := score(t, fresh, snap)
			if fmt.Sprint(got.Event.GetGlobal().GetMeans()) != fmt.Sprint(want.Event.GetGlobal().GetMeans()) {
				t.Fatalf("day %d event %d price %v: global means\n%v\nrecomputed\n%v", day, k, snap.Price,
					got.Event.GetGlobal().GetMeans(), want.Event.GetGlobal().GetMeans())
			}
			if fmt.Sprint(got.Event.GetDaily()) != fmt.Sprint(want.Event.GetDaily()) {
				t.Fatalf("day %d event %d: daily forecasts differ from the recompute", day, k)
			}
			g := got.Event.GetGlobal()
			sum := g.GetBias()
			for i, a := range g.GetAttributions() {
				sum += a.GetContribution()
				if w := want.Event.GetGlobal().GetAttributions()[i].GetContribution(); math.Abs(a.GetContribution()-w) > 1e-12 {
					t.Fatalf("day %d event %d: %s contribution %v, recomputed %v", day, k, a.GetFeature(), a.GetContribution(), w)
				}
			}
			if math.Abs(math.Exp(sum)-g.GetMeans()[0]) > 1e-9*max(1, g.GetMeans()[0]) {
				t.Fatalf("day %d event %d: exp(bias + contributions) %v, mean %v", day, k, math.Exp(sum), g.GetMeans()[0])
			}
		}
	}
}

// TestMarginsContribAsSeparate: margins and row 0's attributions in one
// pass over the trees equal margins and contributions made one after the
// other, bit for bit, for 0 to 9 rows (the four-row blocks and the rest),
// with every forest of the test model and row 0 one of the rows or
// another; all the trees' margins are gbt.Model.Margin's.
func TestMarginsContribAsSeparate(t *testing.T) {
	src := testSeries{start: 19000, demand: weekly(400)}
	m, ds := testModel(t, src)
	panel := globalmodel.NewPanel(ds)
	cols := len(m.names)
	rows := make([]float64, 10*cols)
	for fi, f := range []forest{m.stable, m.volatile, newForest(m.gbt)} {
		for start := 0; start < ds.Days-10; start += 37 {
			for r := range 10 {
				panel.Row(start%len(ds.Series), start+r, rows[r*cols:(r+1)*cols])
			}
			row0 := rows[9*cols:]
			for n := range 10 {
				want, got := make([]float64, n), make([]float64, n)
				f.margins(rows, cols, want)
				wantContrib, gotContrib := make([]float64, cols), make([]float64, cols)
				for k := range cols {
					wantContrib[k], gotContrib[k] = float64(k), float64(k) // added to
				}
				wantBias := f.contributions(row0, wantContrib)
				gotBias := f.marginsContrib(rows, cols, got, row0, gotContrib)
				if fmt.Sprint(got) != fmt.Sprint(want) || gotBias != wantBias || fmt.Sprint(gotContrib) != fmt.Sprint(wantContrib) {
					t.Fatalf("start %d, %d rows: margins %v bias %v contributions %v; separately %v %v %v",
						start, n, got, gotBias, gotContrib, want, wantBias, wantContrib)
				}
				for r := range n {
					if math.Float64bits(got[r]) != math.Float64bits(want[r]) {
						t.Fatalf("start %d row %d: %v, %v", start, r, got[r], want[r])
					}
					if fi == 2 {
						if margin := m.gbt.Margin(rows[r*cols : (r+1)*cols]); math.Float64bits(got[r]) != math.Float64bits(margin) {
							t.Fatalf("start %d row %d of %d: %v, gbt margin %v", start, r, n, got[r], margin)
						}
					}
				}
			}
		}
	}
}
