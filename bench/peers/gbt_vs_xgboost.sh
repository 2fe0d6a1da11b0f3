#!/usr/bin/env bash
# stockcast's global model (pkg/gbt) against XGBoost on the same matrix and
# settings, one after the other in one run: `stockcast train` trains and
# scores the Go model and exports its matrix; XGBoost trains on that matrix
# and its forecasts are scored by the same Go code.
#   DATA=m5|online-retail  STOCKCAST=bin/stockcast
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
DATA=${DATA:-m5}
STOCKCAST=${STOCKCAST:-bin/stockcast}
OUT=${OUT:-.data/gbt-vs-xgboost/$DATA}
"$here/install.sh"
mkdir -p "$OUT"
"$STOCKCAST" train --data "$DATA" --out "$OUT/models" --export-matrix "$OUT/matrix" | tee "$OUT/train.txt"
origin=$(sed -n 's/.*holdout \([0-9-]*\) .*/\1/p' "$OUT/train.txt")
/usr/bin/python3 "$here/xgb_same_matrix.py" "$OUT/matrix" "$origin" "$OUT/xgb.csv"
"$STOCKCAST" backtest --data "$DATA" --models none --peers "$OUT/xgb.csv"
