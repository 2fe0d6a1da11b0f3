#!/usr/bin/env bash
# The forecasting peer harness (make bench-forecast): exports the splits
# from Go, runs the R and Python peers on them, and scores stockcast's
# models and the peers' forecasts with the same Go metrics in one table,
# ending with the summary line (stockcast's numbers are those of its row
# with the lowest WRMSSE on the validation window, named on the line
# before; the peers' are their lowest on the test days).
#   DATA=m5|online-retail  ORIGINS=1  R_MODELS=ets,arima,croston,sba,tsb,prophet
#   PY_MODELS=statsmodels_ets,xgboost,xgboost_direct  MODELS=all  STOCKCAST=bin/stockcast
#   BACKTEST_FLAGS="--gbt-bag 730:1,0:1 --gbt-lags 1,2,3,4,5,6,7,14,21,28"
#   (flags of the scoring run: by default the direct model's configuration
#   chosen on the validation window, docs/forecasting.md session 8)
#   SPEED_SERIES=10 (0: skip)
# Each peer's forecasts are kept in $OUT/r_<model>.csv or py_<model>.csv
# and reused while the exported splits are unchanged (their SHA-256 is in
# $OUT/splits.sha256); the global models' trainings are kept in
# $OUT/gbt-cache the same way. Delete $OUT to run everything again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
DATA=${DATA:-m5}
ORIGINS=${ORIGINS:-1}
R_MODELS=${R_MODELS:-ets,arima,croston,sba,tsb,prophet}
PY_MODELS=${PY_MODELS:-statsmodels_ets,xgboost,xgboost_direct}
MODELS=${MODELS:-all}
STOCKCAST=${STOCKCAST:-bin/stockcast}
OUT=${OUT:-.data/peers/$DATA-$ORIGINS}
"$here/install.sh"
mkdir -p "$OUT"
"$STOCKCAST" backtest --data "$DATA" --origins "$ORIGINS" --export "$OUT" --models none
sum=$(cat "$OUT/series.csv" "$OUT/origins.csv" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$OUT/splits.sha256" 2>/dev/null)" != "$sum" ]; then
  rm -rf "$OUT"/r_*.csv "$OUT"/py_*.csv "$OUT/gbt-cache"
  echo "$sum" > "$OUT/splits.sha256"
fi
peers=()
run_peer() { # lang model
  local lang=$1 m=$2 f="$OUT/$1_$2.csv"
  if [ ! -s "$f" ]; then
    echo "running peer $lang $m" >&2
    if [ "$lang" = r ]; then
      /usr/bin/Rscript "$here/peers.R" "$OUT" "$f.tmp.csv" "$m"
    else
      /usr/bin/python3 "$here/peers.py" "$OUT" "$f.tmp.csv" "$m"
    fi
    mv "$f.tmp.times.csv" "$OUT/$1_$2.times.csv"
    mv "$f.tmp.csv" "$f"
  fi
  peers+=("$f")
}
for m in ${R_MODELS//,/ }; do run_peer r "$m"; done
for m in ${PY_MODELS//,/ }; do run_peer py "$m"; done
# shellcheck disable=SC2086 # BACKTEST_FLAGS are words
"$STOCKCAST" backtest --data "$DATA" --origins "$ORIGINS" --models "$MODELS" --gbt-cache "$OUT/gbt-cache" \
  --peers "$(IFS=,; echo "${peers[*]}")" --summary ${BACKTEST_FLAGS:---gbt-bag 730:1,0:1 --gbt-lags 1,2,3,4,5,6,7,14,21,28}

# Speed, measured in this run (never cached): R ets and stockcast's
# ensemble on the same first SPEED_SERIES series, last horizon held out.
SPEED_SERIES=${SPEED_SERIES:-10}
if [ "$SPEED_SERIES" -gt 0 ]; then
  sp="$OUT/speed"
  rm -rf "$sp"
  mkdir -p "$sp"
  "$STOCKCAST" backtest --data "$DATA" --series "$SPEED_SERIES" --export "$sp" --models none 2>/dev/null
  /usr/bin/Rscript "$here/peers.R" "$sp" "$sp/r_ets.csv" ets 2>/dev/null
  "$STOCKCAST" backtest --data "$DATA" --series "$SPEED_SERIES" --models stockcast_ensemble --peers "$sp/r_ets.csv" >"$sp/table.txt"
  awk -v n="$SPEED_SERIES" '
    # only the rows of the main table end in a time ("0.034s"); the lead-time
    # table after it repeats the model names with coverages
    $1 == "stockcast_ensemble" && $NF ~ /s$/ && e == "" { e = $NF; sub(/s$/, "", e) }
    $1 == "R_ets" && $NF ~ /s$/ && r == "" { r = $NF; sub(/s$/, "", r) }
    END { printf "speed: %d series, same run: stockcast_ensemble %.3fs R_ets %.1fs ratio %.0fx\n", n, e, r, r / e }' "$sp/table.txt"
fi
