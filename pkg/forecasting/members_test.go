package forecasting

import (
	"math"
	"testing"
)

// The members added in stat-ensemble-2, each against values computed by
// hand from its update rule (the arithmetic in the comments).

func TestCrostonAndSBAByHand(t *testing.T) {
	var m Croston
	for _, y := range []float64{0, 0, 4, 0, 2, 0, 0, 0} {
		m.update(y)
	}
	// first demand 4 after 3 days: size 4, interval 3; then 2 after 2
	// days: size 4 + 0.1*(2-4) = 3.8, interval 3 + 0.1*(2-3) = 2.9
	if math.Abs(m.Size-3.8) > 1e-12 || math.Abs(m.Interval-2.9) > 1e-12 || m.Since != 3 {
		t.Fatalf("size %v interval %v since %d, want 3.8 2.9 3", m.Size, m.Interval, m.Since)
	}
	if got, want := m.predict(false), 3.8/2.9; math.Abs(got-want) > 1e-12 {
		t.Errorf("Croston %v, want %v", got, want)
	}
	if got, want := m.predict(true), 3.8/2.9*0.95; math.Abs(got-want) > 1e-12 {
		t.Errorf("SBA %v, want %v", got, want)
	}
}

func TestADIDAByHand(t *testing.T) {
	var m ADIDA
	week1 := []float64{1, 0, 2, 0, 0, 3, 1} // total 7
	week2 := []float64{0, 0, 0, 14, 0, 0, 0}
	for _, y := range week1 {
		m.update(y)
	}
	if got := m.predict(); got != 1 { // 7 / 7
		t.Errorf("after one week %v, want 1", got)
	}
	for _, y := range week2[:3] {
		m.update(y)
	}
	if got := m.predict(); got != 1 { // a partial bucket does not move it
		t.Errorf("mid-week %v, want 1", got)
	}
	for _, y := range week2[3:] {
		m.update(y)
	}
	// second bucket: n = 2 so the weight is 1/2: (7 + 14) / 2 = 10.5 a week
	if got := m.predict(); math.Abs(got-1.5) > 1e-12 {
		t.Errorf("after two weeks %v, want 1.5", got)
	}
}

func TestSeasonalNaiveMember(t *testing.T) {
	var m SeasonalNaive
	if m.predict(day0) != 0 {
		t.Error("empty seasonal naive not 0")
	}
	for i, y := range []float64{5, 1, 2} {
		m.update(day0+Day(i), y)
	}
	if got := m.predict(day0 + 7); got != 5 {
		t.Errorf("same weekday a week later %v, want 5", got)
	}
	if got := m.predict(day0 + 3); got != 2 { // weekday not seen: the last value
		t.Errorf("unseen weekday %v, want 2", got)
	}
}

func TestHoltWintersByHand(t *testing.T) {
	var m HoltWinters
	const a = 0.2
	m.update(a, day0, 10, false) // level 10
	// second day: weight max(0.2, 1/2) = 0.5, season 0:
	// level = 0.5*(6-0) + 0.5*(10 + 0.9*0) = 8; trend = 0.02*(8-10) = -0.04;
	// that weekday's first effect (weight 1): 6 - 8 = -2
	m.update(a, day0+1, 6, false)
	if math.Abs(m.Level-8) > 1e-12 || math.Abs(m.Trend+0.04) > 1e-12 || math.Abs(m.Season[(day0+1).Weekday()]+2) > 1e-12 {
		t.Fatalf("level %v trend %v season %v", m.Level, m.Trend, m.Season)
	}
	// day0+8 is 7 days after the last update and the weekday of day0+1:
	// 8 + (0.9 + ... + 0.9^7)*(-0.04) - 2
	if got, want := m.predict(day0+8, 7, false), 8+0.9*(1-math.Pow(0.9, 7))/(1-0.9)*-0.04-2; math.Abs(got-want) > 1e-12 {
		t.Errorf("predict %v, want %v", got, want)
	}
	// on the log scale a constant series is forecast at itself
	var l HoltWinters
	for i := range 200 {
		l.update(hwLogAlpha, day0+Day(i), 9, true)
	}
	if got := l.predict(day0+200, 1, true); math.Abs(got-9) > 1e-6 {
		t.Errorf("log-scale Holt-Winters on a constant 9: %v", got)
	}
}

