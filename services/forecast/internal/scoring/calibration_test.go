package scoring

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/stockcast/stockcast/pkg/backtest"
	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/modelregistry"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
)

// calibrationSet is n series of days days for a calibration to learn
// from: src's demand at n/4 scales with noise of its own each (enough
// lead-time sums for each lead time's fit: 12 per series).
func calibrationSet(src testSeries, days, n int) *backtest.Dataset {
	ds := &backtest.Dataset{Name: "calibration", Start: src.start, Days: days}
	for k := range n {
		s := backtest.Series{ID: fmt.Sprintf("s%d|online", k), Values: make([]float64, days), Prices: make([]float64, days)}
		for t := range days {
			s.Values[t] = src.demand[t]*float64(1+k%4) + float64((t*(k+3))%(2+k%5))
			s.Prices[t] = math.NaN()
		}
		ds.Series = append(ds.Series, s)
	}
	return ds
}

// TestCalibratedQuantilesAreTheBacktests: a model whose artefact carries
// the ensemble's calibration (fitted as stockcast train does, with the
// backtest's calibrated ensemble, daily and lead-time quantiles) makes
// the service publish the backtest's calibrated ensemble quantiles for
// the same history, daily and lead-time ones, moved to the combined mean
// as without a calibration (TestGlobalCombination); the means do not
// move, the quantiles do, and the version names the calibrated artefact.
func TestCalibratedQuantilesAreTheBacktests(t *testing.T) {
	ds, art := testArtefact(t, testSeries{start: 19000, demand: weekly(400)}) // the other tests' model
	src := testSeries{start: 19000, demand: weekly(400)}
	for i := range src.demand {
		src.demand[i] += float64((i * 13) % 4) // some noise for the calibration to learn
	}
	cal, _ := backtest.FitEnsembleCalibration(calibrationSet(src, 300, 24), 300, 28, backtest.DefaultCalibrationWindows)
	if len(cal.LeadTimes) != len(backtest.LeadTimes) || cal.ForLeadTime(8).Points[len(cal.ForLeadTime(8).Points)-1] < forecasting.MinCalibrationPoints {
		t.Fatalf("lead-time calibrations %+v: want each lead time fitted", cal.LeadTimes)
	}
	calibrated := *art
	if err := calibrated.SetCalibration(cal); err != nil {
		t.Fatal(err)
	}
	if calibrated.Version == art.Version {
		t.Fatal("the calibration did not change the version")
	}
	withCal, err := NewModel(&calibrated, modelregistry.NewSeries(calibrated.Version, ds), DefaultGlobalWeight)
	if err != nil {
		t.Fatal(err)
	}
	without, err := NewModel(art, modelregistry.NewSeries(art.Version, ds), DefaultGlobalWeight)
	if err != nil {
		t.Fatal(err)
	}
	sc, plain := New(testConfig(10), src, fixedClock), New(testConfig(10), src, fixedClock)
	sc.SetModel(withCal)
	plain.SetModel(without)
	moved, movedLead := 0, 0
	for i := 310; i < 316; i++ {
		snap := src.snapshot(i, fmt.Sprintf("e%d", i))
		res, unc := score(t, sc, snap), score(t, plain, snap)
		if res.Event.GetModelVersion() != forecasting.ModelVersion+"+"+calibrated.Version {
			t.Fatalf("model version %s", res.Event.GetModelVersion())
		}
		// the backtest's state for the same history (days before i), asked
		// at the snapshot's time of day with the artefact's calibration
		_, states := backtest.FitEnsembleCalibration(trainingSet(src, i+28), i, 28, backtest.DefaultCalibrationWindows)
		base := src.demand[i] / 2 // noon, half the day seen
		ef := states[0].Forecast(forecasting.Request{StartDay: src.start + forecasting.Day(i), Horizon: 28, TodaySoFar: base,
			IntradayShare: 0.5, QuantileLevels: forecasting.DefaultQuantileLevels(), LeadTimes: forecasting.DefaultLeadTimes(), Calibration: cal})
		for h := range 28 {
			c, u := res.Event.GetDaily()[h], unc.Event.GetDaily()[h]
			if c.GetMean() != u.GetMean() {
				t.Fatalf("day %d+%d: mean %v, without the calibration %v", i, h, c.GetMean(), u.GetMean())
			}
			b := 0.0
			if h == 0 {
				b = base
			}
			r := (c.GetMean() - b) / (ef.Means[h] - b)
			for q := range ef.Quantiles[h] {
				if want := b + (ef.Quantiles[h][q]-b)*r; math.Abs(c.GetQuantiles()[q]-want) > 1e-9 {
					t.Fatalf("day %d+%d quantile %d: %v, backtest's calibrated %v moved to the combined mean: %v",
						i, h, q, c.GetQuantiles()[q], ef.Quantiles[h][q], want)
				}
				if c.GetQuantiles()[q] != u.GetQuantiles()[q] {
					moved++
				}
			}
		}
		for li, lt := range res.Event.GetLeadTimeDemand() {
			if lt.GetMean() != unc.Event.GetLeadTimeDemand()[li].GetMean() {
				t.Fatalf("lead time %d: mean moved", lt.GetLeadTimeDays())
			}
			// the backtest's calibrated lead-time quantiles (the rest of
			// today and L more days: ForLeadTime(L+1)), moved to the
			// combined lead-time mean
			e := ef.LeadTime[li]
			if e.Days != int(lt.GetLeadTimeDays()) {
				t.Fatalf("lead time %d, backtest's %d", lt.GetLeadTimeDays(), e.Days)
			}
			r := lt.GetMean() / e.Mean
			for q := range e.Quantiles {
				if want := e.Quantiles[q] * r; math.Abs(lt.GetQuantiles()[q]-want) > 1e-9 {
					t.Fatalf("day %d lead time %d quantile %d: %v, backtest's calibrated %v moved to the combined mean: %v",
						i, e.Days, q, lt.GetQuantiles()[q], e.Quantiles[q], want)
				}
				if lt.GetQuantiles()[q] != unc.Event.GetLeadTimeDemand()[li].GetQuantiles()[q] {
					movedLead++
				}
			}
		}
	}
	if moved == 0 {
		t.Error("the calibration moved no daily quantile")
	}
	if movedLead == 0 {
		t.Error("the calibration moved no lead-time quantile")
	}
	t.Logf("%d of %d daily quantiles moved, %d of %d lead-time ones; calibration factors %v", moved, 6*28*len(forecasting.DefaultQuantileLevels()),
		movedLead, 6*len(forecasting.DefaultLeadTimes())*len(forecasting.DefaultQuantileLevels()), cal.Factors)
}

