#!/usr/bin/python3
"""stockcast peer harness, Python side: statsmodels ETS per series and an
M5-style XGBoost global model, on the splits exported by `stockcast backtest
--export`, writing forecasts in the CSV pkg/backtest.ReadForecasts scores.

usage: peers.py <splits dir> <out.csv> <models: statsmodels_ets,xgboost,xgboost_direct>

XGBoost: one model for all 28 horizon days, trained across all series on
features that are known at the origin for every horizon day: lags of 28 to
56 days, rolling means and std of the lag-28 series, calendar (weekday,
month, day of month), M5 events and SNAP, price, price relative to the
item's mean and its change over a week, item/dept/cat/store codes; Tweedie
objective; early stopping on the last 28 training days.
"""
import sys
import time
import warnings

import numpy as np
import pandas as pd

LEVELS = [0.005, 0.01, 0.025, 0.05, 0.165, 0.25, 0.5, 0.75, 0.835, 0.95, 0.975, 0.99, 0.995]
QNAMES = ["q" + ("%g" % u) for u in LEVELS]


def load(d):
    s = pd.read_csv(d + "/series.csv", keep_default_na=False, na_values=["NA"], dtype={"id": str, "item_id": str})
    o = pd.read_csv(d + "/origins.csv")
    return s, o


def statsmodels_ets(s, origins):
    from scipy.stats import norm
    from statsmodels.tsa.holtwinters import ExponentialSmoothing
    z = np.array([norm.ppf(u) for u in LEVELS])
    out = []
    for _, o in origins.iterrows():
        n, h = int(o.train_days), int(o.horizon)
        for sid, g in s.groupby("id", sort=False):
            y = g["value"].to_numpy(float)[:n]
            nz = np.flatnonzero(y > 0)
            y = y[nz[0]:] if len(nz) else y[-28:]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    fit = ExponentialSmoothing(y, trend="add", damped_trend=True, seasonal="add",
                                               seasonal_periods=7, initialization_method="estimated").fit()
                    mean = fit.forecast(h)
                    sd = np.std(fit.resid[-364:])
                except Exception:  # too short or degenerate: flat mean
                    mean, sd = np.full(h, y[-28:].mean()), y[-28:].std()
            mean = np.maximum(mean, 0)
            q = np.maximum(mean[:, None] + sd * z[None, :], 0)
            df = pd.DataFrame(q, columns=QNAMES)
            df.insert(0, "mean", mean)
            df.insert(0, "h", np.arange(1, h + 1))
            df.insert(0, "id", sid)
            df.insert(0, "origin", o.origin)
            out.append(df)
    return pd.concat(out)


def features(s):
    """One row per series x day; every feature of day t is known 28 days
    before t (lags >= 28), or in advance (calendar, events, price)."""
    s = s.copy()
    s["date"] = pd.to_datetime(s["date"])
    s["t"] = s.groupby("id", sort=False).cumcount()
    g = s.groupby("id", sort=False)["value"]
    for lag in (28, 35, 42, 49, 56):
        s[f"lag{lag}"] = g.shift(lag)
    lag28 = s.groupby("id", sort=False)["lag28"]
    for w in (7, 28, 56):
        s[f"rmean28_{w}"] = lag28.transform(lambda x: x.rolling(w, min_periods=1).mean())
    s["rstd28_28"] = lag28.transform(lambda x: x.rolling(28, min_periods=2).std())
    s["wday"] = s["date"].dt.weekday
    s["month"] = s["date"].dt.month
    s["mday"] = s["date"].dt.day
    for c in ("event_name_1", "event_type_1", "item_id", "dept_id", "cat_id", "store_id"):
        s[c + "_code"] = s[c].astype("category").cat.codes
    s["price"] = s["sell_price"]
    s["price_rel"] = s["price"] / s.groupby("item_id")["price"].transform("mean")
    s["price_change"] = s["price"] / s.groupby("id", sort=False)["price"].shift(7) - 1
    # days since the first sale (a not-yet-sold item is not demand)
    first = s[s["value"] > 0].groupby("id")["t"].min()
    s["age"] = s["t"] - s["id"].map(first).fillna(1 << 30)
    return s


FEATS = ["lag28", "lag35", "lag42", "lag49", "lag56", "rmean28_7", "rmean28_28", "rmean28_56", "rstd28_28",
         "wday", "month", "mday", "event_name_1_code", "event_type_1_code", "snap", "price", "price_rel",
         "price_change", "item_id_code", "dept_id_code", "cat_id_code", "store_id_code"]


