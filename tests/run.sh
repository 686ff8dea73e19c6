#!/usr/bin/env bash
# Slipway's test command (README, .ci/run): every tier this machine can run.
#   tier 1  unit + front end: cargo test --workspace (BuildKit and patternmatcher fixtures
#           from $SLIPWAY_FIXTURES or ../shared/fixtures)
#   tier 3  end to end on a real local cluster (tests/cluster/), when SLIPWAY_E2E=1
# Cargo's target dir lives outside the work tree (cached between runs, keyed by toolchain).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${CARGO_TARGET_DIR:-}" ]]; then
  key=$(rustc --version | tr -c 'A-Za-z0-9.\n' '-' | tr -d '\n')
  export CARGO_TARGET_DIR="${SLIPWAY_CACHE:-/var/cache/slipway}/cargo-target/$key"
fi
mkdir -p "$CARGO_TARGET_DIR"

echo "== format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== tier 1: unit and front-end tests"
cargo test --workspace --no-fail-fast 2>&1 | tee "$CARGO_TARGET_DIR/unit-test.log"

if [[ "${SLIPWAY_E2E:-0}" == 1 ]]; then
  echo "== tier 3: end to end on the local cluster"
  tests/e2e/run.sh
fi

echo "== summary"
grep -E '^test result:' "$CARGO_TARGET_DIR/unit-test.log" | awk '
  { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
  END { printf "%d passed, %d failed, %d skipped\n", p, f, s }'