// BenchmarkScoreCalibrated is the per-event cost of the calibration: the
// benchmark model without a calibration, with the ensemble's daily
// calibration alone (as in session 4) and with the daily and the
// lead-time calibrations, the three scorers scoring the same snapshot in
// turn in one loop (so that all see the same load), CPU time of the
// thread per event each; a day's first event (day_closed: every day's
// quantiles) and another event of the day (same_day: today's and the
// lead times'). It prints the ratios of this run.
func BenchmarkScoreCalibrated(b *testing.B) {
	const days = 2000
	src := testSeries{start: 19000, demand: weekly(days)}
	for i := range src.demand {
		src.demand[i] += float64((i * 13) % 4)
	}
	snaps := make([]*featurev1.FeatureSnapshot, days)
	for i := range snaps {
		snaps[i] = src.snapshot(i, fmt.Sprintf("e%d", i))
	}
	model := benchModel(b, testSeries{start: 19000, demand: weekly(days)})
	cal, _ := backtest.FitEnsembleCalibration(calibrationSet(src, 400, 24), 400, 28, backtest.DefaultCalibrationWindows)
	dailyOnly := *cal
	dailyOnly.LeadTimes = nil
	daily, calibrated := *model, *model
	daily.calibration, calibrated.calibration = &dailyOnly, cal
	daily.Version += "-daily"
	calibrated.Version += "-calibrated"
	models := []*Model{model, &daily, &calibrated}
	for _, nextDay := range []bool{true, false} {
		name := "same_day"
		if nextDay {
			name = "day_closed"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			scorers := make([]*Scorer, len(models))
			warm := func() {
				for k, m := range models {
					sc := New(testConfig(10), src, fixedClock)
					sc.SetModel(m)
					batch := sc.Begin()
					if _, err := batch.Score(ctx, snaps[100]); err != nil {
						b.Fatal(err)
					}
					batch.Commit()
					scorers[k] = sc
				}
			}
			warm()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			spent := make([]time.Duration, len(models))
			b.ReportAllocs()
			b.ResetTimer()
			day := 100
			for i := 0; i < b.N; i++ {
				if nextDay {
					if day++; day == days {
						b.StopTimer()
						warm()
						day = 101
						b.StartTimer()
					}
				}
				for k, sc := range scorers {
					c0, ok0 := threadCPU()
					batch := sc.Begin()
					if _, err := batch.Score(ctx, snaps[day]); err != nil {
						b.Fatal(err)
					}
					batch.Commit()
					if c1, ok1 := threadCPU(); ok0 && ok1 {
						spent[k] += c1 - c0
					}
				}
			}
			b.StopTimer()
			if spent[0] > 0 && b.N > 1 {
				us := func(k int) float64 { return float64(spent[k].Nanoseconds()) / 1e3 / float64(b.N) }
				p, d, c := us(0), us(1), us(2)
				b.ReportMetric(p, "plain-cpu-µs/event")
				b.ReportMetric(d, "daily-calibrated-cpu-µs/event")
				b.ReportMetric(c, "calibrated-cpu-µs/event")
				fmt.Printf("calibration %s: %.1f µs plain, %.1f µs daily calibration (ratio %.3f), %.1f µs daily and lead-time calibrations (ratio %.3f to plain, %.3f to daily only)\n",
					name, p, d, d/p, c, c/p, c/d)
			}
		})
	}
}
