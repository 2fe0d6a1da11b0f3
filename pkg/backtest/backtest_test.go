package backtest

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stockcast/stockcast/pkg/forecasting"
)

func near(t *testing.T, name string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-6 {
		t.Errorf("%s = %.7f, want %.7f", name, got, want)
	}
}

// constQuantiles returns quantiles at Levels: below, at and above the
// median.
func constQuantiles(horizon int, low, mid, high float64) [][]float64 {
	q := make([][]float64, horizon)
	for h := range q {
		q[h] = make([]float64, len(Levels))
		for k, u := range Levels {
			switch {
			case u < 0.5:
				q[h][k] = low
			case u == 0.5:
				q[h][k] = mid
			default:
				q[h][k] = high
			}
		}
	}
	return q
}

// TestMetricsByHand checks every metric against values computed by hand
// (the arithmetic is in the comments).
func TestMetricsByHand(t *testing.T) {
	// Series a: train 0 2 4 2 (price 1). From the first sale the changes
	// are +2, -2: squared scale 4, absolute scale 2; weight 2+4+2 = 8.
	// Forecast 2 2 for actuals 3 1: errors -1 +1, MSE 1, RMSSE
	// sqrt(1/4) = 0.5, MAE 1, MASE 0.5. All quantiles 2: pinball
	// (u*1 + (1-u)*1)/2 = 0.5 per level, SPL 0.5/2 = 0.25; no actual
	// inside [2, 2].
	a := ScoreSeries([]float64{0, 2, 4, 2}, []float64{1, 1, 1, 1}, []float64{3, 1},
		Prediction{Means: []float64{2, 2}, Quantiles: constQuantiles(2, 2, 2, 2)})
	near(t, "a.Weight", a.Weight, 8)
	near(t, "a.RMSSE", a.RMSSE, 0.5)
	near(t, "a.MASE", a.MASE, 0.5)
	near(t, "a.SPL", a.SPL, 0.25)
	if a.Covered != [3]int{0, 0, 0} || !a.Valid {
		t.Errorf("a: covered %v valid %v, want none covered, valid", a.Covered, a.Valid)
	}
	// Series b: train 1 1 2 2 (price 2): changes 0 +1 0, squared and
	// absolute scale 1/3; weight 2*(1+1+2+2) = 12. Forecast 2 3 for
	// actuals 2 2: errors 0 +1, MSE 0.5, RMSSE sqrt(1.5), MAE 0.5, MASE
	// 1.5. Quantiles 0 below the median, 2 at it, 4 above: pinball at y=2
	// is 2u below, 0 at, 2(1-u) above the median; over the nine M5 levels
	// .01+.05+.33+.5+0+.5+.33+.05+.01 = 1.78, mean 1.78/9, SPL
	// (1.78/9)*3 = 0.593333; both actuals inside every interval.
	b := ScoreSeries([]float64{1, 1, 2, 2}, []float64{2, 2, 2, 2}, []float64{2, 2},
		Prediction{Means: []float64{2, 3}, Quantiles: constQuantiles(2, 0, 2, 4)})
	near(t, "b.Weight", b.Weight, 12)
	near(t, "b.RMSSE", b.RMSSE, math.Sqrt(1.5))
	near(t, "b.MASE", b.MASE, 1.5)
	near(t, "b.SPL", b.SPL, 1.78/9*3)
	if b.Covered != [3]int{2, 2, 2} {
		t.Errorf("b: covered %v, want all", b.Covered)
	}
	// Series c never sells: not scored, not weighted.
	c := ScoreSeries([]float64{0, 0, 0, 0}, []float64{1, 1, 1, 1}, []float64{1, 0},
		Prediction{Means: []float64{0, 0}, Quantiles: constQuantiles(2, 0, 0, 0)})
	if c.Valid {
		t.Errorf("a series without sales is scored: %+v", c)
	}

	s := Summarise([][]SeriesScore{{a, b, c}})
	// WRMSSE (8*0.5 + 12*sqrt(1.5))/20; WSPL (8*0.25 + 12*0.593333)/20 =
	// 0.456; bias (0 + 1)/(4 + 4); coverage 2 of 4 days.
	near(t, "WRMSSE", s.WRMSSE, (4+12*math.Sqrt(1.5))/20)
	near(t, "WSPL", s.WSPL, 0.456)
	near(t, "MeanRMSSE", s.MeanRMSSE, (0.5+math.Sqrt(1.5))/2)
	near(t, "MeanMASE", s.MeanMASE, 1)
	near(t, "Bias", s.Bias, 0.125)
	for i, cov := range s.Coverage {
		near(t, "Coverage", cov, 0.5)
		_ = i
	}
	if s.Series != 2 || s.Skipped != 1 {
		t.Errorf("series %d skipped %d, want 2 and 1", s.Series, s.Skipped)
	}

	// Without quantiles the probabilistic metrics are missing, not zero.
	noQ := ScoreSeries([]float64{0, 2, 4, 2}, []float64{1, 1, 1, 1}, []float64{3, 1}, Prediction{Means: []float64{2, 2}})
	if s := Summarise([][]SeriesScore{{noQ}}); !math.IsNaN(s.WSPL) || !math.IsNaN(s.Coverage[1]) {
		t.Errorf("WSPL %v coverage %v without quantiles, want NaN", s.WSPL, s.Coverage)
	}
	// Two origins: WRMSSE is the mean of the origins' WRMSSE.
	s2 := Summarise([][]SeriesScore{{a}, {b}})
	near(t, "two-origin WRMSSE", s2.WRMSSE, (0.5+math.Sqrt(1.5))/2)
}

