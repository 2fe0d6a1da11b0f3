package globalmodel

import (
	"context"
	"errors"
	"math"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/stockcast/stockcast/pkg/backtest"
	"github.com/stockcast/stockcast/pkg/forecasting"
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

// TestDirectFeaturesAreHorizonSafe: for every bucket, the features of day t
// do not move when any value after t-minLag changes (of the series or of
// any other, through the item and store aggregates), and do move with the
// value of day t-minLag.
func TestDirectFeaturesAreHorizonSafe(t *testing.T) {
	for _, set := range []int{FeaturesBase, FeaturesM5} {
		for _, lag := range DefaultBucketLags() {
			ds := tail(loadM5(t), 12, 500)
			day := 450
			names := FeatureNamesLagSet(lag, set)
			before := make([]float64, len(names))
			NewPanel(ds).direct().RowLagSet(2, day, lag, set, before)
			for i := range ds.Series {
				for k := day - lag + 1; k < ds.Days; k++ {
					ds.Series[i].Values[k] += 17
				}
			}
			after := make([]float64, len(names))
			NewPanel(ds).direct().RowLagSet(2, day, lag, set, after)
			for k := range before {
				if before[k] != after[k] && !(math.IsNaN(before[k]) && math.IsNaN(after[k])) {
					t.Errorf("set %d lag %d: feature %s moved from %v to %v with values after day t-%d", set, lag, names[k], before[k], after[k], lag)
				}
			}
			ds.Series[2].Values[day-lag] += 5
			NewPanel(ds).direct().RowLagSet(2, day, lag, set, after)
			if after[0] != before[0]+5 {
				t.Errorf("set %d lag %d: %s %v, want %v", set, lag, names[0], after[0], before[0]+5)
			}
			if set == FeaturesM5 {
				// the 3-day mean of the lag series moves by 5/3 with it
				k := slices.Index(names, "rmean_3")
				if got, want := after[k], before[k]+5.0/3; math.Abs(got-want) > 1e-9 {
					t.Errorf("lag %d: rmean_3 %v, want %v", lag, got, want)
				}
			}
		}
	}
}

// TestEventDistances: days to the next and since the last calendar event,
// by hand from the calendar.
func TestEventDistances(t *testing.T) {
	ds := tail(loadM5(t), 3, 400)
	var evs []int
	for d, e := range ds.Events {
		if e.Name1 != "" {
			evs = append(evs, d)
		}
	}
	if len(evs) < 3 {
		t.Fatalf("only %d event days in the last 400", len(evs))
	}
	d := NewPanel(ds).direct()
	a, b := evs[1], evs[2] // consecutive event days
	for day := a; day <= b; day++ {
		if got, want := d.sinceEvent[day], float64(day-a); day < b && got != want {
			t.Errorf("day %d: since %v, want %v", day, got, want)
		}
		if got, want := d.toEvent[day], float64(b-day); day > a && got != want {
			t.Errorf("day %d: to %v, want %v", day, got, want)
		}
	}
	if got := d.toEvent[a]; got != 0 {
		t.Errorf("event day %d: to %v, want 0", a, got)
	}
	if last := evs[len(evs)-1]; last < ds.Days-1 && !math.IsNaN(d.toEvent[ds.Days-1]) {
		t.Errorf("after the last event: to %v, want NaN", d.toEvent[ds.Days-1])
	}
}

func TestBucket(t *testing.T) {
	lags := DefaultBucketLags()
	for h, want := range map[int]int{0: 0, 6: 0, 7: 1, 13: 1, 14: 2, 21: 3, 27: 3} {
		if got := bucket(lags, h); got != want {
			t.Errorf("bucket(%d) = %d, want %d", h, got, want)
		}
	}
}

// TestCalibrationByHand: with a pooled dispersion of 1 (Poisson errors
// exactly at the mean) the levels move to where the validation points put
// them: F(y) and F(y-1) of Poisson(1) at y = 0, 1, 2.
func TestCalibrationByHand(t *testing.T) {
	// 120 series x 1 day: forecasts 1; 40 outcomes each of 0, 1 and 2
	// (errors: 40*1 + 0 + 40*1 = 80 over a mean of 120: pooled 2/3 -> 1)
	ds := &backtest.Dataset{Days: 2}
	means := make([][]float64, 120)
	for i := range means {
		ds.Series = append(ds.Series, backtest.Series{Values: []float64{0, float64(i % 3)}})
		means[i] = []float64{1}
	}
	c := fitCalibration(ds, 1, 1, means, false)
	for i, d := range c.dispersion {
		// series errors: y=0 or 2 -> (1 + 28*1)/(1+28) = 1; y=1 -> (0+28)/29 -> max 1
		if d != 1 {
			t.Fatalf("series %d dispersion %v, want 1", i, d)
		}
	}
	e := math.Exp(-1)
	f0, f1 := e, 2*e // Poisson(1): F(0), F(1)
	for k, u := range backtest.Levels {
		var want float64
		switch {
		case u < 0.5: // the u-quantile of F(y) in {F(0), F(1), F(2)} x 40
			want = []float64{f0, f1, f1 + e/2}[min(int(math.Ceil(u*120))-1, 119)/40]
		case u > 0.5: // of F(y-1) in {0, F(0), F(1)}
			want = []float64{0, f0, f1}[min(int(math.Ceil(u*120))-1, 119)/40]
		default:
			want = (f1 + f0) / 2
		}
		got := c.levels[k]
		if k > 0 && want+1e-9 < c.levels[k-1] {
			want = c.levels[k-1] - 1e-9 // kept ascending
		}
		if math.Abs(got-(want+1e-9)) > 1e-6 && !(got == 1e-4 && want < 1e-4) {
			t.Errorf("level %v: calibrated %v, want %v", u, got, want)
		}
	}
}

// TestDirectModelBacktest trains the direct global model small (30 series x
// 500 days, few trees) and requires it to beat seasonal naive, its
// validation-window forecasts to be out of sample (made before the refit)
// and its training to be deterministic, and the cache to give back the
// same model.
func TestDirectModelBacktest(t *testing.T) {
	ds := tail(loadM5(t), 30, 500)
	params := gbt.DefaultParams()
	params.Rounds, params.MaxDepth, params.Eta, params.EarlyStoppingRounds = 60, 5, 0.15, 10
	dir := t.TempDir()
	direct := &DirectGBT{DirectParams: DirectParams{Params: params, Refit: true}, CacheDir: dir}
	res, err := backtest.Run(context.Background(), ds, backtest.Config{Horizon: 28, Origins: 1},
		[]backtest.Model{direct, &CombinedDirect{Global: direct}, backtest.Baseline{Kind: "seasonal_naive"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		t.Logf("%-26s WRMSSE %.4f WSPL %.4f coverage %.3f %.3f %.3f", r.Model, r.Summary.WRMSSE, r.Summary.WSPL,
			r.Summary.Coverage[0], r.Summary.Coverage[1], r.Summary.Coverage[2])
	}
	for _, r := range res[:2] {
		if r.Summary.WRMSSE >= res[2].Summary.WRMSSE {
			t.Errorf("%s WRMSSE %.4f not below seasonal naive's %.4f", r.Model, r.Summary.WRMSSE, res[2].Summary.WRMSSE)
		}
	}
	origin := ds.Days - 28
	first := direct.trained[origin].members[0]
	again, err := TrainDirect(NewPanel(ds), origin, 28, direct.DirectParams)
	if err != nil {
		t.Fatal(err)
	}
	for b := range again.Models {
		if !reflect.DeepEqual(first.Models[b].Trees, again.Models[b].Trees) {
			t.Errorf("bucket %d: two trainings with the same seed differ", b)
		}
	}
	if !reflect.DeepEqual(first.Valid, again.Valid) {
		t.Error("validation forecasts differ between trainings")
	}
	cached := &DirectGBT{DirectParams: direct.DirectParams, CacheDir: dir}
	if _, _, err := cached.train(context.Background(), ds, origin, 28); err != nil {
		t.Fatal(err)
	}
	if tr := cached.trained[origin].members[0]; !reflect.DeepEqual(tr.Valid, first.Valid) || !reflect.DeepEqual(tr.Models[0].Trees, first.Models[0].Trees) {
		t.Error("the cached training differs")
	}
}

func TestParseBag(t *testing.T) {
	bag, err := ParseBag("730:1, 0:2,")
	if err != nil || !reflect.DeepEqual(bag, []BagMember{{730, 1}, {0, 2}}) {
		t.Fatalf("ParseBag: %v, %v", bag, err)
	}
	for _, bad := range []string{"730", "x:1", "-1:1"} {
		if _, err := ParseBag(bad); err == nil {
			t.Errorf("ParseBag(%q): no error", bad)
		}
	}
}

// TestPITCalibration: with pit the calibrated levels make the validation
// points' PIT uniform: at the level used for u, the mean share of the
// points' PIT intervals [F(y-1), F(y)] below it is u.
func TestPITCalibration(t *testing.T) {
	ds := &backtest.Dataset{Days: 2}
	means := make([][]float64, 120)
	for i := range means {
		ds.Series = append(ds.Series, backtest.Series{Values: []float64{0, float64(i % 3)}})
		means[i] = []float64{1}
	}
	c := fitCalibration(ds, 1, 1, means, true)
	for k, u := range backtest.Levels {
		v, share := c.levels[k], 0.0
		for i := range ds.Series {
			y := float64(i % 3)
			lo, hi := forecasting.CountCDF(1, c.dispersion[i], y-1), forecasting.CountCDF(1, c.dispersion[i], y)
			share += min(max((v-lo)/(hi-lo), 0), 1) / 120
		}
		if math.Abs(share-u) > 1e-6 {
			t.Errorf("level %v: calibrated %v, PIT share below it %v", u, v, share)
		}
	}
}

// TestRobustDispersionByHand: with the robust dispersion a bulk order's
// error counts only up to 3 standard deviations of a count of dispersion 3.
// Series A: forecasts 1, outcomes 1 but one 20 (error 19, capped at
// 3*sqrt(3)); series B: forecasts 2, outcomes 0 and 4 (errors 2, under
// the cap 3*sqrt(6)).
func TestRobustDispersionByHand(t *testing.T) {
	ds := &backtest.Dataset{Days: 29}
	a, b := make([]float64, 29), make([]float64, 29)
	ma, mb := make([]float64, 28), make([]float64, 28)
	for h := range 28 {
		a[1+h], ma[h], mb[h] = 1, 1, 2
		b[1+h] = float64(4 * (h % 2))
	}
	a[1+5] = 20
	ds.Series = []backtest.Series{{Values: a}, {Values: b}}
	sets := []validSet{{1, [][]float64{ma, mb}}}
	capA := 3 * math.Sqrt(3*1.0)
	sqA, sqB := capA*capA, 28*4.0
	pooled := (sqA + sqB) / (28 + 56)
	c := fitCalibrationSets(ds, sets, 28, true, true)
	near := func(name string, got, want float64) {
		if math.Abs(got-want) > 1e-12 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	near("robust A", c.dispersion[0], (sqA+28*pooled)/(28+28))
	near("robust B", c.dispersion[1], (sqB+28*pooled)/(56+28))
	raw := fitCalibrationSets(ds, sets, 28, true, false)
	pooledRaw := (19*19 + sqB) / (28 + 56)
	near("raw A", raw.dispersion[0], (19*19+28*pooledRaw)/(28+28))
}

// TestOneSeriesPanel: a panel of one series (the forecast service's live
// panel, built without the maps of the codes and the item prices) gives
// that series the rows, bit for bit, of a panel where it is the first of
// two whose other series sorts after it on every name: the same codes
// (0), item mean price, prefix sums and events.
func TestOneSeriesPanel(t *testing.T) {
	ds := tail(loadM5(t), 1, 200)
	s := ds.Series[0]
	s.Prices = append([]float64(nil), s.Prices...)
	for t := 0; t < len(s.Prices); t += 5 {
		s.Prices[t] = math.NaN() // unknown prices are left out of the mean
	}
	s.Prices[7] = 1.0 / 3
	one := &backtest.Dataset{Name: "one", Start: ds.Start, Days: ds.Days, Events: ds.Events, Series: []backtest.Series{s}}
	other := s
	other.ID, other.Item, other.Dept, other.Cat, other.Store = "~", "~", "~", "~", "~"
	other.Prices = make([]float64, len(s.Prices))
	for t := range other.Prices {
		other.Prices[t] = 100
	}
	two := &backtest.Dataset{Name: "two", Start: ds.Start, Days: ds.Days, Events: ds.Events, Series: []backtest.Series{s, other}}
	for _, d := range []*backtest.Dataset{one, {Name: "no events", Start: ds.Start, Days: ds.Days, Series: one.Series}} {
		ref := two
		if d.Events == nil {
			ref = &backtest.Dataset{Name: "two", Start: ds.Start, Days: ds.Days, Series: two.Series}
		}
		p, q := NewPanel(d), NewPanel(ref)
		got, want := make([]float64, len(FeatureNames())), make([]float64, len(FeatureNames()))
		for day := range d.Days {
			p.Row(0, day, got)
			q.Row(0, day, want)
			for k := range got {
				if math.Float64bits(got[k]) != math.Float64bits(want[k]) {
					t.Fatalf("%s day %d feature %s: %v, want %v", d.Name, day, FeatureNames()[k], got[k], want[k])
				}
			}
		}
		if p.first[0] != q.first[0] {
			t.Fatalf("%s: first sale %d, want %d", d.Name, p.first[0], q.first[0])
		}
	}
}

// cancelAt is a context that cancels itself on the at-th Err call and
// counts the calls: gbt.TrainContext checks Err once per round.
type cancelAt struct {
	context.Context
	cancel context.CancelFunc
	at     int64
	calls  atomic.Int64
}

func (c *cancelAt) Err() error {
	if c.calls.Add(1) == c.at {
		c.cancel()
	}
	return c.Context.Err()
}

// TestBacktestCancelledDuringTraining: a backtest of the direct model, the
// combination and the single global model whose context is cancelled in
// the 10th boosting round of the first training returns context.Canceled
// at that check: no further round, training or model runs.
func TestBacktestCancelledDuringTraining(t *testing.T) {
	ds := tail(loadM5(t), 10, 300)
	params := gbt.DefaultParams()
	params.Rounds, params.MaxDepth, params.EarlyStoppingRounds = 500, 4, 0
	direct := &DirectGBT{DirectParams: DirectParams{Params: params, Refit: true}}
	models := []backtest.Model{direct, &CombinedDirect{Global: direct}, &GBT{Params: params, Refit: true}}
	for _, first := range []int{0, 2} { // the direct model first, then the single global model first
		parent, cancel := context.WithCancel(context.Background())
		ctx := &cancelAt{Context: parent, cancel: cancel, at: 10}
		_, err := backtest.Run(ctx, ds, backtest.Config{Horizon: 28, Origins: 2}, models[first:])
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("models from %s: err %v, want context.Canceled", models[first].Name(), err)
		}
		if n := ctx.calls.Load(); n != ctx.at {
			t.Errorf("models from %s: context checked %d times, want %d (none after the cancel)", models[first].Name(), n, ctx.at)
		}
	}
}