def xgboost_global(s, origins, seed=1):
    import xgboost as xgb
    f = features(s)
    out = []
    for _, o in origins.iterrows():
        n, h = int(o.train_days), int(o.horizon)
        train = f[(f.t < n) & (f.age >= 0) & (f.t >= 56)]
        fit_part, valid = train[train.t < n - 28], train[train.t >= n - 28]
        params = {"objective": "reg:tweedie", "tweedie_variance_power": 1.1, "eta": 0.05, "max_depth": 8,
                  "min_child_weight": 10, "subsample": 0.8, "colsample_bytree": 0.8, "tree_method": "hist",
                  "nthread": 2, "seed": seed}
        dfit = xgb.DMatrix(fit_part[FEATS], label=fit_part["value"])
        dval = xgb.DMatrix(valid[FEATS], label=valid["value"])
        model = xgb.train(params, dfit, 1000, evals=[(dval, "valid")], early_stopping_rounds=50, verbose_eval=False)
        # refit on all training days with the number of rounds found
        dall = xgb.DMatrix(train[FEATS], label=train["value"])
        model = xgb.train(params, dall, model.best_iteration + 1)
        test = f[(f.t >= n) & (f.t < n + h)]
        pred = np.maximum(model.predict(xgb.DMatrix(test[FEATS])), 0)
        df = pd.DataFrame({"origin": o.origin, "id": test["id"].to_numpy(), "h": test["t"].to_numpy() - n + 1, "mean": pred})
        for q in QNAMES:
            df[q] = "NA"
        out.append(df)
    return pd.concat(out)


BUCKET_LAGS = (7, 14, 21, 28)
WINDOWS = (7, 14, 28, 56, 112, 364)


def direct_features(s, lag):
    """Features of the horizon bucket whose minimum lag is `lag`: every
    value-based feature of day t reads the series up to day t-lag only;
    calendar, events, SNAP and prices are known in advance. The same
    feature list as stockcast's direct model (pkg/globalmodel/direct.go),
    computed independently here with pandas."""
    f = s[["id", "item_id", "dept_id", "cat_id", "store_id", "date", "t", "value", "snap", "sell_price",
           "event_name_1", "event_type_1", "event_name_2", "age"]].copy()
    g = f.groupby("id", sort=False)["value"]
    cols = []
    for k in (lag, lag + 1, lag + 2):
        f[f"lag{k}"] = g.shift(k)
        cols.append(f"lag{k}")
    w = (lag + 6) // 7 * 7
    wl = []
    for k in range(4):
        f[f"lagw{w + 7 * k}"] = g.shift(w + 7 * k)
        wl.append(f"lagw{w + 7 * k}")
    f["wday_mean4"] = f[wl].mean(axis=1)
    cols += wl + ["wday_mean4"]
    f["_sh"] = g.shift(lag)
    sh = f.groupby("id", sort=False)["_sh"]
    for win in WINDOWS:
        f[f"rmean_{win}"] = sh.transform(lambda x: x.rolling(win, min_periods=1).mean())
        cols.append(f"rmean_{win}")
    f["rstd_28"] = sh.transform(lambda x: x.rolling(28, min_periods=28).std())
    f["_tlast"] = f["t"].where(f["value"] > 0)
    f["_tlast"] = f.groupby("id", sort=False)["_tlast"].ffill()
    f["zero_run"] = (f["t"] - lag) - f.groupby("id", sort=False)["_tlast"].shift(lag)
    f["_nz"] = (f["_sh"] > 0).astype(float).where(f["_sh"].notna())
    f["nonzero_share_28"] = f.groupby("id", sort=False)["_nz"].transform(lambda x: x.rolling(28, min_periods=28).mean())
    f["_r28"] = sh.transform(lambda x: x.rolling(28, min_periods=28).mean())
    f["item_rmean_28"] = f.groupby(["item_id", "t"])["_r28"].transform("mean")
    f["store_dept_rmean_28"] = f.groupby(["store_id", "dept_id", "t"])["_r28"].transform("mean")
    cols += ["rstd_28", "zero_run", "nonzero_share_28", "item_rmean_28", "store_dept_rmean_28"]
    d = pd.to_datetime(f["date"])
    f["wday"], f["month"], f["mday"], f["yday"] = d.dt.weekday, d.dt.month, d.dt.day, d.dt.dayofyear
    for c in ("event_name_1", "event_type_1", "event_name_2", "item_id", "dept_id", "cat_id", "store_id"):
        f[c + "_code"] = f[c].astype("category").cat.codes
    f["price"] = f["sell_price"]
    f["price_rel"] = f["price"] / f.groupby("item_id")["price"].transform("mean")
    f["price_change"] = f["price"] / f.groupby("id", sort=False)["price"].shift(7) - 1
    f["_pf"] = f.groupby("id", sort=False)["price"].ffill().fillna(0)
    f["_pm"] = f.groupby("id", sort=False)["_pf"].transform(lambda x: x.shift(1).rolling(28, min_periods=28).mean())
    f["price_momentum_28"] = f["price"] / f["_pm"].where(f["_pm"] > 0)
    f["price_max_rel"] = f["price"] / f.groupby("id", sort=False)["price"].transform("max")
    cols += ["wday", "month", "mday", "yday", "event_name_1_code", "event_type_1_code", "event_name_2_code", "snap",
             "price", "price_rel", "price_change", "price_momentum_28", "price_max_rel",
             "item_id_code", "dept_id_code", "cat_id_code", "store_id_code"]
    return f, cols