func TestPinball(t *testing.T) {
	near(t, "above", Pinball(5, 3, 0.9), 1.8)
	near(t, "below", Pinball(1, 3, 0.9), 0.2)
}

func TestOriginIndexes(t *testing.T) {
	got, err := Config{Horizon: 28, Origins: 3}.OriginIndexes(200)
	if err != nil {
		t.Fatal(err)
	}
	want := []int{116, 144, 172}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("origins %v, want %v", got, want)
		}
	}
	if _, err := (Config{Horizon: 28, Origins: 6}).OriginIndexes(200); err == nil {
		t.Error("origins without training days accepted")
	}
}

// TestBaselinesByHand runs the baselines on a tiny panel.
func TestBaselinesByHand(t *testing.T) {
	vals := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21}
	prices := make([]float64, len(vals))
	for i := range prices {
		prices[i] = 1
	}
	ds := &Dataset{Days: len(vals), Series: []Series{{ID: "x", Values: vals, Prices: prices}}}
	for _, c := range []struct {
		m    Model
		want []float64
	}{
		{Baseline{Kind: "naive"}, []float64{14, 14, 14, 14, 14, 14, 14, 14}},
		{Baseline{Kind: "seasonal_naive"}, []float64{8, 9, 10, 11, 12, 13, 14, 8}},
		{Baseline{Kind: "moving_average", Window: 4}, []float64{12.5, 12.5, 12.5, 12.5, 12.5, 12.5, 12.5, 12.5}},
	} {
		p, err := c.m.Forecast(ds, 14, 8)
		if err != nil {
			t.Fatal(err)
		}
		for h, w := range c.want {
			near(t, c.m.Name(), p[0].Means[h], w)
		}
		med := p[0].Quantiles[0][6]
		if med < c.want[0]-2 || med > c.want[0]+2 {
			t.Errorf("%s: median %v far from mean %v", c.m.Name(), med, c.want[0])
		}
	}
}

