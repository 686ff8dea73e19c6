#!/usr/bin/env bash
# GitOps health on recorded statuses: Argo CD's health script for ImageBuild
# (charts/slipway/argocd/health.lua) run by a real Lua 5.1 (Argo CD's gopher-lua is 5.1) on
# every status in statuses.json, which the operator's unit tests generate from its own status
# code and keep fresh (operator/src/reconcile/health_tests.rs; kstatus' rules, what Flux
# runs, are checked there). Installs Debian's lua5.1 when it is missing and this is root.
# Last line: `health: N passed, N failed, N skipped`.
set -euo pipefail
cd "$(dirname "$0")/../.."

lua=${SLIPWAY_LUA:-lua5.1}
if [[ $lua == lua5.1 ]] && ! command -v "$lua" >/dev/null && [[ $(id -u) == 0 ]] &&
  command -v apt-get >/dev/null; then
  echo "installing lua5.1"
  apt-get install -y -q lua5.1 >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q lua5.1 >/dev/null; } || true
fi
if ! command -v "$lua" >/dev/null; then
  echo "health: 0 passed, 0 failed, 1 skipped ($lua missing; as root this script installs it)"
  exit 0
fi

"$lua" -v 2>&1
status=0
out=$("$lua" tests/health/argocd_test.lua charts/slipway/argocd/health.lua \
  tests/health/statuses.json) || status=1
echo "$out"
echo "$out" | awk '/^argocd: [0-9]+ passed, [0-9]+ failed/ { p = $2; f = $4; found = 1 }
  END { if (!found) { p = 0; f = 1 }; printf "health: %d passed, %d failed, 0 skipped\n", p, f }'
exit $status
