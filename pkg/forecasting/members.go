package forecasting

import "math"

// The members of the combination. Each keeps a few numbers, is advanced
// with update(day, y) on every uncensored day and predicts any later day.
// Their parameters are constants of the model version: changing one means
// bumping ModelVersion.

const (
	tsbSizeAlpha   = 0.1  // TSB: smoothing of the non-zero demand size
	tsbProbAlpha   = 0.05 // TSB: smoothing of the probability of demand
	seasonalAlpha  = 0.1  // weekly-seasonal: deseasonalised level
	seasonalGamma  = 0.1  // weekly-seasonal: per-weekday mean (updated once a week)
	dampedAlpha    = 0.1  // damped trend: level
	dampedBeta     = 0.02 // damped trend: trend
	dampedPhi      = 0.9  // damped trend: damping per day
	movingAvgDays  = 28   // moving average window
	minWeekdayBase = 0.1  // weekday factors below this carry no information on the level
)

// sesAlpha returns the smoothing constant of SES member i, slow to fast.
func sesAlpha(i int) float64 {
	return [numSES]float64{0.03, 0.1, 0.3}[i]
}

// ewAdd moves *v toward x with weight max(1/n, rate), n counting x: equal
// weights while n < 1/rate, so a new statistic starts at the plain average of
// what it has seen instead of being biased toward its zero start.
func ewAdd(v *float64, n int32, rate, x float64) {
	w := rate
	if n > 0 && 1/float64(n) > rate {
		w = 1 / float64(n)
	}
	*v += w * (x - *v)
}

// SES is simple exponential smoothing: a flat forecast at the level.
type SES struct {
	Level float64
	N     int32
}

func (m *SES) update(alpha, y float64) {
	m.N++
	ewAdd(&m.Level, m.N, alpha, y)
}

// TSB (Teunter, Syntetos, Babai 2011) smooths the size of non-zero demand
// and the probability of demand separately; the probability decays on zero
// days, so a dying item's forecast goes down (unlike Croston's).
type TSB struct {
	Size  float64
	Prob  float64
	NSize int32
	N     int32
}

func (m *TSB) update(y float64) {
	m.N++
	hit := 0.0
	if y > 0 {
		hit = 1
		m.NSize++
		ewAdd(&m.Size, m.NSize, tsbSizeAlpha, y)
	}
	ewAdd(&m.Prob, m.N, tsbProbAlpha, hit)
}

func (m *TSB) predict() float64 { return m.Prob * m.Size }

// Seasonal is a multiplicative weekly-seasonal smoother: a deseasonalised
// level times a weekday factor. The factors are ratios of per-weekday
// exponentially weighted means to their average, which stays defined on
// intermittent series (no division by a level near zero).
type Seasonal struct {
	Level       float64
	N           int32
	WeekdayMean [7]float64
	WeekdayN    [7]int32
}

// factor returns the weekday's multiplier (1 until the weekday has data).
func (m *Seasonal) factor(wd int) float64 {
	if m.WeekdayN[wd] == 0 {
		return 1
	}
	sum, n := 0.0, 0
	for i, c := range m.WeekdayN {
		if c > 0 {
			sum += m.WeekdayMean[i]
			n++
		}
	}
	if sum <= 0 {
		return 1
	}
	return m.WeekdayMean[wd] * float64(n) / sum
}

func (m *Seasonal) update(day Day, y float64) {
	wd := day.Weekday()
	m.WeekdayN[wd]++
	ewAdd(&m.WeekdayMean[wd], m.WeekdayN[wd], seasonalGamma, y)
	if f := m.factor(wd); f >= minWeekdayBase {
		m.N++
		ewAdd(&m.Level, m.N, seasonalAlpha, y/f)
	}
}

// factors returns the seven weekday factors, Monday first.
func (m *Seasonal) factors() [7]float64 {
	var f [7]float64
	for wd := range f {
		f[wd] = m.factor(wd)
	}
	return f
}

// Damped is Holt's linear method with a damped trend (Gardner, McKenzie).
type Damped struct {
	Level float64
	Trend float64
	N     int32
}

func (m *Damped) update(y float64) {
	m.N++
	if m.N == 1 {
		m.Level = y
		return
	}
	prev := m.Level
	fc := m.Level + dampedPhi*m.Trend
	alpha := max(dampedAlpha, 1/float64(m.N))
	m.Level = fc + alpha*(y-fc)
	m.Trend = dampedPhi*m.Trend + dampedBeta*(m.Level-prev-dampedPhi*m.Trend)
}

func (m *Damped) predict(ahead int) float64 {
	// phi + phi² + ... + phi^ahead
	ahead = max(ahead, 1)
	pow := 0.0
	if ahead < len(dampedPowers) {
		pow = dampedPowers[ahead]
	} else {
		pow = math.Pow(dampedPhi, float64(ahead))
	}
	damp := dampedPhi * (1 - pow) / (1 - dampedPhi)
	return max(m.Level+damp*m.Trend, 0)
}

// dampedPowers[k] is math.Pow(dampedPhi, k): a constant table (never
// written after initialisation) that takes math.Pow out of the hot loop.
var dampedPowers = func() (t [64]float64) {
	for k := range t {
		t[k] = math.Pow(dampedPhi, float64(k))
	}
	return t
}()

// MovingAverage is the mean of the last movingAvgDays uncensored days, kept in
// a fixed ring.
type MovingAverage struct {
	Ring [movingAvgDays]float64
	Next int32
	N    int32 // filled slots, up to movingAvgDays
}

func (m *MovingAverage) update(y float64) {
	m.Ring[m.Next] = y
	m.Next = (m.Next + 1) % movingAvgDays
	if m.N < movingAvgDays {
		m.N++
	}
}

func (m *MovingAverage) predict() float64 {
	if m.N == 0 {
		return 0
	}
	// Summing the ring each time (28 adds) instead of keeping a running sum
	// avoids floating-point drift.
	sum := 0.0
	for _, v := range m.Ring[:m.N] {
		sum += v
	}
	return sum / float64(m.N)
}
