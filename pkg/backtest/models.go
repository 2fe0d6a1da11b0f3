package backtest

import (
	"strconv"

	"github.com/stockcast/stockcast/pkg/forecasting"
)

// Model forecasts every series of a data set from an origin: it may read
// Values[:origin] of each series (and any calendar or price, which are
// known in advance) and returns one Prediction per series with horizon
// days and quantiles at Levels (or nil quantiles).
type Model interface {
	Name() string
	Forecast(ds *Dataset, origin, horizon int) ([]Prediction, error)
}

// Ensemble is stockcast's per-series ensemble (forecasting.State): each
// series' state is advanced over the training days one at a time, exactly
// as the forecast service does, then asked for a forecast.
type Ensemble struct{}

// Name implements Model.
func (Ensemble) Name() string { return "stockcast_ensemble" }

// Forecast implements Model.
func (Ensemble) Forecast(ds *Dataset, origin, horizon int) ([]Prediction, error) {
	out := make([]Prediction, len(ds.Series))
	for i := range ds.Series {
		st := train(ds, i, origin)
		f := st.Forecast(forecasting.Request{StartDay: ds.Day(origin), Horizon: horizon, QuantileLevels: Levels, LeadTimes: []int{0}})
		out[i] = Prediction{Means: f.Means, Quantiles: f.Quantiles, CDF: st.PublishedCDF(ds.Day(origin), horizon, nil),
			LeadTimeCDF: st.LeadTimeCDF(ds.Day(origin), LeadTimes, nil)}
	}
	return out, nil
}

func train(ds *Dataset, i, origin int) *forecasting.State {
	var st forecasting.State
	for t, y := range ds.Series[i].Values[:origin] {
		st.Observe(ds.Day(t), y, false)
	}
	return &st
}

// Member is one member of the ensemble alone (index into
// forecasting.MemberNames), with its own count distribution.
type Member int

// Name implements Model.
func (m Member) Name() string { return "stockcast_" + forecasting.MemberNames()[m] }

// Forecast implements Model.
func (m Member) Forecast(ds *Dataset, origin, horizon int) ([]Prediction, error) {
	out := make([]Prediction, len(ds.Series))
	for i := range ds.Series {
		st := train(ds, i, origin)
		p := newPrediction(horizon)
		st.MemberForecast(int(m), ds.Day(origin), Levels, p.Means, p.Quantiles)
		out[i] = p
	}
	return out, nil
}

func newPrediction(horizon int) Prediction {
	p := Prediction{Means: make([]float64, horizon), Quantiles: make([][]float64, horizon)}
	for h := range p.Quantiles {
		p.Quantiles[h] = make([]float64, len(Levels))
	}
	return p
}

// Baseline is a classical point forecast with count-distribution
// quantiles: the dispersion is the variance-to-mean ratio of the method's
// own errors over the last year of training days.
type Baseline struct {
	// Kind is "naive" (last value), "seasonal_naive" (the last week
	// repeated) or "moving_average" (the mean of the last Window days).
	Kind   string
	Window int
}

// Name implements Model.
func (b Baseline) Name() string {
	if b.Kind == "moving_average" {
		return "moving_average_" + strconv.Itoa(b.Window)
	}
	return b.Kind
}

// predictAt is the method's forecast for day t+h from the values before t.
func (b Baseline) predictAt(y []float64, t, h int) float64 {
	switch b.Kind {
	case "naive":
		return y[t-1]
	case "seasonal_naive":
		return y[t-7+h%7]
	default:
		w := min(b.Window, t)
		s := 0.0
		for _, v := range y[t-w : t] {
			s += v
		}
		return s / float64(w)
	}
}

func (b Baseline) lookback() int {
	if b.Kind == "moving_average" {
		return b.Window
	}
	return 7
}

// Forecast implements Model.
func (b Baseline) Forecast(ds *Dataset, origin, horizon int) ([]Prediction, error) {
	out := make([]Prediction, len(ds.Series))
	for i, s := range ds.Series {
		y := s.Values[:origin]
		p := newPrediction(horizon)
		// dispersion of the one-step errors over the last year
		var sq, mean float64
		n := 0
		for t := max(b.lookback(), origin-364); t < origin; t++ {
			e := y[t] - b.predictAt(y, t, 0)
			sq += e * e
			mean += y[t]
			n++
		}
		disp := 1.0
		if n > 0 && mean > 0 {
			disp = (sq / float64(n)) / (mean / float64(n))
		}
		for h := range horizon {
			p.Means[h] = max(b.predictAt(y, origin, h), 0)
			forecasting.CountQuantiles(p.Means[h], disp, Levels, p.Quantiles[h])
		}
		means := p.Means
		p.CDF = func(h int, k float64) float64 { return forecasting.CalibratedCDF(means[h], disp, nil, k) }
		out[i] = p
	}
	return out, nil
}

