// Package forecasting is the per-series statistical demand model of stockcast.
//
// A State is a fixed-size value (no slices, no maps) advanced one closed day
// at a time with Observe, in O(1) time and memory. Every day it updates
// fourteen members in parallel: simple exponential smoothing at three
// alphas, TSB, Croston and SBA for intermittent demand, ADIDA (smoothing of
// weekly totals), a weekly-seasonal smoother (multiplicative weekday
// factors), seasonal naive, Holt's damped trend, Holt-Winters with weekly
// effects (additive at two alphas, and additive on log1p, i.e.
// multiplicative), and a 28-day moving average. The demand class
// (Syntetos-Boylan: ADI and CV² of the sizes) is updated online too.
//
// Selection and weighting by rolling out-of-sample error: every member's
// forecast of the day leadK (7) days ahead is recorded and scored when the
// day comes; the combination weights the members proportionally to
// MSE^-4 of those exponentially weighted squared errors, close to picking
// the best few per series. The grids of smoothing constants (SES, Holt-Winters) are the
// per-series parameter fit: whichever constant has forecast this series
// best lately gets the weight, and the choice follows the series as it
// changes, at no cost beyond the members' own updates. Why 7-day-ahead
// errors rather than one-step ones: one-step errors reward fast, flat
// members that are poor a week and more ahead (stat-ensemble-1 weighted by
// them and was worse than its weekly-seasonal member alone); why the fourth
// power: the members' errors are close, and inverse-MSE weights over
// fourteen of them are nearly equal, which averages in the poor ones
// (docs/forecasting.md has the measurements).
//
// Censored days (stockouts flagged by inventory events) are unknown
// demand: Observe with censored=true moves no member, no score and no
// statistic.
//
// Forecast turns the combined daily means into count distributions (negative
// binomial with a constant dispersion ratio when the one-step errors are
// over-dispersed, else Poisson), with the dispersion capped so that the
// distribution has no more zeros than the series has had lately
// (capForZeros: a variance from past errors next to a mean that has fallen
// made every quantile 0 in stat-ensemble-1). Lead-time demand is the distribution of the
// sum of the days in closed form (the exact convolution of the daily count
// distributions), widened by the error of the level estimate, which the
// State measures by scoring its own 7- and 28-day totals (window.go). Being
// closed-form, it needs no sampling and no seed: a forecast is a pure
// function of the State and the Request, and costs tens of microseconds.
// Quantiles are exact (a walk along the pmf) up to a standard deviation of
// 250 units; beyond, a unit is far below the spread and a gamma
// approximation with the exact mass at zero bounds the cost (within 3% of a
// standard deviation, 20% for lumpy series; see TestLargeSpreadApproximation).
//
// Adding a member: add its state as a field of State, its update to
// Observe, its prediction to memberMeans (and to meanPath, flatMembers if it
// is flat) and its name to memberNames, raise numMembers, and bump
// ModelVersion and stateFormat.
package forecasting
