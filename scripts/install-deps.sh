#!/usr/bin/env bash
# Installs the Debian packages stockcast runs on: redis-server and
# clickhouse-server; with --test also what the tests need. Does nothing for
# what is present.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
command -v clickhouse-server >/dev/null 2>&1 || [ -x /usr/sbin/clickhouse-server ] || missing+=(clickhouse-server)
if [ "${1:-}" = "--test" ]; then
  # make test-k8s: etcd backs the real kube-apiserver; promtool (prometheus) checks the alert rules.
  [ -x /usr/bin/etcd ] || missing+=(etcd-server)
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  # gcc: the race detector (make test-race) needs cgo.
  command -v gcc >/dev/null 2>&1 || missing+=(gcc)
  # Debian's chromium drives the console's browser tests (services/console/web/e2e).
  [ -x /usr/bin/chromium ] || missing+=(chromium)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
