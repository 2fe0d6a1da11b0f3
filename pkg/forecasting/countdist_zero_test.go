package forecasting

import (
	"math"
	"testing"
)

// TestLogPMFAtZeroIsTheGeneralFormula: the shortcut at k = 0 gives the
// general formula's value bit for bit, so quantiles did not move.
func TestLogPMFAtZeroIsTheGeneralFormula(t *testing.T) {
	for _, mean := range []float64{1e-6, 0.01, 0.3, 1, 2.5, 7, 19.75, 140, 3000, 1e6} {
		for _, disp := range []float64{0.5, 1, 1 + 1e-7, 1.0001, 1.3, 2, 7.5, 40} {
			c := countDist{Mean: mean, Dispersion: disp}
			var want float64
			if c.poisson() {
				want = 0*math.Log(mean) - mean - lgamma(1)
			} else {
				r := mean / (disp - 1)
				p := 1 / disp
				want = lgamma(0+r) - lgamma(r) - lgamma(1) + r*math.Log(p) + 0*math.Log1p(-p)
			}
			if got := c.logPMF(0); got != want {
				t.Errorf("mean %v dispersion %v: logPMF(0) = %v, general formula %v", mean, disp, got, want)
			}
		}
	}
}
