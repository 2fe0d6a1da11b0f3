package scoring

import (
	"fmt"
	"math"

	"github.com/stockcast/stockcast/pkg/forecasting"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
)

// shiftSDs is how many standard deviations today's demand so far must be
// from what was expected by now to count as a demand shift.
const shiftSDs = 3

type reasonInput struct {
	snap          *featurev1.FeatureSnapshot
	asOf          forecasting.Day
	forecast      *forecasting.Forecast
	prev          *prevForecast // nil: the series' first forecast in memory
	before, after *forecasting.State
	todaySoFar    float64
	share         float64
	// global is the global model's part (nil: the ensemble alone);
	// globalMoved says it was computed for this forecast (a day closed,
	// the model, the price or the category changed).
	global      *globalPart
	globalMoved bool
}

// reason says why the forecast is what it is, against the previous one:
// the first forecast of a series; else what the cause was (price,
// promotion, stockout); else a state rebuilt or moved by a closed day;
// else today's demand departing from expectation; else no material change.
func reason(in reasonInput) *forecastv1.ForecastReason {
	total := 0.0
	for _, m := range in.forecast.Means {
		total += m
	}
	r := &forecastv1.ForecastReason{}
	if in.prev != nil {
		prevTotal := in.prev.total
		switch {
		case prevTotal > 0:
			r.Change = total/prevTotal - 1
		case total > 0:
			r.Change = 1
		}
	}
	if in.global != nil {
		r.ModelVersion = in.global.version
		if in.globalMoved {
			r.Factors = in.global.factors
		}
	}
	prevVersion := ""
	if in.prev != nil {
		prevVersion = in.prev.globalVersion
		r.PreviousModelVersion = prevVersion
	}
	cause := in.snap.GetCause()
	level := in.forecast.Components.Level
	switch {
	case in.prev == nil && !in.before.Live:
		r.Code = forecastv1.ReasonCode_REASON_CODE_NEW_SERIES
		r.Detail = fmt.Sprintf("first forecast of the series: level %.2f", level)
	case in.prev != nil && prevVersion != r.ModelVersion:
		r.Code = forecastv1.ReasonCode_REASON_CODE_MODEL_CHANGED
		r.Detail = fmt.Sprintf("global model %s -> %s", modelName(prevVersion), modelName(r.ModelVersion))
	case cause.GetPrice() != nil:
		r.Code = forecastv1.ReasonCode_REASON_CODE_PRICE_CHANGED
		r.Detail = fmt.Sprintf("price %.2f %s", cause.GetPrice().GetPrice(), cause.GetPrice().GetCurrency())
	case cause.GetPromotion() != nil:
		p := cause.GetPromotion()
		r.Code = forecastv1.ReasonCode_REASON_CODE_PROMOTION
		r.Detail = fmt.Sprintf("promotion %s %s .. %s, %.0f%% off", p.GetPromotionId(),
			p.GetStartsAt().AsTime().Format("2006-01-02"), p.GetEndsAt().AsTime().Format("2006-01-02"), p.GetDiscountPct())
	case cause.GetInventory().GetStockoutStarted() != nil:
		r.Code = forecastv1.ReasonCode_REASON_CODE_STOCKOUT
		r.Detail = "stockout started: sales on stockout days are not taken as demand"
	case cause.GetInventory().GetStockoutEnded() != nil:
		r.Code = forecastv1.ReasonCode_REASON_CODE_STOCKOUT
		r.Detail = "stockout ended"
	case in.prev == nil:
		// A known series without a forecast in memory (a restart or an
		// eviction): its state was just rebuilt from the stored history.
		r.Code = forecastv1.ReasonCode_REASON_CODE_DAY_CLOSED
		r.Detail = fmt.Sprintf("state rebuilt from history through %s: level %.2f", in.after.LastDay, level)
	case in.after.LastUpdate != in.before.LastUpdate || in.after.Days != in.before.Days:
		r.Code = forecastv1.ReasonCode_REASON_CODE_DAY_CLOSED
		prevLevel := level
		if in.prev != nil && in.prev.hasLevel {
			prevLevel = in.prev.level
		}
		r.Detail = fmt.Sprintf("level %.2f -> %.2f after day %s", prevLevel, level, in.after.LastUpdate)
		if len(r.Factors) > 0 {
			r.Detail += "; global model: " + factorText(r.Factors)
		}
	default:
		if expected, sd, shifted := demandShift(in); shifted {
			r.Code = forecastv1.ReasonCode_REASON_CODE_DEMAND_SHIFT
			r.Detail = fmt.Sprintf("today %.0f so far, %.1f ± %.1f expected by now", in.todaySoFar, expected, sd)
		} else {
			r.Code = forecastv1.ReasonCode_REASON_CODE_UNCHANGED
			r.Detail = fmt.Sprintf("today %.0f so far, %.1f expected by now", in.todaySoFar, expected)
		}
	}
	return r
}

// demandShift compares today's demand so far with what the model expected
// by this time of day.
func demandShift(in reasonInput) (expected, sd float64, shifted bool) {
	f := in.forecast
	if len(f.Means) == 0 || in.share >= 1 {
		return in.todaySoFar, 0, false
	}
	full := (f.Means[0] - in.todaySoFar) / (1 - in.share) // the whole day's mean
	expected = full * in.share
	sd = math.Sqrt(f.Components.Dispersion * max(expected, 1))
	return expected, sd, math.Abs(in.todaySoFar-expected) > shiftSDs*sd
}

func modelName(version string) string {
	if version == "" {
		return "none (ensemble alone)"
	}
	return version
}

// factorText lists moved contributions, e.g. "lag28 +0.120, rmean28_7 -0.031".
func factorText(f []*forecastv1.Attribution) string {
	out := ""
	for i, a := range f {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%s %+.3f", a.GetFeature(), a.GetChange())
	}
	return out
}