// TestWeightsFavourTheBestMembers: weights proportional to MSE^-4 of the
// lead errors.
func TestWeightsFavourTheBestMembers(t *testing.T) {
	var s State
	for i := range s.Lead {
		s.Lead[i] = Score{N: minScored, MSE: 10}
	}
	s.Lead[5].MSE, s.Lead[9].MSE = 5, 20
	w := s.weights()
	// relative to the best (5): 1 for it, (5/10)^4 = 1/16 for the 12 at 10,
	// (5/20)^4 = 1/256 for member 9
	total := 1 + 12.0/16 + 1.0/256
	for i, v := range w {
		want := 1.0 / 16 / total
		switch i {
		case 5:
			want = 1 / total
		case 9:
			want = 1.0 / 256 / total
		}
		if math.Abs(v-want) > 1e-9 {
			t.Errorf("weight %d (%s) = %v, want %v", i, memberNames()[i], v, want)
		}
	}
}

// TestDispersionJumpAfterZeroRun is the defect of stat-ensemble-1: after a
// long run of zeros a large order made the variance-to-mean ratio jump, and
// the negative binomial of that ratio put nearly all its mass at zero, so
// that even the 95% quantile of a week's demand was 0 for an item that
// sells on about one day in five. The dispersion is now capped so that the
// distribution has no more zeros than the series (capForZeros).
func TestDispersionJumpAfterZeroRun(t *testing.T) {
	var s State
	ys := make([]float64, 0, 400)
	for i := range 300 { // one sale of 2 every 5 days
		ys = append(ys, 0)
		if i%5 == 0 {
			ys[len(ys)-1] = 2
		}
	}
	ys = append(ys, make([]float64, 60)...) // 60 days without demand
	ys = append(ys, 150)                    // then a large order
	observeAll(&s, day0, ys)
	f := s.Forecast(Request{StartDay: day0 + Day(len(ys)), QuantileLevels: []float64{0.5, 0.95}, LeadTimes: []int{6}})
	disp := s.dispersion()
	if disp < 20 {
		t.Fatalf("dispersion %.1f: the test needs the jump", disp)
	}
	lt := f.LeadTime[0]
	m := f.Means[1]
	// Without the cap the NB1 of the day's mean and this dispersion puts
	// nearly all its mass at zero.
	if p0 := CountCDF(m, disp, 0); p0 < 0.95 {
		t.Fatalf("uncapped daily P(0) %.3f: the test cannot show the defect", p0)
	}
	zeros := s.zeroShare()
	if p0 := CountCDF(m, capForZeros(m, disp, zeros), 0); p0 > zeros+1e-6 {
		t.Errorf("daily P(0) %.4f above the zero share %.4f", p0, zeros)
	}
	if f.Quantiles[1][1] <= 0 {
		t.Errorf("daily 95%% quantile 0 with a zero share of %.3f", zeros)
	}
	if lt.Quantiles[1] <= 0 {
		t.Errorf("95%% quantile of 7 days' demand %v (mean %.2f, dispersion %.1f), want > 0", lt.Quantiles[1], lt.Mean, disp)
	}
}

func TestCountCDFMatchesQuantiles(t *testing.T) {
	for _, c := range []struct{ mean, disp float64 }{{0.3, 1}, {4, 1}, {2, 3}, {40, 7}, {0.05, 50}} {
		cdf := 0.0
		for k := 0.0; k < 400; k++ {
			cdf = CountCDF(c.mean, c.disp, k)
			q := make([]float64, 1)
			// the quantile at the CDF of k is k (just below, k-1 or less)
			CountQuantiles(c.mean, c.disp, []float64{min(cdf, 1-1e-12)}, q)
			if cdf < 1-1e-9 && q[0] != k {
				t.Fatalf("mean %v disp %v: quantile at F(%v)=%v is %v", c.mean, c.disp, k, cdf, q[0])
			}
		}
		if CountCDF(c.mean, c.disp, -1) != 0 || cdf < 0.999 {
			t.Errorf("mean %v disp %v: F(-1) %v, F(399) %v", c.mean, c.disp, CountCDF(c.mean, c.disp, -1), cdf)
		}
	}
}