def xgboost_direct(s, origins, seed=1):
    """The per-horizon variant: one model per bucket of 7 horizon days
    (h = 1-7 with lags >= 7, 8-14 with lags >= 14, ...), otherwise the
    protocol of xgboost_global (Tweedie, early stopping on the last 28
    training days, refit on all training days with the rounds found)."""
    import xgboost as xgb
    base = features(s)[["id", "item_id", "dept_id", "cat_id", "store_id", "date", "t", "value", "snap",
                        "sell_price", "event_name_1", "event_type_1", "event_name_2", "age"]]
    out = []
    for lb, lag in enumerate(BUCKET_LAGS):
        f, cols = direct_features(base, lag)
        for _, o in origins.iterrows():
            n, h = int(o.train_days), int(o.horizon)
            lo = 0 if lb == 0 else BUCKET_LAGS[lb - 1]
            hi = lag if lb < len(BUCKET_LAGS) - 1 else h
            if lo >= h:
                continue
            train = f[(f.t < n) & (f.age >= 0) & (f.t >= 56)]
            fit_part, valid = train[train.t < n - 28], train[train.t >= n - 28]
            params = {"objective": "reg:tweedie", "tweedie_variance_power": 1.1, "eta": 0.05, "max_depth": 8,
                      "min_child_weight": 10, "subsample": 0.8, "colsample_bytree": 0.8, "tree_method": "hist",
                      "nthread": 2, "seed": seed}
            dfit = xgb.DMatrix(fit_part[cols], label=fit_part["value"])
            dval = xgb.DMatrix(valid[cols], label=valid["value"])
            model = xgb.train(params, dfit, 1000, evals=[(dval, "valid")], early_stopping_rounds=50, verbose_eval=False)
            dall = xgb.DMatrix(train[cols], label=train["value"])
            model = xgb.train(params, dall, model.best_iteration + 1)
            test = f[(f.t >= n + lo) & (f.t < n + min(hi, h))]
            pred = np.maximum(model.predict(xgb.DMatrix(test[cols])), 0)
            # not sold before the origin: no forecast to learn from (as the other peers)
            pred = np.where(test["t"].to_numpy() - test["age"].to_numpy() < n, pred, 0)
            df = pd.DataFrame({"origin": o.origin, "id": test["id"].to_numpy(), "h": test["t"].to_numpy() - n + 1, "mean": pred})
            for q in QNAMES:
                df[q] = "NA"
            out.append(df)
            print("xgboost_direct bucket lag %d: %d rounds" % (lag, model.num_boosted_rounds()), file=sys.stderr)
    return pd.concat(out).sort_values(["origin", "id", "h"], kind="stable")


def main():
    d, outpath, models = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    s, origins = load(d)
    frames, times = [], []
    for m in models:
        start = time.time()
        if m == "statsmodels_ets":
            df = statsmodels_ets(s, origins)
        elif m == "xgboost":
            df = xgboost_global(s, origins)
        elif m == "xgboost_direct":
            df = xgboost_direct(s, origins)
        else:
            sys.exit("unknown model " + m)
        times.append(("py_" + m, time.time() - start))
        print("python %s: %.1f s" % times[-1], file=sys.stderr)
        df.insert(0, "model", "py_" + m)
        frames.append(df)
    pd.concat(frames)[["model", "origin", "id", "h", "mean"] + QNAMES].to_csv(outpath, index=False, na_rep="NA")
    pd.DataFrame(times, columns=["model", "seconds"]).to_csv(outpath[:-4] + ".times.csv", index=False)


if __name__ == "__main__":
    main()
