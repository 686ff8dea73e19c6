#!/usr/bin/env bash
# The cluster benchmark in one command, on the running local cluster (after
# `eval "$(tests/cluster/up.sh)"`): deploys Slipway (tests/e2e/deploy.sh), copies the Debian
# test base into the cluster's registry (the BuildKit image is built on it), builds the peers'
# images (benches/peer_images.sh), lays out the contexts (benches/prepare.sh, or BENCH_CTX), and
# runs benches/cluster_peers.py with the arguments given (e.g. --builds go,fanout --reps 2).
set -euo pipefail
: "${KUBECONFIG:?run eval \"\$(tests/cluster/up.sh)\" first}" "${SLIPWAY_REGISTRY:?}"
repo=$(cd "$(dirname "$0")/.." && pwd)
R=$SLIPWAY_REGISTRY
eval "$("$repo/tests/e2e/deploy.sh")"
# shellcheck source=tests/engine/lib.sh
repo=$repo source "$repo/tests/engine/lib.sh"
engine_packages
start_registry
trap '[[ -n ${REG_PID:-} ]] && kill "$REG_PID" 2>/dev/null; [[ -n ${BENCH_CTX:-} || -z ${ctx:-} ]] || rm -rf "$ctx"; true' EXIT
ensure_images debian
skopeo copy --quiet --src-tls-verify=false --dest-tls-verify=false --preserve-digests \
  "docker://$ENGINE_REGISTRY/slipway-test/debian:latest" "docker://$R/slipway-test/debian:latest" >&2
mapfile -t peers < <("$repo/benches/peer_images.sh" "$R" "$R")
ctx=${BENCH_CTX:-$("$repo/benches/prepare.sh")}
"$repo/benches/cluster_peers.py" --ctx "$ctx" --kaniko "${peers[0]}" --buildkit "${peers[1]}" "$@"
