// Package backtest is stockcast's rolling-origin evaluation: it forecasts a
// panel of daily series from one or more origins with any number of models
// and scores every forecast with the M5 metrics of BENCHMARKS.md (RMSSE,
// WRMSSE with dollar weights, MASE, bias, SPL/WSPL, 50/90/98% interval
// coverage) and the models' wall time.
//
// The metrics are the Go code's alone: peers (bench/peers) write their
// forecasts to CSV (ReadForecasts) and are scored by the same functions, on
// the same splits (WriteSplits), so the comparison holds by construction.
package backtest
