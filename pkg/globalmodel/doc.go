// Package globalmodel is stockcast's global demand model: gradient-boosted
// trees (pkg/gbt, Tweedie objective) trained across all series of a panel
// on features built by one function, Panel.Row, for training rows and
// forecast rows alike: lags of 28..56 days, rolling mean and spread of the
// lag-28 series, calendar, M5 events and SNAP, price, relative price and
// its weekly change, item/department/category/store codes. Every feature
// of a day is known MinLag (28) days before it, so one model covers the
// 28-day horizon (TestFeaturesAreHorizonSafe).
//
// GBT and Combined (the global model averaged with the per-series
// ensemble of pkg/forecasting) are backtest.Models.
package globalmodel
