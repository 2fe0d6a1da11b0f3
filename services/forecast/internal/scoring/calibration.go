package scoring

import "github.com/stockcast/stockcast/pkg/forecasting"

// quantileCalibration is the ensemble's calibration of the model in use
// (stockcast train fits it with the backtest's calibrated ensemble and
// ships it in the artefact): the daily quantiles' and, in its LeadTimes
// (artefacts from session 5 on), the lead-time demand quantiles', by the
// days summed (the service's lead time L sums the rest of today and L
// more days: forecasting.Calibration.ForLeadTime(L+1)). nil without a
// model or without one in its artefact: the ensemble's quantiles at their
// own levels.
func (m *Model) quantileCalibration() *forecasting.Calibration {
	if m == nil {
		return nil
	}
	return m.calibration
}
