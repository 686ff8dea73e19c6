#!/usr/bin/env bash
# Builds slipway-builder as a static binary (glibc, crt-static), the form that runs inside any
# base image, and prints its path. Usage: scripts/build-engine.sh [--debug]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${CARGO_TARGET_DIR:-}" ]]; then
  key=$(rustc --version | tr -c 'A-Za-z0-9.\n' '-' | tr -d '\n')
  export CARGO_TARGET_DIR="${SLIPWAY_CACHE:-/var/cache/slipway}/cargo-target/$key"
fi
host=$(rustc -vV | sed -n 's/^host: //p')
profile=release; flag=--release
if [[ "${1:-}" == --debug ]]; then profile=debug; flag=; fi
# --target keeps these flags away from build scripts and proc macros, which must stay dynamic.
RUSTFLAGS="-C target-feature=+crt-static" cargo build -q $flag --target "$host" -p slipway-builder >&2
echo "$CARGO_TARGET_DIR/$host/$profile/slipway-builder"
