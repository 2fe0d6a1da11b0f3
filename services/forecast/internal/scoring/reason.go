package scoring

import (
	"fmt"
	"math"
	"strconv"

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
		r.Detail = string(appendFixed([]byte("first forecast of the series: level "), level, 2))
	case in.prev != nil && prevVersion != r.ModelVersion:
		r.Code = forecastv1.ReasonCode_REASON_CODE_MODEL_CHANGED
		r.Detail = "global model " + modelName(prevVersion) + " -> " + modelName(r.ModelVersion)
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
		b := in.after.LastDay.AppendString(append(make([]byte, 0, 64), "state rebuilt from history through "...))
		r.Detail = string(appendFixed(append(b, ": level "...), level, 2))
	case in.after.LastUpdate != in.before.LastUpdate || in.after.Days != in.before.Days:
		r.Code = forecastv1.ReasonCode_REASON_CODE_DAY_CLOSED
		prevLevel := level
		if in.prev != nil && in.prev.hasLevel {
			prevLevel = in.prev.level
		}
		b := appendFixed(append(make([]byte, 0, 160), "level "...), prevLevel, 2)
		b = appendFixed(append(b, " -> "...), level, 2)
		b = in.after.LastUpdate.AppendString(append(b, " after day "...))
		if len(r.Factors) > 0 {
			b = appendFactors(append(b, "; global model: "...), r.Factors)
		}
		r.Detail = string(b)
	default:
		if expected, sd, shifted := demandShift(in); shifted {
			r.Code = forecastv1.ReasonCode_REASON_CODE_DEMAND_SHIFT
			b := appendFixed(append(make([]byte, 0, 64), "today "...), in.todaySoFar, 0)
			b = appendFixed(append(b, " so far, "...), expected, 1)
			b = appendFixed(append(b, " ± "...), sd, 1)
			r.Detail = string(append(b, " expected by now"...))
		} else {
			r.Code = forecastv1.ReasonCode_REASON_CODE_UNCHANGED
			b := appendFixed(append(make([]byte, 0, 64), "today "...), in.todaySoFar, 0)
			b = appendFixed(append(b, " so far, "...), expected, 1)
			r.Detail = string(append(b, " expected by now"...))
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
func factorText(f []*forecastv1.Attribution) string { return string(appendFactors(nil, f)) }

// appendFactors appends factorText(f) to b.
func appendFactors(b []byte, f []*forecastv1.Attribution) []byte {
	for i, a := range f {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendSigned(append(append(b, a.GetFeature()...), ' '), a.GetChange(), 3)
	}
	return b
}

// appendFixed appends v as fmt's %.<prec>f formats it (fmt adds nothing to
// strconv's 'f' format without flags; TestFormatsAsFmt), without fmt's
// reflection and allocations: reasons and components are made on every
// event.
func appendFixed(b []byte, v float64, prec int) []byte {
	return strconv.AppendFloat(b, v, 'f', prec, 64)
}

// appendSigned appends v as fmt's %+.<prec>f formats it: strconv's 'f'
// format with a '+' before anything that has no sign ("+NaN" too).
func appendSigned(b []byte, v float64, prec int) []byte {
	b = append(b, '+')
	n := len(b)
	b = strconv.AppendFloat(b, v, 'f', prec, 64)
	if b[n] == '-' || b[n] == '+' {
		copy(b[n-1:], b[n:])
		b = b[:len(b)-1]
	}
	return b
}
