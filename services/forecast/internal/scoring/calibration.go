package scoring

import "github.com/stockcast/stockcast/pkg/forecasting"

// quantileCalibration is the ensemble's calibration of the model in use
// (stockcast train fits it with the backtest's calibrated ensemble and
// ships it in the artefact); nil without a model or without one in its
// artefact: the ensemble's quantiles at their own levels.
func (m *Model) quantileCalibration() *forecasting.Calibration {
	if m == nil {
		return nil
	}
	return m.calibration
}
