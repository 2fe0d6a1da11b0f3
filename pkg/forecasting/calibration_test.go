package forecasting

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestCalibrationLevelByHand: the fitted level at a grid point, linear
// between grid points, toward 0 and 1 outside the grid; the class by the
// day's mean; nil is the identity.
func TestCalibrationLevelByHand(t *testing.T) {
	c := &Calibration{
		Nominal: []float64{0.1, 0.5, 0.9},
		Bounds:  []float64{1},
		Levels:  [][]float64{{0.2, 0.6, 0.95}, {0.05, 0.5, 0.8}},
		Factors: []float64{2, 1},
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ mean, u, want float64 }{
		{0.5, 0.5, 0.6},                     // class 0, grid point
		{0.5, 0.3, 0.4},                     // halfway between 0.2 and 0.6
		{0.5, 0.05, 0.1},                    // 0.2 * 0.05/0.1
		{0.5, 0.95, 0.95 + 0.05*0.05/0.1},   // toward 1
		{1, 0.1, 0.05},                      // mean 1 is class 1
		{3, 0.7, 0.5 + 0.3*0.5},             // halfway between 0.5 and 0.8
		{3, 0.99, 0.8 + 0.2*(0.99-0.9)/0.1}, // toward 1
	} {
		if got := c.Level(tt.mean, tt.u); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("Level(%v, %v) = %v, want %v", tt.mean, tt.u, got, tt.want)
		}
	}
	if c.Factor(0.2) != 2 || c.Factor(1) != 1 {
		t.Errorf("factors %v %v", c.Factor(0.2), c.Factor(1))
	}
	var none *Calibration
	if none.Level(3, 0.3) != 0.3 || none.Factor(3) != 1 {
		t.Error("a nil calibration is not the identity")
	}
	bad := *c
	bad.Levels = [][]float64{{0.2, 0.6, 0.95}, {0.5, 0.05, 0.8}}
	if bad.Validate() == nil {
		t.Error("descending levels validated")
	}
}

// TestFitCalibrationMakesPITUniform: Poisson forecasts of negative
// over-dispersed outcomes (too narrow, more so in the low class). After the fit, on the points it was fitted on, each class's
// mean PIT share below the level used for a nominal u is u, at the class's
// dispersion factor: the coverage of every central interval is nominal.
// The factor widens the classes whose errors exceed the forecast variance.
func TestFitCalibrationMakesPITUniform(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	negbin := func(mean, disp float64) float64 {
		// a Poisson of a random rate with the given mean (a sum of
		// exponentials, the fraction of one for the rest): over-dispersed,
		// not exactly negative binomial, which is enough here
		r := mean / (disp - 1)
		g := 0.0
		for range int(r) {
			g -= math.Log(1 - rng.Float64())
		}
		if f := r - math.Floor(r); f > 0 {
			g -= f * math.Log(1-rng.Float64())
		}
		lambda := g * (disp - 1)
		k, p, l := 0.0, 1.0, math.Exp(-lambda)
		for {
			p *= rng.Float64()
			if p <= l {
				return k
			}
			k++
		}
	}
	var points []PITPoint
	for range 3000 {
		mean := 0.05 + 12*rng.Float64()*rng.Float64()
		disp := 1.5
		if mean < 0.5 {
			disp = 6
		}
		points = append(points, PITPoint{Mean: mean, Dispersion: 1, Y: negbin(mean, disp)})
	}
	nominal := CalibrationLevels()
	c := FitCalibration(points, nominal, DefaultCalibrationBounds(), 200)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Factors[0] <= 1.2 {
		t.Errorf("low class factor %v: want the spread widened", c.Factors[0])
	}
	for k := range c.Levels {
		var lo, hi []float64
		for _, p := range points {
			if c.class(p.Mean) == k {
				a, b := p.interval(c.Factors[k])
				lo, hi = append(lo, a), append(hi, b)
			}
		}
		if len(lo) < 200 {
			t.Fatalf("class %d: %d points", k, len(lo))
		}
		if c.Points[k] != len(lo) {
			t.Errorf("class %d: Points %d, counted %d", k, c.Points[k], len(lo))
		}
		for j, u := range nominal {
			v, share := c.Levels[k][j], 0.0
			for i := range lo {
				switch {
				case v >= hi[i]:
					share++
				case v > lo[i]:
					share += (v - lo[i]) / (hi[i] - lo[i])
				}
			}
			if share /= float64(len(lo)); math.Abs(share-u) > 1e-6 {
				t.Errorf("class %d level %v: PIT share %v at %v", k, u, share, v)
			}
		}
	}
	// too few points: the identity
	id := FitCalibration(points[:50], nominal, DefaultCalibrationBounds(), 200)
	for k := range id.Levels {
		if !slices.Equal(id.Levels[k], nominal) || id.Factors[k] != 1 {
			t.Errorf("class %d of 50 points: %v %v", k, id.Factors[k], id.Levels[k])
		}
	}
}

