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

// The members added in stat-ensemble-2: Croston and SBA, ADIDA, seasonal
// naive and Holt-Winters (additive, and additive on the log scale).

const (
	crostonAlpha = 0.1  // Croston/SBA: smoothing of the size and the interval
	adidaAlpha   = 0.1  // ADIDA: smoothing of the weekly totals
	hwBeta       = 0.02 // Holt-Winters: trend
	hwPhi        = 0.9  // Holt-Winters: damping per day (dampedPowers holds its powers)
	hwGamma      = 0.1  // Holt-Winters: weekday effects
	hwLogAlpha   = 0.1  // Holt-Winters on log1p: level
	// hwLogMaxVar caps the log-scale error variance used in the log-normal
	// back-transform exp(x + var/2): early on a single jump (18 units, then
	// 1,824) makes the estimate ~20 and the mean 30,000x the data. A variance
	// of 1 allows at most a 1.65x correction.
	hwLogMaxVar = 1.0
)

// hwAlphas are the level smoothing constants of the additive Holt-Winters
// members (the per-series fit chooses among them by out-of-sample error).
func hwAlpha(i int) float64 { return [numHW]float64{0.05, 0.2}[i] }

// Croston (1972) smooths the non-zero demand size and the interval between
// demands separately and forecasts size/interval; SBA (Syntetos-Boylan
// approximation, 2005) multiplies it by 1-alpha/2 to remove Croston's bias.
type Croston struct {
	Size     float64
	Interval float64
	Since    int32 // days since the last demand (including today)
	N        int32 // demands seen
}

func (m *Croston) update(y float64) {
	m.Since++
	if y <= 0 {
		return
	}
	m.N++
	if m.N == 1 {
		m.Size, m.Interval = y, float64(m.Since)
	} else {
		m.Size += crostonAlpha * (y - m.Size)
		m.Interval += crostonAlpha * (float64(m.Since) - m.Interval)
	}
	m.Since = 0
}

func (m *Croston) predict(sba bool) float64 {
	if m.N == 0 || m.Interval <= 0 {
		return 0
	}
	f := m.Size / m.Interval
	if sba {
		f *= 1 - crostonAlpha/2
	}
	return f
}

// ADIDA (Nikolopoulos et al. 2011): demand aggregated into non-overlapping
// 7-day buckets, exponentially smoothed there (aggregation removes most of
// the intermittence), and disaggregated evenly.
type ADIDA struct {
	Level  float64
	Bucket float64
	Filled int32 // days in Bucket
	N      int32 // buckets smoothed
}

func (m *ADIDA) update(y float64) {
	m.Bucket += y
	m.Filled++
	if m.Filled == 7 {
		m.N++
		ewAdd(&m.Level, m.N, adidaAlpha, m.Bucket)
		m.Bucket, m.Filled = 0, 0
	}
}

func (m *ADIDA) predict() float64 {
	if m.N == 0 {
		if m.Filled == 0 {
			return 0
		}
		return m.Bucket / float64(m.Filled)
	}
	return m.Level / 7
}

// SeasonalNaive repeats the last seen value of the same weekday.
type SeasonalNaive struct {
	Last  [7]float64
	Known uint8
	Any   float64 // the last value of any weekday, for weekdays not seen yet
}

func (m *SeasonalNaive) update(day Day, y float64) {
	wd := day.Weekday()
	m.Last[wd] = y
	m.Known |= 1 << wd
	m.Any = y
}

func (m *SeasonalNaive) predict(day Day) float64 { return m.predictWeekday(day.Weekday()) }

func (m *SeasonalNaive) predictWeekday(wd int) float64 {
	if m.Known&(1<<wd) != 0 {
		return m.Last[wd]
	}
	return m.Any
}

// HoltWinters is additive Holt-Winters with a damped trend and weekday
// effects; on the log scale (Log) it models log1p(y) and back-transforms
// with the variance of its one-step errors (a log-normal mean), which
// makes the weekly pattern multiplicative.
type HoltWinters struct {
	Level, Trend float64
	Season       [7]float64
	SeasonN      [7]int32
	N            int32
	ResidVar     float64 // log scale: mean squared one-step error
}

func (m *HoltWinters) update(alpha float64, day Day, y float64, log bool) {
	x := y
	if log {
		x = math.Log1p(y)
	}
	wd := day.Weekday()
	m.N++
	if m.N == 1 {
		m.Level = x
		return
	}
	s := m.Season[wd]
	if log {
		e := x - (m.Level + hwPhi*m.Trend + s)
		ewAdd(&m.ResidVar, m.N-1, 1.0/56, e*e)
	}
	prev := m.Level
	a := max(alpha, 1/float64(m.N))
	m.Level = a*(x-s) + (1-a)*(m.Level+hwPhi*m.Trend)
	m.Trend = hwBeta*(m.Level-prev) + (1-hwBeta)*hwPhi*m.Trend
	m.SeasonN[wd]++
	g := max(hwGamma, 1/float64(m.SeasonN[wd]))
	m.Season[wd] = g*(x-m.Level) + (1-g)*s
}

func (m *HoltWinters) predict(day Day, ahead int, log bool) float64 {
	return m.predictWeekday(day.Weekday(), ahead, log)
}

func (m *HoltWinters) predictWeekday(wd, ahead int, log bool) float64 {
	if m.N == 0 {
		return 0
	}
	ahead = max(ahead, 1)
	pow := 0.0
	if ahead < len(dampedPowers) {
		pow = dampedPowers[ahead]
	} else {
		pow = math.Pow(hwPhi, float64(ahead))
	}
	x := m.Level + hwPhi*(1-pow)/(1-hwPhi)*m.Trend + m.Season[wd]
	if log {
		return max(math.Expm1(x+min(m.ResidVar, hwLogMaxVar)/2), 0)
	}
	return max(x, 0)
}
