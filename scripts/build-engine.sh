#!/usr/bin/env bash
# Builds slipway-builder as a static binary (glibc, crt-static), the form that runs inside any
# base image, and prints its path. With --operator, slipway-operator the same way (for its
# scratch image). Usage: scripts/build-engine.sh [--debug] [--operator]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${CARGO_TARGET_DIR:-}" ]]; then
  key=$(rustc --version | tr -c 'A-Za-z0-9.\n' '-' | tr -d '\n')
  export CARGO_TARGET_DIR="${SLIPWAY_CACHE:-/var/cache/slipway}/cargo-target/$key"
fi
host=$(rustc -vV | sed -n 's/^host: //p')
profile=release; flag=--release; package=slipway-builder
for a in "$@"; do
  case $a in
    --debug) profile=debug; flag= ;;
    --operator) package=slipway-operator ;;
    *) echo "usage: $0 [--debug] [--operator]" >&2; exit 2 ;;
  esac
done
# --target keeps these flags away from build scripts and proc macros, which must stay dynamic.
RUSTFLAGS="-C target-feature=+crt-static" cargo build -q $flag --target "$host" -p "$package" >&2
echo "$CARGO_TARGET_DIR/$host/$profile/$package"