// TestForecastWithCalibration: each day's quantiles are the count
// quantiles at the day's calibrated levels and dispersion; the lead
// times' and the means do not move; a nil calibration gives the forecast
// without one.
func TestForecastWithCalibration(t *testing.T) {
	var s State
	observeAll(&s, day0, poissonSeries(3, 200, 1.5))
	start := day0 + 200
	req := Request{StartDay: start}
	plain := s.Forecast(req)
	c := &Calibration{
		Nominal: CalibrationLevels(),
		Bounds:  []float64{1},
		Factors: []float64{3, 1.7},
	}
	for k := range 2 {
		lv := make([]float64, len(c.Nominal))
		for j, u := range c.Nominal {
			lv[j] = u + (0.5-u)*0.1*float64(k+1) // narrower toward the median
		}
		c.Levels = append(c.Levels, lv)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	req.Calibration = c
	cal := s.Forecast(req)
	if !slices.Equal(cal.Means, plain.Means) {
		t.Error("the calibration moved the means")
	}
	for i := range cal.LeadTime {
		if !slices.Equal(cal.LeadTime[i].Quantiles, plain.LeadTime[i].Quantiles) {
			t.Errorf("lead time %d moved", cal.LeadTime[i].Days)
		}
	}
	disp, zeros := s.dispersion(), s.zeroShare()
	moved := false
	for h, m := range cal.Means {
		levels := make([]float64, len(cal.QuantileLevels))
		c.LevelsFor(m, cal.QuantileLevels, levels)
		want := make([]float64, len(levels))
		countDist{Mean: m, Dispersion: max(capForZeros(m, disp, zeros)*c.Factor(m), 1)}.Quantiles(levels, want)
		if !slices.Equal(cal.Quantiles[h], want) {
			t.Errorf("day %d: %v, want %v", h, cal.Quantiles[h], want)
		}
		moved = moved || !slices.Equal(cal.Quantiles[h], plain.Quantiles[h])
	}
	if !moved {
		t.Error("the calibration changed no quantile")
	}
	req.Calibration = nil
	if again := s.Forecast(req); !slices.Equal(again.Quantiles[5], plain.Quantiles[5]) {
		t.Error("a nil calibration changed the forecast")
	}
}

// TestPublishedCDFMatchesQuantiles: the CDF PublishedCDF gives is the one
// the published quantiles are read from: at each day's quantile q for the
// level u, P(Y <= q) >= u > P(Y <= q-1); with and without a calibration.
// InverseLevel inverts Level.
func TestPublishedCDFMatchesQuantiles(t *testing.T) {
	var s State
	observeAll(&s, day0, poissonSeries(5, 300, 0.8))
	start := day0 + 300
	c := &Calibration{Nominal: CalibrationLevels(), Bounds: []float64{0.5, 2}, Factors: []float64{2.5, 1.5, 1}}
	for k := range 3 {
		lv := make([]float64, len(c.Nominal))
		for j, u := range c.Nominal {
			lv[j] = u + (0.5-u)*0.15*float64(k+1)
		}
		c.Levels = append(c.Levels, lv)
	}
	for _, cal := range []*Calibration{nil, c} {
		f := s.Forecast(Request{StartDay: start, Calibration: cal})
		cdf := s.PublishedCDF(start, len(f.Means), cal)
		for h := range f.Means {
			for k, u := range f.QuantileLevels {
				q := f.Quantiles[h][k]
				if hi, lo := cdf(h, q), cdf(h, q-1); !(hi >= u-1e-12 && lo < u+1e-12) {
					t.Fatalf("calibrated %v day %d level %v: quantile %v, P(Y <= q) = %v, P(Y <= q-1) = %v", cal != nil, h, u, q, hi, lo)
				}
			}
		}
	}
	for _, mean := range []float64{0.2, 1, 5} {
		for _, u := range []float64{0.001, 0.01, 0.3, 0.5, 0.77, 0.99, 0.999} {
			if got := c.InverseLevel(mean, c.Level(mean, u)); math.Abs(got-u) > 1e-12 {
				t.Errorf("mean %v: InverseLevel(Level(%v)) = %v", mean, u, got)
			}
		}
	}
}
