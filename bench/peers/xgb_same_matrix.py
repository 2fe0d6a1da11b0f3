#!/usr/bin/python3
"""XGBoost on exactly the matrix stockcast's global model trains on
(`stockcast train --export-matrix DIR`), with the same settings as
gbt.DefaultParams: Tweedie 1.1, eta 0.05, depth 8, min_child_weight 10,
lambda 1, subsample 0.8, colsample_bytree 0.8, hist with 256 bins, 2
threads, early stopping after 50 rounds on the validation window, then a
refit on all training rows with the rounds found. Writes its forecasts in
the CSV pkg/backtest.ReadForecasts scores (quantiles: none).

usage: xgb_same_matrix.py <matrix dir> <origin YYYY-MM-DD> <out.csv>
"""
import sys
import time

import numpy as np
import pandas as pd
import xgboost as xgb

LEVELS = [0.005, 0.01, 0.025, 0.05, 0.165, 0.25, 0.5, 0.75, 0.835, 0.95, 0.975, 0.99, 0.995]


def main():
    d, origin, out = sys.argv[1], sys.argv[2], sys.argv[3]
    fit, valid, full = (pd.read_csv(f"{d}/{n}.csv") for n in ("fit", "valid", "all"))
    test = pd.read_csv(f"{d}/test.csv", dtype={"id": str})
    feats = [c for c in fit.columns if c != "y"]
    params = {"objective": "reg:tweedie", "tweedie_variance_power": 1.1, "eta": 0.05, "max_depth": 8,
              "min_child_weight": 10, "lambda": 1, "subsample": 0.8, "colsample_bytree": 0.8,
              "tree_method": "hist", "max_bin": 256, "nthread": 2, "seed": 1}
    start = time.time()
    dfit = xgb.DMatrix(fit[feats], label=fit["y"])
    dval = xgb.DMatrix(valid[feats], label=valid["y"])
    model = xgb.train(params, dfit, 1000, evals=[(dval, "valid")], early_stopping_rounds=50, verbose_eval=False)
    rounds = model.best_iteration + 1
    model = xgb.train(params, xgb.DMatrix(full[feats], label=full["y"]), rounds)
    elapsed = time.time() - start
    pred = np.maximum(model.predict(xgb.DMatrix(test[feats])), 0)
    print(f"xgboost {xgb.__version__} on the same matrix: {rounds} rounds, {elapsed:.1f} s", file=sys.stderr)
    df = pd.DataFrame({"model": "py_xgboost_same_matrix", "origin": origin, "id": test["id"], "h": test["h"], "mean": pred})
    for u in LEVELS:
        df["q%g" % u] = "NA"
    df.to_csv(out, index=False)
    pd.DataFrame([("py_xgboost_same_matrix", elapsed)], columns=["model", "seconds"]).to_csv(out[:-4] + ".times.csv", index=False)


if __name__ == "__main__":
    main()