// TestM5Backtest reproduces the reference seasonal-naive score on the last
// 28 days of m5-tiny (BENCHMARKS.md: 1.208) and requires the ensemble to
// beat it (the moving average's reference, R forecast: 0.959, is reproduced
// too, and so are the mean RMSSE and MASE of both).
func TestM5Backtest(t *testing.T) {
	ds := loadTinyM5(t)
	if len(ds.Series) != 280 || ds.Days != 1913 || len(ds.Events) != 1913 {
		t.Fatalf("m5-tiny: %d series, %d days, %d event days; want 280, 1913, 1913", len(ds.Series), ds.Days, len(ds.Events))
	}
	res, err := Run(context.Background(), ds, Config{Horizon: 28, Origins: 1},
		[]Model{Baseline{Kind: "seasonal_naive"}, Baseline{Kind: "moving_average", Window: 28}, Ensemble{}})
	if err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	if err := WriteTable(&buf, res); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + buf.String())
	snaive, ma, ens := res[0].Summary, res[1].Summary, res[2].Summary
	if math.Abs(snaive.WRMSSE-1.208) > 0.0005 {
		t.Errorf("seasonal naive WRMSSE %.4f, want 1.208 (BENCHMARKS.md)", snaive.WRMSSE)
	}
	if math.Abs(ma.WRMSSE-0.959) > 0.0005 {
		t.Errorf("moving average 28 WRMSSE %.4f, want 0.959 (R forecast, BENCHMARKS.md)", ma.WRMSSE)
	}
	if math.Abs(snaive.MeanRMSSE-1.000) > 0.0005 || math.Abs(snaive.MeanMASE-1.242) > 0.0005 ||
		math.Abs(ma.MeanRMSSE-0.762) > 0.0005 || math.Abs(ma.MeanMASE-1.051) > 0.0005 {
		t.Errorf("mean RMSSE/MASE: seasonal naive %.4f/%.4f (want 1.000/1.242), moving average %.4f/%.4f (want 0.762/1.051)",
			snaive.MeanRMSSE, snaive.MeanMASE, ma.MeanRMSSE, ma.MeanMASE)
	}
	if ens.WRMSSE >= snaive.WRMSSE {
		t.Errorf("ensemble WRMSSE %.4f not below seasonal naive's %.4f", ens.WRMSSE, snaive.WRMSSE)
	}
	if ens.WSPL >= snaive.WSPL {
		t.Errorf("ensemble WSPL %.4f not below seasonal naive's %.4f", ens.WSPL, snaive.WSPL)
	}
}

