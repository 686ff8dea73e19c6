#!/usr/bin/env bash
# Slipway's test command (README, .ci/run): every tier this machine can run.
#   tier 1  unit + front end: cargo test --workspace (BuildKit and patternmatcher fixtures
#           from $SLIPWAY_FIXTURES or ../shared/fixtures), then tests/health/run.sh: Argo CD's
#           health script in Lua 5.1 on the statuses the unit tests record
#   conformance  kaniko's Dockerfile corpus (from its module source) built by Slipway and by
#           BuildKit and compared, after tier 2 (tests/conformance/run.sh; SLIPWAY_CONFORMANCE=0
#           skips it, as SLIPWAY_ENGINE=0 does)
#   tier 3  end to end on a real local cluster: tests/cluster/up.sh brings it up (building
#           Kubernetes on the first run), tests/e2e/run.sh runs against it, and down.sh
#           removes it again unless it was already running or SLIPWAY_KEEP_CLUSTER=1.
#           SLIPWAY_E2E=0 skips this tier.
# Cargo's target dir lives outside the work tree (cached between runs, keyed by toolchain).
set -euo pipefail
cd "$(dirname "$0")/.."
# Go and cargo keep their caches under HOME; CI's environment may lack it.
export HOME=${HOME:-$(getent passwd "$(id -un)" | cut -d: -f6)}

if [[ -z "${CARGO_TARGET_DIR:-}" ]]; then
  key=$(rustc --version | tr -c 'A-Za-z0-9.\n' '-' | tr -d '\n')
  export CARGO_TARGET_DIR="${SLIPWAY_CACHE:-/var/cache/slipway}/cargo-target/$key"
fi
mkdir -p "$CARGO_TARGET_DIR"
logs=$CARGO_TARGET_DIR/test-logs
mkdir -p "$logs"
rm -f "$logs"/*.log

echo "== format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== tier 1: unit and front-end tests"
# A failing unit test still reaches the summary (and fails the run there).
unit_status=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$logs/unit.log" || unit_status=1
health_status=0
echo "== tier 1: GitOps health (Argo CD's health.lua on the operator's recorded statuses)"
tests/health/run.sh 2>&1 | tee "$logs/health.log" || health_status=1

engine_status=0
if [[ ${SLIPWAY_ENGINE:-1} == 0 ]]; then
  echo "== tier 2 skipped: SLIPWAY_ENGINE=0"
elif [[ $(id -u) != 0 ]]; then
  echo "== tier 2 skipped: runc and buildkitd need root"
else
  echo "== tier 2: the engine (local builds in runc, a loopback registry, BuildKit as the reference)"
  tests/engine/run.sh 2>&1 | tee "$logs/engine.log" || engine_status=1
fi

conformance_status=0
if [[ ${SLIPWAY_ENGINE:-1} == 0 || ${SLIPWAY_CONFORMANCE:-1} == 0 ]]; then
  echo "== conformance skipped: SLIPWAY_ENGINE=0 or SLIPWAY_CONFORMANCE=0"
elif [[ $(id -u) != 0 ]]; then
  echo "== conformance skipped: runc and buildkitd need root"
else
  echo "== conformance: kaniko's Dockerfile corpus, built by Slipway and by BuildKit, compared"
  tests/conformance/run.sh 2>&1 | tee "$logs/conformance.log" || conformance_status=1
fi

e2e_status=0
if [[ ${SLIPWAY_E2E:-1} == 0 ]]; then
  echo "== tier 3 skipped: SLIPWAY_E2E=0"
elif [[ $(id -u) != 0 ]]; then
  echo "== tier 3 skipped: the local cluster needs root"
else
  echo "== tier 3: end to end on the local cluster"
  # One cluster per machine: wait for anyone else using it (a benchmark, another run).
  exec 9>/tmp/slipway-cluster.lock
  if ! flock -n 9; then
    echo "waiting for the cluster lock /tmp/slipway-cluster.lock"
    flock -w 1200 9 || echo "cluster lock still held after 20 min; going on"
  fi
  state=${SLIPWAY_CLUSTER_STATE:-/var/lib/slipway-cluster}
  started_here=1
  # A cluster someone else started (and left running) is left running afterwards too.
  [[ -f $state/ready && -f $state/pids/kube-apiserver.pid ]] &&
    kill -0 "$(cat "$state/pids/kube-apiserver.pid")" 2>/dev/null && started_here=0
  start=$(date +%s)
  if exports=$(tests/cluster/up.sh); then
    echo "cluster up in $(( $(date +%s) - start ))s"
    eval "$exports"
    tests/e2e/run.sh 2>&1 | tee "$logs/e2e.log" || e2e_status=1
  else
    echo "e2e: 0 passed, 1 failed (tests/cluster/up.sh failed)" | tee "$logs/e2e.log"
    e2e_status=1
  fi
  if [[ $started_here == 1 && ${SLIPWAY_KEEP_CLUSTER:-0} != 1 ]]; then
    tests/cluster/down.sh || e2e_status=1
  fi
fi

echo "== summary"
{
  grep -hE '^test result:' "$logs/unit.log" | awk '
    { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
    END { printf "unit %d %d %d\n", p, f, s }'
  # No health line at all counts as a failure (awk exits 0 either way, unlike grep).
  awk '/^health: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped/ { p = $2; f = $4; s = $6; n = 1 }
    END { printf "health %d %d %d\n", p, (n ? f : 1), s }' "$logs/health.log"
  [[ -f $logs/engine.log ]] && grep -hE '^engine: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped' "$logs/engine.log" | tail -1 | awk '{ printf "engine %d %d %d\n", $2, $4, $6 }'
  # conformance IDENTICAL DIFFER NOT_RUNNABLE UNLISTED; a log without the line is one failure.
  [[ -f $logs/conformance.log ]] && awk '
    /^conformance: [0-9]+ identical, [0-9]+ differ/ { i = $2; d = $4; u = 0; if ($6 ~ /^\(/) { u = substr($6, 2); k = $9 } else k = $6; n = 1 }
    END { printf "conformance %d %d %d %d\n", i, d, k, (n ? u : 1) }' "$logs/conformance.log"
  [[ -f $logs/e2e.log ]] && grep -hE '^e2e: [0-9]+ passed, [0-9]+ failed' "$logs/e2e.log" | tail -1 | awk '{ printf "e2e %d %d 0\n", $2, $4 }'
} | awk '$1 == "conformance" { print "conformance: " $2 " identical, " $3 " differ, " $4 " not runnable" ($5 ? ", " $5 " not listed (failed)" : "");
                               p += $2 + $3 - $5; f += $5; s += $4; next }
         { print $1 ": " $2 " passed, " $3 " failed, " $4 " skipped"; p += $2; f += $3; s += $4 }
         END { printf "%d passed, %d failed, %d skipped\n", p, f, s }'
(( unit_status == 0 && e2e_status == 0 && engine_status == 0 && health_status == 0 && conformance_status == 0 ))