// DefaultCalibrationWindows is the number of horizon-long windows before
// the origin the calibrated ensemble learns its calibration from.
const DefaultCalibrationWindows = 3

// EnsembleCalibrated is the ensemble with its daily quantiles calibrated
// (forecasting.Calibration): each series' state forecasts the Windows
// horizon-long windows before the origin out of sample (from the start of
// each window, having seen only the days before it), the PIT of those
// days' outcomes is fitted per class of the day's mean, and the forecast
// from the origin reads its quantiles at the calibrated levels. The test
// days are never read: the last window ends the day before the origin.
type EnsembleCalibrated struct {
	// Windows is the number of validation windows (DefaultCalibrationWindows if 0).
	Windows int
	// Calibrations records the calibration fitted at each origin.
	Calibrations map[int]*forecasting.Calibration
}

// Name implements Model.
func (*EnsembleCalibrated) Name() string { return "stockcast_ensemble_calibrated" }

// Forecast implements Model.
func (e *EnsembleCalibrated) Forecast(ds *Dataset, origin, horizon int) ([]Prediction, error) {
	cal, states := FitEnsembleCalibration(ds, origin, horizon, e.Windows)
	if e.Calibrations == nil {
		e.Calibrations = map[int]*forecasting.Calibration{}
	}
	e.Calibrations[origin] = cal
	out := make([]Prediction, len(ds.Series))
	for i := range ds.Series {
		f := states[i].Forecast(forecasting.Request{StartDay: ds.Day(origin), Horizon: horizon, QuantileLevels: Levels, LeadTimes: []int{0}, Calibration: cal})
		out[i] = Prediction{Means: f.Means, Quantiles: f.Quantiles, CDF: states[i].PublishedCDF(ds.Day(origin), horizon, cal),
			LeadTimeCDF: states[i].LeadTimeCDF(ds.Day(origin), LeadTimes, cal)}
	}
	return out, nil
}

// LeadTimeStep is the number of days between the starts of a series'
// lead-time sums FitEnsembleCalibration learns the lead times'
// calibration from (series i's starts shifted by i days: every weekday
// starts as many sums, as the service's forecasts start on every day).
const LeadTimeStep = 7

// FitEnsembleCalibration fits the ensemble's calibration from the windows
// horizon-long windows before origin (DefaultCalibrationWindows if 0;
// fewer when the data start too late) and returns it with each series'
// state advanced to the origin. It reads only the days before origin.
// The daily calibration learns from each day of the windows, forecast
// from the window's start; the lead times' (Calibration.LeadTimes, one
// per LeadTimes) from the sums of the first L days from every
// LeadTimeStep-th day of the windows (shifted by the series' index), those
// that end before the origin.
func FitEnsembleCalibration(ds *Dataset, origin, horizon, windows int) (*forecasting.Calibration, []*forecasting.State) {
	if windows <= 0 {
		windows = DefaultCalibrationWindows
	}
	for windows > 0 && origin-windows*horizon < 1 {
		windows--
	}
	first := origin - windows*horizon
	states := make([]*forecasting.State, len(ds.Series))
	var points []forecasting.PITPoint
	leadPoints := make([][]forecasting.PITPoint, len(LeadTimes))
	for i, s := range ds.Series {
		st := new(forecasting.State)
		for t := 0; t < origin; t++ {
			if d := t - first; d >= 0 {
				if d%horizon == 0 {
					points = append(points, st.PIT(ds.Day(t), s.Values[t:t+horizon])...)
				}
				if (d+i)%LeadTimeStep == 0 {
					// sums past the origin have a NaN outcome: not fitted
					for k, p := range st.LeadTimePIT(ds.Day(t), s.Values[t:origin], LeadTimes) {
						leadPoints[k] = append(leadPoints[k], p)
					}
				}
			}
			st.Observe(ds.Day(t), s.Values[t], false)
		}
		states[i] = st
	}
	nominal, bounds := forecasting.CalibrationLevels(), forecasting.DefaultCalibrationBounds()
	cal := forecasting.FitCalibration(points, nominal, bounds, forecasting.MinCalibrationPoints)
	cal.LeadTimes = forecasting.FitLeadTimeCalibrations(leadPoints, LeadTimes, nominal, bounds, forecasting.MinCalibrationPoints)
	return cal, states
}