// TestPeerRoundTrip writes splits, writes forecasts the way a peer does
// (CSV), reads them back and checks they score exactly as the same
// predictions scored directly.
func TestPeerRoundTrip(t *testing.T) {
	n := 70
	ds := &Dataset{Name: "toy", Start: 15000, Days: n}
	for i := range 3 {
		s := Series{ID: "s" + string(rune('a'+i)), Values: make([]float64, n), Prices: make([]float64, n)}
		for d := range n {
			s.Values[d] = float64((d*(i+2))%5 + i)
			s.Prices[d] = float64(i + 1)
		}
		ds.Series = append(ds.Series, s)
	}
	cfg := Config{Horizon: 7, Origins: 2}
	dir := t.TempDir()
	if err := WriteSplits(dir, ds, cfg); err != nil {
		t.Fatal(err)
	}
	series, err := os.ReadFile(filepath.Join(dir, "series.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(series), "\n"); lines != 1+3*n {
		t.Errorf("series.csv has %d lines, want %d", lines, 1+3*n)
	}
	origins, err := os.ReadFile(filepath.Join(dir, "origins.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "origin,train_days,horizon\n2011-03-23,56,7\n2011-03-30,63,7\n"; string(origins) != want {
		t.Errorf("origins.csv = %q, want %q", origins, want)
	}
	base := Baseline{Kind: "seasonal_naive"}
	direct, err := Run(context.Background(), ds, cfg, []Model{base})
	if err != nil {
		t.Fatal(err)
	}
	var csvText strings.Builder
	csvText.WriteString("model,origin,id,h,mean")
	for _, u := range Levels {
		csvText.WriteString(",q" + strconv.FormatFloat(u, 'g', -1, 64))
	}
	csvText.WriteString("\n")
	idx, _ := cfg.OriginIndexes(n)
	for _, o := range idx {
		preds, _ := base.Forecast(ds, o, cfg.Horizon)
		for i, p := range preds {
			for h := range p.Means {
				fmt.Fprintf(&csvText, "peer_snaive,%s,%s,%d,%g", ds.Day(o), ds.Series[i].ID, h+1, p.Means[h])
				for _, q := range p.Quantiles[h] {
					fmt.Fprintf(&csvText, ",%g", q)
				}
				csvText.WriteString("\n")
				fmt.Fprintf(&csvText, "peer_point,%s,%s,%d,%g%s\n", ds.Day(o), ds.Series[i].ID, h+1, p.Means[h], strings.Repeat(",NA", len(Levels)))
			}
		}
	}
	fpath := filepath.Join(dir, "f.csv")
	tpath := filepath.Join(dir, "t.csv")
	if err := os.WriteFile(fpath, []byte(csvText.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tpath, []byte("model,seconds\npeer_snaive,1.5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stored, err := ReadForecasts(fpath, tpath, ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 2 {
		t.Fatalf("%d models read, want 2", len(stored))
	}
	res, err := Run(context.Background(), ds, cfg, []Model{stored[0], stored[1]})
	if err != nil {
		t.Fatal(err)
	}
	// a file carries the quantiles, not the distribution: no exact PIT
	if !math.IsNaN(res[0].Summary.ExactPIT[0]) {
		t.Errorf("exact PIT %v from a peer file", res[0].Summary.ExactPIT)
	}
	peer, own := res[0].Summary, direct[0].Summary
	peer.ExactPIT, own.ExactPIT = [3]float64{}, [3]float64{}
	peer.LeadTimePIT, own.LeadTimePIT = nil, nil // NaN for both: no lead-time distribution
	if !reflect.DeepEqual(peer, own) {
		t.Errorf("peer file scores %+v, directly %+v", res[0].Summary, direct[0].Summary)
	}
	if res[0].Elapsed != 1500*time.Millisecond {
		t.Errorf("peer time %v, want 1.5s", res[0].Elapsed)
	}
	if p := res[1].Summary; p.WRMSSE != direct[0].Summary.WRMSSE || !math.IsNaN(p.WSPL) {
		t.Errorf("point-only peer: WRMSSE %v WSPL %v; want %v and NaN", p.WRMSSE, p.WSPL, direct[0].Summary.WRMSSE)
	}
	// A file missing a series' forecast is an error, not a zero forecast.
	short := strings.Join(strings.Split(csvText.String(), "\n")[:5], "\n") + "\n"
	if err := os.WriteFile(fpath, []byte(short), 0o644); err != nil {
		t.Fatal(err)
	}
	stored, err = ReadForecasts(fpath, "", ds, cfg)
	if err == nil {
		_, err = Run(context.Background(), ds, cfg, []Model{stored[0]})
	}
	if err == nil {
		t.Error("incomplete peer forecasts accepted")
	}
}

// TestPITCoverage: the PIT interval of an outcome read off the quantiles
// at Levels, and its share inside each central interval, by hand.
func TestPITCoverage(t *testing.T) {
	// a count forecast: q = 0 up to level 0.75, 1 from 0.835 to 0.975, 2
	// at 0.99 and 0.995
	q := []float64{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2}
	// y = 0: no quantile below, the lowest above is at 0.835: PIT in
	// [0, 0.835]; inside [0.25, 0.75] 0.5/0.835, [0.05, 0.95] 0.785/0.835,
	// [0.01, 0.99] 0.825/0.835 (inclusive coverage: 1 each)
	near(t, "pit50(0)", PITCoverage(0, q, 0.25, 0.75), 0.5/0.835)
	near(t, "pit90(0)", PITCoverage(0, q, 0.05, 0.95), 0.785/0.835)
	near(t, "pit98(0)", PITCoverage(0, q, 0.01, 0.99), 0.825/0.835)
	// y = 1: PIT in [0.75, 0.99]: 0 in the 50% interval, 0.2/0.24 in the
	// 90% one, all in the 98% one
	near(t, "pit50(1)", PITCoverage(1, q, 0.25, 0.75), 0)
	near(t, "pit90(1)", PITCoverage(1, q, 0.05, 0.95), 0.2/0.24)
	near(t, "pit98(1)", PITCoverage(1, q, 0.01, 0.99), 1)
	// y = 5: above every quantile: PIT in [0.995, 1]
	near(t, "pit98(5)", PITCoverage(5, q, 0.01, 0.99), 0)
	// continuous quantiles: the indicator of y inside [q_a, q_b]
	c := []float64{-3, -2.5, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5, 3}
	near(t, "pit50(0.7)", PITCoverage(0.7, c, 0.25, 0.75), 0)
	near(t, "pit90(0.7)", PITCoverage(0.7, c, 0.05, 0.95), 1)
	near(t, "pit50(-0.2)", PITCoverage(-0.2, c, 0.25, 0.75), 1)
}

// TestEnsembleCalibrationReadsNoTestDays: the calibrated ensemble's
// calibration and forecast do not move when every value from the origin on
// changes, and the calibration is not the identity on m5-tiny.
func TestEnsembleCalibrationReadsNoTestDays(t *testing.T) {
	ds := loadTinyM5(t)
	ds.Series = ds.Series[:60]
	origin, horizon := ds.Days-28, 28
	m := &EnsembleCalibrated{}
	before, err := m.Forecast(ds, origin, horizon)
	if err != nil {
		t.Fatal(err)
	}
	cal := m.Calibrations[origin]
	if cal.Points[0]+cal.Points[1]+cal.Points[2]+cal.Points[3] == 0 || slices.Equal(cal.Levels[0], forecasting.CalibrationLevels()) {
		t.Fatalf("calibration fitted on nothing: %+v", cal)
	}
	for _, s := range ds.Series {
		for d := origin; d < ds.Days; d++ {
			s.Values[d] = 99
		}
	}
	after, err := (&EnsembleCalibrated{}).Forecast(ds, origin, horizon)
	if err != nil {
		t.Fatal(err)
	}
	for i := range before {
		if !reflect.DeepEqual(before[i].Means, after[i].Means) || !reflect.DeepEqual(before[i].Quantiles, after[i].Quantiles) {
			t.Fatalf("series %d: the forecast moved with the test days", i)
		}
		for h := range horizon {
			for _, k := range []float64{-1, 0, 1, 2, 5} {
				if before[i].CDF(h, k) != after[i].CDF(h, k) {
					t.Fatalf("series %d day %d: P(Y <= %v) moved with the test days", i, h, k)
				}
			}
		}
		for k, l := range LeadTimes {
			for _, x := range []float64{-1, 0, 1, 3, 10, 40} {
				if before[i].LeadTimeCDF(k, x) != after[i].LeadTimeCDF(k, x) {
					t.Fatalf("series %d, %d days: P(S <= %v) moved with the test days", i, l, x)
				}
			}
		}
	}
	// the lead times' calibration, fitted on the sums before the origin
	if len(cal.LeadTimes) != len(LeadTimes) {
		t.Fatalf("%d lead-time calibrations, want %d", len(cal.LeadTimes), len(LeadTimes))
	}
	for k, lt := range cal.LeadTimes {
		pts := 0
		for _, n := range lt.Calibration.Points {
			pts += n
		}
		// 60 series, the sums from every 7th day of the 84 before the
		// origin that end before it (fewer: a mean of 0 is not fitted)
		if starts := (84-LeadTimes[k])/LeadTimeStep + 1; lt.Days != LeadTimes[k] || pts == 0 || pts > 60*starts {
			t.Errorf("lead time %d: %d days, %d points (at most %d)", k, lt.Days, pts, 60*starts)
		}
	}
	if l := cal.LeadTimes[len(cal.LeadTimes)-1].Calibration; slices.Equal(l.Levels[len(l.Levels)-1], forecasting.CalibrationLevels()) && l.Factors[len(l.Factors)-1] == 1 {
		t.Errorf("28-day calibration is the identity: %+v", l)
	}
}

// TestLeadTimeCoverage: the lead-time demand's exact PIT coverage is the
// share of the PIT interval [F(s-1), F(s)] of the sum s of the first L
// days inside each central interval, by hand; lead times longer than the
// test are not scored (NaN in the summary); a series without a
// lead-time distribution makes every lead time NaN; the table prints it.
func TestLeadTimeCoverage(t *testing.T) {
	// the sum of L days is Poisson(L)
	cdf := func(k int, x float64) float64 { return forecasting.CountCDF(float64(LeadTimes[k]), 1, x) }
	q := make([]float64, len(Levels))
	forecasting.CountQuantiles(1, 1, Levels, q)
	p := Prediction{Means: []float64{1, 1, 1}, Quantiles: [][]float64{q, q, q}, LeadTimeCDF: cdf}
	train := []float64{0, 1, 2, 0, 1, 3, 0, 2}
	test := []float64{0, 5, 1} // sums: L=1 0, L=2 5, L=3 6
	sc := ScoreSeries(train, make([]float64, len(train)), test, p)
	if !sc.HasLeadTime || len(sc.LeadTimeCovered) != len(LeadTimes) || LeadTimes[0] != 1 || LeadTimes[1] != 2 || LeadTimes[2] != 3 {
		t.Fatalf("lead times %v: %+v", LeadTimes, sc)
	}
	// Poisson(1) at 0: [0, F(0)] = [0, 0.3679]; Poisson(2) at 5: [F(4),
	// F(5)] = [0.9473, 0.9834]; Poisson(3) at 6: [0.9161, 0.9665]
	p1, a2, b2, a3, b3 := cdf(0, 0), cdf(1, 4), cdf(1, 5), cdf(2, 5), cdf(2, 6)
	want := [3][3]float64{
		{(p1 - 0.25) / p1, (p1 - 0.05) / p1, (p1 - 0.01) / p1},
		{0, (0.95 - a2) / (b2 - a2), 1},
		{0, (0.95 - a3) / (b3 - a3), 1},
	}
	for k := range want {
		for i := range want[k] {
			near(t, fmt.Sprintf("L=%d interval %d", LeadTimes[k], i), sc.LeadTimeCovered[k][i], want[k][i])
		}
	}
	if sc.LeadTimeCovered[3] != [3]float64{} {
		t.Errorf("L=%d longer than the test scored: %v", LeadTimes[3], sc.LeadTimeCovered[3])
	}
	// two origins, the second with other outcomes: the mean over both
	sc2 := ScoreSeries(train, make([]float64, len(train)), []float64{3, 0, 0}, p)
	s := Summarise([][]SeriesScore{{sc}, {sc2}})
	near(t, "L=1 pit50", s.LeadTimePIT[0][0], (want[0][0]+intervalShare(cdf(0, 2), cdf(0, 3), 0.25, 0.75))/2)
	near(t, "L=3 pit90", s.LeadTimePIT[2][1], (want[2][1]+intervalShare(cdf(2, 2), cdf(2, 3), 0.05, 0.95))/2)
	if !math.IsNaN(s.LeadTimePIT[3][0]) {
		t.Errorf("L=%d of a 3-day test: %v, want NaN", LeadTimes[3], s.LeadTimePIT[3])
	}
	var out strings.Builder
	if err := WriteLeadTimeTable(&out, []Result{{Model: "no_lead_times", Summary: Summarise([][]SeriesScore{{ScoreSeries(train, make([]float64, len(train)), test, Prediction{Means: p.Means})}})}, {Model: "m", Summary: s}}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[2], "m ") || strings.Contains(out.String(), "no_lead_times") {
		t.Fatalf("table:\n%s", out.String())
	}
	row := strings.Fields(lines[2])
	// model, cov, nine lead times, mean of the three scored ones
	wantRow := []string{"m", "50", fmt.Sprintf("%.3f", s.LeadTimePIT[0][0]), fmt.Sprintf("%.3f", s.LeadTimePIT[1][0]), fmt.Sprintf("%.3f", s.LeadTimePIT[2][0]),
		"-", "-", "-", "-", "-", "-", fmt.Sprintf("%.3f", (s.LeadTimePIT[0][0]+s.LeadTimePIT[1][0]+s.LeadTimePIT[2][0])/3)}
	if !slices.Equal(row, wantRow) {
		t.Errorf("row %q, want %q", row, wantRow)
	}
	p.LeadTimeCDF = nil
	s = Summarise([][]SeriesScore{{sc, ScoreSeries(train, make([]float64, len(train)), test, p)}})
	if !math.IsNaN(s.LeadTimePIT[0][0]) {
		t.Errorf("lead-time PIT %v with a series without a lead-time distribution", s.LeadTimePIT[0])
	}
}

// TestExactPITCoverage: with a CDF the PIT coverage is the share of the
// outcome's PIT interval [F(y-1), F(y)] inside the central interval, by
// hand; without one on any series ExactPIT is NaN.
func TestExactPITCoverage(t *testing.T) {
	// Poisson(1): F(0) = 0.3679, F(1) = 0.7358, F(2) = 0.9197, F(3) = 0.9810
	cdf := func(_ int, k float64) float64 { return forecasting.CountCDF(1, 1, k) }
	q := make([]float64, len(Levels))
	forecasting.CountQuantiles(1, 1, Levels, q)
	p := Prediction{Means: []float64{1, 1, 1}, Quantiles: [][]float64{q, q, q}, CDF: cdf}
	train := []float64{0, 1, 2, 0, 1, 3, 0, 2}
	sc := ScoreSeries(train, make([]float64, len(train)), []float64{0, 1, 3}, p)
	f0, f2, f3 := cdf(0, 0), cdf(0, 2), cdf(0, 3)
	want := [3]float64{
		// 50% [0.25, 0.75]: y=0 [0, F0], y=1 [F0, F1] inside, y=3 [F2, F3] outside
		(f0-0.25)/f0 + 1 + 0,
		// 90% [0.05, 0.95]: y=3's [F2, F3] partly inside
		(f0-0.05)/f0 + 1 + (0.95-f2)/(f3-f2),
		// 98% [0.01, 0.99]: y=3's [F2, F3] inside
		(f0-0.01)/f0 + 1 + 1,
	}
	if !sc.HasCDF {
		t.Fatal("no CDF")
	}
	for i := range want {
		near(t, fmt.Sprintf("exact covered %d", i), sc.ExactCovered[i], want[i])
	}
	s := Summarise([][]SeriesScore{{sc}})
	near(t, "exact pit50", s.ExactPIT[0], want[0]/3)
	p.CDF = nil
	s = Summarise([][]SeriesScore{{sc, ScoreSeries(train, make([]float64, len(train)), []float64{0, 1, 3}, p)}})
	if !math.IsNaN(s.ExactPIT[0]) {
		t.Errorf("exact PIT %v with a series without a CDF", s.ExactPIT)
	}
}

// selfValidated reports fixed validation-window scores by origin (a
// Validated model), forecasting as the seasonal naive baseline.
type selfValidated struct {
	Baseline
	loss map[int]float64
}

func (s selfValidated) Name() string { return "self_validated" }

func (s selfValidated) ValidWRMSSE(origin int) (float64, bool) {
	l, ok := s.loss[origin]
	return l, ok
}

// TestValidationWRMSSE: a model that does not score itself is scored on
// each origin's validation window (the 28 days before it, forecast from
// the days before them), so its number is the seasonal naive's WRMSSE of
// the forecasts from origin-28 scored on those days by hand, whatever the
// test days hold; a Validated model's own scores are averaged over the
// origins, and NaN where it has none.
func TestValidationWRMSSE(t *testing.T) {
	ds := loadTinyM5(t)
	ds.Series = ds.Series[:40]
	cfg := Config{Horizon: 28, Origins: 2}
	origins, _ := cfg.OriginIndexes(ds.Days)
	sn := Baseline{Kind: "seasonal_naive"}
	want := 0.0
	for _, o := range origins {
		v := o - cfg.Horizon
		preds, err := sn.Forecast(ds, v, cfg.Horizon)
		if err != nil {
			t.Fatal(err)
		}
		num, den := 0.0, 0.0
		for i, s := range ds.Series {
			sc := ScoreSeries(s.Values[:v], s.Prices[:v], s.Values[v:o], preds[i])
			if sc.Valid {
				num, den = num+sc.Weight*sc.RMSSE, den+sc.Weight
			}
		}
		want += num / den / float64(len(origins))
	}
	for _, s := range ds.Series { // the test days of the last origin
		for d := origins[1]; d < ds.Days; d++ {
			s.Values[d] = 1e6
		}
	}
	self := selfValidated{Baseline: sn, loss: map[int]float64{origins[0]: 0.5, origins[1]: 0.7}}
	got, err := ValidationWRMSSE(context.Background(), ds, cfg, []Model{sn, self})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "seasonal naive on the validation windows", got["seasonal_naive"], want)
	near(t, "the model's own validation scores", got["self_validated"], 0.6)
	delete(self.loss, origins[0])
	if got, _ := ValidationWRMSSE(context.Background(), ds, cfg, []Model{self}); !math.IsNaN(got["self_validated"]) {
		t.Errorf("a model without a validation score for an origin: %v, want NaN", got["self_validated"])
	}
}

// loadTinyM5 loads data/m5-tiny.
func loadTinyM5(t *testing.T) *Dataset {
	t.Helper()
	path, err := FindFile("data/m5-tiny/tiny_m5_long.csv.gz")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := LoadM5(path)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}
