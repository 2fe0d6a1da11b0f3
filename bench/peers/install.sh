#!/usr/bin/env bash
# Installs the forecasting peers from apt when missing: R forecast and
# prophet, statsmodels, XGBoost, scikit-learn.
set -euo pipefail
missing=()
[ -x /usr/bin/Rscript ] && /usr/bin/Rscript -e 'library(forecast)' >/dev/null 2>&1 || missing+=(r-cran-forecast)
[ -x /usr/bin/Rscript ] && /usr/bin/Rscript -e 'library(prophet)' >/dev/null 2>&1 || missing+=(r-cran-prophet)
/usr/bin/python3 -c 'import statsmodels' >/dev/null 2>&1 || missing+=(python3-statsmodels)
/usr/bin/python3 -c 'import xgboost' >/dev/null 2>&1 || missing+=(python3-xgboost)
/usr/bin/python3 -c 'import sklearn' >/dev/null 2>&1 || missing+=(python3-sklearn)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
