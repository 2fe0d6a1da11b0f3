// Package forecasting is the per-series statistical demand model of stockcast.
//
// A State is a fixed-size value (no slices, no maps) advanced one closed day
// at a time with Observe, in O(1) time. Every day it updates a small set of
// members in parallel (simple exponential smoothing at several alphas, TSB for
// intermittent demand, a weekly-seasonal smoother, a damped-trend smoother and
// a 28-day moving average). Each member's one-step-ahead error is scored
// before the member sees the value, and Forecast combines the members with
// weights proportional to the inverse of their recent out-of-sample mean
// squared error.
//
// Why inverse-MSE weights rather than picking the best member: on daily
// retail demand the members' errors are close and noisy, so "best" flips
// from day to day and forecasts jump; a weighted combination changes
// smoothly, is never worse than its worst member and, in the M-competitions,
// is usually better than selection. Squared error is the quantity the
// weighting minimises, and the one RMSSE (M5) measures.
//
// Forecast turns the combined daily means into count distributions (negative
// binomial with a constant dispersion ratio when the one-step errors are
// over-dispersed, else Poisson). Lead-time demand is the distribution of the
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
// Observe, its prediction to memberMeans and its name to memberNames, raise
// numMembers, and bump ModelVersion.
package forecasting
