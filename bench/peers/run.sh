#!/usr/bin/env bash
# The forecasting peer harness (make bench-forecast): exports the splits
# from Go, runs the R and Python peers on them, and scores stockcast's
# models and the peers' forecasts with the same Go metrics in one table.
#   DATA=m5|online-retail  ORIGINS=1  R_MODELS=ets,croston,sba,tsb,arima,prophet
#   PY_MODELS=statsmodels_ets,xgboost  STOCKCAST=bin/stockcast
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
DATA=${DATA:-m5}
ORIGINS=${ORIGINS:-1}
R_MODELS=${R_MODELS:-ets,croston,sba,tsb,arima}
PY_MODELS=${PY_MODELS:-statsmodels_ets,xgboost}
STOCKCAST=${STOCKCAST:-bin/stockcast}
OUT=${OUT:-.data/peers/$DATA-$ORIGINS}
"$here/install.sh"
mkdir -p "$OUT"
"$STOCKCAST" backtest --data "$DATA" --origins "$ORIGINS" --export "$OUT" --models none
peers=()
if [ -n "$R_MODELS" ]; then
  /usr/bin/Rscript "$here/peers.R" "$OUT" "$OUT/r.csv" "$R_MODELS"
  peers+=("$OUT/r.csv")
fi
if [ -n "$PY_MODELS" ]; then
  /usr/bin/python3 "$here/peers.py" "$OUT" "$OUT/py.csv" "$PY_MODELS"
  peers+=("$OUT/py.csv")
fi
"$STOCKCAST" backtest --data "$DATA" --origins "$ORIGINS" --peers "$(IFS=,; echo "${peers[*]}")" --summary
