package forecasting

import (
	"math"
	"slices"
	"testing"
)

// testCalibration is a calibration of the given bounds whose class k
// reads narrower levels (toward the median by 0.1*(k+1)*step) at the
// dispersion factor factors[k].
func testCalibration(t *testing.T, bounds, factors []float64, step float64) *Calibration {
	t.Helper()
	c := &Calibration{Nominal: CalibrationLevels(), Bounds: bounds, Factors: factors}
	for k := range factors {
		lv := make([]float64, len(c.Nominal))
		for j, u := range c.Nominal {
			lv[j] = u + (0.5-u)*step*float64(k+1)
		}
		c.Levels = append(c.Levels, lv)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestLeadTimeCalibrationByHand: ForLeadTime takes the lead-time
// calibration with the most days at most the days summed (the first below
// them all, nil without any); Validate wants ascending days and no lead
// times inside a lead time's calibration; the fit's classes are the daily
// bounds times the days.
func TestLeadTimeCalibrationByHand(t *testing.T) {
	c := testCalibration(t, []float64{1}, []float64{1, 1}, 0.05)
	if c.ForLeadTime(3) != nil {
		t.Error("a calibration without lead times calibrated a lead time")
	}
	var none *Calibration
	if none.ForLeadTime(3) != nil {
		t.Error("a nil calibration calibrated a lead time")
	}
	l2, l5, l28 := testCalibration(t, []float64{2}, []float64{1, 1}, 0.1), testCalibration(t, []float64{5}, []float64{2, 1}, 0.1),
		testCalibration(t, []float64{28}, []float64{3, 1}, 0.1)
	c.LeadTimes = []LeadTimeCalibration{{Days: 2, Calibration: l2}, {Days: 5, Calibration: l5}, {Days: 28, Calibration: l28}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		days int
		want *Calibration
	}{{0, l2}, {1, l2}, {2, l2}, {4, l2}, {5, l5}, {27, l5}, {28, l28}, {29, l28}} {
		if got := c.ForLeadTime(tt.days); got != tt.want {
			t.Errorf("ForLeadTime(%d) = %p, want %p", tt.days, got, tt.want)
		}
	}
	bad := *c
	bad.LeadTimes = []LeadTimeCalibration{{Days: 5, Calibration: l5}, {Days: 2, Calibration: l2}}
	if bad.Validate() == nil {
		t.Error("descending lead-time days validated")
	}
	nested := *l5
	nested.LeadTimes = []LeadTimeCalibration{{Days: 2, Calibration: l2}}
	bad.LeadTimes = []LeadTimeCalibration{{Days: 5, Calibration: &nested}}
	if bad.Validate() == nil {
		t.Error("a lead time's calibration with lead times validated")
	}
	bad.LeadTimes = []LeadTimeCalibration{{Days: 5}}
	if bad.Validate() == nil {
		t.Error("a lead time without a calibration validated")
	}

	// classes of the sums: the daily bounds 0.5 and 2 times 7 days
	var pts []PITPoint
	for i := range 30 {
		pts = append(pts, PITPoint{Mean: float64(i), Dispersion: 1, Y: float64(i)})
	}
	fit := FitLeadTimeCalibrations([][]PITPoint{pts, pts}, []int{1, 7}, CalibrationLevels(), []float64{0.5, 2}, 5)
	if fit[0].Days != 1 || !slices.Equal(fit[0].Calibration.Bounds, []float64{0.5, 2}) || fit[1].Days != 7 || !slices.Equal(fit[1].Calibration.Bounds, []float64{3.5, 14}) {
		t.Fatalf("lead-time fits %+v %+v", fit[0], fit[1])
	}
	// means 1..29 (0 carries no spread): below 0.5 none, [0.5, 2) one,
	// from 2 on 28; of 7 days: below 3.5 three, [3.5, 14) ten, 16 more
	if !slices.Equal(fit[0].Calibration.Points, []int{0, 1, 28}) || !slices.Equal(fit[1].Calibration.Points, []int{3, 10, 16}) {
		t.Errorf("points by class %v and %v", fit[0].Calibration.Points, fit[1].Calibration.Points)
	}
}

// TestForecastWithLeadTimeCalibration: each lead time L's quantiles are
// the count quantiles of its distribution (leadTimeDist, held to the zero
// share of L+1 days) at the levels and dispersion factor of
// ForLeadTime(L+1) for its mean; without lead-time calibrations they are
// that distribution's own quantiles (by hand, as before calibrations);
// the daily quantiles and every mean do not move.
func TestForecastWithLeadTimeCalibration(t *testing.T) {
	var s State
	observeAll(&s, day0, poissonSeries(11, 250, 2.5))
	start := day0 + 250
	daily := testCalibration(t, []float64{1}, []float64{1.5, 1.2}, 0.1)
	req := Request{StartDay: start, TodaySoFar: 2, IntradayShare: 0.25, Calibration: daily}
	plain := s.Forecast(req)

	disp, zeros := s.dispersion(), s.zeroShare()
	week, month := s.Week.levelVariance(7, disp), s.Month.levelVariance(windowDays, disp)
	for _, lt := range plain.LeadTime {
		n := float64(lt.Days + 1)
		d := disp + levelVarianceAt(lt.Days, week, month)*lt.Mean*(n-1)/n
		want := make([]float64, len(plain.QuantileLevels))
		countDist{Mean: lt.Mean, Dispersion: capForZeros(lt.Mean, d, math.Pow(zeros, n))}.Quantiles(plain.QuantileLevels, want)
		if !slices.Equal(lt.Quantiles, want) {
			t.Errorf("lead time %d without a lead-time calibration: %v, want %v", lt.Days, lt.Quantiles, want)
		}
	}

	withLead := *daily
	withLead.LeadTimes = []LeadTimeCalibration{
		{Days: 1, Calibration: testCalibration(t, []float64{2}, []float64{2, 1}, 0.1)},
		{Days: 4, Calibration: testCalibration(t, []float64{12}, []float64{4, 1.5}, 0.2)},
		{Days: 15, Calibration: testCalibration(t, []float64{45}, []float64{1, 2.5}, 0.3)},
	}
	if err := withLead.Validate(); err != nil {
		t.Fatal(err)
	}
	req.Calibration = &withLead
	cal := s.Forecast(req)
	if !slices.Equal(cal.Means, plain.Means) {
		t.Error("the lead-time calibration moved the means")
	}
	for h := range cal.Quantiles {
		if !slices.Equal(cal.Quantiles[h], plain.Quantiles[h]) {
			t.Errorf("day %d's quantiles moved", h)
		}
	}
	moved := 0
	for i, lt := range cal.LeadTime {
		if lt.Mean != plain.LeadTime[i].Mean {
			t.Errorf("lead time %d: mean %v, uncalibrated %v", lt.Days, lt.Mean, plain.LeadTime[i].Mean)
		}
		lc := withLead.ForLeadTime(lt.Days + 1)
		levels := make([]float64, len(cal.QuantileLevels))
		lc.LevelsFor(lt.Mean, cal.QuantileLevels, levels)
		n := float64(lt.Days + 1)
		d := disp + levelVarianceAt(lt.Days, week, month)*lt.Mean*(n-1)/n
		want := make([]float64, len(levels))
		countDist{Mean: lt.Mean, Dispersion: max(capForZeros(lt.Mean, d, math.Pow(zeros, n))*lc.Factor(lt.Mean), 1)}.Quantiles(levels, want)
		if !slices.Equal(lt.Quantiles, want) {
			t.Errorf("lead time %d: %v, want %v", lt.Days, lt.Quantiles, want)
		}
		if !slices.Equal(lt.Quantiles, plain.LeadTime[i].Quantiles) {
			moved++
		}
	}
	if moved < len(cal.LeadTime)/2 {
		t.Errorf("the lead-time calibration moved %d of %d lead times", moved, len(cal.LeadTime))
	}
}

// TestLeadTimeCDFMatchesQuantiles: LeadTimePIT's points are the lead-time
// distributions State.Forecast publishes for the lead time days-1 (same
// mean), their outcome the sum of the first days values; the CDF
// LeadTimeCDF gives is the one the published lead-time quantiles are read
// from: at the quantile q for the level u, P(S <= q) >= u > P(S <= q-1),
// with and without a calibration.
func TestLeadTimeCDFMatchesQuantiles(t *testing.T) {
	var s State
	observeAll(&s, day0, poissonSeries(5, 300, 0.8))
	start := day0 + 300
	days := []int{1, 2, 3, 5, 7, 10, 14, 21, 28}
	leads := make([]int, len(days))
	for k, d := range days {
		leads[k] = d - 1
	}
	ys := poissonSeries(6, 20, 0.8)
	pit := s.LeadTimePIT(start, ys, days)
	c := testCalibration(t, []float64{0.5, 2}, []float64{2.5, 1.5, 1}, 0.15)
	c.LeadTimes = []LeadTimeCalibration{
		{Days: 1, Calibration: testCalibration(t, []float64{0.5, 2}, []float64{1.5, 1, 3}, 0.1)},
		{Days: 7, Calibration: testCalibration(t, []float64{3.5, 14}, []float64{2, 4, 1}, 0.1)},
		{Days: 21, Calibration: testCalibration(t, []float64{10.5, 42}, []float64{1, 1.2, 2}, 0.2)},
	}
	for _, cal := range []*Calibration{nil, c} {
		f := s.Forecast(Request{StartDay: start, LeadTimes: leads, Calibration: cal})
		cdf := s.LeadTimeCDF(start, days, cal)
		for k, lt := range f.LeadTime {
			if pit[k].Mean != lt.Mean {
				t.Fatalf("%d days: PIT point mean %v, forecast %v", days[k], pit[k].Mean, lt.Mean)
			}
			for j, u := range f.QuantileLevels {
				q := lt.Quantiles[j]
				if hi, lo := cdf(k, q), cdf(k, q-1); !(hi >= u-1e-12 && lo < u+1e-12) {
					t.Fatalf("calibrated %v, %d days, level %v: quantile %v, P(S <= q) = %v, P(S <= q-1) = %v", cal != nil, days[k], u, q, hi, lo)
				}
			}
		}
		if cdf(0, -1) != 0 {
			t.Error("P(S <= -1) is not 0")
		}
	}
	for k, d := range days {
		want := math.NaN()
		if d <= len(ys) {
			want = 0
			for _, y := range ys[:d] {
				want += y
			}
		}
		if got := pit[k].Y; got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Errorf("%d days: outcome %v, want %v", d, got, want)
		}
	}
}
