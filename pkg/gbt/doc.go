// Package gbt is a histogram-based gradient-boosted tree learner for count
// data: the global model of stockcast, trained across all series.
//
// It follows XGBoost's "hist" method and names its settings the XGBoost
// way, so that the two can be compared on the same matrix and settings:
// feature values are cut into at most 255 quantile bins (bin 0 holds
// missing values, which always go left), trees are grown depth-wise by the
// exact second-order gain on the bins' gradient and hessian sums (the
// smaller child's histogram is built, the larger one's is the parent's
// minus it), leaves get -eta*G/(H+lambda). Objectives: Poisson and Tweedie
// (log link, as XGBoost's count:poisson and reg:tweedie, including
// XGBoost's max_delta_step 0.7 for Poisson) and squared error. Early
// stopping watches the objective's loss on a validation set.
//
// Training is deterministic for a seed: row and feature sampling come from
// one seeded PCG, and histograms, built in parallel over features, are
// each summed in row order. Contributions gives per-feature path
// attributions (Saabas) of a prediction, for Explain.
package gbt
